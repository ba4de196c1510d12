"""A style trained by textual inversion, through the real queue: it is recorded
with its embedding and no LoRA, generates with its token, exports the embedding,
and nobody reaches a style's token by typing it."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from safetensors.torch import load
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.commands import (
    ConfirmConsent,
    ExportStyle,
    Imagine,
    IncomingFile,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.model import Requester, StyleStatus
from stylebot.bot.core.replies import ErrorReply, FileReply, ImagesReady, JobFinished, JobQueued
from stylebot.config import Settings
from stylebot.provenance.metadata import read_png_metadata
from stylebot.style_tokens import style_embedding_token

pytestmark = pytest.mark.slow

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(train_method="textual_inversion")


async def test_a_textual_inversion_style_trains_and_generates_through_the_queue(
    frontend: FrontEnd, inbox: Inbox, worker: None, tmp_path
) -> None:
    bot = frontend.bot
    files = tuple(
        IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 2)
    )
    await bot.handle(UploadImages(ME, files))
    await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
    assert isinstance(await bot.handle(TrainStyle(ME, "inky")), JobQueued)
    done = await inbox.next((JobFinished,))
    assert isinstance(done.reply, JobFinished)
    assert done.reply.ok, done.reply.text

    user = await frontend.uow.users.get_or_create_user("test", "u1", "Ada")
    style = await frontend.uow.styles.find_style(user.id, "inky")
    assert style is not None
    assert style.status is StyleStatus.READY
    assert style.train_settings["method"] == "textual_inversion"
    assert style.lora_key is None  # no LoRA trained
    assert style.embedding_key is not None
    embedding = load(await frontend.blobs.get(style.embedding_key))
    assert list(embedding) == ["emb_params"]

    token = style_embedding_token(style.id)
    asked = await bot.handle(Imagine(ME, "a lighthouse", style="inky", seed=5))
    assert isinstance(asked, JobQueued)
    ready = await inbox.next((ImagesReady, JobFinished))
    assert isinstance(ready.reply, ImagesReady), ready.reply
    [image] = ready.reply.images
    parameters = read_png_metadata(image.data)["parameters"]
    assert parameters.startswith(f"{token} {style.trigger}, a lighthouse")
    with Image.open(io.BytesIO(image.data)) as decoded:
        assert decoded.size == (256, 256)

    # Typing a style's token is refused before anything is queued (and on the
    # worker it would reach nothing: tests/integration/engine/test_own_style_tokens.py).
    for prompt, negative in [(f"{token} a lighthouse", ""), ("a lighthouse", token.upper())]:
        refused = await bot.handle(Imagine(ME, prompt, negative_prompt=negative, seed=5))
        assert isinstance(refused, ErrorReply), refused
        assert "style tokens" in refused.text

    exported = await bot.handle(ExportStyle(ME, "inky"))
    assert isinstance(exported, FileReply)
    assert exported.filename == "inky-embedding.safetensors"
    assert list(load(exported.data)) == ["emb_params"]
