"""/admin on Discord, end to end: the real discord.py client against the fake Discord,
the real core, admin store (SQLite) and training switch (Redis).

Alice owns the server (Manage Server), Bob is a member, Carol is the bot's operator
(STYLEBOT_OPERATORS) without any server permission. The commands are synced
globally, as in production, so they work in DMs too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.e2e.discord.test_discord_bot import CB_DEFERRED, EPHEMERAL, original_when
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeGuild, FakeUser, SentInteraction

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.admin_ports import AdminPorts
from stylebot.bot.core.ledger import LedgerKind
from stylebot.bot.core.optout import OptedOutImage
from stylebot.bot.discord.adapter import DiscordAdapter
from stylebot.config import Settings

pytestmark = [pytest.mark.slow]

OPTION_USER, OPTION_STRING = 6, 3
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def carol() -> FakeUser:
    return FakeUser(username="carol", global_name="Carol")


@pytest.fixture
def guild(alice: FakeUser, bob: FakeUser, carol: FakeUser, general: FakeChannel) -> FakeGuild:
    # Alice, the first member, owns it; Bob and Carol have @everyone's permissions only.
    return FakeGuild(name="Style Club", channels=[general], members=[alice, bob, carol])


@pytest.fixture
def settings(settings: Settings, carol: FakeUser) -> Settings:
    return settings.replace(operators=f"discord:{carol.id}")


@pytest.fixture
def discord_settings(settings: Settings, fake: FakeDiscord) -> Settings:
    """No test guild: commands are registered globally, so DMs see them."""
    return settings.replace(discord_token=fake.token, discord_guild_id=None)


def admin_of(frontend: FrontEnd) -> AdminPorts:
    ports = frontend.bot.deps.admin
    assert isinstance(ports, AdminPorts)
    return ports


async def answer(
    fake: FakeDiscord,
    guild: FakeGuild | None,
    channel: FakeChannel | None,
    who: FakeUser,
    command: str,
    options: dict[str, Any] | None = None,
) -> str:
    """Run a command (in a DM when `guild` is None); its ephemeral answer's text."""
    sent: SentInteraction = await fake.send_slash_command(
        guild.id if guild else None, channel.id if channel else None, who, command, options
    )
    assert (await sent.callback()).json == {"type": CB_DEFERRED, "data": {"flags": EPHEMERAL}}
    message = await original_when(fake, sent, lambda m: m["content"], f"/{command}", 10)
    assert message["flags"] & EPHEMERAL
    return str(message["content"])


async def test_admin_commands_are_registered_for_everyone(
    fake: FakeDiscord, discord_bot: DiscordAdapter
) -> None:
    synced = {c["name"]: c for c in fake.commands()}
    assert {"admin", "optout", "forget-me"} <= set(synced)
    admin = synced["admin"]
    # Not hidden behind a permission: the operator may not manage the server.
    assert admin.get("default_member_permissions") is None
    subcommands = {o["name"]: o for o in admin["options"]}
    assert set(subcommands) == {
        "pause",
        "resume",
        "quota",
        "remove-style",
        "ban",
        "unban",
        "queue",
        "optouts",
        "remove-optout",
    }
    quota = {o["name"]: o for o in subcommands["quota"]["options"]}
    assert [c["value"] for c in quota["kind"]["choices"]] == ["generate", "train"]
    assert [c["value"] for c in quota["where"]["choices"]] == ["server", "everywhere"]
    assert quota["kind"]["required"] is True
    assert not quota["limit"].get("required")
    ban = {o["name"]: o for o in subcommands["ban"]["options"]}
    assert (ban["user"]["type"], ban["reason"]["type"]) == (OPTION_USER, OPTION_STRING)
    assert not ban["reason"].get("required")
    unban = {o["name"]: o for o in subcommands["unban"]["options"]}
    assert set(unban) == {"user"}
    remove = {o["name"]: o for o in subcommands["remove-style"]["options"]}
    assert remove["name"]["autocomplete"] is True


