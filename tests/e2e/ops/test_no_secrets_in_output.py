"""No credential is ever printed (issue 13): unique secrets are planted in the settings of
real `stylebot` processes (doctor, status, run with a token Telegram rejects, a worker),
and every byte they write, to the terminal or to files, is searched for them."""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.fakes.telegram_api import FakeTelegram
from tests.support.processes import child_env

from stylebot.queue.redis_server import find_redis_server

# Unique per run, so a hit can only be a leak from this test's processes.
DEFAULT_PASSWORD = "defaultpw-" + secrets.token_hex(12)
ACL_PASSWORD = "aclpw-" + secrets.token_hex(12)
ACL_USER = "stylebot-acl"
TELEGRAM_SECRET = "AAH" + secrets.token_urlsafe(30)
TELEGRAM_TOKEN = f"8123456789:{TELEGRAM_SECRET}"
DISCORD_TOKEN = f"MTIz{secrets.token_hex(12)}.GhIjKl.{secrets.token_urlsafe(30)}"
PLANTED = (DEFAULT_PASSWORD, ACL_PASSWORD, TELEGRAM_SECRET, DISCORD_TOKEN)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[int]:
    """A Redis on TCP that needs a password for `default` and has an ACL user."""
    port = free_port()
    server = subprocess.Popen(
        [
            find_redis_server(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(tmp_path),
            "--requirepass",
            DEFAULT_PASSWORD,
            "--user",
            ACL_USER,
            "on",
            f">{ACL_PASSWORD}",
            "~*",
            "&*",
            "+@all",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, password=DEFAULT_PASSWORD)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "the password Redis did not start"
            time.sleep(0.05)
    client.close()
    yield port
    server.terminate()
    server.wait(timeout=10)


def assert_no_secret_in(texts: dict[str, bytes]) -> None:
    for where, data in texts.items():
        for secret in PLANTED:
            assert secret.encode() not in data, f"{where} shows a planted secret"


def files_under(directory: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def stylebot(
    data_dir: Path, arguments: list[str], env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "stylebot", "--data-dir", str(data_dir), *arguments],
        env=env,
        cwd=data_dir.parent,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


async def test_doctor_status_run_and_a_worker_never_print_a_planted_secret(
    tmp_path: Path, tiny_model_dir: Path, password_redis: int
) -> None:
    data = tmp_path / "data"
    acl_url = f"redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{password_redis}/0"
    default_url = f"redis://:{DEFAULT_PASSWORD}@127.0.0.1:{password_redis}/0"
    unreachable = f"redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{free_port()}/0"
    base = {
        "STYLEBOT_BASE_MODEL": str(tiny_model_dir),
        "STYLEBOT_DEVICE": "cpu",
        "DISCORD_TOKEN": DISCORD_TOKEN,
        "TELEGRAM_TOKEN": TELEGRAM_TOKEN,
    }
    outputs: dict[str, bytes] = {}

    for name, url in (("default", default_url), ("acl", acl_url), ("unreachable", unreachable)):
        doctor = stylebot(data, ["-v", "doctor", "--no-model"], child_env(**base, REDIS_URL=url))
        outputs[f"doctor ({name})"] = doctor.stdout + doctor.stderr
        status = stylebot(data, ["-v", "status"], child_env(**base, REDIS_URL=url))
        outputs[f"status ({name})"] = status.stdout + status.stderr
    # The redacted forms are there: the checks still say which server they mean.
    assert f"redis://:***@127.0.0.1:{password_redis}/0".encode() in outputs["doctor (default)"]
    assert f"{ACL_USER}:***@".encode() in outputs["status (unreachable)"]

    worker = stylebot(
        data,
        ["-v", "worker", "--burst"],
        child_env(**base, REDIS_URL=acl_url, STYLEBOT_LOG_FORMAT="json"),
    )
    outputs["worker"] = worker.stdout + worker.stderr
    assert worker.returncode == 0, outputs["worker"].decode(errors="replace")[-3000:]

    async with FakeTelegram(token="7654321:the-token-the-fake-accepts") as fake:
        run = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stylebot",
            "--data-dir",
            str(data),
            "-v",
            "run",
            env=child_env(
                **{k: v for k, v in base.items() if k != "DISCORD_TOKEN"},
                REDIS_URL=acl_url,
                STYLEBOT_TELEGRAM_API_URL=f"http://127.0.0.1:{fake.port}",
            ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(run.communicate(), timeout=120)
        assert fake.calls("getMe"), "run never asked Telegram"
    outputs["run"] = stdout + stderr
    assert run.returncode == 1, outputs["run"].decode(errors="replace")
    assert b"telegram front end could not start" in stderr

    assert_no_secret_in(outputs)
    assert_no_secret_in(files_under(data))
