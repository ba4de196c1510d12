"""Admins review /optout registrations and remove abusive ones, each removal in the ledger.

Someone who registers other people's pictures keeps their artists from training on their
own work; the operator (everywhere) and a server's managers (registrations made there)
list them and take them back.
"""

from __future__ import annotations

import re

import pytest
from tests.fakes.admin import FakeAdminStore, FakeTrainingSwitch, FakeWorkerDirectory
from tests.fakes.core import person
from tests.fakes.safety import SafetyWorld, safety_world
from tests.unit.safety.test_optout import encoded, opt_out, painting

from stylebot.bot.core.admin_commands import ListOptOuts, RemoveOptOuts
from stylebot.bot.core.admin_ports import AdminPorts, parse_operators
from stylebot.bot.core.commands import IncomingFile, UploadImages
from stylebot.bot.core.ledger import LedgerKind, verify_chain
from stylebot.bot.core.replies import ConsentRequest, ErrorReply, TextReply

OPERATOR = person("root", server="guild-1")
MANAGER = person("mia", server="guild-1")  # manages guild-1 (the adapter says so)
SQUATTER = person("squatter", server="guild-1")
ARTIST = person("artist", server="guild-2")
MEMBER = person("member", server="guild-1")


def reviewing_world() -> SafetyWorld:
    """The core on fakes with admin ports: discord:root is the operator."""
    world = safety_world()
    store = FakeAdminStore()
    world.bot.deps.admin = AdminPorts(
        store, FakeTrainingSwitch(), FakeWorkerDirectory(), parse_operators("discord:root")
    )
    return world


@pytest.fixture
def world() -> SafetyWorld:
    return reviewing_world()


def admin_store(world: SafetyWorld) -> FakeAdminStore:
    assert world.bot.deps.admin is not None
    store = world.bot.deps.admin.store
    assert isinstance(store, FakeAdminStore)
    return store


async def _squat(world: SafetyWorld) -> None:
    """The squatter registers the artist's three pictures in guild-1; the artist registers
    a picture of their own in guild-2."""
    reply = await opt_out(world, SQUATTER, *(encoded(painting(s)) for s in (1, 2, 3)))
    assert isinstance(reply, TextReply)
    assert isinstance(await opt_out(world, ARTIST, encoded(painting(4))), TextReply)


def _code(listing: str) -> str:
    match = re.search(r"#\d+ \S+ \S+ by ([0-9a-f]{12})", listing)
    assert match is not None, listing
    return match.group(1)


async def test_members_can_neither_list_nor_remove(world: SafetyWorld) -> None:
    await _squat(world)
    for command in (ListOptOuts(MEMBER), RemoveOptOuts(MEMBER, ids=(1,))):
        refused = await world.bot.handle(command)
        assert isinstance(refused, ErrorReply)
        assert "manager" in refused.text
    assert len(world.optouts.images) == 4


async def test_a_manager_reviews_and_removes_a_squatters_registrations(
    world: SafetyWorld,
) -> None:
    await _squat(world)
    upload = UploadImages(ARTIST, (IncomingFile("mine.png", encoded(painting(1))),))
    refused = await world.bot.handle(upload)
    assert isinstance(refused, ErrorReply)  # the artist is blocked from their own picture

    listing = await world.bot.handle(ListOptOuts(MANAGER, manages_server=True))
    assert isinstance(listing, TextReply)
    assert listing.text.count("\n#") == 3  # this server's three, not guild-2's
    assert SQUATTER.user_id not in listing.text  # a code, not who it is
    assert "Most of these by one registrant" in listing.text
    code = _code(listing.text)

    remove = RemoveOptOuts(MANAGER, registrant=code, reason="not theirs", manages_server=True)
    removed = await world.bot.handle(remove)
    assert isinstance(removed, TextReply)
    assert "Removed 3" in removed.text
    assert [i.platform_user_id for i in world.optouts.images] == [ARTIST.user_id]

    entries = world.ledger.of_kind(LedgerKind.OPTOUT_REMOVAL)
    assert len(entries) == 3
    assert {e.payload["removed_by"] for e in entries} == {"discord:mia"}
    assert {e.payload["reason"] for e in entries} == {"not theirs"}
    assert {e.payload["registrant"][:12] for e in entries} == {code}
    assert verify_chain(world.ledger.rows).intact
    assert [action for _at, _who, action, _detail in admin_store(world).log] == ["remove-optout"]

    assert isinstance(await world.bot.handle(upload), ConsentRequest)


async def test_a_manager_cannot_touch_another_servers_registrations(world: SafetyWorld) -> None:
    await _squat(world)
    [theirs] = [i for i in world.optouts.images if i.scope == "discord:guild-2"]
    refused = await world.bot.handle(RemoveOptOuts(MANAGER, ids=(theirs.id,), manages_server=True))
    assert isinstance(refused, ErrorReply)
    assert "Nothing was removed" in refused.text
    assert len(world.optouts.images) == 4
    assert world.ledger.of_kind(LedgerKind.OPTOUT_REMOVAL) == []


async def test_the_operator_sees_every_server_and_removes_by_id(world: SafetyWorld) -> None:
    await _squat(world)
    listing = await world.bot.handle(ListOptOuts(OPERATOR))
    assert isinstance(listing, TextReply)
    assert listing.text.count("\n#") == 4
    assert "in discord:guild-2" in listing.text
    [theirs] = [i for i in world.optouts.images if i.scope == "discord:guild-2"]
    removed = await world.bot.handle(RemoveOptOuts(OPERATOR, ids=(theirs.id,)))
    assert isinstance(removed, TextReply)
    [entry] = world.ledger.of_kind(LedgerKind.OPTOUT_REMOVAL)
    assert entry.payload["optout_id"] == theirs.id
    assert entry.payload["sha256"] == theirs.sha256
    assert entry.payload["authority"] == "operator"


@pytest.mark.parametrize("code", ["abc", "not-hex-at-all", "%%%%%%%%"])
async def test_a_registrant_code_must_be_long_enough_and_hex(world: SafetyWorld, code: str) -> None:
    await _squat(world)
    refused = await world.bot.handle(RemoveOptOuts(OPERATOR, registrant=code))
    assert isinstance(refused, ErrorReply)
    assert len(world.optouts.images) == 4
