"""Admin commands on the core's in-memory fakes: who may do what, and what it changes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from tests.fakes.admin import FakeAdminStore, FakeTrainingSwitch, FakeWorkerDirectory
from tests.fakes.core import CoreWorld, person
from tests.unit.core.test_service import trained_style

from stylebot.bot.core.admin import (
    admin_quota_limit,
    banned_refusal,
    handle_ban_user,
    handle_pause_training,
    handle_remove_shared_style,
    handle_resume_training,
    handle_set_quota,
    handle_show_queue,
    handle_unban_user,
)
from stylebot.bot.core.admin_commands import (
    BanUser,
    PauseTraining,
    RemoveSharedStyle,
    ResumeTraining,
    SetQuota,
    ShowQueue,
    UnbanUser,
)
from stylebot.bot.core.admin_ports import GLOBAL_SCOPE, AdminPorts, LiveWorker, parse_operators
from stylebot.bot.core.commands import EraseMyData, Imagine, ShareStyle, ShowStatus
from stylebot.bot.core.model import Visibility
from stylebot.bot.core.replies import ErrorReply, JobQueued, TextReply
from stylebot.queue.payloads import JobEvent

OPERATOR = person("root", server="guild-1")
MANAGER = person("mia", server="guild-1")  # manages guild-1 (the adapter says so)
ALICE = person("alice", server="guild-1")
ALICE_ELSEWHERE = person("alice", server="guild-2")
BOB_ELSEWHERE = person("bob", server="guild-2")


@pytest.fixture
def admin(world: CoreWorld) -> AdminPorts:
    store = FakeAdminStore()
    ports = AdminPorts(
        store, FakeTrainingSwitch(), FakeWorkerDirectory(), parse_operators("discord:root")
    )
    world.bot.deps.admin = ports
    return ports


def test_operators_are_platform_and_user_id() -> None:
    assert parse_operators(" discord:1 ; Telegram:22,, ") == {"discord:1", "telegram:22"}
    with pytest.raises(ValueError, match="platform:user_id"):
        parse_operators("1234")


async def test_only_the_operator_pauses_and_resumes_training(
    world: CoreWorld, admin: AdminPorts
) -> None:
    deps = world.bot.deps
    refused = await handle_pause_training(deps, PauseTraining(MANAGER))
    assert isinstance(refused, ErrorReply)
    assert await admin.training.paused_by() is None

    paused = await handle_pause_training(deps, PauseTraining(OPERATOR))
    assert isinstance(paused, TextReply)
    assert await admin.training.paused_by() == "discord:root"
    again = await handle_pause_training(deps, PauseTraining(OPERATOR))
    assert "already paused" in again.text

    assert isinstance(await handle_resume_training(deps, ResumeTraining(ALICE)), ErrorReply)
    assert await admin.training.paused_by() == "discord:root"
    assert isinstance(await handle_resume_training(deps, ResumeTraining(OPERATOR)), TextReply)
    assert await admin.training.paused_by() is None
    store = admin.store
    assert isinstance(store, FakeAdminStore)
    assert [action for _at, _who, action, _detail in store.log] == [
        "pause-training",
        "resume-training",
    ]


async def test_a_server_quota_holds_in_that_server_and_the_global_one_everywhere(
    world: CoreWorld, admin: AdminPorts
) -> None:
    deps = world.bot.deps
    # A member cannot set one; a manager cannot set the global one.
    assert isinstance(
        await handle_set_quota(deps, SetQuota(ALICE, "generate", 2, manages_server=False)),
        ErrorReply,
    )
    assert isinstance(
        await handle_set_quota(
            deps, SetQuota(MANAGER, "generate", 2, manages_server=True, everywhere=True)
        ),
        ErrorReply,
    )
    for bad_kind, bad_amount in (("paint", 2), ("generate", 0)):
        refused = await handle_set_quota(
            deps, SetQuota(MANAGER, bad_kind, bad_amount, manages_server=True)
        )
        assert isinstance(refused, ErrorReply)
    assert await admin.store.quotas(["discord:guild-1", GLOBAL_SCOPE], "generate") == []

    set_here = await handle_set_quota(deps, SetQuota(MANAGER, "generate", 20, manages_server=True))
    assert set_here == TextReply("Quota for generate in this server: 20 images per member a day.")
    assert await admin_quota_limit(deps, ALICE, "generate") == 20
    # Another server has none; training has none anywhere.
    assert await admin_quota_limit(deps, ALICE_ELSEWHERE, "generate") is None
    assert await admin_quota_limit(deps, ALICE, "train") is None

    # The operator's global quota holds everywhere, and the lowest one wins.
    await handle_set_quota(deps, SetQuota(OPERATOR, "generate", 5, everywhere=True))
    assert await admin_quota_limit(deps, ALICE_ELSEWHERE, "generate") == 5
    assert await admin_quota_limit(deps, ALICE, "generate") == 5
    await handle_set_quota(deps, SetQuota(MANAGER, "generate", 3, manages_server=True))
    assert await admin_quota_limit(deps, ALICE, "generate") == 3
    # The operator has no admin quota; lifting both frees everyone.
    assert await admin_quota_limit(deps, OPERATOR, "generate") is None
    await handle_set_quota(deps, SetQuota(OPERATOR, "generate", None, everywhere=True))
    await handle_set_quota(deps, SetQuota(MANAGER, "generate", None, manages_server=True))
    assert await admin_quota_limit(deps, ALICE, "generate") is None
    store = admin.store
    assert isinstance(store, FakeAdminStore)
    quota_log = [detail for _at, _who, action, detail in store.log if action == "set-quota"]
    assert quota_log[0] == "discord:guild-1 generate 20 images per member a day"


async def test_a_manager_removes_a_style_shared_with_their_server_only(
    world: CoreWorld, admin: AdminPorts
) -> None:
    deps = world.bot.deps
    await trained_style(world, ALICE, "ink")
    assert isinstance(await world.bot.handle(ShareStyle(ALICE, "ink")), TextReply)
    alice = await deps.user(ALICE)
    (style,) = [s for s in await deps.uow.styles.styles_named("ink") if s.owner_id == alice.id]
    assert style.visibility is Visibility.SERVER

    # A manager of another server, and a member here, cannot.
    other = await handle_remove_shared_style(
        deps, RemoveSharedStyle(person("max", server="guild-2"), "ink", manages_server=True)
    )
    assert isinstance(other, ErrorReply)
    member = await handle_remove_shared_style(deps, RemoveSharedStyle(ALICE, "ink"))
    assert isinstance(member, ErrorReply)
    assert (await deps.uow.styles.get_style(style.id)).visibility is Visibility.SERVER  # type: ignore[union-attr]

    removed = await handle_remove_shared_style(
        deps, RemoveSharedStyle(MANAGER, "ink", manages_server=True)
    )
    assert isinstance(removed, TextReply)
    after = await deps.uow.styles.get_style(style.id)
    assert after is not None
    assert after.visibility is Visibility.PRIVATE
    assert after.owner_id == alice.id  # still hers


async def test_a_public_style_is_the_operators_to_take_back(
    world: CoreWorld, admin: AdminPorts
) -> None:
    deps = world.bot.deps
    await trained_style(world, ALICE, "ink")
    await world.bot.handle(ShareStyle(ALICE, "ink", public=True))
    refused = await handle_remove_shared_style(
        deps, RemoveSharedStyle(MANAGER, "ink", manages_server=True)
    )
    assert isinstance(refused, ErrorReply)
    assert "public" in refused.text
    done = await handle_remove_shared_style(deps, RemoveSharedStyle(OPERATOR, "ink"))
    assert isinstance(done, TextReply)
    (style,) = await deps.uow.styles.styles_named("ink")
    assert style.visibility is Visibility.PRIVATE


async def test_a_ban_refuses_the_user_everywhere_and_cancels_their_jobs(
    world: CoreWorld, admin: AdminPorts
) -> None:
    deps = world.bot.deps
    queued = await world.bot.handle(Imagine(ALICE, "a lighthouse"))
    assert isinstance(queued, JobQueued)
    bobs = await world.bot.handle(Imagine(BOB_ELSEWHERE, "a boat"))
    assert isinstance(bobs, JobQueued)

    assert isinstance(await handle_ban_user(deps, BanUser(MANAGER, "alice")), ErrorReply)
    assert await banned_refusal(deps, ALICE) is None
    assert isinstance(await handle_ban_user(deps, BanUser(OPERATOR, "root")), ErrorReply)

    banned = await handle_ban_user(deps, BanUser(OPERATOR, "alice", reason="spam"))
    assert banned == TextReply("Banned alice from the bot; 1 of their jobs cancelled.")
    assert world.queue.cancelled == [queued.job_id]  # not Bob's
    job = await deps.uow.jobs.get_job(queued.job_id)
    assert job is not None
    alice = await deps.uow.users.get_user(job.user_id)
    assert alice is not None
    assert alice.display_name == "Alice"  # the ban renamed nobody
    assert isinstance(await banned_refusal(deps, ALICE_ELSEWHERE), ErrorReply)
    assert await banned_refusal(deps, BOB_ELSEWHERE) is None
    # The same id on another platform is another person.
    assert await banned_refusal(deps, person("alice", platform="telegram")) is None
    ban = await admin.store.ban_of("discord", "alice")
    assert ban is not None
    assert (ban.reason, ban.banned_by) == ("spam", "discord:root")

    assert isinstance(await handle_unban_user(deps, UnbanUser(OPERATOR, "alice")), TextReply)
    assert await banned_refusal(deps, ALICE) is None
    assert isinstance(await handle_unban_user(deps, UnbanUser(OPERATOR, "alice")), ErrorReply)


async def test_the_queue_shows_all_jobs_to_the_operator_and_a_servers_jobs_to_its_manager(
    world: CoreWorld, admin: AdminPorts
) -> None:
    deps = world.bot.deps
    elsewhere = await world.bot.handle(Imagine(BOB_ELSEWHERE, "first"))
    here = await world.bot.handle(Imagine(ALICE, "second"))
    assert isinstance(elsewhere, JobQueued)
    assert isinstance(here, JobQueued)
    await admin.training.pause("discord:root")

    assert isinstance(await handle_show_queue(deps, ShowQueue(ALICE)), ErrorReply)

    everything = await handle_show_queue(deps, ShowQueue(OPERATOR))
    assert isinstance(everything, TextReply)
    assert elsewhere.job_id in everything.text
    assert here.job_id in everything.text
    assert "Training is paused (by discord:root)" in everything.text

    managed = await handle_show_queue(deps, ShowQueue(MANAGER, manages_server=True))
    assert isinstance(managed, TextReply)
    assert elsewhere.job_id not in managed.text
    # Its place counts the job from the other server ahead of it.
    assert f"  2. generate by Alice: queued ({here.job_id})" in managed.text
    assert managed.text.startswith("2 job(s) queued or running, 1 from this server.")


async def test_the_queue_lists_the_positions_status_gives_not_arrival_order(
    world: CoreWorld, admin: AdminPorts
) -> None:
    deps = world.bot.deps
    alice = [await world.bot.handle(Imagine(ALICE, f"boat {i}")) for i in range(3)]
    bob = await world.bot.handle(Imagine(BOB_ELSEWHERE, "a lighthouse"))
    assert all(isinstance(reply, JobQueued) for reply in [*alice, bob])
    ids = [reply.job_id for reply in [*alice, bob]]  # type: ignore[union-attr]
    # Alice's first job starts; the rest wait, Bob's between Alice's.
    world.queue.started(ids[0])
    await world.bot.handle_event(JobEvent(ids[0], "generate", "started", total=4))

    listing = await handle_show_queue(deps, ShowQueue(OPERATOR))
    assert isinstance(listing, TextReply)
    lines = listing.text.splitlines()
    assert lines[1:] == [
        "Running:",
        f"   - generate by Alice: running ({ids[0]})",
        "Generation queue:",
        f"  1. generate by Bob: queued ({ids[3]})",
        f"  2. generate by Alice: queued ({ids[1]})",
        f"  3. generate by Alice: queued ({ids[2]})",
        "0 worker(s) online.",
    ]
    status = await world.bot.handle(ShowStatus(BOB_ELSEWHERE))
    assert isinstance(status, TextReply)
    assert f"{ids[3]}: queued (position 1 in the generation queue)" in status.text


async def test_a_banned_user_is_refused_everything_but_erasing_their_data(
    world: CoreWorld, admin: AdminPorts
) -> None:
    queued = await world.bot.handle(Imagine(ALICE, "a lighthouse"))
    assert isinstance(queued, JobQueued)
    await handle_ban_user(world.bot.deps, BanUser(OPERATOR, "alice", reason="spam"))

    assert isinstance(await world.bot.handle(Imagine(ALICE, "again")), ErrorReply)
    erased = await world.bot.handle(EraseMyData(ALICE, confirmed=True))

    assert not isinstance(erased, ErrorReply), erased
    assert await world.bot.deps.uow.users.find_user("discord", "alice") is None
    # The ban itself is the operator's record and outlives the erasure.
    assert await admin.store.ban_of("discord", "alice") is not None


def _gpu_worker(worker_id: str, *, draining: bool = False) -> LiveWorker:
    return LiveWorker(
        worker_id=worker_id,
        host="gpu-host",
        device="NVIDIA A100",
        gpu_memory_bytes=80 * 1024**3,
        family="sdxl",
        base_model="sdxl-base",
        version="0.1.0",
        started_at=datetime(2026, 12, 1, tzinfo=UTC),
        jobs=("train-1",) if draining else (),
        draining=draining,
    )


async def test_admin_queue_lists_live_workers_for_the_operator_and_counts_them_for_managers(
    world: CoreWorld, admin: AdminPorts
) -> None:
    directory = FakeWorkerDirectory(_gpu_worker("gpu-1"), _gpu_worker("gpu-2", draining=True))
    world.bot.deps.admin = dataclasses.replace(admin, workers=directory)
    deps = world.bot.deps

    listing = await handle_show_queue(deps, ShowQueue(OPERATOR))
    assert isinstance(listing, TextReply)
    assert "2 worker(s) online, 1 draining:" in listing.text
    assert "- gpu-1: NVIDIA A100 80 GiB, sdxl, sdxl-base, stylebot 0.1.0, serving" in listing.text
    assert (
        "- gpu-2: NVIDIA A100 80 GiB, sdxl, sdxl-base, stylebot 0.1.0, draining, running train-1"
        in listing.text
    )

    managed = await handle_show_queue(deps, ShowQueue(MANAGER, manages_server=True))
    assert isinstance(managed, TextReply)
    assert "2 worker(s) online, 1 draining." in managed.text
    assert "gpu-1" not in managed.text

    directory.workers.clear()
    assert "0 worker(s) online." in (await handle_show_queue(deps, ShowQueue(OPERATOR))).text
