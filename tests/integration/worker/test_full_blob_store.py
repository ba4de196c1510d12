"""A worker whose blob store is full: the user hears "the bot's storage is full; nothing
was saved", the worker logs one line (no traceback). The blob directory is a small real
tmpfs, filled; the database is on another disk, so the failure can be recorded."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from tests.support.small_disk import fill, mounted_tmpfs
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ImagesReady, JobFinished, JobQueued
from stylebot.config import Settings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")


@pytest.fixture
def full_blob_store(settings: Settings) -> Iterator[None]:
    with mounted_tmpfs(settings.blob_dir, "2m") as blob_dir:
        fill(blob_dir)
        yield


@pytest.mark.usefixtures("full_blob_store", "worker")
async def test_a_result_that_cannot_be_stored_is_reported_in_plain_words(
    frontend: FrontEnd, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="stylebot"):
        queued = await frontend.bot.handle(Imagine(ME, "a lighthouse", seed=1))
        assert isinstance(queued, JobQueued), queued
        ended = await inbox.next((ImagesReady, JobFinished))
    assert isinstance(ended.reply, JobFinished)
    assert not ended.reply.ok
    assert "the bot's storage is full; nothing was saved" in ended.reply.text
    # arq adds its own line for every failed job; ours is the one the operator reads.
    ours = [r for r in caplog.records if r.name.startswith("stylebot")]
    failures = [r for r in ours if queued.job_id in r.getMessage() and "failed" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert failures[0].exc_info is None
    assert "no space left" in failures[0].getMessage()
