"""stylebot as a Discord bot, end to end: the real discord.py client against a fake
Discord, the real core, SQLite, embedded Redis, an arq worker and the tiny model.

Each test drives the bot the way Discord would (slash commands with attachments,
autocomplete, selects, buttons, the message context menu, a modal) and asserts
on what the bot really sent (the fake records every request) and on what the
front end stored. Unexpected errors inside the adapter fail the test
(`discord_bot` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sqlite3
from typing import Any

import pytest
from PIL import Image
from tests.e2e.discord.conftest import StartWorker, new_adapter
from tests.fakes.discord_api import (
    FakeChannel,
    FakeDiscord,
    FakeFile,
    FakeGuild,
    FakeUser,
    SentInteraction,
)

from stylebot.bootstrap import FrontEnd, PngWatermarkReader, run_frontends
from stylebot.bot.core.consent import TERMS_VERSION
from stylebot.bot.core.model import JobStatus, StyleStatus, User
from stylebot.bot.discord.adapter import DiscordAdapter, minimal_intents
from stylebot.bot.discord.jobs import PROGRESS_EDIT_INTERVAL_S, TrackedJob
from stylebot.config import Settings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

EPHEMERAL = 1 << 6
CB_MESSAGE, CB_DEFERRED, CB_DEFERRED_UPDATE, CB_UPDATE, CB_AUTOCOMPLETE, CB_MODAL = 4, 5, 6, 7, 8, 9
JOB_TIMEOUT_S = 120.0


def png(colour: tuple[int, int, int], size: int = 96) -> bytes:
    """A small reference image with some structure (a gradient), as a real upload."""
    image = Image.new("RGB", (size, size), colour)
    for x in range(size):
        for y in range(0, size, 4):
            image.putpixel((x, y), (x * 2 % 256, y * 2 % 256, colour[2]))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


async def original_when(
    fake: FakeDiscord,
    sent: SentInteraction,
    ready: Any,
    what: str,
    timeout: float = JOB_TIMEOUT_S,  # noqa: ASYNC109
) -> dict[str, Any]:
    """The interaction's original response once `ready(message)` holds."""

    def check() -> bool:
        message = sent.original_message()
        return message is not None and bool(ready(message))

    await fake.wait_until(check, timeout=timeout, what=what)
    message = sent.original_message()
    assert message is not None
    return message


async def answer_consent(
    fake: FakeDiscord, message_id: int, who: FakeUser, licence: str, people: str, name: str
) -> str:
    """Choose a licence, then the answer about recognisable people (n, y or x), the way
    a member does on the consent message; returns the now enabled Confirm's custom_id."""
    chose = await fake.select(message_id, f"sb:licence:{who.id}::{name}", [licence], who)
    assert (await chose.callback()).json["type"] == CB_UPDATE
    people_id = f"sb:people:{who.id}:{licence}:{name}"
    answered = await fake.select(message_id, people_id, [people], who)
    assert (await answered.callback()).json["type"] == CB_UPDATE
    confirm_id = f"sb:confirm:{who.id}:{licence}:{people}:{name}"
    (confirm,) = [
        c
        for row in fake.messages[message_id]["components"]
        for c in row["components"]
        if c["custom_id"] == confirm_id
    ]
    assert not confirm.get("disabled")
    return confirm_id


async def discord_user(frontend: FrontEnd, who: FakeUser) -> User:
    return await frontend.uow.users.get_or_create_user("discord", str(who.id), who.username)


def stored_consents(settings: Settings, user: User) -> list[tuple[str, int, str, int | None]]:
    """What the database holds as the user's consents (licence, rights, terms, style)."""
    with contextlib.closing(sqlite3.connect(settings.database_path)) as db:
        return db.execute(
            "SELECT licence, rights_confirmed, terms_version, style_id FROM consents"
            " WHERE user_id = ? ORDER BY id",
            (user.id,),
        ).fetchall()


async def imagine_result(
    fake: FakeDiscord, guild: FakeGuild, channel: FakeChannel, who: FakeUser, **options: Any
) -> tuple[SentInteraction, dict[str, Any]]:
    """Run /imagine and wait until its response carries the images."""
    sent = await fake.send_slash_command(guild.id, channel.id, who, "imagine", options)
    assert (await sent.callback()).json["type"] == CB_DEFERRED
    message = await original_when(fake, sent, lambda m: m["attachments"], "the images")
    return sent, message


