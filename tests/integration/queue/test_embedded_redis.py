"""The embedded Redis: starts on a Unix socket, persists jobs, is shared, stops cleanly,
and never trusts a socket (or its directory) that another user owns."""

from __future__ import annotations

import os
import shutil
import socket
import stat
from pathlib import Path

import pytest
import redis

from stylebot.queue.redis_server import EmbeddedRedis, EmbeddedRedisError, socket_path_for


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


def deep_data_dir(tmp_path: Path) -> Path:
    """Too deep for a socket inside it: its socket goes to the runtime or temp directory."""
    return tmp_path.joinpath(*["nested-directory-name"] * 6)


def test_a_long_path_socket_is_in_a_private_directory_of_this_user(tmp_path: Path) -> None:
    deep = deep_data_dir(tmp_path)
    with EmbeddedRedis(deep) as server:
        directory = os.lstat(server.socket_path.parent)
        assert stat.S_ISDIR(directory.st_mode)
        assert directory.st_uid == os.geteuid()
        assert stat.S_IMODE(directory.st_mode) == 0o700
        assert str(os.geteuid()) in server.socket_path.parent.name


def test_a_socket_directory_of_another_user_is_refused_not_joined(tmp_path: Path) -> None:
    deep = deep_data_dir(tmp_path)
    planted = socket_path_for(deep).parent
    shutil.rmtree(planted, ignore_errors=True)
    planted.mkdir(mode=0o777)
    try:
        # Another user's Redis listens there, answering PING.
        with EmbeddedRedis(tmp_path / "theirs") as theirs:
            os.symlink(theirs.socket_path, socket_path_for(deep))
            os.lchown(planted, NOBODY, NOBODY)
            with pytest.raises(EmbeddedRedisError, match=f"belongs to uid {NOBODY}"):
                EmbeddedRedis(deep).start()
            assert not (deep / "redis" / "appendonly.aof").exists()
    finally:
        shutil.rmtree(planted)


def test_a_socket_of_another_user_in_our_directory_is_refused(tmp_path: Path) -> None:
    deep = deep_data_dir(tmp_path)
    path = socket_path_for(deep)
    shutil.rmtree(path.parent, ignore_errors=True)
    path.parent.mkdir(mode=0o755)  # ours, but left open: another user put a socket in it
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))
            os.lchown(path, NOBODY, NOBODY)
            with pytest.raises(EmbeddedRedisError, match=f"{path} belongs to uid {NOBODY}"):
                EmbeddedRedis(deep).start()
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # and it is ours again
    finally:
        shutil.rmtree(path.parent)


def test_the_socket_directory_inside_the_data_directory_is_checked_too(tmp_path: Path) -> None:
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    os.chown(redis_dir, NOBODY, NOBODY)
    with pytest.raises(EmbeddedRedisError, match="belongs to uid"):
        EmbeddedRedis(tmp_path).start()
