"""What one generation asks of the S3 store (issue 19, the queue overhead with S3):
the worker stores the PNG in one PUT that sends its body at once (no "Expect:
100-continue" round trip first), nothing looks the object up (no HEAD), and the front
end takes the picture from the copy the worker left in Redis, not with a GET.

The real stack (front end, arq worker, the tiny model, the embedded Redis) on the real
SeaweedFS the tests start; every request to it passes a proxy that notes it on the
wire. Counted, not timed: it holds on a loaded machine too.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import pytest
from tests.integration.storage.test_blob_store_contract import PART, s3_store
from tests.support.cutting_proxy import CuttingProxy
from tests.support.s3_server import SeaweedS3
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ImagesReady, JobQueued
from stylebot.config import Settings

ME = Requester("test", "u1", "Ada", chat_id="c1")


@pytest.fixture
def proxy(s3_server: SeaweedS3) -> Iterator[CuttingProxy]:
    with CuttingProxy(int(s3_server.ports["s3.port"])) as noting:
        yield noting


@pytest.fixture
def settings(
    settings: Settings, s3_server: SeaweedS3, s3_prefix: str, proxy: CuttingProxy
) -> Settings:
    """The stack's settings, with the blobs in S3 behind the noting proxy."""
    return dataclasses.replace(settings, **s3_server.settings_fields(s3_prefix, proxy.url))


@pytest.mark.slow
async def test_a_generation_stores_its_png_in_one_put_and_reads_nothing_back(
    frontend: FrontEnd, inbox: Inbox, worker: None, proxy: CuttingProxy, s3_prefix: str
) -> None:
    proxy.requests.clear()  # what starting asked (the front end's and worker's checks)

    queued = await frontend.bot.handle(Imagine(ME, "a quiet harbour", seed=1, steps=4))
    assert isinstance(queued, JobQueued), queued
    note = await inbox.next((ImagesReady,))

    [image] = note.reply.images
    [output] = await frontend.uow.outputs.job_outputs(queued.job_id)
    asked = [(r.method, r.path.partition("?")[0]) for r in proxy.requests]
    object_path = f"/{SeaweedS3.BUCKET}/{s3_prefix}{output.blob_key}"
    assert asked == [("PUT", object_path)], asked
    [put] = proxy.requests
    assert "expect" not in put.headers, put.headers
    assert int(put.headers["content-length"]) == len(image.data)


async def test_a_single_put_sends_its_body_at_once_and_parts_still_ask_first(
    s3_server: SeaweedS3, s3_prefix: str, proxy: CuttingProxy
) -> None:
    store = s3_store(s3_server, s3_prefix, endpoint_url=proxy.url)

    await store.put(os.urandom(150 * 1024))
    await store.put(os.urandom(PART + 1))  # two parts

    sent = [(r.method, r.headers.get("expect")) for r in proxy.requests]
    # Multipart: create, two parts (each may be refused before its 5 MiB), complete.
    assert sent == [
        ("PUT", None),
        ("POST", None),
        ("PUT", "100-continue"),
        ("PUT", "100-continue"),
        ("POST", None),
    ], sent
