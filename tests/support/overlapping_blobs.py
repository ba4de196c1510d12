"""A real directory blob store that notes how many of its reads and writes overlapped.

Whether a result's blobs wait for one store round trip or one each is told by overlap,
not by timing (issue 19): read one by one, at most one read is ever in flight.
"""

from __future__ import annotations

from pathlib import Path

from stylebot.storage.blobs import LocalBlobStore


class OverlapNotingBlobStore(LocalBlobStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.in_flight = 0
        self.most_at_once = 0

    async def get(self, key: str) -> bytes:
        self._began()
        try:
            return await super().get(key)
        finally:
            self.in_flight -= 1

    async def put(self, data: bytes) -> str:
        self._began()
        try:
            return await super().put(data)
        finally:
            self.in_flight -= 1

    def _began(self) -> None:
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
