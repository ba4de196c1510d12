"""/verify attributes a mark only to the picture it was made on.

The watermark has no key, so a real output id can be stamped onto any picture. A real
tiny-model output, its own blob in the store: re-encodings the watermark survives still
trace to the record as "made by"; a banner over 35% of it or another picture pasted over
25% of it is an altered copy; the same id embedded in an unrelated picture does not
trace, and shows nothing of the record.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tests.fakes.core import RecordingQueue, SteppingClock, bot_on, person
from tests.fakes.memory import InMemoryBlobStore, InMemoryUnitOfWork
from tests.support.picture_edits import banner, paste, png_bytes
from tests.unit.provenance.test_watermark import half_and_back, reencode, scene, telegram_photo

from stylebot.bootstrap import PngWatermarkReader
from stylebot.bot.core.commands import Imagine, IncomingFile, Verify
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.replies import VerifyReport, VerifyVerdict
from stylebot.bot.core.service import StyleBot
from stylebot.provenance.watermark import embed_watermark
from stylebot.queue.payloads import GeneratedImage, GenerateResult, JobEvent

pytestmark = pytest.mark.slow

ALICE = person("alice")
BOB = person("bob")


async def made_by_alice(tiny_engine: Any) -> tuple[StyleBot, Image.Image, str]:
    """A bot whose store holds one real, delivered output of Alice's."""
    repo, blobs, queue = InMemoryUnitOfWork(), InMemoryBlobStore(), RecordingQueue()
    bot = bot_on(repo, blobs, queue, PngWatermarkReader(), SteppingClock(), Policy())
    await bot.handle(Imagine(ALICE, "a lighthouse", seed=5, steps=4, width=512, height=512))
    [job] = queue.generate_jobs
    [finished] = tiny_engine.generate(job)
    key = await blobs.put(finished.png)
    # Delivered as the worker's event is: the core records the blob and the fingerprint.
    result = GenerateResult((GeneratedImage(finished.output_id, key, finished.seed),), 1.0)
    await bot.handle_event(JobEvent(job.job_id, "generate", "finished", result=result.to_dict()))
    with Image.open(io.BytesIO(finished.png)) as image:
        return bot, image.convert("RGB"), finished.output_id


EDITS: list[tuple[str, Callable[[Image.Image], Image.Image]]] = [
    ("as-made", lambda i: i),
    ("jpeg-q75", lambda i: reencode(i, "JPEG", quality=75)),
    ("jpeg-q60", lambda i: reencode(i, "JPEG", quality=60)),
    ("half-and-back", half_and_back),
    ("telegram", telegram_photo),
]


@pytest.mark.parametrize(("edit_name", "edit"), EDITS, ids=[n for n, _ in EDITS])
async def test_an_output_edited_as_the_watermark_allows_still_traces(
    tiny_engine: Any, edit_name: str, edit: Callable[[Image.Image], Image.Image]
) -> None:
    bot, output, output_id = await made_by_alice(tiny_engine)
    sent = png_bytes(edit(output))
    report = await bot.handle(Verify(BOB, IncomingFile(f"{edit_name}.png", sent)))
    assert isinstance(report, VerifyReport)
    assert report.verdict is VerifyVerdict.MADE, report.text
    assert report.output is not None, report.text
    assert report.output.id == output_id
    assert "by: <@alice>, named 'Alice' when it was made" in report.text


ALTERATIONS: list[tuple[str, Callable[[Image.Image], Image.Image]]] = [
    ("banner-35%", lambda i: banner(i, 0.35)),
    ("pasted-25%", lambda i: paste(i, scene(300, 300, seed=9), 0.25)),
]


@pytest.mark.parametrize(("edit_name", "edit"), ALTERATIONS, ids=[n for n, _ in ALTERATIONS])
async def test_a_covered_or_pasted_over_output_is_an_altered_copy(
    tiny_engine: Any, edit_name: str, edit: Callable[[Image.Image], Image.Image]
) -> None:
    bot, output, output_id = await made_by_alice(tiny_engine)
    report = await bot.handle(
        Verify(BOB, IncomingFile(f"{edit_name}.png", png_bytes(edit(output))))
    )
    assert isinstance(report, VerifyReport)
    assert report.verdict is VerifyVerdict.ALTERED, report.text
    assert report.output is None
    assert report.differs_percent is not None
    assert 20 <= report.differs_percent <= 45
    assert f"altered copy of stylebot output {output_id}" in report.text


async def test_a_mark_copied_onto_another_picture_is_not_attributed(tiny_engine: Any) -> None:
    bot, _output, output_id = await made_by_alice(tiny_engine)
    rng = np.random.default_rng(1)
    unrelated = Image.fromarray((rng.random((512, 512, 3)) * 255).astype(np.uint8))
    forged = embed_watermark(unrelated, output_id)  # the id, e.g. from a file name
    assert PngWatermarkReader().read(png_bytes(forged)) == output_id

    report = await bot.handle(Verify(BOB, IncomingFile("forged.png", png_bytes(forged))))
    assert isinstance(report, VerifyReport)
    assert report.output is None
    assert report.output_id == output_id
    assert "does not match that output's image" in report.text
    for private in ("Alice", "a lighthouse", "seed"):
        assert private not in report.text


async def test_without_the_stored_image_the_mark_alone_proves_nothing(tiny_engine: Any) -> None:
    """Nothing to compare with (blob gone, record kept): the record the mark names is
    shown, but not as the picture's maker: a mark can be copied."""
    bot, output, output_id = await made_by_alice(tiny_engine)
    record = await bot.deps.uow.outputs.get_output(output_id)
    assert record is not None
    assert record.blob_key is not None
    await bot.deps.blobs.delete(record.blob_key)
    report = await bot.handle(Verify(BOB, IncomingFile("x.png", png_bytes(output))))
    assert isinstance(report, VerifyReport)
    assert report.verdict is VerifyVerdict.MARK_ONLY
    assert report.output is None
    assert "does not prove who made it" in report.text
    assert "<@alice>" in report.text
