"""Near-duplicates by image embedding, beside the perceptual-hash ones
(stylebot.bot.core.near_duplicates), when the operator configured a CLIP model.

The front end has no model, so when images arrive it queues a compare job: a worker
embeds the waiting images with the CLIP model and returns the pairs whose cosine
similarity is above 0.95 (stylebot.engine.image_similarity), each with at least one
new image. The member is told of the pairs the perceptual hash did not already name,
as a note after the upload's answer. Advice only, like the hash's: nothing is refused,
and a job that cannot be queued (the queue down, the member's jobs at their limit) is
simply not run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from stylebot.bot.core.deps import Deps
from stylebot.bot.core.errors import QueueUnavailable
from stylebot.bot.core.jobs import job_owner, new_job_id, queue_room
from stylebot.bot.core.model import Job, JobStatus, NewJob, Requester, User
from stylebot.bot.core.near_duplicates import near_duplicates_note, waiting_hashes
from stylebot.bot.core.replies import Notification, TextReply
from stylebot.queue.payloads import CompareJob, JobEvent

log = logging.getLogger(__name__)


async def queue_comparison(
    deps: Deps, requester: Requester, user: User, keys: Sequence[str], first_new: int
) -> None:
    """After an upload: compare the waiting images (`keys`, the new ones from `first_new`
    on) by embedding on a worker, when a CLIP model is configured."""
    if not deps.policy.clip_configured or len(keys) < 2 or first_new >= len(keys):
        return
    async with deps.admission:
        if await queue_room(deps, requester, user) is not None:
            return  # advice: the member's own requests come first
        job_id = new_job_id("compare")
        try:
            async with deps.uow:
                await deps.uow.jobs.add_job(
                    NewJob(job_id, "compare", user.id, requester, deps.clock.now())
                )
                await deps.queue.enqueue_compare(
                    CompareJob(job_id, tuple(keys), first_new, job_owner(user))
                )
        except QueueUnavailable:
            log.info("the queue is down: the new images are not compared by embedding")


async def near_duplicates_found(
    deps: Deps, job: Job, event: JobEvent, record: bool
) -> list[Notification]:
    """A compare job's result: the pairs still waiting that the perceptual hash did not
    already name, told to the member (nothing when there are none)."""
    result = event.compare_result()
    if record:
        async with deps.uow:
            await deps.uow.jobs.update_job(job.id, JobStatus.FINISHED, deps.clock.now())
    waiting = {u.blob_key: u for u in await deps.uow.uploads.pending_uploads(job.user_id)}
    named: list[tuple[str, str]] = []
    for first, second, _ in result.pairs:
        if first not in waiting or second not in waiting:
            continue  # trained or discarded since
        pair = [waiting[first], waiting[second]]
        hashes = await waiting_hashes(deps, pair)
        if len(hashes) == 2 and hashes[0][1].near(hashes[1][1]):
            continue  # the upload's answer named it already
        named.append((pair[0].display_name, pair[1].display_name))
    if not named:
        return []
    text = "Compared by content (image embeddings), your waiting images:" + near_duplicates_note(
        named
    )
    return [Notification(job.origin, TextReply(text, private=True))]
