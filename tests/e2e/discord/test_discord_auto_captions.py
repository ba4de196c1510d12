"""Auto-captioning on Discord, end to end: with a captioner configured, /captions has a
Suggest captions button (the core's SuggestCaptions); a worker captions the waiting
images on a tiny random Florence-2, the suggestions fill the Edit modal and an Accept
suggestions button makes them the captions, and the style trains on them under a
consent that covers them. The real discord.py client against the fake Discord, over
the real core, SQLite, Redis and a worker."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from tests.e2e.discord.conftest import StartWorker
from tests.e2e.discord.test_discord_bot import (
    CB_MODAL,
    answer_consent,
    custom_ids,
    discord_user,
    original_when,
    png,
)
from tests.e2e.discord.test_discord_captions import modal_inputs
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeFile, FakeGuild, FakeUser
from tests.support.tiny_captioners import captioning_engine, tiny_captioner_dir

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.captions import captions_digest
from stylebot.bot.discord.adapter import DiscordAdapter
from stylebot.config import Settings
from stylebot.engine.runtime import StyleEngine

pytestmark = pytest.mark.slow
__all__ = ["captioning_engine", "tiny_captioner_dir"]  # fixtures


@pytest.fixture
def settings(settings: Settings, tiny_captioner_dir: Path) -> Settings:
    return settings.replace(captioner=str(tiny_captioner_dir))


async def test_suggest_fill_accept_and_train_on_suggested_captions(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
    discord_settings: Settings,
    captioning_engine: StyleEngine,
    start_worker: StartWorker,
    one_torch_thread: None,
) -> None:
    train = await fake.send_slash_command(
        guild.id,
        general.id,
        alice,
        "train",
        {
            "name": "warm",
            "image1": FakeFile("sunset.png", png((230, 120, 40))),
            "image2": FakeFile("dune.png", png((200, 160, 60))),
        },
    )
    await train.callback()
    consent = await original_when(fake, train, lambda m: m["components"], "the consent request")
    owner = await discord_user(frontend, alice)

    listed = await fake.send_slash_command(guild.id, general.id, alice, "captions", {})
    await listed.callback()
    listing = await original_when(fake, listed, lambda m: m["components"], "the listing", 10)
    suggest_id = f"sb:captions-auto:{alice.id}"
    assert custom_ids(listing) == [f"sb:captions:{alice.id}:1", suggest_id]

    await start_worker()
    suggest = await fake.press_button(int(listing["id"]), suggest_id, alice)
    await suggest.callback()
    await original_when(fake, suggest, lambda m: "Suggested captions" in m["content"], "captions")
    waiting = await frontend.uow.uploads.pending_uploads(owner.id)
    suggestions = [u.suggested_caption for u in waiting]
    assert all(suggestions)
    assert [u.caption for u in waiting] == [None, None]

    listed = await fake.send_slash_command(guild.id, general.id, alice, "captions", {})
    await listed.callback()
    listing = await original_when(fake, listed, lambda m: m["components"], "the listing", 10)
    accept_id = f"sb:captions-accept:{alice.id}"
    assert custom_ids(listing) == [f"sb:captions:{alice.id}:1", accept_id, suggest_id]
    # The Edit modal offers the suggestions, for the member to take or change.
    edit = await fake.press_button(int(listing["id"]), f"sb:captions:{alice.id}:1", alice)
    assert (await edit.callback()).json["type"] == CB_MODAL
    modal = edit.modal()
    assert modal is not None
    assert modal_inputs(modal) == {"caption-1": suggestions[0], "caption-2": suggestions[1]}

    accept = await fake.press_button(int(listing["id"]), accept_id, alice)
    await accept.callback()
    accepted = await original_when(fake, accept, lambda m: "accepted" in m["content"], "accept")
    assert "2 suggestion(s) accepted" in accepted["content"]
    assert [u.caption for u in await frontend.uow.uploads.pending_uploads(owner.id)] == suggestions

    confirm_id = await answer_consent(fake, int(consent["id"]), alice, "CC0-1.0", "n", "warm")
    confirm = await fake.press_button(int(consent["id"]), confirm_id, alice)
    await confirm.callback()
    await original_when(fake, confirm, lambda m: "is ready" in m["content"], "training")
    style = await frontend.uow.styles.find_style(owner.id, "warm")
    assert style is not None
    trained_on = await frontend.uow.uploads.style_uploads(style.id)
    assert [u.caption for u in trained_on] == suggestions
    with contextlib.closing(sqlite3.connect(discord_settings.database_path)) as db:
        [(agreed,)] = db.execute(
            "SELECT captions_sha256 FROM consents WHERE id = ?", (style.consent_id,)
        ).fetchall()
    assert agreed == captions_digest(trained_on)
