"""Auto-captioning: a worker's captioner proposes a caption for each waiting image.

``/captions auto`` queues a caption job (a worker runs the operator's captioner, see
stylebot.engine.captioner); when its result comes back each image's proposal is kept
beside it (``Upload.suggested_caption``) and listed by ``/captions``. A proposal is only
that: training reads ``Upload.caption`` alone, which a proposal becomes when the member
accepts it (``/captions accept``) or edits it, so the consent's captions digest covers
exactly what the member chose.
"""

from __future__ import annotations

from stylebot.bot.core.captions import WAITING_LISTING, fitted_caption, listing
from stylebot.bot.core.commands import AcceptCaptions, SuggestCaptions
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.errors import QUEUE_UNAVAILABLE_TEXT, QueueUnavailable
from stylebot.bot.core.jobs import job_owner, new_job_id, queue_position, queue_room
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import Job, JobStatus, NewJob
from stylebot.bot.core.replies import ErrorReply, JobFinished, JobQueued, Notification, Reply
from stylebot.queue.payloads import CaptionJob, JobEvent

NO_CAPTIONER = (
    "Automatic captions are not available: the operator has not set up a captioner. "
    f"You can write captions yourself with {mention(CommandName.CAPTIONS, 'NUMBER', 'CAPTION')}."
)


async def suggest_captions(deps: Deps, command: SuggestCaptions) -> Reply:
    """Queue a caption job for the asker's waiting images."""
    if not deps.policy.captioner_configured:
        return ErrorReply(NO_CAPTIONER)
    requester = command.requester
    user = await deps.user(requester)
    pending = await deps.uow.uploads.pending_uploads(user.id)
    if not pending:
        return ErrorReply("There are no images waiting. Upload images first.")
    async with deps.admission:
        mine = await deps.uow.jobs.active_jobs(user.id)
        if any(job.kind == "caption" for job in mine):
            return ErrorReply(
                "Captions for your images are already being written; they will be listed "
                "here when they are ready."
            )
        if (full := await queue_room(deps, requester, user)) is not None:
            return full
        job_id = new_job_id("caption")
        # The same image twice is captioned once: proposals go by image.
        keys = tuple(dict.fromkeys(upload.blob_key for upload in pending))
        try:
            async with deps.uow:
                await deps.uow.jobs.add_job(
                    NewJob(job_id, "caption", user.id, requester, deps.clock.now())
                )
                # Inside the transaction: queued in both, or (the queue down) in neither.
                await deps.queue.enqueue_caption(CaptionJob(job_id, keys, job_owner(user)))
        except QueueUnavailable:
            return ErrorReply(QUEUE_UNAVAILABLE_TEXT)
    position = await queue_position(deps, job_id)
    return JobQueued(
        text=(
            f"Writing captions for your {len(pending)} waiting image(s) (position {position}). "
            "They are only suggestions: you accept or change them before training."
        ),
        job_id=job_id,
        kind="caption",
        position=position,
    )


async def captions_proposed(
    deps: Deps, job: Job, event: JobEvent, record: bool
) -> list[Notification]:
    """A caption job's result: the proposals kept beside the images still waiting, and
    the listing shown to the member with them."""
    result = event.caption_result()
    if record:
        suggestions = {
            key: caption
            for key, text in result.captions
            if (caption := fitted_caption(text)) is not None
        }
        async with deps.uow:
            await deps.uow.uploads.suggest_pending_captions(job.user_id, suggestions)
            await deps.uow.jobs.update_job(
                job.id, JobStatus.FINISHED, deps.clock.now(), step=event.step, total=event.total
            )
    pending = await deps.uow.uploads.pending_uploads(job.user_id)
    proposed = sum(1 for upload in pending if upload.suggested_caption)
    done = JobFinished(
        text=(
            f"Suggested captions for {proposed} of your waiting image(s): "
            f"{mention(CommandName.CAPTIONS)} shows them, to accept or change before training."
        ),
        job_id=job.id,
        kind=job.kind,
        ok=True,
        private=True,
    )
    # The listing first: the job's end comes last, once there is nothing more to show.
    notices = []
    if pending:
        heading = f"{WAITING_LISTING}{len(pending)} waiting image(s), with suggestions:"
        shown = listing(pending, heading, None, can_suggest=deps.policy.captioner_configured)
        notices.append(Notification(job.origin, shown))
    return [*notices, Notification(job.origin, done)]


async def accept_captions(deps: Deps, command: AcceptCaptions) -> Reply:
    """The proposals (all, or image ``number``'s) become the images' captions."""
    user = await deps.user(command.requester)
    pending = await deps.uow.uploads.pending_uploads(user.id)
    if command.number is not None and not 1 <= command.number <= len(pending):
        return ErrorReply(
            f"There is no waiting image {command.number}: "
            f"{mention(CommandName.CAPTIONS)} lists them with their numbers."
        )
    chosen = [
        upload
        for number, upload in enumerate(pending, start=1)
        if upload.suggested_caption and command.number in (None, number)
    ]
    if not chosen:
        return ErrorReply(
            "There is no suggested caption to accept. "
            f"{mention(CommandName.CAPTIONS, 'auto')} asks for some."
        )
    async with deps.uow:
        for upload in chosen:
            await deps.uow.uploads.set_pending_caption(user.id, upload.id, upload.suggested_caption)
    pending = await deps.uow.uploads.pending_uploads(user.id)
    heading = (
        f"{WAITING_LISTING}{len(pending)} waiting image(s), {len(chosen)} suggestion(s) accepted:"
    )
    return listing(pending, heading, None, can_suggest=deps.policy.captioner_configured)
