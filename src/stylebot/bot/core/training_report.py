"""The picture of how a training went (loss curve, previews), for its owner when the
style is ready. The worker draws it (engine.training_report); it goes the way
training previews go: privately, to the owner, just before the ready message."""

from __future__ import annotations

import logging

from stylebot.bot.core.blobs import delete_unused_blobs
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.errors import DamagedBlob
from stylebot.bot.core.model import Job
from stylebot.bot.core.replies import ImageFile, ImagesReady, Notification
from stylebot.queue.payloads import TrainResult

log = logging.getLogger(__name__)

# The report's job id is its training's with this after it (a message of its own).
REPORT_SUFFIX = "/report"


def is_training_report(reply: object) -> bool:
    """Whether a reply is the picture of how a training went."""
    return isinstance(reply, ImagesReady) and reply.job_id.endswith(REPORT_SUFFIX)


def report_text(style_name: str) -> str:
    return (
        f"How {style_name} trained: the loss at each step (falling is learning) with "
        "its average, the held-out images' loss with the style (blue) and without "
        "(grey), and its previews along the way."
    )


async def training_report(
    deps: Deps, job: Job, result: TrainResult, style_name: str, *, record: bool
) -> Notification | None:
    """The report picture as a private notification (None without one). Its blob
    names no record, so once read (`record`: the first time) it is deleted."""
    if not result.report_key:
        return None
    try:
        data = await deps.blobs.get(result.report_key)
    except (DamagedBlob, KeyError) as exc:
        # Gone after an earlier delivery, or damaged: the ready message still goes.
        log.info("training report of job %s not shown: %s", job.id, type(exc).__name__)
        return None
    if record:
        await delete_unused_blobs(deps, [result.report_key])
    image = ImageFile(f"{job.id}-report", f"stylebot-training-{style_name}.png", data)
    return Notification(
        job.origin,
        ImagesReady(
            text=report_text(style_name),
            # A job id of its own, as a preview's: a message of its own.
            job_id=f"{job.id}{REPORT_SUFFIX}",
            images=(image,),
            preview_of=job.id,
        ),
    )
