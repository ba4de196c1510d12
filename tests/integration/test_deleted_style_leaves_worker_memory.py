"""A deleted style's weights leave a running worker's memory, not only its disk: through
the real queue, the worker's revocation watch unloads the LoRA adapter it had loaded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.commands import (
    ConfirmConsent,
    DeleteStyle,
    Imagine,
    IncomingFile,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ImagesReady, JobFinished, JobQueued, TextReply

pytestmark = pytest.mark.slow

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")


def loaded_from(tiny_engine: Any) -> set[str]:
    """The blob keys of the adapters the worker's pipeline holds (cache files are
    named by blob key)."""
    return {cached.path.stem for cached in tiny_engine.generator.adapters.cached.values()}


async def test_deleting_a_style_unloads_its_adapter_from_the_worker(
    frontend: FrontEnd, inbox: Inbox, worker: None, tiny_engine: Any, tmp_path: Path
) -> None:
    bot = frontend.bot
    files = tuple(
        IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 2)
    )
    await bot.handle(UploadImages(ME, files))
    await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
    assert isinstance(await bot.handle(TrainStyle(ME, "gone")), JobQueued)
    done = await inbox.next((JobFinished,))
    assert isinstance(done.reply, JobFinished)
    assert done.reply.ok, done.reply.text
    user = await frontend.uow.users.get_or_create_user("test", "u1", "Ada")
    style = await frontend.uow.styles.find_style(user.id, "gone")
    assert style is not None
    assert style.lora_key is not None
    assert isinstance(
        await bot.handle(Imagine(ME, "a lighthouse", style="gone", seed=3)), JobQueued
    )
    ready = await inbox.next((ImagesReady, JobFinished))
    assert isinstance(ready.reply, ImagesReady), ready.reply
    assert style.lora_key in loaded_from(tiny_engine)
    cached = tiny_engine.cache.path("loras", style.lora_key)
    assert cached.exists()

    assert isinstance(await bot.handle(DeleteStyle(ME, "gone")), TextReply)

    for _poll in range(200):  # a poll a second, then the device thread
        if style.lora_key not in loaded_from(tiny_engine) and not cached.exists():
            break
        await asyncio.sleep(0.1)
    assert style.lora_key not in loaded_from(tiny_engine)
    assert not cached.exists()
