"""The embedded Redis: starts on a Unix socket, persists jobs, is shared, stops cleanly."""

from __future__ import annotations

from pathlib import Path

import redis

from stylebot.queue.redis_server import EmbeddedRedis, socket_path_for


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
