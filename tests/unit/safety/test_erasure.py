"""/forgetme on the core's fakes: what it shows first, what it erases, what it keeps."""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pytest
from PIL import Image
from tests.fakes.core import person
from tests.fakes.safety import SafetyWorld

from stylebot.bot.core.commands import (
    ConfirmConsent,
    DeleteStyle,
    EraseMyData,
    Imagine,
    IncomingFile,
    OptOut,
    ShareStyle,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.errors import RepositoryError
from stylebot.bot.core.ledger import LedgerKind, verify_chain
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import NewConsent, StyleStatus
from stylebot.bot.core.replies import (
    ConsentRequest,
    ErasureConfirmation,
    ErrorReply,
    JobQueued,
    TextReply,
)
from stylebot.queue.payloads import GeneratedImage, GenerateResult, JobEvent, TrainResult

ALICE = person("alice", server="guild-1")
BOB = person("bob", server="guild-1")
ALICE_ON_TELEGRAM = person("alice", server=None, platform="telegram")


def painting(seed: int) -> bytes:
    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small, "RGB").resize((128, 128), Image.Resampling.BICUBIC).save(buffer, "PNG")
    return buffer.getvalue()


async def upload(safe: SafetyWorld, who: object, *seeds: int) -> None:
    files = tuple(IncomingFile(f"p{s}.png", painting(s)) for s in seeds)
    reply = await safe.bot.handle(UploadImages(who, files))  # type: ignore[arg-type]
    assert isinstance(reply, ConsentRequest), reply


async def start_training(safe: SafetyWorld, who: object, name: str, *seeds: int) -> str:
    await upload(safe, who, *seeds)
    assert isinstance(
        await safe.bot.handle(ConfirmConsent(who, "own-work", True)),  # type: ignore[arg-type]
        TextReply,
    )
    queued = await safe.bot.handle(TrainStyle(who, name))  # type: ignore[arg-type]
    assert isinstance(queued, JobQueued), queued
    return queued.job_id


async def train(safe: SafetyWorld, who: object, name: str, *seeds: int) -> str:
    """A READY style; returns its LoRA blob key."""
    job_id = await start_training(safe, who, name, *seeds)
    lora = await safe.blobs.put(f"weights of {name}".encode())
    result = TrainResult(lora_key=lora, steps=10, final_loss=0.1, seconds=1.0)
    await safe.bot.handle_event(JobEvent(job_id, "train", "finished", result=result.to_dict()))
    return lora


async def generate(safe: SafetyWorld, who: object, style: str, *, finish: bool = True) -> str:
    """An image made with `style`; returns its blob key (or the job id if not finished)."""
    queued = await safe.bot.handle(Imagine(who, f"a boat by {style}", style=style))  # type: ignore[arg-type]
    assert isinstance(queued, JobQueued), queued
    job = safe.queue.generate_jobs[-1]
    if not finish:
        return job.job_id
    key = await safe.blobs.put(f"output {job.job_id}".encode())
    result = GenerateResult(images=(GeneratedImage(job.output_ids[0], key, job.seed),), seconds=1)
    await safe.bot.handle_event(
        JobEvent(job.job_id, "generate", "finished", result=result.to_dict())
    )
    return key


def everything(safe: SafetyWorld) -> object:
    """A deep copy of every store, to compare before and after."""
    return copy.deepcopy((safe.uow._t, safe.blobs.blobs, safe.usage.events, safe.optouts.images))


class Scene:
    """Alice and Bob, with Alice's data tangled with Bob's in every way we know."""

    bob_keep: set[str]
    alice_running_train: str
    alice_queued_generate: str


