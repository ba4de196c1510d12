"""Looking for what an erasure should have removed: in Redis, and in files on disk.

`redis_contents` reads every key with its value by type (SCAN, then GET, HGETALL,
LRANGE, SMEMBERS, ZRANGE, XRANGE); `files_containing` reads every file under a
directory as bytes. Tests assert that no unique string planted by the user is found.
"""

from __future__ import annotations

from pathlib import Path

import redis

__all__ = ["files_containing", "redis_contents", "redis_keys_containing"]


def redis_contents(client: redis.Redis) -> dict[bytes, bytes]:
    """Every key of the database and its whole value, flattened to bytes."""
    contents: dict[bytes, bytes] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        parts: list[bytes] = []
        if kind == "string":
            parts = [client.get(key) or b""]
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                parts += [field, value]
        elif kind == "list":
            parts = list(client.lrange(key, 0, -1))
        elif kind == "set":
            parts = list(client.smembers(key))
        elif kind == "zset":
            parts = [member for member, _score in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            for message_id, fields in client.xrange(key):
                parts.append(message_id)
                for field, value in fields.items():
                    parts += [field, value]
        else:
            raise AssertionError(f"key {key!r} of a type this dump does not read: {kind}")
        contents[key] = b"\n".join(parts)
    return contents


def redis_keys_containing(client: redis.Redis, needles: list[bytes]) -> dict[bytes, list[bytes]]:
    """The keys whose name or value holds one of `needles`, with the needles found."""
    found: dict[bytes, list[bytes]] = {}
    for key, value in redis_contents(client).items():
        hits = [needle for needle in needles if needle in key or needle in value]
        if hits:
            found[key] = hits
    return found


def files_containing(root: Path, needles: list[bytes]) -> dict[Path, list[bytes]]:
    """The files under `root` that hold one of `needles` (symlinks are skipped: scan
    what they point to where it lives)."""
    found: dict[Path, list[bytes]] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        hits = [needle for needle in needles if needle in data]
        if hits:
            found[path] = hits
    return found
