"""Training sends watermarked previews of the style as trained so far, before it ends."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from PIL import Image
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.commands import (
    ConfirmConsent,
    IncomingFile,
    TrainStyle,
    UploadImages,
    Verify,
)
from stylebot.bot.core.fingerprints import fingerprint_of_png
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ImagesReady, JobFinished, JobQueued, VerifyReport
from stylebot.provenance.watermark import read_watermark
from stylebot.queue.payloads import preview_output_id

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")
STEPS = 6
EVERY = 2


async def test_previews_come_watermarked_every_few_steps_and_verify_to_the_training_job(
    frontend: FrontEnd, inbox: Inbox, worker: None, tmp_path: Path
) -> None:
    bot = frontend.bot
    bot.policy = dataclasses.replace(
        bot.policy,
        train=dataclasses.replace(bot.policy.train, steps=STEPS, preview_every_steps=EVERY),
    )
    files = tuple(
        IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 2)
    )
    await bot.handle(UploadImages(ME, files))
    await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
    queued = await bot.handle(TrainStyle(ME, "glimpse"))
    assert isinstance(queued, JobQueued)

    previews: list[ImagesReady] = []
    while True:
        note = await inbox.next((ImagesReady, JobFinished), within=180, reports=True)
        if isinstance(note.reply, JobFinished):
            assert note.reply.ok, note.reply.text
            break
        assert isinstance(note.reply, ImagesReady)
        previews.append(note.reply)
    # Just before the ready message: the picture of the loss and of these previews.
    report = previews.pop()
    assert report.job_id == f"{queued.job_id}/report"
    assert report.preview_of == queued.job_id
    [picture] = report.images
    drawn = Image.open(io.BytesIO(picture.data))
    assert drawn.width == 512
    assert drawn.height > 300  # the chart, and a row of the previews below it
    # Steps 2 and 4; step 6 is the end, and the style itself.
    preview_steps = [step for step in range(EVERY, STEPS, EVERY)]
    assert [p.job_id for p in previews] == [f"{queued.job_id}/preview-{s}" for s in preview_steps]
    for step, preview in zip(preview_steps, previews, strict=True):
        [image] = preview.images
        assert image.output_id == preview_output_id(queued.job_id, step)
        assert f"step {step}/{STEPS}" in preview.text
        # Watermarked like every output, with the id of its own record...
        assert read_watermark(Image.open(io.BytesIO(image.data))) == image.output_id
        record = await frontend.uow.outputs.get_output(image.output_id)
        assert record is not None
        assert record.job_id == queued.job_id
        assert record.blob_key is not None
        # A style in training is its owner's: private wherever asked, and findable by its
        # fingerprint if its mark is lost.
        assert record.made_in_private is True
        # The worker's, taken before the PNG was made: the one the PNG gives.
        assert record.fingerprint == fingerprint_of_png(image.data)
        # ...which /verify finds, with the style in training.
        report = await bot.handle(Verify(ME, IncomingFile(image.filename, image.data)))
        assert isinstance(report, VerifyReport)
        assert report.output_id == image.output_id
        assert "glimpse" in report.text


async def test_no_previews_when_they_are_off(
    frontend: FrontEnd, inbox: Inbox, worker: None, tmp_path: Path
) -> None:
    bot = frontend.bot
    bot.policy = dataclasses.replace(
        bot.policy,
        train=dataclasses.replace(bot.policy.train, steps=STEPS, preview_every_steps=0),
    )
    files = tuple(
        IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 2)
    )
    await bot.handle(UploadImages(ME, files))
    await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
    queued = await bot.handle(TrainStyle(ME, "plain"))
    assert isinstance(queued, JobQueued)
    note = await inbox.next((ImagesReady, JobFinished), within=180)
    assert isinstance(note.reply, JobFinished), note.reply
    assert note.reply.ok
    assert await frontend.uow.outputs.get_output(preview_output_id(queued.job_id, EVERY)) is None