async def test_only_the_operator_pauses_training_even_from_a_dm(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    bob: FakeUser,
    carol: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    training = admin_of(frontend).training

    # A member and a server manager alike are refused; training keeps running.
    refused = await answer(fake, guild, general, bob, "admin pause")
    assert "Only the bot's operator" in refused
    managed = await answer(fake, guild, general, alice, "admin pause")
    assert "Only the bot's operator" in managed
    assert await training.paused_by() is None

    # The operator, in a DM with the bot: paused, with a confirmation.
    paused = await answer(fake, None, None, carol, "admin pause")
    assert "Training is paused" in paused
    assert await training.paused_by() == f"discord:{carol.id}"

    # A member cannot resume it either.
    assert "Only the bot's operator" in await answer(fake, guild, general, bob, "admin resume")
    assert await training.paused_by() == f"discord:{carol.id}"

    # The operator also has no Manage Server in the guild, and may still resume there.
    resumed = await answer(fake, guild, general, carol, "admin resume")
    assert "Training resumed" in resumed
    assert await training.paused_by() is None


async def test_quotas_queue_and_removing_a_style_by_server_managers(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    bob: FakeUser,
    carol: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    store = admin_of(frontend).store
    scope = f"discord:{guild.id}"

    # A member may not set the server's quota; nothing is stored.
    refused = await answer(
        fake, guild, general, bob, "admin quota", {"kind": "generate", "limit": 3}
    )
    assert "Only a manager of this server" in refused
    assert await store.quotas([scope], "generate") == []

    # The manager sets it for this server.
    set_here = await answer(
        fake, guild, general, alice, "admin quota", {"kind": "generate", "limit": 3}
    )
    assert "Quota for generate in this server: 3 images per member a day" in set_here
    (quota,) = await store.quotas([scope], "generate")
    assert (quota.per_day, quota.set_by) == (3, f"discord:{alice.id}")

    # Nonsense and overreach are refused and change nothing.
    zero = await answer(fake, guild, general, alice, "admin quota", {"kind": "train", "limit": 0})
    assert "1 or more" in zero
    everywhere = await answer(
        fake,
        guild,
        general,
        alice,
        "admin quota",
        {"kind": "train", "limit": 2, "where": "everywhere"},
    )
    assert "Only the bot's operator" in everywhere
    assert await store.quotas([scope, "*"], "train") == []

    # The operator sets a global one from a DM; a manager lifts the server's.
    global_quota = await answer(
        fake, None, None, carol, "admin quota", {"kind": "train", "where": "everywhere", "limit": 2}
    )
    assert "Quota for train everywhere: 2 trainings per member a day" in global_quota
    assert [q.per_day for q in await store.quotas(["*"], "train")] == [2]
    lifted = await answer(fake, guild, general, alice, "admin quota", {"kind": "generate"})
    assert "no limit" in lifted
    assert await store.quotas([scope], "generate") == []

    # The queue: Bob's queued image shows to the manager and the operator, not to Bob.
    sent = await fake.send_slash_command(
        guild.id, general.id, bob, "imagine", {"prompt": "a quiet pond", "seed": 2}
    )
    await sent.callback()
    await original_when(fake, sent, lambda m: "quiet pond" in m["content"], "queued", 10)
    (job,) = await frontend.uow.jobs.active_jobs()
    assert "Only a manager" in await answer(fake, guild, general, bob, "admin queue")
    managers_view = await answer(fake, guild, general, alice, "admin queue")
    assert "1 job(s) queued or running, 1 from this server" in managers_view
    assert f"generate by Bob: queued ({job.id})" in managers_view
    operators_view = await answer(fake, None, None, carol, "admin queue")
    assert f"generate by Bob: queued ({job.id})" in operators_view

    # Removing a style: managers only, and it must be shared here.
    assert "Only a manager" in await answer(
        fake, guild, general, bob, "admin remove-style", {"name": "warm"}
    )
    missing = await answer(fake, guild, general, alice, "admin remove-style", {"name": "warm"})
    assert "No style named warm is shared with this server" in missing


async def test_managers_review_and_remove_optouts_made_in_their_server(
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
    here, elsewhere = f"discord:{guild.id}", "discord:another-server"
    for n, scope in enumerate((here, here, elsewhere)):
        image = OptedOutImage(
            "discord", str(bob.id), f"{n:064x}", "00ff00ff00ff00ff", T0, scope=scope
        )
        await registry.add(image)

    assert "Only a manager" in await answer(fake, guild, general, bob, "admin optouts")
    listing = await answer(fake, guild, general, alice, "admin optouts")
    assert "newest first (2 shown)" in listing
    assert str(bob.id) not in listing
    bad = await answer(fake, guild, general, alice, "admin remove-optout", {"ids": "two"})
    assert "numbers" in bad
    # A digit int() cannot read (it crashed the command) is no id either.
    bad = await answer(fake, guild, general, alice, "admin remove-optout", {"ids": "²"})
    assert "numbers" in bad
    # Discord shows '#12' as typed: the bot escapes a '#' that starts a line ('\\#12').
    shown = [line.removeprefix("\\") for line in listing.splitlines()]
    ids = " ".join(line.split()[0] for line in shown if line.startswith("#"))
    removed = await answer(
        fake, guild, general, alice, "admin remove-optout", {"ids": ids, "reason": "squatting"}
    )
    assert "Removed 2 /optout registration(s)" in removed
    assert [i.scope for i in await registry.listing(None)] == [elsewhere]
    entries = await frontend.bot.deps.uow.ledger.entries()
    assert [e.payload["reason"] for e in entries if e.kind == LedgerKind.OPTOUT_REMOVAL] == [
        "squatting",
        "squatting",
    ]


async def test_a_banned_member_is_refused_until_unbanned(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    bob: FakeUser,
    carol: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    store = admin_of(frontend).store

    # Only the operator bans, not a server manager.
    refused = await answer(fake, guild, general, alice, "admin ban", {"user": bob})
    assert "Only the bot's operator" in refused
    assert await store.ban_of("discord", str(bob.id)) is None

    # Bob has a job waiting; the ban cancels it.
    sent = await fake.send_slash_command(
        guild.id, general.id, bob, "imagine", {"prompt": "a red kite", "seed": 4}
    )
    await sent.callback()
    await original_when(fake, sent, lambda m: "red kite" in m["content"], "queued", 10)
    banned = await answer(
        fake, guild, general, carol, "admin ban", {"user": bob, "reason": "spam prompts"}
    )
    assert f"Banned {bob.id} from the bot; 1 of their jobs cancelled" in banned
    ban = await store.ban_of("discord", str(bob.id))
    assert ban is not None
    assert (ban.reason, ban.banned_by) == ("spam prompts", f"discord:{carol.id}")
    assert await frontend.uow.jobs.active_jobs() == []

    # Every command of Bob's is refused now, in the server and in a DM.
    assert "cannot use this bot" in await answer(fake, guild, general, bob, "styles")
    assert "cannot use this bot" in await answer(fake, None, None, bob, "status")

    # Unbanning by anyone but the operator is refused; the operator's works.
    assert "Only the bot's operator" in await answer(
        fake, guild, general, alice, "admin unban", {"user": bob}
    )
    assert await store.ban_of("discord", str(bob.id)) is not None
    assert "may use the bot again" in await answer(
        fake, None, None, carol, "admin unban", {"user": bob}
    )
    assert await store.ban_of("discord", str(bob.id)) is None
    assert "No styles yet" in await answer(fake, guild, general, bob, "styles")
    not_banned = await answer(fake, None, None, carol, "admin unban", {"user": bob})
    assert "is not banned" in not_banned
