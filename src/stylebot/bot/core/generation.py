"""Generating images: new requests, re-rolls, variations, and what became of them.

A little over 400 lines: the four paths share one admission (permissions, quotas, turns)
and one way of recording a job and its outputs, kept together here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from stylebot.bot.core.attribution import attribute, made_in_private, source_lines
from stylebot.bot.core.blobs import delete_unused_blobs
from stylebot.bot.core.commands import DeleteOutput, Imagine, OutputInfo
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.errors import QUEUE_UNAVAILABLE_TEXT, QueueUnavailable
from stylebot.bot.core.jobs import job_owner, new_job_id, queue_position, queue_room
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import NewJob, Output, Requester, Style, StyleStatus, User
from stylebot.bot.core.permissions import can_use
from stylebot.bot.core.picture_sources import PictureSource, record_image_use
from stylebot.bot.core.quotas import GENERATE, admit_generation, record_usage
from stylebot.bot.core.replies import ErrorReply, JobQueued, Reply, TextReply
from stylebot.bot.core.styles import resolve_style
from stylebot.queue.payloads import GenerateJob
from stylebot.style_tokens import style_embedding_token, style_token_in

# How far a variation's starting noise moves towards another seed's.
VARIATION_STRENGTH = 0.15

ASPECTS = ("square", "portrait", "landscape")
# Portrait and landscape are 2:3 and 3:2.
LONG_SIDE_RATIO = 1.5


def aspect_size(aspect: str, default_size: int, max_size: int) -> tuple[int, int]:
    """Width and height for a shape, in multiples of 8: square is the default size;
    portrait and landscape stretch its long side 1.5 times, up to the largest size
    allowed, and then shorten the short side to keep 2:3."""
    if aspect == "square":
        return default_size, default_size
    long_side = min(round(default_size * LONG_SIDE_RATIO / 8) * 8, max_size // 8 * 8)
    short_side = min(default_size, round(long_side / LONG_SIDE_RATIO / 8) * 8)
    return (short_side, long_side) if aspect == "portrait" else (long_side, short_side)


@dataclass(frozen=True)
class GenerationSpec:
    """A checked generation request, whatever command it came from."""

    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    width: int
    height: int
    count: int
    variation_seed: int | None = None
    variation_strength: float = 0.0
    # How the queued reply names what is being made: the prompt, or for an image of
    # someone else's, its output id (their prompt is never echoed back to another).
    described_as: str | None = None
    # A restyle: the picture it starts from (stylebot.bot.core.restyle).
    source: PictureSource | None = None
    # How the queued reply starts ("Upscaling"); None: from what the spec is.
    action: str | None = None

    @classmethod
    def of_output(cls, output: Output) -> GenerationSpec:
        """An earlier image made again (re-roll, vary, extend, upscale start from it):
        its prompt, seed, steps and size, one image."""
        return cls(
            prompt=output.prompt,
            negative_prompt=output.negative_prompt,
            seed=output.seed,
            steps=output.steps,
            width=output.width,
            height=output.height,
            count=1,
        )


def new_output_id() -> str:
    """48 random bits: what the watermark of one image carries."""
    return secrets.token_hex(6)


async def imagine(deps: Deps, command: Imagine) -> Reply:
    p = deps.policy
    prompt = command.prompt.strip()
    if not prompt:
        return ErrorReply(
            "Describe the image you want, e.g. "
            f"{mention(CommandName.IMAGINE, 'a lighthouse at dawn')}."
        )
    if len(prompt) > p.max_prompt_chars or len(command.negative_prompt) > p.max_prompt_chars:
        return ErrorReply(f"Prompts are limited to {p.max_prompt_chars} characters.")
    steps = command.steps if command.steps is not None else p.default_steps
    if not 1 <= steps <= p.max_steps:
        return ErrorReply(f"steps must be between 1 and {p.max_steps}.")
    if command.aspect is not None:
        if command.width or command.height:
            return ErrorReply("Give a shape (aspect) or a size, not both.")
        if command.aspect not in ASPECTS:
            return ErrorReply(f"aspect is one of {', '.join(ASPECTS)}.")
        width, height = aspect_size(command.aspect, p.default_size, p.max_size)
    else:
        width = command.width or p.default_size
        height = command.height or p.default_size
    for label, side in (("width", width), ("height", height)):
        if not p.min_size <= side <= p.max_size or side % 8:
            return ErrorReply(
                f"{label} must be a multiple of 8 between {p.min_size} and {p.max_size}."
            )
    if not 1 <= command.count <= p.max_images_per_request:
        return ErrorReply(f"count must be between 1 and {p.max_images_per_request}.")
    seed = command.seed if command.seed is not None else secrets.randbelow(2**31)
    if not 0 <= seed < 2**32:
        return ErrorReply("seed must be a whole number from 0 to 4294967295.")

    user = await deps.user(command.requester)
    style: Style | None = None
    if command.style:
        found = await resolve_style(deps, user, command.requester, command.style)
        if isinstance(found, ErrorReply):
            return found
        style = found
    spec = GenerationSpec(
        prompt=prompt,
        negative_prompt=command.negative_prompt,
        seed=seed,
        steps=steps,
        width=width,
        height=height,
        count=command.count,
    )
    return await admit_and_queue(deps, command.requester, user, style, spec)


def style_token_refusal(spec: GenerationSpec) -> ErrorReply | None:
    """Prompts may not name a style's token: a worker keeps other styles' embeddings
    (and a run's in training) loaded, so the token would reach someone else's."""
    for label, text in (("prompt", spec.prompt), ("negative prompt", spec.negative_prompt)):
        if style_token_in(text) is not None:
            return ErrorReply(
                f"The {label} names one of the bot's style tokens (<sb-...>), which prompts "
                "may not. Choose a style with the style option instead. Nothing was queued."
            )
    return None


async def admit_and_queue(
    deps: Deps, requester: Requester, user: User, style: Style | None, spec: GenerationSpec
) -> Reply:
    """Check the limits, queue, and count the request, as one step (`Deps.admission`).

    Every command that generates comes through here, so each one's prompt text,
    typed now or stored with an earlier image, meets the same rules."""
    if (refused := style_token_refusal(spec)) is not None:
        return refused
    async with deps.admission:
        if style is not None:
            # Looked up before the lock: it may have been deleted or made private since
            # (revoke_style holds this lock while it deletes, so after this no longer).
            current = await deps.uow.styles.get_style(style.id)
            if current is None or not can_use(current, user.id, requester.scope):
                return ErrorReply(
                    f"There is no style named {style.name} that you can use here. "
                    f"See {mention(CommandName.STYLES)}."
                )
            style = current
        refused = await admit_generation(deps, requester, spec.prompt, spec.count)
        if refused is not None:
            return refused
        if (full := await queue_room(deps, requester, user)) is not None:
            return full
        try:
            queued = await queue_generation(deps, requester, user, style, spec)
        except QueueUnavailable:
            return ErrorReply(QUEUE_UNAVAILABLE_TEXT)
        await record_usage(deps, requester, GENERATE, spec.count)
        return queued


async def queue_generation(
    deps: Deps, requester: Requester, user: User, style: Style | None, spec: GenerationSpec
) -> JobQueued:
    p = deps.policy
    now = deps.clock.now()
    job_id = new_job_id("generate")
    source = spec.source
    outputs = [
        Output(
            id=new_output_id(),
            job_id=job_id,
            user_id=user.id,
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            seed=spec.seed + i,
            steps=spec.steps,
            guidance=p.default_guidance,
            width=spec.width,
            height=spec.height,
            created_at=now,
            style_id=style.id if style else None,
            maker_name=requester.display_name,
            maker_username=requester.username,
            made_in_private=made_in_private(requester, style),
            source_key=source.key if source else None,
            source_output_id=source.output_id if source else None,
            denoising_strength=source.strength if source else None,
            keep_box=source.keep_box if source else None,
            repaint_box=source.repaint_box if source else None,
            mask_key=source.mask_key if source else None,
            follow=source.follow if source else None,
        )
        for i in range(spec.count)
    ]
    if source is not None and (source.upload is not None or source.mask_upload is not None):
        # Stored before its records, under the blob lock (stylebot.bot.core.blobs); a
        # failed queueing below leaves them named by nothing, so they are deleted then.
        async with deps.blob_lock:
            for new_blob in (source.upload, source.mask_upload):
                if new_blob is not None:
                    await deps.blobs.put(new_blob)
            return await _queue_with_source(deps, requester, user, style, spec, job_id, outputs)
    return await _queue_records(deps, requester, user, style, spec, job_id, outputs)


async def _queue_with_source(
    deps: Deps,
    requester: Requester,
    user: User,
    style: Style | None,
    spec: GenerationSpec,
    job_id: str,
    outputs: list[Output],
) -> JobQueued:
    assert spec.source is not None
    try:
        return await _queue_records(deps, requester, user, style, spec, job_id, outputs)
    except BaseException:
        stored = [spec.source.key, spec.source.mask_key]
        unused = await deps.uow.unreferenced_blob_keys([k for k in stored if k is not None])
        for key in unused:
            await deps.blobs.delete(key)
        raise


async def _queue_records(
    deps: Deps,
    requester: Requester,
    user: User,
    style: Style | None,
    spec: GenerationSpec,
    job_id: str,
    outputs: list[Output],
) -> JobQueued:
    p = deps.policy
    now = outputs[0].created_at
    source = spec.source
    async with deps.uow:
        await deps.uow.jobs.add_job(
            NewJob(job_id, "generate", user.id, requester, now, style.id if style else None)
        )
        await deps.uow.outputs.add_outputs(outputs)
        if source is not None and source.evidence is not None:
            await record_image_use(deps, user, job_id, source.evidence, now)
        # Inside the transaction: queued in both, or (the queue down) in neither.
        await deps.queue.enqueue_generate(
            GenerateJob(
                job_id=job_id,
                # Workers take turns between owners, so one user's burst waits its turn.
                owner=job_owner(user),
                prompt=spec.prompt,
                negative_prompt=spec.negative_prompt,
                seed=spec.seed,
                steps=spec.steps,
                guidance=p.default_guidance,
                width=spec.width,
                height=spec.height,
                output_ids=tuple(o.id for o in outputs),
                style_id=style.id if style else None,
                style_name=style.name if style else None,
                lora_key=style.lora_key if style else None,
                embedding_key=style.embedding_key if style else None,
                embedding_token=(
                    style_embedding_token(style.id) if style and style.embedding_key else None
                ),
                trigger=style.trigger if style else None,
                base_model=style.base_model if style else p.base_model,
                variation_seed=spec.variation_seed,
                variation_strength=spec.variation_strength,
                source_key=source.key if source else None,
                strength=source.strength if source else 0.0,
                source_output_id=source.output_id if source else None,
                keep_box=source.keep_box if source else None,
                repaint_box=source.repaint_box if source else None,
                mask_key=source.mask_key if source else None,
                follow=source.follow if source else None,
            )
        )
    position = await queue_position(deps, job_id)
    in_style = f" in style {style.name}" if style else ""
    what = "A variation of" if spec.variation_seed is not None else "Imagining"
    if source is not None:
        what = spec.action or "Restyling"
    described = spec.described_as or repr(spec.prompt)
    return JobQueued(
        text=f"{what} {described}{in_style} (seed {spec.seed}, position {position}).",
        job_id=job_id,
        kind="generate",
        position=position,
    )


async def generate_again(deps: Deps, requester: Requester, output_id: str, *, vary: bool) -> Reply:
    """Re-roll (new seed) or vary (same seed, nearby noise) an earlier image."""
    found = await earlier_output(deps, requester, output_id)
    if isinstance(found, ErrorReply):
        return found
    output, user, style = found
    # The image pipelines take no starting noise, so a picture-based image varies by a
    # new seed: drawn again from the same picture, it stays close to it all the same.
    vary_by_noise = vary and output.source_key is None
    spec = replace(
        GenerationSpec.of_output(output),
        seed=output.seed if vary_by_noise else secrets.randbelow(2**31),
        variation_seed=secrets.randbelow(2**31) if vary_by_noise else None,
        variation_strength=VARIATION_STRENGTH if vary_by_noise else 0.0,
        described_as=None if output.user_id == user.id else f"output {output.id}",
        # A re-roll of a restyle (extension, repaint) starts from the same picture again.
        source=(
            PictureSource(
                output.source_key,
                output.denoising_strength or 0.0,
                output.source_output_id,
                keep_box=output.keep_box,
                repaint_box=output.repaint_box,
                mask_key=output.mask_key,
                follow=output.follow,
            )
            if output.source_key
            else None
        ),
    )
    # Admission checks the prompt again: the blocklist may have grown since the first image.
    return await admit_and_queue(deps, requester, user, style, spec)


async def earlier_output(
    deps: Deps, requester: Requester, output_id: str
) -> tuple[Output, User, Style | None] | ErrorReply:
    """An earlier image to make more from, its asker and its style, if they may.

    More of an image reuses its prompt, negative prompt and style, so it is allowed to
    whoever may see them (`attribute`): an output made in private is its maker's alone,
    whatever its style, as its id is no secret (/verify, file names, callback data)."""
    output = await deps.uow.outputs.get_output(output_id)
    if output is None:
        return ErrorReply("That image is no longer available (it was deleted).")
    user = await deps.user(requester)
    style: Style | None = None
    if output.style_id is not None:
        found = await deps.uow.styles.get_style(output.style_id)
        if found is None or not can_use(found, user.id, requester.scope):
            return ErrorReply(
                "That image's style is not one you can use here, so I can't make more."
            )
        if found.status is not StyleStatus.READY or (
            found.lora_key is None and not found.embedding_key
        ):
            return ErrorReply(f"Style {found.name} is not ready.")
        style = found
    attribution = await attribute(deps.uow, output, requester)
    if not attribution.full:
        return ErrorReply("That image was made in private: only its maker can make more like it.")
    return output, user, style


async def output_info(deps: Deps, command: OutputInfo) -> Reply:
    output = await deps.uow.outputs.get_output(command.output_id)
    if output is None:
        return ErrorReply("That image is no longer available (it was deleted).")
    attribution = await attribute(deps.uow, output, command.requester)
    if not attribution.full:
        # The same rule as /verify: a private output's prompt and style are its maker's.
        return TextReply(
            f"output: {output.id}, made {output.created_at.isoformat(timespec='seconds')}\n"
            "It was made in private: its prompt and style are shown only to its maker.",
            # Info is the presser's, whatever it holds (a button's answer is theirs).
            private=True,
        )
    style = attribution.style
    negative = f"\nnegative: {output.negative_prompt}" if output.negative_prompt else ""
    made_from = "".join(f"{line}\n" for line in source_lines(output))
    # The facts first, the free text (as long as its writer liked) last, so a long
    # prompt never pushes them out of sight; for the asker only, as prompts are.
    return TextReply(
        f"output: {output.id}, made {output.created_at.isoformat(timespec='seconds')}\n"
        f"style: {style.name if style else 'none (base model)'}\n"
        f"{made_from}"
        f"seed: {output.seed}, steps: {output.steps}, guidance: {output.guidance}, "
        f"size: {output.width}x{output.height}\n"
        f"prompt: {output.prompt}{negative}",
        private=True,
    )


async def delete_output(deps: Deps, command: DeleteOutput) -> Reply:
    output = await deps.uow.outputs.get_output(command.output_id)
    if output is None:
        return ErrorReply("That image is already deleted.")
    user = await deps.user(command.requester)
    if output.user_id != user.id:
        return ErrorReply("Only the person who made an image can delete it.")
    key = await deps.uow.outputs.delete_output(output.id)
    # A restyle's picture goes with its last output (other restyles may share it).
    keys = [k for k in (key, output.source_key, output.mask_key) if k is not None]
    if keys:
        await delete_unused_blobs(deps, keys)
    return TextReply("Deleted the image and its record.")