async def tangled(safe: SafetyWorld) -> Scene:
    scene = Scene()
    bob_lora = await train(safe, BOB, "sea", 20, 21)
    await safe.bot.handle(ShareStyle(BOB, "sea", public=True))
    bob_own_output = await generate(safe, BOB, "sea")

    await train(safe, ALICE, "ink", 1, 2)
    await safe.bot.handle(ShareStyle(ALICE, "ink", public=True))
    await generate(safe, BOB, "ink")  # Bob's image with Alice's style: goes with it
    await generate(safe, ALICE, "sea")  # Alice's image with Bob's style: hers, goes
    scene.alice_queued_generate = await generate(safe, ALICE, "sea", finish=False)
    scene.alice_running_train = await start_training(safe, ALICE, "wash", 3)
    await upload(safe, ALICE, 4, 20)  # waiting; 20 is the very image Bob trained on
    assert isinstance(
        await safe.bot.handle(OptOut(ALICE, (IncomingFile("m.png", painting(50)),))), TextReply
    )

    bob = await safe.uow.users.find_user("discord", "bob")
    assert bob is not None
    bob_images = {u.blob_key for u in safe.uow._t.uploads.values() if u.user_id == bob.id}
    scene.bob_keep = bob_images | {bob_lora, bob_own_output}
    return scene


async def test_unconfirmed_it_says_what_would_go_and_changes_nothing(safe: SafetyWorld) -> None:
    await tangled(safe)
    before = everything(safe)
    rows = len(safe.ledger.rows)

    reply = await safe.bot.handle(EraseMyData(ALICE))

    assert isinstance(reply, ErasureConfirmation)
    assert (reply.styles, reply.images, reply.outputs) == (2, 5, 3)
    assert "ink" in reply.text
    assert "wash" in reply.text
    assert "Confirm" in reply.text
    # and that it stays, unlinked
    assert f"{mention(CommandName.OPTOUT)} registration" in reply.text
    assert everything(safe) == before
    assert len(safe.ledger.rows) == rows
    assert safe.queue.cancelled == []


async def test_confirmed_it_erases_every_record_and_blob_of_the_user_only(
    safe: SafetyWorld,
) -> None:
    scene = await tangled(safe)
    alice = await safe.uow.users.find_user("discord", "alice")
    assert alice is not None
    usage_before = len(safe.usage.events)

    reply = await safe.bot.handle(EraseMyData(ALICE, confirmed=True))

    assert isinstance(reply, TextReply)
    assert "Erased: 2 style(s)" in reply.text
    assert await safe.uow.users.find_user("discord", "alice") is None
    t = safe.uow._t
    assert alice.id not in t.users
    for table in (t.uploads, t.consents, t.jobs, t.outputs):
        assert [r for r in table.values() if r.user_id == alice.id] == []
    assert [s for s in t.styles.values() if s.owner_id == alice.id] == []
    # Bob's image made with Alice's style went with it; his own work is untouched.
    assert {o.style_id for o in t.outputs.values()} == {s.id for s in t.styles.values()}
    assert [s.name for s in t.styles.values()] == ["sea"]
    assert safe.blobs.keys() == scene.bob_keep
    # Her running training and queued generation were stopped.
    assert {scene.alice_running_train, scene.alice_queued_generate} <= set(safe.queue.cancelled)
    # Usage: nothing names her; today's still counts for her limits, under a code.
    assert all(who != "discord:alice" for _k, who, *_ in safe.usage.events)
    assert len(safe.usage.events) == usage_before + 1  # the erasure itself counts too
    assert any(who.startswith("erased:") for _k, who, *_ in safe.usage.events)


async def test_the_ledger_keeps_the_evidence_chained_with_ids_and_hashes_only(
    safe: SafetyWorld,
) -> None:
    await tangled(safe)
    await safe.bot.handle(EraseMyData(ALICE, confirmed=True))

    entries = await safe.ledger.entries()
    assert verify_chain(entries).intact
    assert [e.kind for e in entries[-3:]] == [
        LedgerKind.REVOCATION,
        LedgerKind.REVOCATION,
        LedgerKind.ERASURE,
    ]
    erasure = entries[-1].payload
    assert (erasure["platform"], erasure["platform_user_id"]) == ("discord", "alice")
    assert len(erasure["style_ids"]) == 2
    assert erasure["optouts_kept"] == 1
    assert {e.payload["reason"] for e in entries[-3:-1]} == {
        "the owner asked for their data to be erased"
    }
    text = json.dumps([e.payload for e in entries])
    # No display name, style name or prompt: those are what a person wrote.
    for personal in ("Alice", "Bob", '"ink"', '"wash"', "a boat"):
        assert personal not in text


