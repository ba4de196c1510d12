"""Jobs as users see them: their place in the queue, and cancelling them."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from stylebot.bot.core.commands import CancelJob, ShowStatus
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.errors import QueueUnavailable
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import Job, JobStatus, Requester, StyleStatus, User
from stylebot.bot.core.replies import ErrorReply, JobFinished, Reply, TextReply
from stylebot.queue.fairness import LANES, lane_of


def new_job_id(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(8)}"


def job_owner(user: User) -> str:
    """Whose turn a job takes in the workers' round-robin: one key per user."""
    return f"{user.platform}:{user.id}"


async def queue_room(deps: Deps, requester: Requester, user: User) -> ErrorReply | None:
    """An ErrorReply when the user, or their server, already has as many jobs waiting
    as the operator allows; one user's burst cannot fill the queue."""
    p = deps.policy
    active = await deps.uow.jobs.active_jobs()
    if p.max_queued_per_user > 0:
        mine = sum(1 for job in active if job.user_id == user.id)
        if mine >= p.max_queued_per_user:
            return ErrorReply(
                f"You already have {mine} jobs queued or running (the limit is "
                f"{p.max_queued_per_user}). Wait for one to finish, or "
                f"{mention(CommandName.CANCEL)} one."
            )
    if p.max_queued_per_server > 0 and requester.scope is not None:
        here = sum(1 for job in active if job.origin.scope == requester.scope)
        if here >= p.max_queued_per_server:
            return ErrorReply(
                f"This server already has {here} jobs queued or running (the limit is "
                f"{p.max_queued_per_server}). Try again in a little while."
            )
    return None


async def show_status(deps: Deps, command: ShowStatus) -> Reply:
    user = await deps.user(command.requester)
    everyone = await deps.uow.jobs.active_jobs()
    mine = [j for j in everyone if j.user_id == user.id]
    if not mine:
        return TextReply("You have no jobs queued or running.", private=True)
    positions = await waiting_positions(deps, everyone)
    lines = [
        _describe_job(job, positions.get(job.id, 0))
        if job.status is not JobStatus.RUNNING
        else await _describe_running_job(deps, job)
        for job in mine
    ]
    # Job ids and what they make are the asker's business only.
    return TextReply("Your jobs:\n" + "\n".join(lines), private=True)


async def cancel(deps: Deps, command: CancelJob) -> Reply:
    user = await deps.user(command.requester)
    mine = await deps.uow.jobs.active_jobs(user.id)
    if command.job_id is not None:
        mine = [j for j in mine if j.id == command.job_id]
    if not mine:
        return ErrorReply("You have no queued or running job to cancel.")
    job = mine[-1]
    if not await cancel_job(deps, job):
        # Its result arrived while we asked the workers to stop: the result stands.
        return ErrorReply(f"Your {job.kind} job {job.id} had already finished; nothing to cancel.")
    # A JobFinished, so adapters can close the job's progress message too.
    return JobFinished(
        text=f"Cancelled your {job.kind} job {job.id}.", job_id=job.id, kind=job.kind, ok=False
    )


async def cancel_job(deps: Deps, job: Job) -> bool:
    """Stop the job on the workers and record it cancelled; False when it ended first
    (the worker's result was recorded while the queue was asked), which then stands."""
    await deps.queue.cancel(job.id)
    async with deps.uow:
        if not await deps.uow.jobs.cancel_active_job(job.id, deps.clock.now()):
            return False
        if job.kind == "train" and job.style_id is not None:
            await deps.uow.styles.set_style_status(job.style_id, StyleStatus.FAILED)
    return True


async def queue_position(deps: Deps, job_id: str) -> int:
    return (await waiting_positions(deps, await deps.uow.jobs.active_jobs())).get(job_id, 0)


async def waiting_positions(deps: Deps, active: Sequence[Job]) -> dict[str, int]:
    """Each queued job's place (1 = starts next) in its lane, in the order workers take them.

    Workers start generation and training jobs in lanes of their own, and in
    each lane by the fair turn each job was given when it was queued
    (`stylebot.queue.fairness`); the queue tells that order. Running jobs are
    not waiting. Jobs the queue gave no turn (queued before turns were kept)
    start first, oldest first, as on the workers. While the queue is unavailable
    no place is known: none is given (0).
    """
    positions: dict[str, int] = {}
    for lane in LANES:
        waiting = [
            job.id for job in active if lane_of(job.kind) == lane and job.status is JobStatus.QUEUED
        ]
        if not waiting:
            continue
        try:
            in_turn = await deps.queue.waiting_order(lane)
        except QueueUnavailable:
            return {}
        is_waiting = set(waiting)
        turned = [job_id for job_id in in_turn if job_id in is_waiting]
        has_turn = set(turned)
        unturned = [job_id for job_id in waiting if job_id not in has_turn]
        for place, job_id in enumerate([*unturned, *turned], start=1):
            positions[job_id] = place
    return positions


async def _describe_running_job(deps: Deps, job: Job) -> str:
    """The records say running until a worker reports otherwise; a killed worker never
    does, so its job would look running for a whole lease. The queue knows better."""
    progress = f", step {job.step}/{job.total}" if job.total else ""
    try:
        alive = await deps.queue.worker_alive(job.id)
    except QueueUnavailable:
        return f"- {job.kind} {job.id}: {job.status}{progress} (the queue is not answering)"
    if alive:
        return f"- {job.kind} {job.id}: {job.status}{progress}"
    resumes = "it resumes from its last checkpoint" if job.kind == "train" else "it starts again"
    reached = f" (reached step {job.step}/{job.total})" if job.total else ""
    return (
        f"- {job.kind} {job.id}: waiting{reached}: its worker stopped; "
        f"{resumes} when a worker takes it up"
    )


def _describe_job(job: Job, position: int) -> str:
    progress = f", step {job.step}/{job.total}" if job.total else ""
    if job.status is not JobStatus.QUEUED:
        return f"- {job.kind} {job.id}: {job.status}{progress}"
    lane = "training" if job.kind == "train" else "generation"
    if position == 0:
        return f"- {job.kind} {job.id}: {job.status} (the queue is not answering; place unknown)"
    return f"- {job.kind} {job.id}: {job.status} (position {position} in the {lane} queue)"
