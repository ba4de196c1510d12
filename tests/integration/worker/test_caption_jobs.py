"""Caption jobs on a real worker and Redis, where they can go wrong: a worker without the
captioner the front end was told of fails the job with a reason a member understands
(nothing is proposed), and the job waits its turn in the generation lane."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from tests.support.stack import Inbox
from tests.support.tiny_captioners import tiny_captioner_dir

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import IncomingFile, ShowStatus, SuggestCaptions, UploadImages
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ConsentRequest, JobFinished, JobQueued, TextReply
from stylebot.config import Settings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
__all__ = ["tiny_captioner_dir"]  # a fixture

ADA = Requester("test", "ada", "Ada", chat_id="chat-ada")


@pytest.fixture
def settings(settings: Settings, tiny_captioner_dir: Path) -> Settings:
    """The front end knows of a captioner; the stack's worker engine has none."""
    return settings.replace(captioner=str(tiny_captioner_dir))


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 96), colour).save(buffer, "PNG")
    return buffer.getvalue()


async def _suggest(frontend: FrontEnd) -> JobQueued:
    files = (IncomingFile("a.png", _png((200, 30, 30))), IncomingFile("b.png", _png((0, 90, 9))))
    assert isinstance(await frontend.bot.handle(UploadImages(ADA, files)), ConsentRequest)
    queued = await frontend.bot.handle(SuggestCaptions(ADA))
    assert isinstance(queued, JobQueued), queued
    return queued


async def test_a_caption_job_waits_in_the_generation_lane(frontend: FrontEnd) -> None:
    queued = await _suggest(frontend)

    status = await frontend.bot.handle(ShowStatus(ADA))

    assert isinstance(status, TextReply)
    assert f"caption {queued.job_id}: queued (position 1 in the generation queue)" in status.text


async def test_a_worker_without_the_captioner_fails_the_job_plainly(
    frontend: FrontEnd, inbox: Inbox, worker: Any
) -> None:
    queued = await _suggest(frontend)

    notification = await inbox.next((JobFinished,), within=60)

    assert isinstance(notification.reply, JobFinished)
    assert notification.reply.job_id == queued.job_id
    assert not notification.reply.ok
    assert "Captioning failed: the worker that took it has no captioner configured" in (
        notification.reply.text
    )
    user = await frontend.uow.users.get_or_create_user("test", "ada", "Ada")
    waiting = await frontend.uow.uploads.pending_uploads(user.id)
    assert [(u.caption, u.suggested_caption) for u in waiting] == [(None, None), (None, None)]
