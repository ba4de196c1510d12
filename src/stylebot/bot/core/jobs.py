"""Jobs as users see them: their place in the queue, and cancelling them."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from stylebot.bot.core.commands import CancelJob, ShowStatus
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.model import Job, JobStatus, Requester, StyleStatus, User
from stylebot.bot.core.replies import ErrorReply, JobFinished, Reply, TextReply


def new_job_id(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(8)}"


def job_owner(user: User) -> str:
    """Whose turn a job takes in the workers' round-robin: one key per user."""
    return f"{user.platform}:{user.id}"


async def queue_room(deps: Deps, requester: Requester, user: User) -> ErrorReply | None:
    """An ErrorReply when the user, or their server, already has as many jobs waiting
    as the operator allows; one user's burst cannot fill the queue."""
    p = deps.policy
    active = await deps.repo.active_jobs()
    if p.max_queued_per_user > 0:
        mine = sum(1 for job in active if job.user_id == user.id)
        if mine >= p.max_queued_per_user:
            return ErrorReply(
                f"You already have {mine} jobs queued or running (the limit is "
                f"{p.max_queued_per_user}). Wait for one to finish, or /cancel one."
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
    everyone = await deps.repo.active_jobs()
    mine = [j for j in everyone if j.user_id == user.id]
    if not mine:
        return TextReply("You have no jobs queued or running.")
    lines = [_describe_job(job, _position(everyone, job.id)) for job in mine]
    return TextReply("Your jobs:\n" + "\n".join(lines))


async def cancel(deps: Deps, command: CancelJob) -> Reply:
    user = await deps.user(command.requester)
    mine = await deps.repo.active_jobs(user.id)
    if command.job_id is not None:
        mine = [j for j in mine if j.id == command.job_id]
    if not mine:
        return ErrorReply("You have no queued or running job to cancel.")
    job = mine[-1]
    await cancel_job(deps, job)
    # A JobFinished, so adapters can close the job's progress message too.
    return JobFinished(
        text=f"Cancelled your {job.kind} job {job.id}.", job_id=job.id, kind=job.kind, ok=False
    )


async def cancel_job(deps: Deps, job: Job) -> None:
    await deps.queue.cancel(job.id)
    async with deps.repo.transaction():
        await deps.repo.update_job(job.id, JobStatus.CANCELLED, deps.clock.now())
        if job.kind == "train" and job.style_id is not None:
            await deps.repo.set_style_status(job.style_id, StyleStatus.FAILED)


async def queue_position(deps: Deps, job_id: str) -> int:
    return _position(await deps.repo.active_jobs(), job_id)


def _position(active: Sequence[Job], job_id: str) -> int:
    """1-based place among queued and running jobs, oldest first."""
    for index, job in enumerate(active, start=1):
        if job.id == job_id:
            return index
    return 0


def _describe_job(job: Job, position: int) -> str:
    progress = f", step {job.step}/{job.total}" if job.total else ""
    return f"- {job.kind} {job.id}: {job.status}{progress} (position {position})"
