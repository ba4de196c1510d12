"""Worker events become records and notifications.

Events can arrive twice (a front end that stopped before acknowledging one
sees it again), so handling one is safe to repeat."""

from __future__ import annotations

import logging

from stylebot.bot.core.deps import Deps
from stylebot.bot.core.model import (
    Job,
    JobStatus,
    StyleStatus,
)
from stylebot.bot.core.replies import (
    ImageFile,
    ImagesReady,
    JobFinished,
    JobProgress,
    Notification,
)
from stylebot.queue.payloads import JobEvent

log = logging.getLogger(__name__)


async def handle_event(deps: Deps, event: JobEvent) -> list[Notification]:
    """Record what a worker reported and say what to tell the user.

    Events can arrive twice (a front end restarting mid-delivery), so a job
    that already ended ignores further events.
    """
    job = await deps.repo.get_job(event.job_id)
    if job is None:
        log.warning("event for unknown job %s ignored", event.job_id)
        return []
    if job.status.is_terminal:
        # A repeat of the event that ended the job (the front end stopped
        # before acknowledging it) is told to the user again, not recorded again.
        repeats_the_end = (event.kind, job.status) in (
            ("finished", JobStatus.FINISHED),
            ("failed", JobStatus.FAILED),
        )
        if repeats_the_end:
            return await _ending(deps, job, event, record=False)
        return []
    now = deps.clock.now()
    match event.kind:
        case "started":
            await deps.repo.update_job(job.id, JobStatus.RUNNING, now)
            return []
        case "progress":
            await deps.repo.update_job(
                job.id, JobStatus.RUNNING, now, step=event.step, total=event.total
            )
            return [Notification(job.origin, await _progress_reply(deps, job, event))]
        case "finished" | "failed":
            return await _ending(deps, job, event, record=True)
        case "cancelled":
            # A worker dropped the job without /cancel (it was deleted, say).
            await deps.repo.update_job(job.id, JobStatus.CANCELLED, now)
            return []
    log.warning("event of unknown kind %s for job %s", event.kind, job.id)
    return []


async def _progress_reply(deps: Deps, job: Job, event: JobEvent) -> JobProgress:
    if job.kind == "train":
        style = await deps.repo.get_style(job.style_id) if job.style_id else None
        loss = f", loss {event.loss:.4f}" if event.loss is not None else ""
        label = style.name if style else "style"
        text = f"Training {label}: step {event.step}/{event.total}{loss}"
    else:
        text = f"Imagining: step {event.step}/{event.total}"
    return JobProgress(text, job.id, job.kind, event.step, event.total, event.loss)


async def _ending(deps: Deps, job: Job, event: JobEvent, *, record: bool) -> list[Notification]:
    if event.kind == "failed":
        return await _job_failed(deps, job, event, record)
    if job.kind == "train":
        return await _training_finished(deps, job, event, record)
    return await _generation_finished(deps, job, event, record)


async def _training_finished(
    deps: Deps, job: Job, event: JobEvent, record: bool
) -> list[Notification]:
    result = event.train_result()
    style = await deps.repo.get_style(job.style_id) if job.style_id else None
    if record:
        async with deps.repo.transaction():
            if style is not None:
                await deps.repo.set_style_status(style.id, StyleStatus.READY, result.lora_key)
            await deps.repo.update_job(
                job.id,
                JobStatus.FINISHED,
                deps.clock.now(),
                step=result.steps,
                total=result.steps,
            )
    name = style.name if style else "?"
    return [
        Notification(
            job.origin,
            JobFinished(
                text=(
                    f"Style {name} is ready ({result.steps} steps, final loss "
                    f"{result.final_loss:.4f}). Try: /imagine a lighthouse at dawn "
                    f"style:{name}"
                ),
                job_id=job.id,
                kind=job.kind,
                ok=True,
            ),
        )
    ]


async def _generation_finished(
    deps: Deps, job: Job, event: JobEvent, record: bool
) -> list[Notification]:
    result = event.generate_result()
    expected = {o.id for o in await deps.repo.job_outputs(job.id)}
    images = [i for i in result.images if i.output_id in expected]
    if len(images) != len(result.images):
        log.error("job %s returned outputs it was not given; ignored them", job.id)
    if record:
        async with deps.repo.transaction():
            for image in images:
                await deps.repo.set_output_blob(image.output_id, image.blob_key, image.seed)
            await deps.repo.update_job(job.id, JobStatus.FINISHED, deps.clock.now())
    files = [
        ImageFile(
            image.output_id,
            f"stylebot-{image.output_id}.png",
            await deps.blobs.get(image.blob_key),
        )
        for image in images
    ]
    seeds = ", ".join(str(i.seed) for i in result.images)
    return [
        Notification(
            job.origin,
            ImagesReady(
                text=(
                    f"Here you are (seed {seeds}). Each image is watermarked; /verify traces it."
                ),
                job_id=job.id,
                images=tuple(files),
            ),
        )
    ]


async def _job_failed(deps: Deps, job: Job, event: JobEvent, record: bool) -> list[Notification]:
    error = event.error or "unknown error"
    if record:
        async with deps.repo.transaction():
            if job.kind == "train" and job.style_id is not None:
                await deps.repo.set_style_status(job.style_id, StyleStatus.FAILED)
            await deps.repo.update_job(job.id, JobStatus.FAILED, deps.clock.now(), error=error)
    what = "Training" if job.kind == "train" else "Generation"
    return [
        Notification(
            job.origin,
            JobFinished(
                text=f"{what} failed: {error}. You can try again.",
                job_id=job.id,
                kind=job.kind,
                ok=False,
            ),
        )
    ]