# -- training with consent, then imagine with autocomplete ----------------------------


async def test_train_with_consent_then_imagine_in_the_style(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    bob: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
    discord_settings: Settings,
    start_worker: StartWorker,
) -> None:
    synced = {c["name"]: c for c in fake.commands(guild.id)}
    assert set(synced) == {
        "train",
        "imagine",
        "styles",
        "status",
        "cancel",
        "verify",
        "style",
        "optout",
        "forget-me",
        "admin",
        "Add images to a style",
        "captions",
        "restyle",
        "extend",
        "repaint",
        "sketch",
        "Restyle with…",
        "Follow this sketch",
    }
    imagine_options = {o["name"]: o for o in synced["imagine"]["options"]}
    assert imagine_options["style"]["autocomplete"] is True
    assert all(o["description"] for o in imagine_options.values())
    assert [c["value"] for c in imagine_options["aspect"]["choices"]] == [
        "square",
        "portrait",
        "landscape",
    ]
    assert {o["name"] for o in synced["style"]["options"]} == {
        "info",
        "share",
        "unshare",
        "delete",
        "export",
    }

    # /train: the images wait for consent in an ephemeral message; nothing is queued.
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
    deferred = await train.callback()
    assert deferred.json == {"type": CB_DEFERRED, "data": {"flags": EPHEMERAL}}
    consent = await original_when(fake, train, lambda m: m["components"], "the consent request")
    assert consent["flags"] & EPHEMERAL
    assert "Before training" in consent["embeds"][0]["title"]
    assert custom_ids(consent) == [
        f"sb:licence:{alice.id}::warm",
        f"sb:people:{alice.id}::warm",
        f"sb:confirm:{alice.id}:::warm",
        f"sb:discard:{alice.id}",
    ]
    assert consent["components"][2]["components"][0]["disabled"] is True  # nothing chosen yet
    licences = [o["value"] for o in consent["components"][0]["components"][0]["options"]]
    assert licences == ["own-work", "CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "licensed"]
    people = [o["value"] for o in consent["components"][1]["components"][0]["options"]]
    assert people == ["n", "y", "x"]

    owner = await discord_user(frontend, alice)
    assert len(await frontend.uow.uploads.pending_uploads(owner.id)) == 2
    assert await frontend.uow.consents.latest_consent(owner.id) is None

    # A licence alone does not enable Confirm: the people question is still open.
    chose = await fake.select(
        int(consent["id"]), f"sb:licence:{alice.id}::warm", ["CC0-1.0"], alice
    )
    assert (await chose.callback()).json["type"] == CB_UPDATE
    chosen = fake.messages[int(consent["id"])]
    assert custom_ids(chosen)[1:3] == [
        f"sb:people:{alice.id}:CC0-1.0:warm",
        f"sb:confirm:{alice.id}:CC0-1.0::warm",
    ]
    assert chosen["components"][2]["components"][0]["disabled"] is True
    confirm_id = await answer_consent(fake, int(consent["id"]), alice, "CC0-1.0", "n", "warm")

    # Someone else pressing Confirm is refused, and still nothing is recorded or queued.
    intruder = await fake.press_button(int(consent["id"]), confirm_id, bob)
    refusal = await intruder.callback()
    assert refusal.json["type"] == CB_MESSAGE
    assert refusal.json["data"]["flags"] == EPHEMERAL
    assert f"<@{alice.id}> only" in refusal.json["data"]["content"]
    assert await frontend.uow.consents.latest_consent(owner.id) is None
    assert await frontend.uow.jobs.active_jobs() == []

    discord_bot.progress_interval_s = 0.0  # show every step: training is over in a second
    await start_worker()
    confirm = await fake.press_button(int(consent["id"]), confirm_id, alice)
    assert (await confirm.callback()).json["type"] == CB_DEFERRED_UPDATE
    done = await original_when(fake, confirm, lambda m: "is ready" in m["content"], "training")
    assert done["id"] == consent["id"]  # the consent message became the progress, then result
    assert done["components"] == []
    style = await frontend.uow.styles.find_style(owner.id, "warm")
    assert style is not None
    assert style.status is StyleStatus.READY
    assert stored_consents(discord_settings, owner) == [("CC0-1.0", 1, TERMS_VERSION, style.id)]
    edits = [
        r.json["content"]
        for r in fake.requests
        if r.method == "PATCH" and confirm.token in r.path and r.status == 200
    ]
    assert "queued" in edits[0]
    assert "Training warm: step 8/8" in edits[-2]
    assert "▰" * 10 in edits[-2]
    assert "is ready" in edits[-1]

    exported = await fake.send_slash_command(
        guild.id, general.id, alice, "style export", {"name": "warm"}
    )
    await exported.callback()
    weights = await original_when(fake, exported, lambda m: m["attachments"], "the export", 10)
    assert weights["flags"] & EPHEMERAL
    assert weights["attachments"][0]["filename"] == "warm.safetensors"
    # The exported file (kohya layout, with metadata) the training stored for the style.
    export_key = await frontend.uow.styles.style_export_key(style.id)
    assert export_key is not None
    assert fake.attachment_bytes(int(weights["attachments"][0]["id"])) == (
        await frontend.blobs.get(export_key)
    )

    # Autocomplete offers the style to its owner only: it is private.
    def autocomplete(who: FakeUser) -> Any:
        return fake.send_autocomplete(
            guild.id, general.id, who, "imagine", {"prompt": "x", "style": "wa"}, "style"
        )

    mine = await (await autocomplete(alice)).callback()
    assert mine.json == {
        "type": CB_AUTOCOMPLETE,
        "data": {"choices": [{"name": "warm", "value": "warm"}]},
    }
    theirs = await (await autocomplete(bob)).callback()
    assert theirs.json["data"]["choices"] == []

    # Bob cannot use Alice's private style: an ephemeral refusal, the public placeholder removed.
    refused = await fake.send_slash_command(
        guild.id, general.id, bob, "imagine", {"prompt": "a barn", "style": "warm"}
    )
    assert (await refused.callback()).json["type"] == CB_DEFERRED
    error = await refused.followup()
    assert error.json["flags"] == EPHEMERAL
    assert "no style named warm" in error.json["content"]
    assert refused.original_message() is None  # deleted
    bob_user = await discord_user(frontend, bob)
    assert await frontend.uow.jobs.active_jobs(bob_user.id) == []

    # Alice's image in her style: a public message with the image and its buttons.
    _, result = await imagine_result(
        fake, guild, general, alice, prompt="a lighthouse at dawn", style="warm", seed=7
    )
    assert not result["flags"] & EPHEMERAL
    (attachment,) = result["attachments"]
    image = fake.attachment_bytes(int(attachment["id"]))
    output_id = PngWatermarkReader().read(image)
    assert output_id is not None
    record = await frontend.uow.outputs.get_output(output_id)
    assert record is not None
    assert (record.prompt, record.seed, record.style_id) == ("a lighthouse at dawn", 7, style.id)
    assert custom_ids(result) == [
        f"sb:reroll:{output_id}",
        f"sb:vary:{output_id}",
        f"sb:upscale:{output_id}",
        f"sb:info:{output_id}",
        f"sb:delete:{output_id}",
        f"sb:extend:zoom1.5:{output_id}",
        f"sb:extend:zoom2:{output_id}",
        f"sb:extend:square:{output_id}",
        f"sb:extend:portrait:{output_id}",
    ]
    checked = await fake.send_slash_command(
        guild.id, general.id, bob, "verify", {"image": FakeFile("found.png", image)}
    )
    await checked.callback()
    report = await original_when(fake, checked, lambda m: m["content"], "the report", 10)
    assert f"output {output_id}" in report["content"]
    # Made with Alice's private style: Bob learns who made it and when, not how.
    assert f"<@{alice.id}>, named " in report["content"]
    assert "warm" not in report["content"]
    assert "a lighthouse at dawn" not in report["content"]

    # Shared with the server, Bob may use it: autocomplete now offers it to him.
    share = await fake.send_slash_command(
        guild.id, general.id, alice, "style share", {"name": "warm"}
    )
    await share.callback()
    await original_when(fake, share, lambda m: "shared" in m["content"], "the share reply")
    offered = await (await autocomplete(bob)).callback()
    assert offered.json["data"]["choices"] == [{"name": "warm", "value": "warm"}]


# -- buttons after a restart ------------------------------------------------------------


async def test_result_buttons_work_after_the_adapter_restarts(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    bob: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
    discord_settings: Settings,
    bot_errors: list[BaseException],
    worker: None,
) -> None:
    _, result = await imagine_result(
        fake, guild, general, alice, prompt="a red barn", seed=3, aspect="landscape"
    )
    output_id = custom_ids(result)[0].removeprefix("sb:reroll:")
    first = await frontend.uow.outputs.get_output(output_id)
    assert first is not None
    assert (first.width, first.height) == (384, 256)  # landscape of the 256 default

    await discord_bot.stop()
    restarted = new_adapter(frontend, discord_settings, bot_errors)
    await restarted.start()
    try:
        assert fake.identify_count == 2
        assert len(restarted.jobs) == 0  # nothing remembered: state lives in custom_ids
        info = await fake.press_button(int(result["id"]), f"sb:info:{output_id}", alice)
        assert (await info.callback()).json == {"type": CB_DEFERRED, "data": {"flags": EPHEMERAL}}
        shown = await original_when(fake, info, lambda m: m["content"], "the info")
        assert "a red barn" in shown["content"]
        assert "seed: 3" in shown["content"]

        # Only its maker may delete it: Bob is refused and the image stays.
        denied = await fake.press_button(int(result["id"]), f"sb:delete:{output_id}", bob)
        assert (await denied.callback()).json["type"] == CB_DEFERRED_UPDATE
        assert "Only the person who made" in (await denied.followup()).json["content"]
        assert await frontend.uow.outputs.get_output(output_id) is not None

        reroll = await fake.press_button(int(result["id"]), f"sb:reroll:{output_id}", alice)
        assert (await reroll.callback()).json["type"] == CB_DEFERRED
        again = await original_when(fake, reroll, lambda m: m["attachments"], "the re-roll")
        new_id = PngWatermarkReader().read(
            fake.attachment_bytes(int(again["attachments"][0]["id"]))
        )
        assert new_id is not None
        assert new_id != output_id
        second = await frontend.uow.outputs.get_output(new_id)
        assert second is not None
        assert second.prompt == "a red barn"
        assert (second.width, second.height) == (384, 256)

        removed = await fake.press_button(int(result["id"]), f"sb:delete:{output_id}", alice)
        await removed.callback()
        assert "Deleted" in (await removed.followup()).json["content"]
        assert await frontend.uow.outputs.get_output(output_id) is None
        assert fake.messages[int(result["id"])]["attachments"] == []
        assert fake.messages[int(result["id"])]["components"] == []
    finally:
        await restarted.stop()


# -- results outliving their interaction --------------------------------------------------


async def queue_imagine_and_expire_its_token(
    fake: FakeDiscord, guild: FakeGuild, general: FakeChannel, alice: FakeUser
) -> SentInteraction:
    """Queue a generation and kill its token before any worker runs (Discord's 15 min)."""
    sent = await fake.send_slash_command(
        guild.id, general.id, alice, "imagine", {"prompt": "a quiet harbour", "seed": 5}
    )
    await sent.callback()
    await original_when(fake, sent, lambda m: "quiet harbour" in m["content"], "queued", 10)
    fake.expire_token(sent.token)
    return sent


async def test_an_expired_token_sends_the_result_to_the_channel(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
    start_worker: StartWorker,
) -> None:
    sent = await queue_imagine_and_expire_its_token(fake, guild, general, alice)
    await start_worker()

    def posted() -> list[dict[str, Any]]:
        return [
            m
            for m in fake.channel_messages(general.id)
            if "webhook_id" not in m and m["attachments"]
        ]

    await fake.wait_until(lambda: bool(posted()), timeout=JOB_TIMEOUT_S, what="channel post")
    (message,) = posted()
    assert message["content"].startswith(f"<@{alice.id}> ")
    post = next(r for r in fake.requests if r.path == f"/channels/{general.id}/messages")
    assert [int(u) for u in post.json["allowed_mentions"]["users"]] == [alice.id]
    output_id = PngWatermarkReader().read(
        fake.attachment_bytes(int(message["attachments"][0]["id"]))
    )
    assert output_id is not None
    assert f"sb:reroll:{output_id}" in custom_ids(message)
    record = await frontend.uow.outputs.get_output(output_id)
    assert record is not None
    assert record.prompt == "a quiet harbour"
    job = await frontend.uow.jobs.get_job(record.job_id)
    assert job is not None
    assert job.status is JobStatus.FINISHED
    original = sent.original_message()
    assert original is not None
    assert original["attachments"] == []  # the dead token could not be used


async def test_a_deleted_channel_sends_the_result_as_a_dm(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    discord_bot: DiscordAdapter,
    start_worker: StartWorker,
) -> None:
    await queue_imagine_and_expire_its_token(fake, guild, general, alice)
    fake.delete_channel(general.id)
    await start_worker()

    dm = fake.dm_channel_id(alice)
    await fake.wait_until(
        lambda: any(m["attachments"] for m in fake.channel_messages(dm)),
        timeout=JOB_TIMEOUT_S,
        what="a DM with the result",
    )
    (message,) = fake.channel_messages(dm)
    assert "could not post in the channel" in message["content"]
    assert PngWatermarkReader().read(fake.attachment_bytes(int(message["attachments"][0]["id"])))
    refused = next(r for r in fake.requests if r.path == f"/channels/{general.id}/messages")
    assert refused.status == 404
    assert refused.response["code"] == 10003


# -- uploads that are refused ---------------------------------------------------------------


async def test_a_bad_attachment_is_refused_and_nothing_is_stored(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
    discord_settings: Settings,
) -> None:
    not_an_image = FakeFile("holiday.png", b"%PDF-1.7 this is a document", "image/png")
    sent = await fake.send_slash_command(
        guild.id,
        general.id,
        alice,
        "train",
        {"name": "trip", "image1": FakeFile("ok.png", png((10, 90, 200))), "image2": not_an_image},
    )
    await sent.callback()
    refusal = await original_when(fake, sent, lambda m: m["content"], "the refusal", 10)
    assert refusal["flags"] & EPHEMERAL
    assert "holiday.png" in refusal["content"]
    assert "PDF" in refusal["content"]
    assert refusal["components"] == []
    owner = await discord_user(frontend, alice)
    assert await frontend.uow.uploads.pending_uploads(owner.id) == []
    stored = [p for p in discord_settings.blob_dir.rglob("*") if p.is_file()]
    assert stored == []

    # Larger than the upload limit: refused from its declared size, never downloaded.
    discord_bot.settings = discord_settings.replace(max_upload_bytes=1024)
    big = FakeFile("huge.png", png((1, 2, 3), size=256))
    oversized = await fake.send_slash_command(guild.id, general.id, alice, "verify", {"image": big})
    await oversized.callback()
    too_big = await original_when(fake, oversized, lambda m: m["content"], "the refusal", 10)
    assert "huge.png" in too_big["content"]
    assert "more than the" in too_big["content"]
    assert not any(r.path.endswith("/huge.png") for r in fake.requests)


async def test_images_from_a_message_need_consent_and_a_name(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    bob: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
    discord_settings: Settings,
) -> None:
    posted = await fake.send_user_message(
        general.id, alice, "my sketches", files=[FakeFile("sketch.png", png((40, 40, 40)))]
    )

    # Bob cannot train on Alice's post.
    taken = await fake.send_message_command(
        guild.id, general.id, bob, "Add images to a style", int(posted["id"])
    )
    await taken.callback()
    refusal = await original_when(fake, taken, lambda m: m["content"], "the refusal", 10)
    assert "images you posted yourself" in refusal["content"]
    assert await frontend.uow.uploads.pending_uploads((await discord_user(frontend, bob)).id) == []

    added = await fake.send_message_command(
        guild.id, general.id, alice, "Add images to a style", int(posted["id"])
    )
    await added.callback()
    consent = await original_when(fake, added, lambda m: m["components"], "consent", 10)
    assert custom_ids(consent)[0] == f"sb:licence:{alice.id}::"
    confirm_id = await answer_consent(fake, int(consent["id"]), alice, "own-work", "n", "")

    # Without a name yet, Confirm asks for one in a modal, then queues the training.
    confirm = await fake.press_button(int(consent["id"]), confirm_id, alice)
    assert (await confirm.callback()).json["type"] == CB_MODAL
    named = await fake.submit_modal(confirm, {"name": "sketchy"})
    assert (await named.callback()).json["type"] == CB_DEFERRED
    queued = await original_when(fake, named, lambda m: m["content"], "queued", 10)
    assert "Training sketchy" in queued["content"]
    owner = await discord_user(frontend, alice)
    style = await frontend.uow.styles.find_style(owner.id, "sketchy")
    assert style is not None
    assert stored_consents(discord_settings, owner) == [("own-work", 1, TERMS_VERSION, style.id)]
    assert discord_bot.jobs.get((await frontend.uow.jobs.active_jobs(owner.id))[0].id) is not None


async def test_a_refused_name_can_be_replaced_and_cancel_forgets_the_images(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    async def consent_for(name: str, colour: tuple[int, int, int]) -> dict[str, Any]:
        sent = await fake.send_slash_command(
            guild.id,
            general.id,
            alice,
            "train",
            {"name": name, "image1": FakeFile("ref.png", png(colour))},
        )
        await sent.callback()
        return await original_when(fake, sent, lambda m: m["components"], "consent", 10)

    # Cancel: the waiting image is forgotten and nothing is recorded.
    first = await consent_for("first", (90, 10, 10))
    cancel = await fake.press_button(int(first["id"]), f"sb:discard:{alice.id}", alice)
    await cancel.callback()
    owner = await discord_user(frontend, alice)
    await fake.wait_until(
        lambda: "Discarded 1" in fake.messages[int(first["id"])]["content"],
        timeout=10,
        what="the discard answer",
    )
    assert fake.messages[int(first["id"])]["components"] == []
    assert await frontend.uow.uploads.pending_uploads(owner.id) == []

    # A name the core refuses: consent is kept and a modal asks for another name.
    second = await consent_for("Not A Name!", (10, 90, 10))
    confirm_id = await answer_consent(
        fake, int(second["id"]), alice, "licensed", "y", "Not A Name!"
    )
    confirm = await fake.press_button(int(second["id"]), confirm_id, alice)
    await confirm.callback()
    refused = await original_when(
        fake, confirm, lambda m: "not a valid style name" in m["content"], "the refusal", 10
    )
    rename_id = f"sb:rename:{alice.id}:licensed:y"
    assert custom_ids(refused) == [rename_id, f"sb:discard:{alice.id}"]
    rename = await fake.press_button(int(refused["id"]), rename_id, alice)
    assert (await rename.callback()).json["type"] == CB_MODAL
    named = await fake.submit_modal(rename, {"name": "leafy"})
    await named.callback()
    queued = await original_when(fake, named, lambda m: m["content"], "queued", 10)
    assert "Training leafy" in queued["content"]
    assert await frontend.uow.styles.find_style(owner.id, "leafy") is not None


# -- the composition root ------------------------------------------------------------------


async def test_stylebot_run_serves_discord_when_a_token_is_set(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    discord_settings: Settings,
) -> None:
    """`stylebot run`'s code path: bootstrap builds the adapter from the settings alone."""
    stop = asyncio.Event()
    running = asyncio.create_task(run_frontends(discord_settings, stop))
    try:
        await fake.wait_ready(timeout=30)
        await fake.wait_until(
            lambda: bool(fake.commands(guild.id)), timeout=10, what="commands synced"
        )
        sent = await fake.send_slash_command(guild.id, general.id, alice, "styles")
        assert (await sent.callback()).json == {"type": CB_DEFERRED, "data": {"flags": EPHEMERAL}}
        answer = await original_when(fake, sent, lambda m: m["content"], "the answer", 10)
        assert "No styles yet" in answer["content"]
        identify = next(p for p in fake.gateway_received if p["op"] == 2)
        assert identify["d"]["intents"] == minimal_intents().value == 1  # guilds only
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


# -- the progress throttle -------------------------------------------------------------------


def test_progress_edits_are_throttled_per_job() -> None:
    tracked = TrackedJob("generate-1", interaction=None)  # type: ignore[arg-type]
    tracked.last_edit = 100.0
    assert PROGRESS_EDIT_INTERVAL_S >= 1.0  # Discord rate-limits message edits
    assert not tracked.progress_due(PROGRESS_EDIT_INTERVAL_S, now=100.0 + 0.5)
    assert tracked.progress_due(PROGRESS_EDIT_INTERVAL_S, now=100.0 + PROGRESS_EDIT_INTERVAL_S)