async def test_an_opt_out_stays_in_force_but_no_longer_names_the_artist(
    safe: SafetyWorld,
) -> None:
    await tangled(safe)
    reply = await safe.bot.handle(EraseMyData(ALICE, confirmed=True))
    assert isinstance(reply, TextReply)
    assert "stay in force" in reply.text

    [kept] = safe.optouts.images
    assert kept.platform_user_id.startswith("erased-")
    assert "alice" not in kept.platform_user_id
    copied = await safe.bot.handle(UploadImages(BOB, (IncomingFile("c.png", painting(50)),)))
    assert isinstance(copied, ErrorReply)
    assert mention(CommandName.OPTOUT) in copied.text


async def test_the_same_person_on_another_platform_is_untouched(safe: SafetyWorld) -> None:
    await train(safe, ALICE_ON_TELEGRAM, "ink", 7)
    elsewhere = everything(safe)

    reply = await safe.bot.handle(EraseMyData(ALICE, confirmed=True))

    assert isinstance(reply, TextReply)
    assert "nothing to erase" in reply.text
    assert everything(safe) == elsewhere
    assert await safe.uow.users.find_user("telegram", "alice") is not None


async def test_erasing_twice_is_safe_and_creates_no_user(safe: SafetyWorld) -> None:
    await train(safe, ALICE, "ink", 1)
    first = await safe.bot.handle(EraseMyData(ALICE, confirmed=True))
    assert isinstance(first, TextReply)
    assert "Erased: 1 style(s)" in first.text
    ledger_rows = len(safe.ledger.rows)

    again = await safe.bot.handle(EraseMyData(ALICE, confirmed=True))
    preview = await safe.bot.handle(EraseMyData(ALICE))

    assert isinstance(again, TextReply)
    assert "nothing to erase" in again.text
    assert isinstance(preview, ErasureConfirmation)
    assert (preview.styles, preview.images, preview.outputs) == (0, 0, 0)
    assert safe.uow._t.users == {}
    assert safe.blobs.keys() == set()
    assert len(safe.ledger.rows) == ledger_rows


async def test_the_repository_refuses_to_erase_a_user_who_still_owns_styles(
    safe: SafetyWorld,
) -> None:
    await train(safe, ALICE, "ink", 1)
    alice = await safe.uow.users.find_user("discord", "alice")
    assert alice is not None
    before = everything(safe)
    with pytest.raises(RepositoryError):
        await safe.uow.users.erase_user(alice.id)
    assert everything(safe) == before


async def test_a_ledger_append_rolls_back_with_the_repository_transaction(
    safe: SafetyWorld,
) -> None:
    await upload(safe, ALICE, 1)
    alice = await safe.uow.users.find_user("discord", "alice")
    assert alice is not None

    class Boom(Exception):
        pass

    async def consent_then_fail() -> None:
        async with safe.uow.transaction():
            await safe.ledger.append(LedgerKind.CONSENT, {"n": 1}, safe.clock.now())
            await safe.uow.consents.add_consent(
                NewConsent(alice.id, "own-work", "v1", True, [], safe.clock.now())
            )
            raise Boom

    with pytest.raises(Boom):
        await consent_then_fail()
    assert safe.ledger.rows == []
    assert await safe.uow.consents.latest_consent(alice.id) is None


