"""What stylebot stores is private to its user (issue 13): with the usual umask (022) a
console session that uploads, trains and generates leaves a data directory in which
every directory is 0700 and every file 0600 (the embedded Redis's included)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.processes import child_env

from stylebot.bot.console.session import make_sample_images

pytestmark = pytest.mark.slow


def stylebot_with_umask_022(
    arguments: list[str], env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stylebot", *arguments],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=lambda: os.umask(0o022),  # what a login shell usually has
    )


def open_to_others(directory: Path) -> list[str]:
    """Everything under `directory` (and itself) that its group or others may use."""
    found = []
    for path in [directory, *directory.rglob("*")]:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        if mode & 0o077:
            found.append(f"{oct(mode)} {path.relative_to(directory.parent)}")
    return found


def test_a_session_leaves_only_private_files(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = tmp_path / "data"
    samples = make_sample_images(tmp_path / "refs", 2)
    script = "\n".join(
        [
            f"/upload {samples[0]} {samples[1]}",
            "/consent own-work",
            "/train ink",
            "/imagine a lighthouse style:ink seed:5",
            "/quit",
        ]
    )
    env = child_env(
        STYLEBOT_DATA_DIR=str(data),
        STYLEBOT_BASE_MODEL=str(tiny_model_dir),
        STYLEBOT_TRAIN_STEPS="4",
        STYLEBOT_TRAIN_RESOLUTION="64",
        STYLEBOT_DEFAULT_SIZE="256",
        STYLEBOT_DEFAULT_STEPS="3",
    )
    result = stylebot_with_umask_022(["console"], env, script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Style ink is ready" in result.stdout
    stored = {p.relative_to(data).parts[0] for p in data.rglob("*") if p.is_file()}
    # The kinds of files the issue names are all there to be checked.
    assert {"blobs", "redis", "logs", "stylebot.sqlite3"} <= stored, stored
    assert any(p.name.endswith(".aof") or "appendonly" in p.name for p in data.rglob("*"))
    assert open_to_others(data) == []


def test_an_existing_open_data_directory_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    result = stylebot_with_umask_022(
        ["console", "--no-worker"], child_env(STYLEBOT_DATA_DIR=str(data)), "/quit\n"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert open_to_others(data) == []
