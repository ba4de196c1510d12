"""A bot whose store holds delivered outputs with real pictures, for /verify tests.

Outputs are asked for with Imagine and delivered through the worker's finished event, as
in production, so each one's record (maker, privacy) and fingerprint are written by the
core's own code; only the pictures are chosen by the test instead of a diffusion model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

from PIL import Image

from stylebot.bootstrap import PngWatermarkReader
from stylebot.bot.core.commands import Imagine, IncomingFile, Verify
from stylebot.bot.core.fingerprints import fingerprint_of_image
from stylebot.bot.core.model import Requester
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.ports import BlobStore, WatermarkReader
from stylebot.bot.core.replies import JobQueued, VerifyReport
from stylebot.bot.core.service import StyleBot
from stylebot.bot.core.stores import UnitOfWork
from stylebot.provenance.watermark import embed_watermark
from stylebot.queue.payloads import GeneratedImage, GenerateResult, JobEvent
from tests.fakes.core import RecordingQueue, SteppingClock, bot_on
from tests.fakes.memory import InMemoryBlobStore, InMemoryUnitOfWork
from tests.support.picture_edits import png_bytes

# No limits: some tests deliver dozens of outputs for one person.
UNLIMITED = Policy(requests_per_window=0, max_queued_per_user=0, max_queued_per_server=0)


@dataclass
class VerifyWorld:
    bot: StyleBot
    queue: RecordingQueue


def verify_world(
    repo: UnitOfWork | None = None,
    blobs: BlobStore | None = None,
    watermark: WatermarkReader | None = None,
) -> VerifyWorld:
    """The core on in-memory fakes (or the given stores) with the real watermark reader."""
    queue = RecordingQueue()
    bot = bot_on(
        repo or InMemoryUnitOfWork(),
        blobs or InMemoryBlobStore(),
        queue,
        watermark or PngWatermarkReader(),
        SteppingClock(),
        UNLIMITED,
    )
    return VerifyWorld(bot, queue)


async def deliver(
    world: VerifyWorld,
    who: Requester,
    picture: Image.Image,
    prompt: str = "a lighthouse",
    *,
    style: str | None = None,
    mark: bool = True,
    reported_fingerprint: Callable[[Image.Image], str | None] = fingerprint_of_image,
) -> str:
    """Ask for one image as `who` and deliver `picture` (watermarked with the output's id
    unless `mark` is False) as the worker would, with the fingerprint it reports (a
    worker older than that field reports None); returns the output id."""
    queued = await world.bot.handle(Imagine(who, prompt, style=style, seed=1, steps=4))
    assert isinstance(queued, JobQueued), queued
    job = world.queue.generate_jobs[-1]
    [output_id] = job.output_ids
    shown = embed_watermark(picture, output_id) if mark else picture
    key = await world.bot.deps.blobs.put(png_bytes(shown))
    image = GeneratedImage(output_id, key, 1, reported_fingerprint(shown))
    result = GenerateResult((image,), 1.0)
    await world.bot.handle_event(
        JobEvent(job.job_id, "generate", "finished", result=result.to_dict())
    )
    world.queue.finished(job.job_id)
    return output_id


async def stored_picture(world: VerifyWorld, output_id: str) -> Image.Image:
    """The output as delivered (watermarked), to edit and send back."""
    output = await world.bot.deps.uow.outputs.get_output(output_id)
    assert output is not None
    assert output.blob_key is not None
    with Image.open(BytesIO(await world.bot.deps.blobs.get(output.blob_key))) as image:
        return image.convert("RGB")


async def check(world: VerifyWorld, who: Requester, picture: Image.Image) -> VerifyReport:
    report = await world.bot.handle(Verify(who, IncomingFile("check.png", png_bytes(picture))))
    assert isinstance(report, VerifyReport), report
    return report
