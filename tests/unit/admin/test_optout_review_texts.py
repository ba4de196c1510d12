"""The /optout review rules at their edges, on registrations put straight into the
in-memory registry (no pictures): who may list and remove, what a listing says line by
line, registrant codes, and what each refusal and removal says and records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.fakes.core import person
from tests.fakes.safety import SafetyWorld
from tests.unit.admin.test_optout_review import (
    MANAGER,
    MEMBER,
    OPERATOR,
    SQUATTER,
    admin_store,
    reviewing_world,
)

from stylebot.bot.core.admin_commands import ListOptOuts, RemoveOptOuts
from stylebot.bot.core.ledger import LedgerKind
from stylebot.bot.core.mentions import spell, typed
from stylebot.bot.core.model import Requester
from stylebot.bot.core.optout import OptedOutImage
from stylebot.bot.core.replies import ErrorReply, TextReply

AT = datetime(2026, 11, 22, 9, 5, tzinfo=UTC)
FOOTER = (
    "Remove with the ids, or all of one registrant's with their code; the artist of a "
    "removed image can register it again."
)
OTHER_SERVER = person("eve", server="guild-2")
IN_A_DM = person("dan", server=None)


@pytest.fixture
def world() -> SafetyWorld:
    return reviewing_world()


async def register(world: SafetyWorld, who: Requester, n: int) -> OptedOutImage:
    image = OptedOutImage("discord", who.user_id, f"{n:064x}", f"{n:016x}", AT, who.scope)
    assert await world.optouts.add(image)
    return world.optouts.images[-1]


def listing(reply: object) -> list[str]:
    assert isinstance(reply, TextReply), reply
    # As the typed platforms show it: the core marks command names for each to spell.
    return spell(reply.text, typed).split("\n")


def refusal(reply: object) -> str:
    assert isinstance(reply, ErrorReply), reply
    return spell(reply.text, typed)


async def test_a_managers_listing_line_by_line(world: SafetyWorld) -> None:
    first = await register(world, SQUATTER, 1)
    second = await register(world, SQUATTER, 2)
    own = await register(world, MEMBER, 3)
    await register(world, OTHER_SERVER, 4)
    code = first.registrant[:12]
    assert listing(await world.bot.handle(ListOptOuts(MANAGER, manages_server=True))) == [
        "/optout registrations made in this server, newest first (3 shown):",
        f"#{own.id} 2026-11-22 09:05 by {own.registrant[:12]}",
        f"#{second.id} 2026-11-22 09:05 by {code}",
        f"#{first.id} 2026-11-22 09:05 by {code}",
        f"Most of these by one registrant: {code} (2).",
        FOOTER,
    ]


async def test_the_operators_listing_says_where_each_was_made(world: SafetyWorld) -> None:
    here = await register(world, SQUATTER, 1)
    dm = await register(world, IN_A_DM, 2)
    assert listing(await world.bot.handle(ListOptOuts(OPERATOR))) == [
        "/optout registrations, newest first (2 shown):",
        f"#{dm.id} 2026-11-22 09:05 by {dm.registrant[:12]} in a direct message",
        f"#{here.id} 2026-11-22 09:05 by {here.registrant[:12]} in discord:guild-1",
        FOOTER,
    ]


async def test_a_registration_whose_registrant_is_unknown(world: SafetyWorld) -> None:
    for n in (1, 2):
        world.optouts.images.append(
            OptedOutImage("discord", "x", f"{n:064x}", "0" * 16, AT, "discord:guild-1", id=n)
        )
    lines = listing(await world.bot.handle(ListOptOuts(MANAGER, manages_server=True)))
    assert lines[1:3] == ["#2 2026-11-22 09:05 by unknown", "#1 2026-11-22 09:05 by unknown"]
    assert not any(line.startswith("Most of these") for line in lines)


async def test_nothing_to_list(world: SafetyWorld) -> None:
    await register(world, OTHER_SERVER, 1)
    reply = await world.bot.handle(ListOptOuts(MANAGER, manages_server=True))
    assert listing(reply) == ["No /optout registrations made in this server."]
    world.optouts.images.clear()
    assert listing(await world.bot.handle(ListOptOuts(OPERATOR))) == ["No /optout registrations."]


async def test_a_listing_shows_at_most_50(world: SafetyWorld) -> None:
    for n in range(51):
        await register(world, SQUATTER, n)
    lines = listing(await world.bot.handle(ListOptOuts(OPERATOR)))
    assert lines[0] == "/optout registrations, newest first (50 shown):"
    assert lines[1].startswith("#51 ")


async def test_one_registrants_listing_by_a_code_in_any_case(world: SafetyWorld) -> None:
    mine = await register(world, SQUATTER, 1)
    await register(world, MEMBER, 2)
    code = f"  {mine.registrant[:8].upper()} "
    lines = listing(await world.bot.handle(ListOptOuts(OPERATOR, registrant=code)))
    assert lines[0] == "/optout registrations, newest first (1 shown):"
    assert lines[1].startswith(f"#{mine.id} ")


@pytest.mark.parametrize("code", ["abcdef1", "abcdefgh", "abcd-ef12", "a/b\\cdefgh"])
async def test_a_code_is_8_or_more_hex_digits(world: SafetyWorld, code: str) -> None:
    shown = code.replace("/", "").replace("\\", "")
    expected = (
        f"{shown!r} is not a registrant code: give at least 8 of the hex digits a listing shows."
    )
    assert refusal(await world.bot.handle(ListOptOuts(OPERATOR, registrant=code))) == expected
    assert refusal(await world.bot.handle(RemoveOptOuts(OPERATOR, registrant=code))) == expected


@pytest.mark.parametrize(
    ("who", "manages"),
    [(MEMBER, False), (IN_A_DM, True)],
    ids=["member", "manager-of-a-direct-message"],
)
async def test_only_managers_and_the_operator_review(
    world: SafetyWorld, who: Requester, manages: bool
) -> None:
    only = "Only a manager of this server or group (or the bot's operator) can do that."
    await register(world, SQUATTER, 1)
    assert refusal(await world.bot.handle(ListOptOuts(who, manages_server=manages))) == only
    remove = RemoveOptOuts(who, ids=(1,), manages_server=manages)
    assert refusal(await world.bot.handle(remove)) == only
    assert len(world.optouts.images) == 1


async def test_a_removal_must_say_what(world: SafetyWorld) -> None:
    await register(world, SQUATTER, 1)
    assert refusal(await world.bot.handle(RemoveOptOuts(OPERATOR))) == (
        "Say which registrations to remove: their ids, or a registrant code."
    )
    assert len(world.optouts.images) == 1


async def test_removing_what_is_not_there(world: SafetyWorld) -> None:
    theirs = await register(world, OTHER_SERVER, 1)
    remove = RemoveOptOuts(MANAGER, ids=(theirs.id,), manages_server=True)
    assert refusal(await world.bot.handle(remove)) == (
        "No such /optout registrations made in this server. Nothing was removed."
    )
    assert refusal(await world.bot.handle(RemoveOptOuts(OPERATOR, ids=(99,)))) == (
        "No such /optout registrations. Nothing was removed."
    )
    assert admin_store(world).log == []


async def test_a_removal_says_what_it_removed_and_records_each(world: SafetyWorld) -> None:
    first = await register(world, SQUATTER, 1)
    second = await register(world, SQUATTER, 2)
    remove = RemoveOptOuts(
        MANAGER, ids=(first.id, second.id), reason="not theirs", manages_server=True
    )
    reply = await world.bot.handle(remove)
    assert isinstance(reply, TextReply)
    assert spell(reply.text, typed) == (
        f"Removed 2 /optout registration(s): #{first.id}, #{second.id}. Copies of those "
        "images may be trained on again; the consent ledger records each removal."
    )
    entries = world.ledger.of_kind(LedgerKind.OPTOUT_REMOVAL)
    assert [e.payload for e in entries] == [
        {
            "optout_id": image.id,
            "sha256": image.sha256,
            "phash": image.phash,
            "registrant": image.registrant,
            "registered_at": "2026-11-22T09:05:00.000000+00:00",
            "scope": "discord:guild-1",
            "removed_by": "discord:mia",
            "authority": "server manager",
            "reason": "not theirs",
        }
        for image in (first, second)
    ]
    assert entries[0].recorded_at == entries[1].recorded_at  # one removal, one moment
    [(_at, who, action, detail)] = admin_store(world).log
    assert (who, action, detail) == (
        "discord:mia",
        "remove-optout",
        f"#{first.id}, #{second.id} not theirs",
    )


async def test_a_removal_without_a_reason_logs_the_ids_alone(world: SafetyWorld) -> None:
    image = await register(world, SQUATTER, 1)
    assert isinstance(await world.bot.handle(RemoveOptOuts(OPERATOR, ids=(image.id,))), TextReply)
    [(_at, _who, _action, detail)] = admin_store(world).log
    assert detail == f"#{image.id}"
    [entry] = world.ledger.of_kind(LedgerKind.OPTOUT_REMOVAL)
    assert (entry.payload["authority"], entry.payload["removed_by"]) == ("operator", "discord:root")


async def test_removing_one_registrants_registrations_by_their_code(world: SafetyWorld) -> None:
    first = await register(world, SQUATTER, 1)
    await register(world, MEMBER, 2)
    second = await register(world, SQUATTER, 3)
    remove = RemoveOptOuts(MANAGER, registrant=first.registrant[:8], manages_server=True)
    reply = await world.bot.handle(remove)
    assert isinstance(reply, TextReply)
    assert spell(reply.text, typed).startswith(
        f"Removed 2 /optout registration(s): #{first.id}, #{second.id}."
    )
    assert [i.platform_user_id for i in world.optouts.images] == [MEMBER.user_id]


async def test_ids_and_a_code_together_remove_only_that_registrants(world: SafetyWorld) -> None:
    mine = await register(world, SQUATTER, 1)
    theirs = await register(world, MEMBER, 2)
    remove = RemoveOptOuts(OPERATOR, ids=(mine.id, theirs.id), registrant=mine.registrant[:8])
    assert isinstance(await world.bot.handle(remove), TextReply)
    assert world.optouts.images == [theirs]
