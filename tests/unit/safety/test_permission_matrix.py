"""Every command against the owner, a member of the same server, a member of another
server and a direct message, for a private, a server-shared and a public style.

One row per (command, who, visibility): allowed (any reply but an ErrorReply) or refused.
Per-user commands (upload, consent, train, ...) are checked for isolation instead: what
one person does never touches another's pending images, consent, jobs or styles.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from tests.fakes.core import CoreWorld, person, png
from tests.unit.core.test_service import trained_style, upload

from stylebot.bot.core.commands import (
    CancelJob,
    Command,
    ConfirmConsent,
    DeleteOutput,
    DeleteStyle,
    DiscardUploads,
    EraseMyData,
    ExportStyle,
    Imagine,
    IncomingFile,
    ListStyles,
    OutputInfo,
    RerollOutput,
    ShareStyle,
    ShowStatus,
    StyleInfo,
    TrainStyle,
    UnshareStyle,
    UploadImages,
    UsableStyles,
    VaryOutput,
    Verify,
)
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ConsentRequest, ErrorReply, JobQueued, StyleChoices, TextReply

OWNER = person("alice", server="guild-1")
MEMBER = person("bob", server="guild-1")
OUTSIDER = person("carol", server="guild-2")
DIRECT = person("dave", server=None)  # a DM: no server
ROLES = {"owner": OWNER, "member": MEMBER, "outsider": OUTSIDER, "dm": DIRECT}
VISIBILITIES = ("private", "server", "public")


async def world_with_style(world: CoreWorld, visibility: str) -> str:
    """Alice's ready style 'ink' with the given visibility, and one output of hers in it;
    returns the output id."""
    await trained_style(world, OWNER, "ink")
    if visibility == "server":
        await world.bot.handle(ShareStyle(OWNER, "ink"))
    elif visibility == "public":
        await world.bot.handle(ShareStyle(OWNER, "ink", public=True))
    queued = await world.bot.handle(Imagine(OWNER, "a boat", style="ink"))
    assert isinstance(queued, JobQueued)
    return world.queue.generate_jobs[-1].output_ids[0]


Build = Callable[[Requester, str], Command]

# command -> who may, per visibility: "use" = can_use (owner; members where shared;
# everyone if public), "owner" = the owner only, "all" = anyone holding the output id.
STYLE_COMMANDS: dict[str, tuple[Build, str]] = {
    "imagine": (lambda who, _o: Imagine(who, "a cat", style="ink"), "use"),
    "style-info": (lambda who, _o: StyleInfo(who, "ink"), "use"),
    "reroll": (lambda who, o: RerollOutput(who, o), "use"),
    "vary": (lambda who, o: VaryOutput(who, o), "use"),
    "share-here": (lambda who, _o: ShareStyle(who, "ink"), "owner"),
    "share-public": (lambda who, _o: ShareStyle(who, "ink", public=True), "owner"),
    "unshare": (lambda who, _o: UnshareStyle(who, "ink"), "owner"),
    "export": (lambda who, _o: ExportStyle(who, "ink"), "owner"),
    "delete-style": (lambda who, _o: DeleteStyle(who, "ink"), "owner"),
    "delete-output": (lambda who, o: DeleteOutput(who, o), "owner"),
    # Anyone may ask, as anyone may /verify the image; what the answer shows of a private
    # output (prompt, style) is its maker's alone (tests/unit/core/test_verify_claims.py).
    "output-info": (lambda who, o: OutputInfo(who, o), "all"),
}


def may(rule: str, role: str, visibility: str) -> bool:
    if rule == "all" or role == "owner":
        return True
    if rule == "owner":
        return False
    return visibility == "public" or (visibility == "server" and role == "member")


@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("command", list(STYLE_COMMANDS))
async def test_style_and_output_commands(
    world: CoreWorld, command: str, role: str, visibility: str
) -> None:
    output_id = await world_with_style(world, visibility)
    build, rule = STYLE_COMMANDS[command]
    styles_before = await world.uow.styles.styles_named("ink")
    reply = await world.bot.handle(build(ROLES[role], output_id))
    allowed = may(rule, role, visibility)
    assert isinstance(reply, ErrorReply) is not allowed, reply
    if not allowed:
        # A refusal changes nothing and does not say a private style exists.
        assert await world.uow.styles.styles_named("ink") == styles_before
        assert "alice" not in reply.text.lower()
        assert await world.uow.outputs.get_output(output_id) is not None


@pytest.mark.parametrize("visibility", VISIBILITIES)
@pytest.mark.parametrize("role", list(ROLES))
async def test_listing_and_autocomplete_show_only_usable_styles(
    world: CoreWorld, role: str, visibility: str
) -> None:
    await world_with_style(world, visibility)
    who = ROLES[role]
    listed = await world.bot.handle(ListStyles(who))
    choices = await world.bot.handle(UsableStyles(who, "in"))
    assert isinstance(listed, TextReply)
    assert isinstance(choices, StyleChoices)
    visible = may("use", role, visibility)
    assert ("ink" in listed.text) is visible
    assert (choices.names == ("ink",)) is visible


Act = Callable[[CoreWorld, Requester], Awaitable[object]]


async def _upload(world: CoreWorld, who: Requester) -> object:
    return await world.bot.handle(UploadImages(who, (IncomingFile("x.png", png((9, 9, 9))),)))


PER_USER: dict[str, Act] = {
    "upload": _upload,
    "consent": lambda w, who: w.bot.handle(ConfirmConsent(who, "own-work", True)),
    "discard": lambda w, who: w.bot.handle(DiscardUploads(who)),
    "train": lambda w, who: w.bot.handle(TrainStyle(who, "ink")),
    "status": lambda w, who: w.bot.handle(ShowStatus(who)),
    "cancel": lambda w, who: w.bot.handle(CancelJob(who)),
    "verify": lambda w, who: w.bot.handle(Verify(who, IncomingFile("v.png", png((1, 2, 3))))),
    # Erasure is of one's own data only: another's confirmed /forgetme finds nothing.
    "forgetme": lambda w, who: w.bot.handle(EraseMyData(who, confirmed=True)),
}


@pytest.mark.parametrize("role", [r for r in ROLES if r != "owner"])
@pytest.mark.parametrize("command", list(PER_USER))
async def test_per_user_commands_never_touch_the_owners_things(
    world: CoreWorld, command: str, role: str
) -> None:
    # Alice has a style training (an active job) and images waiting with a consent.
    await upload(world, OWNER, (1, 1, 1))
    await world.bot.handle(ConfirmConsent(OWNER, "own-work", True))
    assert isinstance(await world.bot.handle(TrainStyle(OWNER, "ink")), JobQueued)
    waiting = await upload(world, OWNER, (2, 2, 2))
    assert isinstance(waiting, ConsentRequest)
    await world.bot.handle(ConfirmConsent(OWNER, "CC0-1.0", True))
    alice = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    before = (
        await world.uow.uploads.pending_uploads(alice.id),
        await world.uow.consents.latest_consent(alice.id),
        await world.uow.jobs.active_jobs(alice.id),
        await world.uow.styles.candidate_styles(alice.id, None),
    )
    reply = await PER_USER[command](world, ROLES[role])
    after = (
        await world.uow.uploads.pending_uploads(alice.id),
        await world.uow.consents.latest_consent(alice.id),
        await world.uow.jobs.active_jobs(alice.id),
        await world.uow.styles.candidate_styles(alice.id, None),
    )
    assert after == before
    if command in ("consent", "train", "cancel"):
        # Nothing of theirs to act on: Alice's waiting images and jobs are not theirs.
        assert isinstance(reply, ErrorReply)
    if command == "status":
        assert isinstance(reply, TextReply)
        assert "train" not in reply.text
    assert world.queue.cancelled == []


# An output made in private (here: a direct message, no style) is its maker's alone,
# style or not: its id is no secret (/verify names it, files are stylebot-<id>.png, and
# Telegram's callback data is the client's to forge).
PRIVATE_MAKER = person("alice", server=None)


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("again", [RerollOutput, VaryOutput])
async def test_reroll_and_vary_of_a_private_output_are_its_makers(
    world: CoreWorld, role: str, again: type[RerollOutput] | type[VaryOutput]
) -> None:
    queued = await world.bot.handle(
        Imagine(PRIVATE_MAKER, "my secret plan", negative_prompt="secret negative")
    )
    assert isinstance(queued, JobQueued)
    output_id = world.queue.generate_jobs[-1].output_ids[0]
    who = PRIVATE_MAKER if role == "owner" else ROLES[role]
    jobs_before = len(world.queue.generate_jobs)
    reply = await world.bot.handle(again(who, output_id))
    if role == "owner":
        assert isinstance(reply, JobQueued)
        assert world.queue.generate_jobs[-1].prompt == "my secret plan"
        return
    assert isinstance(reply, ErrorReply)
    assert "secret" not in reply.text
    assert len(world.queue.generate_jobs) == jobs_before


@pytest.mark.parametrize("again", [RerollOutput, VaryOutput])
async def test_reroll_of_anothers_public_output_names_it_by_id(
    world: CoreWorld, again: type[RerollOutput] | type[VaryOutput]
) -> None:
    output_id = await world_with_style(world, "public")
    reply = await world.bot.handle(again(OUTSIDER, output_id))
    assert isinstance(reply, JobQueued)
    # Alice's prompt went to the queue, not into Carol's reply.
    assert world.queue.generate_jobs[-1].prompt == "a boat"
    assert "a boat" not in reply.text
    assert f"output {output_id}" in reply.text
    own = await world.bot.handle(again(OWNER, output_id))
    assert isinstance(own, JobQueued)
    assert "'a boat'" in own.text
