"""Near-duplicates by embedding on a real worker, Redis and blob store, with a tiny random
CLIP model: an upload queues a compare job, the worker embeds the stored images and the
member is told of the pairs the model finds alike (here, what the same CLIP model says
of the same stored images; the metric's meaning is tests/unit/engine/test_image_similarity)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.support.stack import Inbox
from tests.support.tiny_clip import write_tiny_clip
from tests.unit.core.test_near_duplicates import scene

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import IncomingFile, UploadImages
from stylebot.bot.core.model import JobStatus, Requester
from stylebot.bot.core.replies import ConsentRequest, TextReply
from stylebot.config import Settings
from stylebot.engine.image_similarity import similar_pairs
from stylebot.engine.style_metrics import ClipEmbedder, StyleMeasurer
from stylebot.trainer.dataset import open_stored_png

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

ADA = Requester("test", "ada", "Ada", chat_id="chat-ada")


@pytest.fixture
def clip_dir(tmp_path: Path, tiny_model_dir: Path) -> Path:
    return write_tiny_clip(tmp_path / "clip", tiny_model_dir / "tokenizer")


@pytest.fixture
def settings(settings: Settings, clip_dir: Path) -> Settings:
    return settings.replace(clip_model=str(clip_dir))


@pytest.fixture
def clip_engine(tiny_engine: Any, clip_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The stack's engine with the tiny CLIP model, as `clip_model` configures it."""
    monkeypatch.setattr(tiny_engine, "measurer", StyleMeasurer(str(clip_dir)))
    return tiny_engine


async def test_an_upload_is_compared_by_embedding_on_the_worker(
    frontend: FrontEnd, inbox: Inbox, clip_engine: Any, worker: Any, clip_dir: Path
) -> None:
    # Different pictures by their perceptual hashes: only the embedding may find them alike.
    files = (
        IncomingFile("harbour.png", scene((200, 40, 40))),
        IncomingFile("lighthouse.png", scene((20, 40, 200), flip=True)),
    )
    answer = await frontend.bot.handle(UploadImages(ADA, files))
    assert isinstance(answer, ConsentRequest)
    assert "nearly the same" not in answer.text
    user = await frontend.uow.users.get_or_create_user("test", "ada", "Ada")
    [job] = [j for j in await frontend.uow.jobs.active_jobs(user.id) if j.kind == "compare"]

    async def status() -> JobStatus | None:
        record = await frontend.uow.jobs.get_job(job.id)
        return record.status if record is not None else None

    async with asyncio.timeout(60):
        # A job that finds nothing alike ends without a message: its record is what shows.
        while (await status()) in (JobStatus.QUEUED, JobStatus.RUNNING):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    assert await status() is JobStatus.FINISHED

    waiting = await frontend.uow.uploads.pending_uploads(user.id)
    stored = [open_stored_png(await frontend.blobs.get(u.blob_key)) for u in waiting]
    with torch.no_grad():
        expected = similar_pairs(ClipEmbedder(str(clip_dir)).images(stored), first_new=0)
    # The tiny random CLIP model (seed 0) finds these two alike: the told path is wired.
    assert [(i, j) for i, j, _ in expected] == [(0, 1)]
    note = await inbox.next((TextReply,), within=10)
    assert isinstance(note.reply, TextReply)
    assert note.reply.private
    assert "Compared by content" in note.reply.text
    assert "“lighthouse.png” and “harbour.png”" in note.reply.text  # (new, earlier)
