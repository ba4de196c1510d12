"""Rights on Discord, end to end: /optout, the question about recognisable people in the
consent step, and /forget-me. The real discord.py client against the fake Discord, the
real core, SQLite (records, consent ledger, opt-out registry) and embedded Redis.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.e2e.discord.test_discord_bot import (
    CB_DEFERRED,
    CB_DEFERRED_UPDATE,
    CB_MESSAGE,
    CB_UPDATE,
    EPHEMERAL,
    answer_consent,
    custom_ids,
    discord_user,
    imagine_result,
    original_when,
    png,
    stored_consents,
)
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeFile, FakeGuild, FakeUser

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.consent import TERMS_VERSION
from stylebot.bot.core.ledger import LedgerEntry, LedgerKind
from stylebot.bot.discord.adapter import DiscordAdapter
from stylebot.config import Settings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


async def consent_entries(frontend: FrontEnd) -> list[LedgerEntry]:
    ledger = frontend.bot.deps.uow.ledger
    assert ledger is not None
    return [e for e in await ledger.entries() if e.kind == LedgerKind.CONSENT]


async def train(
    fake: FakeDiscord,
    guild: FakeGuild,
    channel: FakeChannel,
    who: FakeUser,
    name: str,
    *files: FakeFile,
) -> dict[str, Any]:
    """/train with images; the answer (a consent request, or a refusal)."""
    options: dict[str, Any] = {"name": name}
    options.update({f"image{n}": file for n, file in enumerate(files, start=1)})
    sent = await fake.send_slash_command(guild.id, channel.id, who, "train", options)
    assert (await sent.callback()).json == {"type": CB_DEFERRED, "data": {"flags": EPHEMERAL}}
    return await original_when(fake, sent, lambda m: m["content"], "the /train answer", 10)


async def test_an_artist_opts_out_and_nobody_else_can_train_on_their_image(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    bob: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    registry = frontend.bot.deps.uow.optouts
    assert registry is not None
    artwork = png((30, 140, 90))

    # Something that is not an image registers nothing.
    bad = await fake.send_slash_command(
        guild.id,
        general.id,
        alice,
        "optout",
        {"image1": FakeFile("notes.png", b"just some text", "image/png")},
    )
    await bad.callback()
    refusal = await original_when(fake, bad, lambda m: m["content"], "the refusal", 10)
    assert refusal["flags"] & EPHEMERAL
    assert "notes.png" in refusal["content"]
    assert "Nothing was registered" in refusal["content"]
    assert await registry.all() == []

    sent = await fake.send_slash_command(
        guild.id, general.id, alice, "optout", {"image1": FakeFile("mine.png", artwork)}
    )
    assert (await sent.callback()).json == {"type": CB_DEFERRED, "data": {"flags": EPHEMERAL}}
    registered = await original_when(fake, sent, lambda m: m["content"], "the answer", 10)
    assert registered["flags"] & EPHEMERAL
    assert "Registered 1 image(s)" in registered["content"]
    (entry,) = await registry.all()
    assert (entry.platform, entry.platform_user_id) == ("discord", str(alice.id))

    # Bob's upload of the same image is refused and nothing of his is stored.
    copied = await train(fake, guild, general, bob, "copy", FakeFile("found.png", artwork))
    assert "/optout" in copied["content"]
    assert copied["components"] == []
    bob_user = await discord_user(frontend, bob)
    assert await frontend.uow.uploads.pending_uploads(bob_user.id) == []

    # The artist herself may still train on her own work.
    own = await train(fake, guild, general, alice, "mine", FakeFile("mine.png", artwork))
    assert "Before training" in own["embeds"][0]["title"]
    alice_user = await discord_user(frontend, alice)
    assert len(await frontend.uow.uploads.pending_uploads(alice_user.id)) == 1


async def test_recognisable_people_must_have_agreed(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    bob: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
    discord_settings: Settings,
) -> None:
    consent = await train(
        fake, guild, general, alice, "faces", FakeFile("friends.png", png((200, 90, 120)))
    )
    message_id = int(consent["id"])
    people_options = consent["components"][1]["components"][0]["options"]
    assert [o["label"] for o in people_options] == [
        "No recognisable people",
        "Recognisable people, and each of them agreed",
        "Recognisable people who did not agree",
    ]

    # Only the member who asked may answer.
    other = await fake.select(message_id, f"sb:people:{alice.id}::faces", ["y"], bob)
    assert (await other.callback()).json["type"] == CB_MESSAGE
    assert custom_ids(fake.messages[message_id])[2] == f"sb:confirm:{alice.id}:::faces"

    # People who did not agree: Confirm is pressable, and the core refuses with its reason.
    confirm_id = await answer_consent(fake, message_id, alice, "own-work", "x", "faces")
    refused = await fake.press_button(message_id, confirm_id, alice)
    assert (await refused.callback()).json["type"] == CB_DEFERRED_UPDATE
    reason = (await refused.followup()).json
    assert reason["flags"] == EPHEMERAL
    assert "Recognisable people in the images must have agreed" in reason["content"]
    owner = await discord_user(frontend, alice)
    assert await frontend.uow.consents.latest_consent(owner.id) is None
    assert await consent_entries(frontend) == []
    assert await frontend.uow.jobs.active_jobs() == []
    assert len(await frontend.uow.uploads.pending_uploads(owner.id)) == 1
    assert fake.messages[message_id]["components"]  # still there to answer again

    # Answering that each of them agreed records it, and the training is queued.
    changed = await fake.select(message_id, f"sb:people:{alice.id}:own-work:faces", ["y"], alice)
    assert (await changed.callback()).json["type"] == CB_UPDATE
    agreed_id = f"sb:confirm:{alice.id}:own-work:y:faces"
    assert custom_ids(fake.messages[message_id])[2] == agreed_id
    confirm = await fake.press_button(message_id, agreed_id, alice)
    await confirm.callback()
    await original_when(fake, confirm, lambda m: "Training faces" in m["content"], "queued", 10)
    (entry,) = await consent_entries(frontend)
    assert (entry.payload["identifiable_people"], entry.payload["people_agreed"]) == (True, True)
    assert entry.payload["platform_user_id"] == str(alice.id)
    style = await frontend.uow.styles.find_style(owner.id, "faces")
    assert style is not None
    assert stored_consents(discord_settings, owner) == [("own-work", 1, TERMS_VERSION, style.id)]


async def test_no_recognisable_people_is_recorded_as_such(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    consent = await train(
        fake, guild, general, alice, "hills", FakeFile("hills.png", png((60, 120, 60)))
    )
    confirm_id = await answer_consent(fake, int(consent["id"]), alice, "CC0-1.0", "n", "hills")
    confirm = await fake.press_button(int(consent["id"]), confirm_id, alice)
    await confirm.callback()
    await original_when(fake, confirm, lambda m: "Training hills" in m["content"], "queued", 10)
    (entry,) = await consent_entries(frontend)
    assert (entry.payload["identifiable_people"], entry.payload["people_agreed"]) == (False, None)


async def test_a_consent_message_from_before_the_people_question_asks_it(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    consent = await train(
        fake, guild, general, alice, "old", FakeFile("old.png", png((20, 20, 160)))
    )
    message_id = int(consent["id"])
    # What the previous version sent: a licence select and Confirm without the answer.
    stored = fake.messages[message_id]
    stored["components"] = [
        {
            "type": 1,
            "components": [
                {
                    "type": 3,
                    "custom_id": f"sb:licence:{alice.id}:old",
                    "options": stored["components"][0]["components"][0]["options"],
                    "min_values": 1,
                    "max_values": 1,
                }
            ],
        },
        {
            "type": 1,
            "components": [
                {
                    "type": 2,
                    "style": 3,
                    "label": "I have the rights: train",
                    "custom_id": f"sb:confirm:{alice.id}:CC-BY-4.0:old",
                },
                {"type": 2, "style": 2, "label": "Cancel", "custom_id": f"sb:discard:{alice.id}"},
            ],
        },
    ]
    pressed = await fake.press_button(message_id, f"sb:confirm:{alice.id}:CC-BY-4.0:old", alice)
    assert (await pressed.callback()).json["type"] == CB_UPDATE
    upgraded = fake.messages[message_id]
    assert custom_ids(upgraded) == [
        f"sb:licence:{alice.id}::old",
        f"sb:people:{alice.id}:CC-BY-4.0:old",
        f"sb:confirm:{alice.id}:CC-BY-4.0::old",
        f"sb:discard:{alice.id}",
    ]
    licence_select = upgraded["components"][0]["components"][0]
    assert [o["value"] for o in licence_select["options"] if o.get("default")] == ["CC-BY-4.0"]
    assert upgraded["components"][2]["components"][0]["disabled"] is True
    owner = await discord_user(frontend, alice)
    assert await frontend.uow.consents.latest_consent(owner.id) is None


async def test_forget_me_erases_everything_once_confirmed_by_the_asker(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    bob: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
    worker: None,
) -> None:
    _, result = await imagine_result(fake, guild, general, alice, prompt="a paper boat", seed=9)
    output_id = custom_ids(result)[0].removeprefix("sb:reroll:")
    output = await frontend.uow.outputs.get_output(output_id)
    assert output is not None
    await train(fake, guild, general, alice, "boats", FakeFile("boat.png", png((10, 60, 160))))
    owner = await discord_user(frontend, alice)
    (upload,) = await frontend.uow.uploads.pending_uploads(owner.id)

    async def ask() -> dict[str, Any]:
        sent = await fake.send_slash_command(guild.id, general.id, alice, "forget-me")
        assert (await sent.callback()).json == {"type": CB_DEFERRED, "data": {"flags": EPHEMERAL}}
        return await original_when(fake, sent, lambda m: m["components"], "the question", 10)

    # First the core says what would go; nothing has changed yet.
    question = await ask()
    assert question["flags"] & EPHEMERAL
    assert "1 reference image(s), 1 generated image(s)" in question["content"]
    assert custom_ids(question) == [f"sb:erase:{alice.id}", f"sb:keep:{alice.id}"]
    assert await frontend.uow.uploads.pending_uploads(owner.id) == [upload]

    # Cancel keeps everything.
    kept = await fake.press_button(int(question["id"]), f"sb:keep:{alice.id}", alice)
    assert (await kept.callback()).json["type"] == CB_UPDATE
    assert fake.messages[int(question["id"])]["content"] == "Nothing was erased."
    assert fake.messages[int(question["id"])]["components"] == []
    assert await frontend.uow.outputs.get_output(output_id) is not None

    # Only the asker can confirm.
    question = await ask()
    intruder = await fake.press_button(int(question["id"]), f"sb:erase:{alice.id}", bob)
    refusal = (await intruder.callback()).json
    assert refusal["type"] == CB_MESSAGE
    assert f"<@{alice.id}> only" in refusal["data"]["content"]
    assert await frontend.uow.uploads.pending_uploads(owner.id) == [upload]

    erase = await fake.press_button(int(question["id"]), f"sb:erase:{alice.id}", alice)
    assert (await erase.callback()).json["type"] == CB_DEFERRED_UPDATE
    done = await original_when(fake, erase, lambda m: not m["components"], "the erasure answer", 10)
    assert done["id"] == question["id"]
    assert "Erased: 0 style(s), 1 reference image(s) and 1 generated image(s)" in done["content"]
    assert await frontend.uow.uploads.pending_uploads(owner.id) == []
    assert await frontend.uow.outputs.get_output(output_id) is None
    assert not await frontend.blobs.exists(upload.blob_key)
    assert await frontend.uow.users.find_user("discord", str(alice.id)) is None
