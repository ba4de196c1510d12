"""A job whose work is done in time is not failed because its result is slow to store.

A rented GPU far from the object store can take longer to upload a result than the
few seconds arq's backstop used to leave after the job's own time limit: arq then
cancelled the job and recorded it failed, and its user heard nothing at all. The real
stack (front end, arq worker, the tiny model, the embedded Redis) on the real SeaweedFS
the tests start, behind a proxy that holds every response: a slow link.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest
from arq.jobs import Job as ArqJob
from tests.support.cutting_proxy import CuttingProxy
from tests.support.s3_server import SeaweedS3
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.model import JobStatus, Requester
from stylebot.bot.core.replies import ImagesReady, JobQueued
from stylebot.config import Settings
from stylebot.queue.connection import deserialize_job
from stylebot.queue.keys import QUEUE_NAME

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

ME = Requester("test", "u1", "Ada", chat_id="c1")
LIMIT_S = 10
# Past the job's limit, where arq's backstop used to cancel it (a few seconds after).
HOLD_S = LIMIT_S + 6


@pytest.fixture
def proxy(s3_server: SeaweedS3) -> Iterator[CuttingProxy]:
    with CuttingProxy(int(s3_server.ports["s3.port"])) as slow_link:
        yield slow_link


@pytest.fixture
def settings(
    settings: Settings, s3_server: SeaweedS3, s3_prefix: str, proxy: CuttingProxy
) -> Settings:
    """The stack's settings: blobs in S3 behind the proxy, generations limited to LIMIT_S."""
    return dataclasses.replace(
        settings, generate_timeout_s=LIMIT_S, **s3_server.settings_fields(s3_prefix, proxy.url)
    )


async def test_images_made_in_time_and_stored_past_the_limit_reach_their_user(
    frontend: FrontEnd, inbox: Inbox, worker: None, proxy: CuttingProxy
) -> None:
    proxy.hold_responses(HOLD_S)
    asked = time.monotonic()
    queued = await frontend.bot.handle(Imagine(ME, "a far harbour", seed=1, steps=4))
    assert isinstance(queued, JobQueued), queued
    note = await inbox.next((ImagesReady,), within=HOLD_S + 60)
    took_s = time.monotonic() - asked
    proxy.hold_responses(0)
    assert took_s > HOLD_S, "the store was slow: the result came after the limit"
    assert len(note.reply.images) == 1
    job = await frontend.uow.jobs.get_job(queued.job_id)
    assert job is not None
    assert job.status is JobStatus.FINISHED
    arq_job = ArqJob(
        queued.job_id, frontend.queue.redis, _queue_name=QUEUE_NAME, _deserializer=deserialize_job
    )
    # arq records the job just after it is told; a failure (its limit) raises here.
    result = await arq_job.result(timeout=30, poll_delay=0.05)
    assert [image["output_id"] for image in result["images"]] == [
        image.output_id for image in note.reply.images
    ]
