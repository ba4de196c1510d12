"""The embedded Redis: starts on a Unix socket, persists jobs, is shared, stops cleanly,
and never trusts a socket (or its directory) that another user owns."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from stylebot.queue.redis_server import EmbeddedRedis, find_redis_server
from stylebot.queue.redis_socket import EmbeddedRedisError, socket_path_for


def test_starts_on_a_unix_socket_with_append_only_persistence(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        client = redis.Redis(unix_socket_path=str(server.socket_path))
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("port") == {"port": "0"}
        client.set("job", "queued")
        client.close()
    assert not server.socket_path.exists()

    with EmbeddedRedis(tmp_path) as again:
        client = redis.Redis(unix_socket_path=str(again.socket_path))
        assert client.get("job") == b"queued"  # survived the restart via the AOF
        client.close()


def test_the_server_inherits_no_bot_token_nor_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its environment is readable by its user (/proc/PID/environ) and outlives the bot."""
    secrets = {
        "DISCORD_TOKEN": "discord-token-Zq81x",
        "STYLEBOT_TELEGRAM_TOKEN": "123456:telegram-token-Kp4",
        "REDIS_URL": "redis://:hunter2secretQ@elsewhere:6379/0",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    # redis-server overwrites its own environ block (its process title), so a wrapper
    # notes what it was started with, then becomes the real server.
    seen = tmp_path / "environ"
    wrapper = tmp_path / "redis-server-noting-environ"
    wrapper.write_text(f'#!/bin/sh\nenv > "{seen}"\nexec "{find_redis_server()}" "$@"\n')
    wrapper.chmod(0o700)
    with EmbeddedRedis(tmp_path / "data", executable=str(wrapper)) as server:
        client = redis.Redis(unix_socket_path=str(server.socket_path))
        assert client.ping()
        client.close()
    environ = seen.read_text()
    assert "PATH=" in environ
    assert not [name for name, value in secrets.items() if value in environ]


def test_a_second_process_on_the_same_data_dir_joins_the_running_server(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as first:
        with EmbeddedRedis(tmp_path) as second:
            assert first.owned
            assert not second.owned
            assert second.url == first.url
        # The joiner leaving does not stop the owner's server.
        client = redis.Redis(unix_socket_path=str(first.socket_path))
        assert client.ping()
        client.close()


def test_a_deep_data_directory_gets_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["nested-directory-name"] * 6)
    path = socket_path_for(deep)
    assert len(str(path)) <= 100
    assert path == socket_path_for(deep)  # every process computes the same one
    with EmbeddedRedis(deep) as server:
        client = redis.Redis(unix_socket_path=str(server.socket_path))
        assert client.ping()
        client.close()
    assert (deep / "redis" / "appendonly.aof").exists()


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    stale = socket_path_for(tmp_path)
    stale.parent.mkdir(parents=True)
    stale.write_text("left behind by a crash")
    with EmbeddedRedis(tmp_path) as server:
        assert server.owned
        client = redis.Redis(unix_socket_path=str(server.socket_path))
        assert client.ping()
        client.close()


NOBODY = 65534  # another local user: the tests run as root, so they can chown to it


@pytest.fixture
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime directory of this test's own (short, as sockets need): the long-path
    sockets go there, so the tests below touch nothing they did not create."""
    made = Path(tempfile.mkdtemp(prefix="sb-run-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(made))
    yield made
    shutil.rmtree(made, ignore_errors=True)


def deep_socket(tmp_path: Path, runtime_dir: Path) -> tuple[Path, Path]:
    """A data directory too deep for a socket inside it, and its socket's path, which
    is in the test's runtime directory (checked: the tests below remove its parent)."""
    deep = tmp_path.joinpath(*["nested-directory-name"] * 6)
    path = socket_path_for(deep)
    assert path.parent.parent == runtime_dir, path
    return deep, path


def test_a_long_path_socket_is_in_a_private_directory_of_this_user(
    tmp_path: Path, runtime_dir: Path
) -> None:
    deep, path = deep_socket(tmp_path, runtime_dir)
    with EmbeddedRedis(deep) as server:
        assert server.socket_path == path
        directory = os.lstat(path.parent)
        assert stat.S_ISDIR(directory.st_mode)
        assert directory.st_uid == os.geteuid()
        assert stat.S_IMODE(directory.st_mode) == 0o700
        assert str(os.geteuid()) in path.parent.name


def test_a_socket_directory_of_another_user_is_refused_not_joined(
    tmp_path: Path, runtime_dir: Path
) -> None:
    deep, path = deep_socket(tmp_path, runtime_dir)
    path.parent.mkdir(mode=0o777)
    # Another user's Redis listens there, answering PING.
    with EmbeddedRedis(tmp_path / "theirs") as theirs:
        os.symlink(theirs.socket_path, path)
        os.lchown(path.parent, NOBODY, NOBODY)
        with pytest.raises(EmbeddedRedisError, match=f"belongs to uid {NOBODY}"):
            EmbeddedRedis(deep).start()
        assert not (deep / "redis" / "appendonly.aof").exists()


def test_a_socket_of_another_user_in_our_directory_is_refused(
    tmp_path: Path, runtime_dir: Path
) -> None:
    deep, path = deep_socket(tmp_path, runtime_dir)
    path.parent.mkdir(mode=0o755)  # ours, but left open: another user put a socket in it
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        os.lchown(path, NOBODY, NOBODY)
        with pytest.raises(EmbeddedRedisError, match=f"{path} belongs to uid {NOBODY}"):
            EmbeddedRedis(deep).start()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # and it is ours again


def test_the_socket_directory_inside_the_data_directory_is_checked_too(tmp_path: Path) -> None:
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    os.chown(redis_dir, NOBODY, NOBODY)
    with pytest.raises(EmbeddedRedisError, match="belongs to uid"):
        EmbeddedRedis(tmp_path).start()
