"""Starting a style's training once consent covers exactly the waiting images."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from stylebot.bot.core.captions import captions_digest
from stylebot.bot.core.commands import TrainStyle
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.errors import QUEUE_UNAVAILABLE_TEXT, DuplicateStyleName, QueueUnavailable
from stylebot.bot.core.evidence import NOT_SPDX, record_training
from stylebot.bot.core.jobs import job_owner, new_job_id, queue_position, queue_room
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import NewJob, NewStyle, User
from stylebot.bot.core.names import InvalidStyleName, normalise_style_name, trigger_phrase
from stylebot.bot.core.quotas import TRAIN, check_allowance, record_usage
from stylebot.bot.core.replies import ErrorReply, JobQueued, Reply
from stylebot.bot.core.training_defaults import choose_train_settings
from stylebot.queue.payloads import LORA_VARIANTS, TrainJob, ValidationPoint


async def train_style(deps: Deps, command: TrainStyle) -> Reply:
    try:
        name = normalise_style_name(command.name)
    except InvalidStyleName as exc:
        return ErrorReply(str(exc))
    if command.variant is not None and command.variant not in LORA_VARIANTS:
        return ErrorReply(
            f"variant:{command.variant} is not a kind of LoRA this bot trains; "
            f"choose {', '.join(LORA_VARIANTS[:-1])} or {LORA_VARIANTS[-1]}."
        )
    user = await deps.user(command.requester)
    # One at a time (`Deps.admission`): the checks below and the job they admit, so two
    # requests sent at once cannot both pass the queue and quota checks.
    async with deps.admission:
        return await _admit_training(deps, command, name, user)


async def _admit_training(deps: Deps, command: TrainStyle, name: str, user: User) -> Reply:
    pending = await deps.uow.uploads.pending_uploads(user.id)
    if len(pending) < deps.policy.min_train_images:
        return ErrorReply(
            f"Upload at least {deps.policy.min_train_images} image(s) first, "
            "then confirm your rights to them."
        )
    consent = await deps.uow.consents.latest_consent(user.id)
    if consent is None:
        return ErrorReply(
            "Confirm first that you made these images or hold the rights to them, "
            f"and choose a licence ({mention(CommandName.CONSENT)})."
        )
    if set(consent.image_hashes) != {u.blob_key for u in pending}:
        return ErrorReply(
            "The waiting images changed since you confirmed your rights to them. "
            f"Please confirm again for this set ({mention(CommandName.CONSENT)})."
        )
    if consent.captions_sha256 != captions_digest(pending):
        # The consent says what the style trains on, captions included.
        return ErrorReply(
            "The captions changed since you confirmed your rights to the images. "
            f"Please confirm again for them as they are now ({mention(CommandName.CONSENT)})."
        )
    if await deps.uow.styles.find_style(user.id, name) is not None:
        return ErrorReply(f"You already have a style named {name}. Pick another name.")
    if any(j.kind == "train" for j in await deps.uow.jobs.active_jobs(user.id)):
        return ErrorReply("One of your styles is still training. Wait until it finishes.")
    if (full := await queue_room(deps, command.requester, user)) is not None:
        return full
    refused = await check_allowance(deps, command.requester, TRAIN, 1)
    if refused is not None:
        return refused

    now = deps.clock.now()
    # Chosen from the number of images where the operator set nothing; kept in
    # the style's record (train_settings) and sent with the job.
    settings = choose_train_settings(
        len(pending), deps.policy.train, deps.policy.train_chosen_from_images
    )
    if command.variant is not None:  # the member's choice over the operator's default
        settings = dataclasses.replace(settings, lora_variant=command.variant)
    job_id = new_job_id("train")
    try:
        async with deps.uow:
            style = await deps.uow.styles.add_style(
                NewStyle(
                    user.id,
                    name,
                    trigger_phrase(name),
                    consent.id,
                    deps.policy.base_model,
                    settings.to_dict(),
                    [u.id for u in pending],
                    now,
                )
            )
            await deps.uow.jobs.add_job(
                NewJob(job_id, "train", user.id, command.requester, now, style.id)
            )
            await record_training(deps, user, style, pending)
            # Inside the transaction: queued in both, or (the queue down) in neither.
            await deps.queue.enqueue_train(
                TrainJob(
                    job_id=job_id,
                    owner=job_owner(user),
                    style_id=style.id,
                    trigger=style.trigger,
                    image_keys=tuple(u.blob_key for u in pending),
                    captions=tuple(u.caption or "" for u in pending),
                    settings=settings,
                    style_name=name,
                    licence=spdx_licence(consent.licence),
                    consent_id=consent.id,
                    base_model=style.base_model,
                )
            )
    except DuplicateStyleName:  # a second /train with this name won the race
        return ErrorReply(f"You already have a style named {name}. Pick another name.")
    except QueueUnavailable:
        return ErrorReply(QUEUE_UNAVAILABLE_TEXT)
    await record_usage(deps, command.requester, TRAIN, 1)
    position = await queue_position(deps, job_id)
    return JobQueued(
        text=(
            f"Training {name} on {len(pending)} image(s) is queued "
            f"(position {position}). Progress will follow here."
        ),
        job_id=job_id,
        kind="train",
        position=position,
    )


def spdx_licence(licence: str) -> str:
    """A consent licence as an SPDX license expression, for exported weights:
    ids SPDX has no entry for become `LicenseRef-stylebot-<id>`, as SPDX allows."""
    return f"LicenseRef-stylebot-{licence}" if licence in NOT_SPDX else licence


# Held-out loss within this fraction of the base model's counts as no change.
_SAME_LOSS = 0.01


def validation_summary(curve: Sequence[ValidationPoint]) -> str:
    """What the held-out images say about a training run, as a sentence with a
    leading space ("" without a curve: a style of one image has none)."""
    if not curve:
        return ""
    last = curve[-1]
    figures = f"validation loss {last.loss:.4f} vs {last.base_loss:.4f} for the base model"
    if last.loss < last.base_loss * (1 - _SAME_LOSS):
        verdict = "it learned something about images it never saw"
    elif last.loss > last.base_loss * (1 + _SAME_LOSS):
        verdict = "worse on images it never saw: try more images or fewer steps"
    else:
        verdict = "about the same: training learned little beyond the base model"
    return f" Held-out images: {figures}, {verdict}."