async def test_a_result_that_arrives_after_the_erasure_is_not_kept(safe: SafetyWorld) -> None:
    """The worker finished before it saw the cancel: its image is already stored."""
    await train(safe, BOB, "sea", 20)
    await safe.bot.handle(ShareStyle(BOB, "sea", public=True))
    job_id = await generate(safe, ALICE, "sea", finish=False)
    job = safe.queue.generate_jobs[-1]
    await safe.bot.handle(EraseMyData(ALICE, confirmed=True))
    assert job_id in safe.queue.cancelled
    bobs = safe.blobs.keys()
    forgotten = len(safe.queue.forgotten)

    late = await safe.blobs.put(b"an image finished just too late")
    result = GenerateResult(images=(GeneratedImage(job.output_ids[0], late, job.seed),), seconds=1)
    told = await safe.bot.handle_event(
        JobEvent(job_id, "generate", "finished", result=result.to_dict())
    )

    assert told == []
    assert safe.blobs.keys() == bobs
    assert await safe.uow.users.find_user("discord", "alice") is None
    # The late event (in the queue after the erasure's clean-up) is forgotten too.
    assert safe.queue.forgotten[forgotten:] == [job_id]


async def test_the_queue_forgets_every_job_of_hers_or_in_her_styles_then_rewrites_once(
    safe: SafetyWorld,
) -> None:
    """Beyond the records: the queue holds payloads (prompts, style names) of jobs, and
    workers cache style weights. All of those of her jobs and of jobs in her styles go,
    her place in the fair order too, and the store rewrites its files once, after it all."""
    await tangled(safe)
    alice = await safe.uow.users.find_user("discord", "alice")
    bob = await safe.uow.users.find_user("discord", "bob")
    assert alice is not None
    assert bob is not None
    t = safe.uow._t
    her_styles = {s.id for s in t.styles.values() if s.owner_id == alice.id}
    her_weights = {s.lora_key for s in t.styles.values() if s.owner_id == alice.id} - {None}
    her_jobs = {j.id for j in t.jobs.values() if j.user_id == alice.id}
    in_her_styles = {j.id for j in t.jobs.values() if j.style_id in her_styles}
    bobs_own = {j.id for j in t.jobs.values()} - her_jobs - in_her_styles
    assert bobs_own
    assert in_her_styles - her_jobs  # Bob's image with ink is one of them

    await safe.bot.handle(EraseMyData(ALICE, confirmed=True))

    assert set(safe.queue.forgotten) == her_jobs | in_her_styles
    assert safe.queue.forgotten_owners == [f"discord:{alice.id}"]
    assert set(safe.queue.revoked_blobs) == her_weights
    assert safe.queue.disk_rewrites == [tuple(safe.queue.forgotten)]


async def test_deleting_a_style_forgets_its_jobs_and_revokes_only_weights_no_one_else_has(
    safe: SafetyWorld,
) -> None:
    await train(safe, BOB, "sea", 20, 21)
    ink = await train(safe, ALICE, "ink", 1, 2)
    await safe.bot.handle(ShareStyle(ALICE, "ink", public=True))
    await generate(safe, BOB, "ink")
    # Byte for byte the same weights as ink: deleting ink must not revoke them.
    await train(safe, ALICE, "twin", 3)
    twin = next(s for s in safe.uow._t.styles.values() if s.name == "twin")
    await safe.uow.styles.set_style_status(twin.id, StyleStatus.READY, lora_key=ink)
    ink_style = next(s for s in safe.uow._t.styles.values() if s.name == "ink")
    ink_jobs = {j.id for j in safe.uow._t.jobs.values() if j.style_id == ink_style.id}

    reply = await safe.bot.handle(DeleteStyle(ALICE, "ink"))
    assert isinstance(reply, TextReply), reply
    assert set(safe.queue.forgotten) == ink_jobs
    assert safe.queue.revoked_blobs == []  # twin still uses those bytes
    assert len(safe.queue.disk_rewrites) == 1

    await safe.bot.handle(DeleteStyle(ALICE, "twin"))
    assert safe.queue.revoked_blobs == [ink]
    assert len(safe.queue.disk_rewrites) == 2
