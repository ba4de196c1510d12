"""The whole flow through the real queue: upload, consent, train, generate, verify."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from tests.support import a1111
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd, PngWatermarkReader
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.commands import (
    ConfirmConsent,
    ExportStyle,
    Imagine,
    IncomingFile,
    TrainStyle,
    UploadImages,
    Verify,
)
from stylebot.bot.core.fingerprints import fingerprint_of_png
from stylebot.bot.core.model import Requester, StyleStatus
from stylebot.bot.core.replies import (
    ConsentRequest,
    FileReply,
    ImagesReady,
    JobFinished,
    JobProgress,
    JobQueued,
    VerifyReport,
)
from stylebot.provenance.metadata import digital_source_type, read_png_metadata

pytestmark = pytest.mark.slow

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")


async def test_train_then_generate_through_the_queue(
    frontend: FrontEnd, inbox: Inbox, worker: None, tmp_path
) -> None:
    bot = frontend.bot
    files = tuple(
        IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 3)
    )
    assert isinstance(await bot.handle(UploadImages(ME, files)), ConsentRequest)
    await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
    queued = await bot.handle(TrainStyle(ME, "warm"))
    assert isinstance(queued, JobQueued)

    progress = await inbox.next((JobProgress,))
    assert progress.to == ME
    assert isinstance(progress.reply, JobProgress)
    assert progress.reply.total == 8
    assert progress.reply.loss is not None
    done = await inbox.next((JobFinished,))
    assert isinstance(done.reply, JobFinished)
    assert done.reply.ok, done.reply.text

    user = await frontend.uow.users.get_or_create_user("test", "u1", "Ada")
    style = await frontend.uow.styles.find_style(user.id, "warm")
    assert style is not None
    assert style.status is StyleStatus.READY
    assert style.lora_key is not None
    weights = await frontend.blobs.get(style.lora_key)
    assert b"lora" in weights[:4096].lower()  # the safetensors header names LoRA layers

    asked = await bot.handle(Imagine(ME, "a lighthouse at dawn", style="warm", seed=11, count=2))
    assert isinstance(asked, JobQueued)
    ready = await inbox.next((ImagesReady, JobFinished))
    assert isinstance(ready.reply, ImagesReady), ready.reply
    assert len(ready.reply.images) == 2

    for image in ready.reply.images:
        # The pixels carry the output id; the PNG carries the parameters.
        assert PngWatermarkReader().read(image.data) == image.output_id
        record = await frontend.uow.outputs.get_output(image.output_id)
        assert record is not None
        assert record.style_id == style.id
        assert record.blob_key is not None
        # Reported by the worker, taken before the PNG was made: the one the PNG gives.
        assert record.fingerprint == fingerprint_of_png(image.data)
        meta = read_png_metadata(image.data)
        assert "a lighthouse at dawn" in meta["parameters"]
        assert f"Seed: {record.seed}" in meta["parameters"]
        assert digital_source_type(image.data) == (
            "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
        )
        with Image.open(io.BytesIO(image.data)) as decoded:
            assert decoded.size == (256, 256)

    report = await bot.handle(Verify(ME, IncomingFile("x.png", ready.reply.images[0].data)))
    assert isinstance(report, VerifyReport)
    assert report.output is not None
    assert report.output.id == ready.reply.images[0].output_id
    assert "warm" in report.text

    # The parameters name the file the owner downloads, as AUTOMATIC1111 hashes it.
    exported = await bot.handle(ExportStyle(ME, "warm"))
    assert isinstance(exported, FileReply)
    parsed = a1111.a1111_parse(read_png_metadata(ready.reply.images[0].data)["parameters"])
    name = exported.filename.removesuffix(".safetensors")
    assert a1111.lora_tags(parsed["Prompt"]) == [(name, "1")]
    assert a1111.lora_hashes(parsed) == {name: a1111.addnet_hash(exported.data)[:12]}


async def test_the_same_seed_gives_the_same_image_and_a_style_changes_it(
    frontend: FrontEnd, inbox: Inbox, worker: None, tmp_path
) -> None:
    """Generation is reproducible, and a style changes what comes out."""
    bot = frontend.bot
    files = tuple(
        IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 2)
    )
    await bot.handle(UploadImages(ME, files))
    await bot.handle(ConfirmConsent(ME, "CC0-1.0", rights_confirmed=True))
    await bot.handle(TrainStyle(ME, "warm2"))
    assert (await inbox.next((JobFinished,))).reply.ok  # type: ignore[union-attr]

    async def pixels(style: str | None) -> np.ndarray:
        await bot.handle(Imagine(ME, "a house", style=style, seed=3))
        note = await inbox.next((ImagesReady, JobFinished))
        assert isinstance(note.reply, ImagesReady), note.reply
        with Image.open(io.BytesIO(note.reply.images[0].data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float64)

    plain_a, plain_b, styled = await pixels(None), await pixels(None), await pixels("warm2")
    # Each image carries its own id in the watermark, so equal requests differ
    # only by that faint mark; the style changes the picture itself.
    watermark_only = np.abs(plain_a - plain_b).mean()
    style_change = np.abs(plain_a - styled).mean()
    print(f"mean abs difference: watermark {watermark_only:.2f}, style {style_change:.2f}")
    assert watermark_only < 3
    assert style_change > 4 * watermark_only
