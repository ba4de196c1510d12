"""Worker events become records and notifications.

Events can arrive twice (a front end that stopped before acknowledging one
sees it again), so handling one is safe to repeat."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from stylebot.bot.core.blobs import delete_unused_blobs, read_together
from stylebot.bot.core.caption_suggestions import captions_proposed
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.embedding_duplicates import near_duplicates_found
from stylebot.bot.core.errors import DamagedBlob
from stylebot.bot.core.fingerprints import fingerprint_to_record
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import (
    Job,
    JobStatus,
    Output,
    StyleStatus,
)
from stylebot.bot.core.queue_cleanup import QueueCleanup
from stylebot.bot.core.replies import (
    TRAINING_ENDED_PUBLICLY,
    ImageFile,
    ImagesReady,
    JobFinished,
    JobProgress,
    Notification,
    TextReply,
)
from stylebot.bot.core.training import validation_summary
from stylebot.bot.core.training_report import training_report
from stylebot.queue.payloads import JobEvent, TrainingPreview, preview_output_id

log = logging.getLogger(__name__)

# A progress update older than this is news to nobody (a front end catching up
# after a restart would otherwise replay every line, "about 1 h 51 min left"
# included): its step is recorded, nothing is sent.
STALE_PROGRESS = timedelta(minutes=2)


async def handle_event(deps: Deps, event: JobEvent) -> list[Notification]:
    """Record what a worker reported and say what to tell the user.

    Events can arrive twice (a front end restarting mid-delivery), so a job
    that already ended ignores further events.
    """
    job = await deps.uow.jobs.get_job(event.job_id)
    if job is None:
        log.warning("event for unknown job %s ignored", event.job_id)
        await _discard_unwanted_blobs(deps, event)
        # An erased job's late event (a worker had not yet seen the cancel): it and
        # whatever else the queue got of the job since the erasure go too, from the
        # queue's files as well; the rewrite waits for the rest of a burst.
        await deps.queue.forget_jobs([event.job_id])
        await deps.queue_cleanup.record(deps, QueueCleanup(rewrite_files=True))
        deps.queue_cleanup.carry_out_later(deps)
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
        await _discard_unwanted_blobs(deps, event)
        return []
    now = deps.clock.now()
    match event.kind:
        case "started":
            if job.status is JobStatus.RUNNING and job.step:
                return await _resumed(deps, job, event)
            await deps.uow.jobs.update_job(job.id, JobStatus.RUNNING, now)
            return []
        case "progress":
            await deps.uow.jobs.update_job(
                job.id, JobStatus.RUNNING, now, step=event.step, total=event.total
            )
            if event.preview is not None:
                return await _training_preview(deps, job, event, event.preview)
            if _is_stale(event, now):
                return []
            return [Notification(job.origin, await _progress_reply(deps, job, event))]
        case "finished" | "failed":
            return await _ending(deps, job, event, record=True)
        case "cancelled":
            # A worker dropped the job without /cancel (it was deleted, say).
            await deps.uow.jobs.update_job(job.id, JobStatus.CANCELLED, now)
            return []
    log.warning("event of unknown kind %s for job %s", event.kind, job.id)
    return []


def _is_stale(event: JobEvent, now: datetime) -> bool:
    if event.sent_at is None:
        return False
    return now - datetime.fromtimestamp(event.sent_at, UTC) > STALE_PROGRESS


async def _resumed(deps: Deps, job: Job, event: JobEvent) -> list[Notification]:
    """A job that was running (and had made progress) started again: its worker
    stopped or died, and a worker took it up, from its last checkpoint if it trains."""
    await deps.uow.jobs.update_job(
        job.id, JobStatus.RUNNING, deps.clock.now(), step=event.step, total=event.total
    )
    if job.kind == "train":
        style = await deps.uow.styles.get_style(job.style_id) if job.style_id else None
        label = style.name if style else "your style"
        where = f"from step {event.step}/{event.total}" if event.step else "from the start"
        text = f"Training {label} resumed {where}: the worker running it had stopped."
    elif job.kind == "caption":
        text = "Your captions are being written again: the worker writing them had stopped."
    elif job.kind == "compare":
        return []  # a background check: nobody waits for it
    else:
        text = "Your image is being made again: the worker making it had stopped."
    return [Notification(job.origin, TextReply(text))]


async def _discard_unwanted_blobs(deps: Deps, event: JobEvent) -> None:
    """A worker that finished before it saw a cancel (or an erasure that deleted the
    job) has already stored its results: no record will ever name those blobs, so
    delete the ones nothing else uses (content-addressed: an identical blob may)."""
    keys: list[str] = []
    if event.preview is not None:
        keys.append(event.preview.blob_key)
    if event.kind == "finished" and event.result is not None:
        if event.job_kind == "train":
            result = event.train_result()
            keys += [result.lora_key] + ([result.export_key] if result.export_key else [])
            keys = [key for key in [*keys, result.embedding_key or ""] if key]  # "": no LoRA
        elif event.job_kind == "generate":
            keys += [image.blob_key for image in event.generate_result().images]
    await delete_unused_blobs(deps, keys)


async def _progress_reply(deps: Deps, job: Job, event: JobEvent) -> JobProgress:
    if job.kind == "train":
        style = await deps.uow.styles.get_style(job.style_id) if job.style_id else None
        parts = [f"step {event.step}/{event.total}"]
        if event.loss is not None:
            parts.append(f"loss {event.loss:.3g}")
        if event.eta_s is not None and event.step < event.total:
            parts.append(time_left_text(event.eta_s))
        label = style.name if style else "style"
        text = f"Training {label}: " + " · ".join(parts)
    elif job.kind == "caption":
        text = f"Captioning: {event.step}/{event.total} images"
    else:
        text = f"Imagining: step {event.step}/{event.total}"
    return JobProgress(
        text, job.id, job.kind, event.step, event.total, event.loss, eta_s=event.eta_s
    )


async def _training_preview(
    deps: Deps, job: Job, event: JobEvent, preview: TrainingPreview
) -> list[Notification]:
    """A preview image of a style in training: recorded as an output of the training
    job (its watermark carries that output's id, so /verify traces it to the job,
    and deleting the style deletes it), and shown like a result."""
    if job.kind != "train" or preview.output_id != preview_output_id(job.id, event.step):
        log.error("job %s sent a preview that is not its own; ignored", job.id)
        return []
    try:
        data = await deps.blobs.get(preview.blob_key)
    except DamagedBlob as exc:  # a preview is a courtesy: skipped, training goes on
        log.error("job %s: preview at step %d not sent: %s", job.id, event.step, exc)
        return []
    if await deps.uow.outputs.get_output(preview.output_id) is None:  # events may come twice
        await deps.uow.outputs.add_outputs(
            [
                Output(
                    id=preview.output_id,
                    job_id=job.id,
                    user_id=job.user_id,
                    prompt=preview.prompt,
                    negative_prompt="",
                    seed=preview.seed,
                    steps=preview.steps,
                    guidance=preview.guidance,
                    width=preview.width,
                    height=preview.height,
                    created_at=deps.clock.now(),
                    style_id=job.style_id,
                    blob_key=preview.blob_key,
                    maker_name=job.origin.display_name,
                    maker_username=job.origin.username,
                    # A style in training is its owner's alone, wherever it was asked.
                    made_in_private=True,
                    fingerprint=await fingerprint_to_record(preview.fingerprint, data),
                )
            ]
        )
    style = await deps.uow.styles.get_style(job.style_id) if job.style_id else None
    label = style.name if style else "your style"
    image = ImageFile(preview.output_id, f"stylebot-preview-{preview.output_id}.png", data)
    reply = ImagesReady(
        text=(
            f"Preview of {label} at step {event.step}/{event.total}: its trigger alone, "
            "as trained so far. Training goes on."
        ),
        # A job id of its own: adapters show it as a new message with its
        # image, and leave the training job's progress message open.
        job_id=f"{job.id}/preview-{event.step}",
        images=(image,),
        preview_of=job.id,
    )
    return [Notification(job.origin, reply)]


def time_left_text(seconds: float) -> str:
    """'about 2 min left': rounded as a person would say it, not to the second.

    Under 10 s it says "a few seconds left": "about 5 s" for anything shorter was a
    number that stayed put while the run went on (issue 20, the demo's training)."""
    if seconds < 10:
        return "a few seconds left"
    if seconds < 60:
        return f"about {max(5, round(seconds / 5) * 5)} s left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes} min left" if minutes else f"about {hours} h left"


async def _ending(deps: Deps, job: Job, event: JobEvent, *, record: bool) -> list[Notification]:
    if event.kind == "failed":
        return await _job_failed(deps, job, event, record)
    if job.kind == "train":
        return await _training_finished(deps, job, event, record)
    if job.kind == "caption":
        return await captions_proposed(deps, job, event, record)
    if job.kind == "compare":
        return await near_duplicates_found(deps, job, event, record)
    return await _generation_finished(deps, job, event, record)


async def _training_finished(
    deps: Deps, job: Job, event: JobEvent, record: bool
) -> list[Notification]:
    result = event.train_result()
    style = await deps.uow.styles.get_style(job.style_id) if job.style_id else None
    if record:
        async with deps.uow:
            if style is not None:
                # "": only a textual-inversion embedding trained, no LoRA.
                await deps.uow.styles.set_style_status(
                    style.id, StyleStatus.READY, result.lora_key or None
                )
                if result.export_key is not None:
                    await deps.uow.styles.set_style_export(style.id, result.export_key)
                if result.embedding_key is not None:
                    await deps.uow.styles.set_style_embedding(style.id, result.embedding_key)
                if result.validation:
                    await deps.uow.styles.set_style_validation(style.id, result.validation)
                if result.metrics is not None:
                    await deps.uow.styles.set_style_metrics(style.id, result.metrics)
                if result.base is not None:
                    await deps.uow.styles.set_style_base(style.id, result.base)
            await deps.uow.jobs.update_job(
                job.id,
                JobStatus.FINISHED,
                deps.clock.now(),
                step=result.steps,
                total=result.steps,
            )
    name = style.name if style else "?"
    report = await training_report(deps, job, result, name, record=record)
    return ([report] if report is not None else []) + [
        Notification(
            job.origin,
            JobFinished(
                text=(
                    f"Style {name} is ready ({result.steps} steps, final loss "
                    f"{result.final_loss:.4f}).{validation_summary(result.validation)} "
                    f"Try: {mention(CommandName.IMAGINE, 'a lighthouse at dawn', style=name)}"
                ),
                job_id=job.id,
                kind=job.kind,
                ok=True,
                private=True,
                public_text=TRAINING_ENDED_PUBLICLY,
            ),
        )
    ]


async def _generation_finished(
    deps: Deps, job: Job, event: JobEvent, record: bool
) -> list[Notification]:
    result = event.generate_result()
    expected = {o.id for o in await deps.uow.outputs.job_outputs(job.id)}
    images = [i for i in result.images if i.output_id in expected]
    if len(images) != len(result.images):
        log.error("job %s returned outputs it was not given; ignored them", job.id)
    try:
        contents = await read_together(deps.blobs, [image.blob_key for image in images])
        files = [
            ImageFile(image.output_id, f"stylebot-{image.output_id}.png", data)
            for image, data in zip(images, contents, strict=True)
        ]
    except DamagedBlob as exc:
        # Said once, in words; an exception would leave the event to fail at every start.
        log.error("job %s: %s; its image cannot be sent", job.id, exc)
        if record:
            async with deps.uow:
                for image in images:
                    await deps.uow.outputs.set_output_blob(
                        image.output_id, image.blob_key, image.seed
                    )
                await deps.uow.jobs.update_job(job.id, JobStatus.FINISHED, deps.clock.now())
        return [
            Notification(
                job.origin,
                JobFinished(
                    text="Generation finished, but the image was damaged in storage before "
                    "it could be sent. Please generate it again.",
                    job_id=job.id,
                    kind=job.kind,
                    ok=False,
                ),
            )
        ]
    if record:
        # Kept so that /verify can still find an image whose watermark is gone.
        fingerprints = [
            await fingerprint_to_record(image.fingerprint, file.data)
            for image, file in zip(images, files, strict=True)
        ]
        async with deps.uow:
            for image, fingerprint in zip(images, fingerprints, strict=True):
                await deps.uow.outputs.set_output_blob(image.output_id, image.blob_key, image.seed)
                if fingerprint is not None:
                    await deps.uow.outputs.set_output_fingerprint(image.output_id, fingerprint)
            await deps.uow.jobs.update_job(job.id, JobStatus.FINISHED, deps.clock.now())
    seeds = ", ".join(str(i.seed) for i in result.images)
    return [
        Notification(
            job.origin,
            ImagesReady(
                text=(
                    f"Here you are (seed {seeds}). Each image is watermarked; "
                    f"{mention(CommandName.VERIFY)} traces it."
                ),
                job_id=job.id,
                images=tuple(files),
            ),
        )
    ]


async def _job_failed(deps: Deps, job: Job, event: JobEvent, record: bool) -> list[Notification]:
    error = event.error or "unknown error"
    if record:
        async with deps.uow:
            if job.kind == "train" and job.style_id is not None:
                await deps.uow.styles.set_style_status(job.style_id, StyleStatus.FAILED)
            await deps.uow.jobs.update_job(job.id, JobStatus.FAILED, deps.clock.now(), error=error)
    what = {
        "train": "Training",
        "caption": "Captioning",
        "compare": "Comparing your images by content",
    }.get(job.kind, "Generation")
    return [
        Notification(
            job.origin,
            JobFinished(
                text=f"{what} failed: {error}."
                + (" You can try again." if event.retryable else ""),
                job_id=job.id,
                kind=job.kind,
                ok=False,
                # A failed training's message may name the style (damaged weights).
                private=job.kind == "train",
                public_text=TRAINING_ENDED_PUBLICLY if job.kind == "train" else "",
            ),
        )
    ]
