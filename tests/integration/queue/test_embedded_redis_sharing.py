"""The embedded Redis shared by several processes: the last one out stops it.

Each `EmbeddedRedis` handle stands for one stylebot process on the data
directory (as in /tmp/review-ops/repro_shared_redis.py): the first starts the
server, the others join it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import redis
from tests.support.small_disk import fill, mounted_tmpfs

from stylebot.queue.redis_server import EmbeddedRedis


def _answers(server: EmbeddedRedis) -> bool:
    client = redis.Redis(unix_socket_path=str(server.socket_path), socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.ResponseError:
        return True  # refusing (MISCONF on a full disk), but serving
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def test_the_owner_leaving_first_leaves_redis_to_the_joiner_who_then_stops_it(
    tmp_path: Path,
) -> None:
    owner = EmbeddedRedis(tmp_path).start()  # `stylebot run`
    joiner = EmbeddedRedis(tmp_path).start()  # `stylebot worker` on the same data dir
    try:
        assert owner.owned
        assert not joiner.owned
        client = redis.Redis.from_url(joiner.url)
        client.set("job", "queued")
        client.close()

        owner.stop()  # the front end restarts
        assert _answers(joiner), "Redis was taken away from the process still using it"
        assert joiner.socket_path.exists()
    finally:
        joiner.stop()  # the last one out
        owner.stop()
    assert not _answers(joiner)
    assert not joiner.socket_path.exists()

    with EmbeddedRedis(tmp_path) as again:  # shut down cleanly: the AOF has the job
        client = redis.Redis.from_url(again.url)
        assert client.get("job") == b"queued"
        client.close()


def test_the_joiner_leaving_first_leaves_redis_to_the_owner(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as owner:
        with EmbeddedRedis(tmp_path):
            pass
        assert _answers(owner)
    assert not _answers(owner)
    assert not owner.socket_path.exists()


def test_a_plain_client_does_not_keep_redis_running(tmp_path: Path) -> None:
    """Only stylebot processes (which come through EmbeddedRedis) count as users."""
    with EmbeddedRedis(tmp_path) as owner:
        bystander = redis.Redis.from_url(owner.url)
        assert bystander.ping()
    assert not _answers(owner)
    bystander.close()


def test_the_last_of_three_stops_it_whichever_order(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path).start()
    second = EmbeddedRedis(tmp_path).start()
    third = EmbeddedRedis(tmp_path).start()
    try:
        first.stop()
        assert _answers(second)
        third.stop()
        assert _answers(second)
    finally:
        second.stop()
    assert not _answers(second)


def test_processes_leaving_at_the_same_time_do_not_leave_redis_orphaned(
    tmp_path: Path,
) -> None:
    """The exit lock makes them decide one after the other: the last one stops it."""
    handles = [EmbeddedRedis(tmp_path).start() for _ in range(4)]
    barrier = threading.Barrier(len(handles))

    def leave(handle: EmbeddedRedis) -> None:
        barrier.wait()
        handle.stop()

    threads = [threading.Thread(target=leave, args=(handle,)) for handle in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert not _answers(handles[0])


def test_a_sharer_that_leaves_is_not_counted_by_the_next_one_while_it_closes(
    tmp_path: Path,
) -> None:
    """A sharer leaving Redis to the others must already be closing when the next one
    looks: it once quit a second pooled connection and closed its named one later, so
    two leaving close together each counted the other and left Redis orphaned."""
    first = EmbeddedRedis(tmp_path).start()
    second = EmbeddedRedis(tmp_path).start()
    third = EmbeddedRedis(tmp_path).start()
    second_has_left = threading.Event()
    first_presence = first._presence
    assert first_presence is not None
    closing_for_real = first_presence.close

    def close_after_the_second_left() -> None:  # the first process is slow to close
        second_has_left.wait(timeout=30)
        closing_for_real()

    first_presence.close = close_after_the_second_left  # type: ignore[method-assign]
    third.stop()  # one left earlier: the other two decide between themselves
    first_leaving = threading.Thread(target=first.stop)
    first_leaving.start()
    try:
        deadline = time.monotonic() + 30
        while _presence_count(second) > 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the first has decided and quit
        second.stop()
        second_has_left.set()
    finally:
        second_has_left.set()
        first_leaving.join(timeout=30)
    assert not _answers(second), "both left Redis running for each other"


def _presence_count(server: EmbeddedRedis) -> int:
    client = redis.Redis(unix_socket_path=str(server.socket_path), socket_timeout=2)
    try:
        listed = client.client_list()
    finally:
        client.close()
    return sum(
        1
        for entry in listed
        if str(entry.get("name", "")).startswith("stylebot-embedded")
        and not set(str(entry.get("flags", ""))) & {"c", "A"}
    )


def _until_writes_are_refused(client: redis.Redis) -> str:
    """Write until Redis refuses (its append-only file cannot grow); the refusal."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client.set("job", "x" * 65536)
        except redis.ResponseError as refused:
            return str(refused)
        time.sleep(0.02)
    raise AssertionError("Redis kept accepting writes on a full disk")


def test_a_full_disk_does_not_make_the_first_to_leave_stop_redis_under_the_others(
    tmp_path: Path,
) -> None:
    """A Redis whose append-only file cannot grow refuses writes, the exit lock's
    too; the front end leaving then must still leave Redis to the worker."""
    with mounted_tmpfs(tmp_path / "disk", "8m") as disk:
        owner = EmbeddedRedis(disk).start()  # `stylebot run`
        joiner = EmbeddedRedis(disk).start()  # `stylebot worker`
        filler = fill(disk)
        client = redis.Redis.from_url(joiner.url, socket_timeout=5)
        try:
            assert "MISCONF" in _until_writes_are_refused(client)
            # A process starting now joins the refusing server, not a second one.
            late = EmbeddedRedis(disk).start()
            assert not late.owned
            late.stop()
            owner.stop()  # the front end exits
            assert _answers(joiner), "Redis was stopped under the worker still using it"
            filler.unlink()
        finally:
            client.close()
            filler.unlink(missing_ok=True)
            joiner.stop()
            owner.stop()
        assert not _answers(joiner)
