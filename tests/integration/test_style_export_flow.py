"""Through the real queue and worker: /style export hands out the kohya-layout file
the worker made, the style records the base model it trained on and its licence
(issue 16), and a style whose weights do not fit the worker's model fails
with a message instead of drawing the base model's image."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load
from tests.integration.engine.test_lora_files import other_architecture_lora
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.commands import (
    ConfirmConsent,
    ExportStyle,
    Imagine,
    IncomingFile,
    StyleInfo,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.model import Requester, StyleStatus
from stylebot.bot.core.replies import FileReply, ImagesReady, JobFinished, JobQueued, TextReply
from stylebot.engine.families import licence_for
from stylebot.engine.lora_files import read_safetensors_metadata

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")


async def test_export_and_mismatch_through_the_queue(
    frontend: FrontEnd, inbox: Inbox, worker: None, tmp_path: Path
) -> None:
    bot = frontend.bot
    files = tuple(
        IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 2)
    )
    await bot.handle(UploadImages(ME, files))
    await bot.handle(ConfirmConsent(ME, "CC-BY-SA-4.0", rights_confirmed=True))
    assert isinstance(await bot.handle(TrainStyle(ME, "warm")), JobQueued)
    done = await inbox.next((JobFinished,))
    assert isinstance(done.reply, JobFinished)
    assert done.reply.ok, done.reply.text

    exported = await bot.handle(ExportStyle(ME, "warm"))

    assert isinstance(exported, FileReply)
    assert exported.filename == "warm.safetensors"
    assert "AUTOMATIC1111" in exported.text
    assert "ComfyUI" in exported.text
    keys = set(load(exported.data))
    assert keys
    assert all(key.startswith("lora_unet_") for key in keys)
    assert any(key.endswith(".lora_down.weight") for key in keys)
    assert any(key.endswith(".alpha") for key in keys)
    user = await frontend.uow.users.get_or_create_user("test", "u1", "Ada")
    style = await frontend.uow.styles.find_style(user.id, "warm")
    assert style is not None
    meta = read_safetensors_metadata(exported.data)
    assert meta["modelspec.title"] == "warm"
    assert meta["modelspec.license"] == "CC-BY-SA-4.0"
    assert meta["stylebot.consent_id"] == str(style.consent_id)
    assert meta["modelspec.trigger_phrase"] == style.trigger
    # The worker's base (the tiny SD 1.5 model) is recorded with its licence, in the
    # style's record, in /style info and in the file's metadata.
    licence = licence_for("sd15")
    assert style.base_model_variant == "sd15"
    assert style.base_model_sha256 == ""  # a diffusers folder, not a single file
    assert style.base_model_licence == licence.name
    assert meta["stylebot.base_model_variant"] == "sd15"
    assert meta["stylebot.base_model_licence"] == licence.name
    assert meta["stylebot.base_model_licence_url"] == licence.url
    assert licence.name in exported.text
    info = await bot.handle(StyleInfo(ME, "warm"))
    assert isinstance(info, TextReply)
    assert f"(Stable Diffusion 1.5), licence: {licence.name} ({licence.url})" in info.text

    # The style's weights now come from a model of another shape, as when the
    # operator moves the workers to another base model.
    other = await frontend.blobs.put(other_architecture_lora(tmp_path / "other").read_bytes())
    await frontend.uow.styles.set_style_status(style.id, StyleStatus.READY, other)
    assert isinstance(
        await bot.handle(Imagine(ME, "a lighthouse", style="warm", seed=3)), JobQueued
    )

    failed = await inbox.next((JobFinished, ImagesReady))

    assert isinstance(failed.reply, JobFinished), failed.reply
    assert not failed.reply.ok
    assert "different base model" in failed.reply.text
