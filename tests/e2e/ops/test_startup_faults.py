"""A process that cannot work says so in one line and exits 2, before starting anything.

Each fault is caused for real: a port nothing listens on, a file where the data
directory should be, a read-only file system, a base model that is not there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.processes import child_env, free_port
from tests.support.s3_server import SeaweedS3
from tests.support.small_disk import mounted_tmpfs


def stylebot(
    tmp_path: Path, data_dir: Path, *command: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stylebot", "--data-dir", str(data_dir), *command],
        env=child_env(TELEGRAM_TOKEN="123:abc", **env),
        cwd=tmp_path,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a process that refused to start with status 2."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stylebot: ")
    return lines[0]


@pytest.mark.parametrize("command", [["run"], ["worker"], ["console"], ["demo"]])
def test_an_unreachable_redis(tmp_path: Path, command: list[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = stylebot(
        tmp_path, tmp_path / "data", *command, stdin="/imagine a cat\n", REDIS_URL=url
    )
    line = one_line_error(result)
    assert f"cannot reach Redis at {url}" in line
    assert "fix REDIS_URL" in line
    assert "position" not in result.stdout  # the console took no command


def test_a_password_in_the_redis_url_is_not_shown(tmp_path: Path) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    line = one_line_error(stylebot(tmp_path, tmp_path / "data", "worker", REDIS_URL=url))
    assert "hunter2" not in line
    assert "cannot reach Redis at redis://:***@127.0.0.1" in line


@pytest.mark.parametrize("command", [["run"], ["worker"]])
def test_an_object_store_that_refuses_the_key(
    tmp_path: Path, command: list[str], s3_server: SeaweedS3, s3_prefix: str
) -> None:
    settings = {**s3_server.env(s3_prefix), "STYLEBOT_S3_SECRET_ACCESS_KEY": "wrong-s3-secret"}
    line = one_line_error(stylebot(tmp_path, tmp_path / "data", *command, **settings))
    assert "the blob store cannot be used: could not store blob" in line
    assert f"in s3://{s3_server.BUCKET}/{s3_prefix}" in line
    assert "SignatureDoesNotMatch" in line
    assert "fix STYLEBOT_BLOB_URL or the STYLEBOT_S3_* settings" in line
    assert "wrong-s3-secret" not in line


def test_an_object_store_that_is_not_there(tmp_path: Path, s3_server: SeaweedS3) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    settings = {**s3_server.env("x/"), "STYLEBOT_S3_ENDPOINT_URL": nobody}
    line = one_line_error(stylebot(tmp_path, tmp_path / "data", "worker", **settings))
    assert f'Could not connect to the endpoint URL: "{nobody}/' in line


@pytest.mark.parametrize("command", [["run"], ["worker"], ["console"]])
def test_a_data_directory_that_is_a_file(tmp_path: Path, command: list[str]) -> None:
    data_dir = tmp_path / "data"
    data_dir.write_text("not a directory")
    line = one_line_error(stylebot(tmp_path, data_dir, *command))
    assert f"the data directory {data_dir} is a file" in line
    assert "STYLEBOT_DATA_DIR" in line


def test_a_read_only_data_directory(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "ro", "1m", read_only=True) as read_only:
        line = one_line_error(stylebot(tmp_path, read_only / "data", "run"))
        assert f"the data directory {read_only / 'data'} is read-only" in line
        line = one_line_error(stylebot(tmp_path, read_only, "worker"))
        assert f"the data directory {read_only} is read-only" in line


@pytest.mark.parametrize(
    ("command", "base_model"),
    [(["worker"], "/models/nowhere"), (["console"], "./sd15.safetensors"), (["demo"], "~/m/x/y")],
)
def test_a_missing_base_model(tmp_path: Path, command: list[str], base_model: str) -> None:
    result = stylebot(
        tmp_path,
        tmp_path / "data",
        *command,
        stdin="/imagine a cat\n",
        STYLEBOT_BASE_MODEL=base_model,
    )
    line = one_line_error(result)
    assert f"STYLEBOT_BASE_MODEL={base_model} does not exist" in line
    assert "position" not in result.stdout  # the console took no command


def test_no_base_model_and_no_demo_model(tmp_path: Path) -> None:
    line = one_line_error(stylebot(tmp_path, tmp_path / "data", "worker"))
    assert "no base model" in line
    assert "stylebot model tiny" in line


def test_the_console_takes_no_command_before_its_worker_serves(tmp_path: Path) -> None:
    """A model that is there but does not load: the worker child stops; the console
    says why in one line instead of queueing work ('position 1') nobody will do."""
    broken = tmp_path / "broken-model"
    broken.mkdir()
    result = stylebot(
        tmp_path,
        tmp_path / "data",
        "console",
        stdin="/imagine a cat\n",
        STYLEBOT_BASE_MODEL=str(broken),
    )
    line = one_line_error(result)
    assert "the worker could not start (exit 2): the base model" in line
    assert "no model_index.json" in line
    assert "position" not in result.stdout


def test_a_disk_running_low_is_warned_about_at_start(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "disk", "30m") as disk:
        result = stylebot(
            disk, disk / "data", "console", "--no-worker", STYLEBOT_DISK_LOW_FREE_MB="100"
        )
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if "DISK_LOW_FREE_MB" in line]
        assert len(warnings) == 1, result.stderr
        assert f"the data directory {disk / 'data'} has " in warnings[0]
        assert "below STYLEBOT_DISK_LOW_FREE_MB=100" in warnings[0]
