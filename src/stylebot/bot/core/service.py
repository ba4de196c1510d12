"""The bot core: turns commands into replies and worker events into notifications.

It holds every business rule (consent, permissions, limits) and talks to the
world only through its ports, so each platform adapter stays a translator.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from stylebot.bot.core import consent as consent_terms
from stylebot.bot.core.commands import (
    CancelJob,
    Command,
    ConfirmConsent,
    DeleteOutput,
    DeleteStyle,
    DiscardUploads,
    ExportStyle,
    Imagine,
    ListStyles,
    OutputInfo,
    RerollOutput,
    ShareStyle,
    ShowStatus,
    StyleInfo,
    TrainStyle,
    UnshareStyle,
    UploadImages,
    UsableStyles,
    VaryOutput,
    Verify,
)
from stylebot.bot.core.errors import DuplicateStyleName
from stylebot.bot.core.images import ImageRejected, NormalizedImage, normalize_upload
from stylebot.bot.core.model import (
    Job,
    JobStatus,
    Output,
    Requester,
    Style,
    StyleStatus,
    User,
    Visibility,
)
from stylebot.bot.core.names import InvalidStyleName, normalise_style_name, trigger_phrase
from stylebot.bot.core.permissions import can_use, pick_style
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.ports import BlobStore, Clock, JobQueue, Repository, WatermarkReader
from stylebot.bot.core.replies import (
    ConsentRequest,
    ErrorReply,
    FileReply,
    ImageFile,
    ImagesReady,
    JobFinished,
    JobProgress,
    JobQueued,
    Notification,
    Reply,
    StyleChoices,
    TextReply,
)
from stylebot.bot.core.verification import verify_image
from stylebot.queue.payloads import GenerateJob, JobEvent, TrainJob

log = logging.getLogger(__name__)


# How far a variation's starting noise moves towards another seed's.
VARIATION_STRENGTH = 0.15


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


def new_output_id() -> str:
    """48 random bits: what the watermark of one image carries."""
    return secrets.token_hex(6)


def new_job_id(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(8)}"


class StyleBot:
    def __init__(
        self,
        repo: Repository,
        blobs: BlobStore,
        queue: JobQueue,
        watermark: WatermarkReader,
        clock: Clock,
        policy: Policy,
    ) -> None:
        self.repo = repo
        self.blobs = blobs
        self.queue = queue
        self.watermark = watermark
        self.clock = clock
        self.policy = policy

    async def handle(self, command: Command) -> Reply:
        match command:
            case UploadImages():
                return await self._upload(command)
            case ConfirmConsent():
                return await self._confirm_consent(command)
            case DiscardUploads():
                return await self._discard_uploads(command)
            case TrainStyle():
                return await self._train(command)
            case Imagine():
                return await self._imagine(command)
            case ListStyles():
                return await self._list_styles(command)
            case ShowStatus():
                return await self._status(command)
            case Verify():
                return await self._verify(command)
            case StyleInfo():
                return await self._style_info(command)
            case ShareStyle():
                return await self._share(command)
            case UnshareStyle():
                return await self._unshare(command)
            case DeleteStyle():
                return await self._delete(command)
            case ExportStyle():
                return await self._export(command)
            case CancelJob():
                return await self._cancel(command)
            case UsableStyles():
                return await self._usable_styles(command)
            case RerollOutput():
                return await self._again(command.requester, command.output_id, vary=False)
            case VaryOutput():
                return await self._again(command.requester, command.output_id, vary=True)
            case OutputInfo():
                return await self._output_info(command)
            case DeleteOutput():
                return await self._delete_output(command)
        raise TypeError(f"unknown command {command!r}")

    # -- uploads and consent -------------------------------------------------

    async def _user(self, requester: Requester) -> User:
        return await self.repo.get_or_create_user(
            requester.platform, requester.user_id, requester.display_name
        )

    async def _upload(self, command: UploadImages) -> Reply:
        if not command.files:
            return ErrorReply("Attach at least one image (PNG, JPEG or WebP).")
        if command.posted_by is not None and command.posted_by != command.requester.user_id:
            return ErrorReply("You can only train on images you posted yourself.")
        user = await self._user(command.requester)
        pending = await self.repo.pending_uploads(user.id)
        known = {u.blob_key for u in pending}

        # Check every file before storing any, so a bad file changes nothing.
        accepted: list[NormalizedImage] = []
        for file in command.files:
            try:
                image = normalize_upload(file.filename, file.data, self.policy.images)
            except ImageRejected as exc:
                return ErrorReply(
                    f"{_display(file.filename)}: {exc.reason} Nothing was saved; "
                    "send the images again without it."
                )
            if image.sha256 not in known and all(a.sha256 != image.sha256 for a in accepted):
                accepted.append(image)
        duplicates = len(command.files) - len(accepted)

        total = len(pending) + len(accepted)
        if total > self.policy.max_train_images:
            return ErrorReply(
                f"A style trains on at most {self.policy.max_train_images} images and you "
                f"would have {total}. Nothing was saved; send fewer images."
            )

        for image in accepted:
            key = await self.blobs.put(image.data)
            if key != image.sha256:
                raise RuntimeError(f"blob store returned {key} for content {image.sha256}")
        async with self.repo.transaction():
            for image in accepted:
                await self.repo.add_upload(
                    user.id, image.sha256, image.display_name, image.width, image.height
                )

        note = f" ({duplicates} already received, skipped)" if duplicates else ""
        return ConsentRequest(
            text=(
                f"Received {len(accepted)} image(s){note}; {total} waiting for training. "
                "Before training, confirm that you made them or hold the rights to use "
                "them, and choose a licence."
            ),
            terms=consent_terms.TERMS_TEXT,
            terms_version=consent_terms.TERMS_VERSION,
            licences=consent_terms.LICENCES,
            image_count=total,
        )

    async def _confirm_consent(self, command: ConfirmConsent) -> Reply:
        licence = consent_terms.find_licence(command.licence)
        if licence is None:
            choices = ", ".join(lic.id for lic in consent_terms.LICENCES)
            return ErrorReply(f"Unknown licence {command.licence!r}. Choose one of: {choices}.")
        if not command.rights_confirmed:
            return ErrorReply(
                "Training needs your confirmation that you made the images or hold the "
                "rights to them. Nothing was recorded."
            )
        user = await self._user(command.requester)
        pending = await self.repo.pending_uploads(user.id)
        if not pending:
            return ErrorReply("There are no images waiting. Upload images first, then confirm.")
        record = await self.repo.add_consent(
            user.id,
            licence.id,
            consent_terms.TERMS_VERSION,
            True,
            sorted(u.blob_key for u in pending),
            self.clock.now(),
        )
        return TextReply(
            f"Consent recorded (#{record.id}) for {len(pending)} image(s) under "
            f"{licence.label}. Now train a style with /train NAME."
        )

    async def _discard_uploads(self, command: DiscardUploads) -> Reply:
        user = await self._user(command.requester)
        removed = await self.repo.discard_pending_uploads(user.id)
        for key in await self.repo.unreferenced_blob_keys([u.blob_key for u in removed]):
            await self.blobs.delete(key)
        return TextReply(f"Discarded {len(removed)} waiting image(s).")

    # -- training ------------------------------------------------------------

    async def _train(self, command: TrainStyle) -> Reply:
        try:
            name = normalise_style_name(command.name)
        except InvalidStyleName as exc:
            return ErrorReply(str(exc))
        user = await self._user(command.requester)
        pending = await self.repo.pending_uploads(user.id)
        if len(pending) < self.policy.min_train_images:
            return ErrorReply(
                f"Upload at least {self.policy.min_train_images} image(s) first, "
                "then confirm your rights to them."
            )
        consent = await self.repo.latest_consent(user.id)
        if consent is None:
            return ErrorReply(
                "Confirm first that you made these images or hold the rights to them, "
                "and choose a licence (/consent)."
            )
        if set(consent.image_hashes) != {u.blob_key for u in pending}:
            return ErrorReply(
                "The waiting images changed since you confirmed your rights to them. "
                "Please confirm again for this set (/consent)."
            )
        if await self.repo.find_style(user.id, name) is not None:
            return ErrorReply(f"You already have a style named {name}. Pick another name.")
        if any(j.kind == "train" for j in await self.repo.active_jobs(user.id)):
            return ErrorReply("One of your styles is still training. Wait until it finishes.")

        now = self.clock.now()
        settings = self.policy.train
        job_id = new_job_id("train")
        try:
            async with self.repo.transaction():
                style = await self.repo.add_style(
                    user.id,
                    name,
                    trigger_phrase(name),
                    consent.id,
                    self.policy.base_model,
                    settings.to_dict(),
                    [u.id for u in pending],
                    now,
                )
                await self.repo.add_job(job_id, "train", user.id, command.requester, now, style.id)
        except DuplicateStyleName:  # a second /train with this name won the race
            return ErrorReply(f"You already have a style named {name}. Pick another name.")
        await self.queue.enqueue_train(
            TrainJob(
                job_id=job_id,
                style_id=style.id,
                trigger=style.trigger,
                image_keys=tuple(u.blob_key for u in pending),
                settings=settings,
            )
        )
        position = await self._queue_position(job_id)
        return JobQueued(
            text=(
                f"Training {name} on {len(pending)} image(s) is queued "
                f"(position {position}). Progress will follow here."
            ),
            job_id=job_id,
            kind="train",
            position=position,
        )

    # -- generation ----------------------------------------------------------

    async def _imagine(self, command: Imagine) -> Reply:
        p = self.policy
        prompt = command.prompt.strip()
        if not prompt:
            return ErrorReply("Describe the image you want, e.g. /imagine a lighthouse at dawn.")
        if len(prompt) > p.max_prompt_chars or len(command.negative_prompt) > p.max_prompt_chars:
            return ErrorReply(f"Prompts are limited to {p.max_prompt_chars} characters.")
        steps = command.steps if command.steps is not None else p.default_steps
        if not 1 <= steps <= p.max_steps:
            return ErrorReply(f"steps must be between 1 and {p.max_steps}.")
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

        user = await self._user(command.requester)
        style: Style | None = None
        if command.style:
            found = await self._resolve_style(user, command.requester, command.style)
            if isinstance(found, ErrorReply):
                return found
            style = found
        return await self._queue_generation(
            command.requester,
            user,
            style,
            GenerationSpec(
                prompt=prompt,
                negative_prompt=command.negative_prompt,
                seed=seed,
                steps=steps,
                width=width,
                height=height,
                count=command.count,
            ),
        )

    async def _queue_generation(
        self, requester: Requester, user: User, style: Style | None, spec: GenerationSpec
    ) -> JobQueued:
        p = self.policy
        now = self.clock.now()
        job_id = new_job_id("generate")
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
            )
            for i in range(spec.count)
        ]
        async with self.repo.transaction():
            await self.repo.add_job(
                job_id, "generate", user.id, requester, now, style.id if style else None
            )
            await self.repo.add_outputs(outputs)
        await self.queue.enqueue_generate(
            GenerateJob(
                job_id=job_id,
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
                trigger=style.trigger if style else None,
                base_model=style.base_model if style else p.base_model,
                variation_seed=spec.variation_seed,
                variation_strength=spec.variation_strength,
            )
        )
        position = await self._queue_position(job_id)
        in_style = f" in style {style.name}" if style else ""
        what = "A variation of" if spec.variation_seed is not None else "Imagining"
        return JobQueued(
            text=f"{what} {spec.prompt!r}{in_style} (seed {spec.seed}, position {position}).",
            job_id=job_id,
            kind="generate",
            position=position,
        )

    async def _again(self, requester: Requester, output_id: str, *, vary: bool) -> Reply:
        """Re-roll (new seed) or vary (same seed, nearby noise) an earlier image."""
        output = await self.repo.get_output(output_id)
        if output is None:
            return ErrorReply("That image is no longer available (it was deleted).")
        user = await self._user(requester)
        style: Style | None = None
        if output.style_id is not None:
            found = await self.repo.get_style(output.style_id)
            if found is None or not can_use(found, user.id, requester.scope):
                return ErrorReply(
                    "That image's style is not one you can use here, so I can't make more."
                )
            if found.status is not StyleStatus.READY or found.lora_key is None:
                return ErrorReply(f"Style {found.name} is not ready.")
            style = found
        spec = GenerationSpec(
            prompt=output.prompt,
            negative_prompt=output.negative_prompt,
            seed=output.seed if vary else secrets.randbelow(2**31),
            steps=output.steps,
            width=output.width,
            height=output.height,
            count=1,
            variation_seed=secrets.randbelow(2**31) if vary else None,
            variation_strength=VARIATION_STRENGTH if vary else 0.0,
        )
        return await self._queue_generation(requester, user, style, spec)

    async def _output_info(self, command: OutputInfo) -> Reply:
        output = await self.repo.get_output(command.output_id)
        if output is None:
            return ErrorReply("That image is no longer available (it was deleted).")
        style = await self.repo.get_style(output.style_id) if output.style_id else None
        negative = f"\nnegative: {output.negative_prompt}" if output.negative_prompt else ""
        return TextReply(
            f"prompt: {output.prompt}{negative}\n"
            f"style: {style.name if style else 'none (base model)'}\n"
            f"seed: {output.seed}, steps: {output.steps}, guidance: {output.guidance}, "
            f"size: {output.width}x{output.height}\n"
            f"output: {output.id}, made {output.created_at.isoformat(timespec='seconds')}"
        )

    async def _delete_output(self, command: DeleteOutput) -> Reply:
        output = await self.repo.get_output(command.output_id)
        if output is None:
            return ErrorReply("That image is already deleted.")
        user = await self._user(command.requester)
        if output.user_id != user.id:
            return ErrorReply("Only the person who made an image can delete it.")
        key = await self.repo.delete_output(output.id)
        if key is not None:
            for unused in await self.repo.unreferenced_blob_keys([key]):
                await self.blobs.delete(unused)
        return TextReply("Deleted the image and its record.")

    async def _resolve_style(
        self, user: User, requester: Requester, raw_name: str, *, require_ready: bool = True
    ) -> Style | ErrorReply:
        try:
            name = normalise_style_name(raw_name)
        except InvalidStyleName:
            return ErrorReply(f"There is no style named {_display(raw_name)!r}. See /styles.")
        candidates = await self.repo.candidate_styles(user.id, requester.scope)
        style = pick_style(candidates, name, user.id, requester.scope)
        if style is None:
            # Do not tell a private style exists: "not found" for both cases.
            return ErrorReply(f"There is no style named {name} that you can use here. See /styles.")
        if style.status is StyleStatus.TRAINING:
            return ErrorReply(f"Style {name} is still training. Try again when it is ready.")
        if style.status is StyleStatus.FAILED or style.lora_key is None:
            return ErrorReply(f"Style {name} failed to train; its owner can train it again.")
        return style

    # -- managing styles -------------------------------------------------------

    async def _own_style(self, requester: Requester, raw_name: str) -> Style | ErrorReply:
        """A style the requester owns; others' styles are "not yours" whatever they are."""
        try:
            name = normalise_style_name(raw_name)
        except InvalidStyleName as exc:
            return ErrorReply(str(exc))
        user = await self._user(requester)
        style = await self.repo.find_style(user.id, name)
        if style is None:
            return ErrorReply(f"You have no style named {name}. /styles lists yours.")
        return style

    async def _style_info(self, command: StyleInfo) -> Reply:
        user = await self._user(command.requester)
        found = await self._resolve_style(
            user, command.requester, command.name, require_ready=False
        )
        if isinstance(found, ErrorReply):
            return found
        style = found
        owner = await self.repo.get_user(style.owner_id)
        images = await self.repo.style_uploads(style.id)
        whose = "you" if style.owner_id == user.id else (owner.display_name if owner else "?")
        shared = {
            Visibility.PRIVATE: "private (only its owner can use it)",
            Visibility.SERVER: "shared with one server or group",
            Visibility.PUBLIC: "public (anyone can use it)",
        }[style.visibility]
        steps = style.train_settings.get("steps", "?")
        return TextReply(
            f"Style {style.name}\n"
            f"owner: {whose}\n"
            f"status: {style.status}\n"
            f"visibility: {shared}\n"
            f"trained on: {len(images)} image(s), {steps} steps\n"
            f"trigger: {style.trigger}\n"
            f"created: {style.created_at.isoformat(timespec='seconds')}"
        )

    async def _share(self, command: ShareStyle) -> Reply:
        style = await self._own_style(command.requester, command.name)
        if isinstance(style, ErrorReply):
            return style
        if command.public:
            await self.repo.set_style_visibility(style.id, Visibility.PUBLIC)
            return TextReply(f"Style {style.name} is now public: anyone can use it.")
        scope = command.requester.scope
        if scope is None:
            return ErrorReply(
                "Share from inside the server or group you want to share it with "
                "(or share it publicly)."
            )
        await self.repo.set_style_visibility(style.id, Visibility.SERVER, scope)
        return TextReply(f"Style {style.name} is now shared with the members here.")

    async def _unshare(self, command: UnshareStyle) -> Reply:
        style = await self._own_style(command.requester, command.name)
        if isinstance(style, ErrorReply):
            return style
        await self.repo.set_style_visibility(style.id, Visibility.PRIVATE)
        return TextReply(f"Style {style.name} is private again: only you can use it.")

    async def _delete(self, command: DeleteStyle) -> Reply:
        style = await self._own_style(command.requester, command.name)
        if isinstance(style, ErrorReply):
            return style
        for job in await self.repo.active_jobs(style.owner_id):
            if job.style_id == style.id:
                await self._cancel_job(job)
        images = len(await self.repo.style_uploads(style.id))
        keys = await self.repo.delete_style(style.id)
        for key in await self.repo.unreferenced_blob_keys(keys):
            await self.blobs.delete(key)
        return TextReply(
            f"Deleted style {style.name}: its {images} training image(s), its weights "
            "and the images made with it."
        )

    async def _export(self, command: ExportStyle) -> Reply:
        style = await self._own_style(command.requester, command.name)
        if isinstance(style, ErrorReply):
            return style
        if style.status is not StyleStatus.READY or style.lora_key is None:
            return ErrorReply(f"Style {style.name} has no trained weights to export yet.")
        return FileReply(
            text=(
                f"Style {style.name} as LoRA weights (safetensors). Use the trigger "
                f"phrase {style.trigger!r} in prompts."
            ),
            filename=f"{style.name}.safetensors",
            data=await self.blobs.get(style.lora_key),
        )

    async def _cancel(self, command: CancelJob) -> Reply:
        user = await self._user(command.requester)
        mine = await self.repo.active_jobs(user.id)
        if command.job_id is not None:
            mine = [j for j in mine if j.id == command.job_id]
        if not mine:
            return ErrorReply("You have no queued or running job to cancel.")
        job = mine[-1]
        await self._cancel_job(job)
        # A JobFinished, so adapters can close the job's progress message too.
        return JobFinished(
            text=f"Cancelled your {job.kind} job {job.id}.", job_id=job.id, kind=job.kind, ok=False
        )

    async def _cancel_job(self, job: Job) -> None:
        await self.queue.cancel(job.id)
        async with self.repo.transaction():
            await self.repo.update_job(job.id, JobStatus.CANCELLED, self.clock.now())
            if job.kind == "train" and job.style_id is not None:
                await self.repo.set_style_status(job.style_id, StyleStatus.FAILED)

    async def _usable_styles(self, command: UsableStyles) -> Reply:
        user = await self._user(command.requester)
        scope = command.requester.scope
        prefix = command.prefix.strip().lower()
        styles = [
            s
            for s in await self.repo.candidate_styles(user.id, scope)
            if can_use(s, user.id, scope)
            and s.status is StyleStatus.READY
            and s.name.startswith(prefix)
        ]
        styles.sort(key=lambda s: (s.owner_id != user.id, s.name))
        names = tuple(dict.fromkeys(s.name for s in styles))
        return StyleChoices(names[: command.limit])

    # -- listing, status, verify ----------------------------------------------

    async def _list_styles(self, command: ListStyles) -> Reply:
        user = await self._user(command.requester)
        scope = command.requester.scope
        styles = [
            s
            for s in await self.repo.candidate_styles(user.id, scope)
            if can_use(s, user.id, scope)
        ]
        if not styles:
            return TextReply("No styles yet. Upload images and run /train NAME to make one.")
        lines = []
        for style in styles:
            whose = "yours" if style.owner_id == user.id else _SHARED_LABEL[style.visibility]
            lines.append(f"- {style.name} ({style.status}, {whose})")
        return TextReply("Styles you can use:\n" + "\n".join(lines))

    async def _status(self, command: ShowStatus) -> Reply:
        user = await self._user(command.requester)
        everyone = await self.repo.active_jobs()
        mine = [j for j in everyone if j.user_id == user.id]
        if not mine:
            return TextReply("You have no jobs queued or running.")
        lines = [_describe_job(job, _position(everyone, job.id)) for job in mine]
        return TextReply("Your jobs:\n" + "\n".join(lines))

    async def _queue_position(self, job_id: str) -> int:
        return _position(await self.repo.active_jobs(), job_id)

    async def _verify(self, command: Verify) -> Reply:
        return await verify_image(
            self.repo, self.watermark, command.file.filename, command.file.data, self.policy.images
        )

    # -- worker events ---------------------------------------------------------

    async def handle_event(self, event: JobEvent) -> list[Notification]:
        """Record what a worker reported and say what to tell the user.

        Events can arrive twice (a front end restarting mid-delivery), so a job
        that already ended ignores further events.
        """
        job = await self.repo.get_job(event.job_id)
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
                return await self._ending(job, event, record=False)
            return []
        now = self.clock.now()
        match event.kind:
            case "started":
                await self.repo.update_job(job.id, JobStatus.RUNNING, now)
                return []
            case "progress":
                await self.repo.update_job(
                    job.id, JobStatus.RUNNING, now, step=event.step, total=event.total
                )
                return [Notification(job.origin, await self._progress_reply(job, event))]
            case "finished" | "failed":
                return await self._ending(job, event, record=True)
            case "cancelled":
                # A worker dropped the job without /cancel (it was deleted, say).
                await self.repo.update_job(job.id, JobStatus.CANCELLED, now)
                return []
        log.warning("event of unknown kind %s for job %s", event.kind, job.id)
        return []

    async def _progress_reply(self, job: Job, event: JobEvent) -> JobProgress:
        if job.kind == "train":
            style = await self.repo.get_style(job.style_id) if job.style_id else None
            loss = f", loss {event.loss:.4f}" if event.loss is not None else ""
            label = style.name if style else "style"
            text = f"Training {label}: step {event.step}/{event.total}{loss}"
        else:
            text = f"Imagining: step {event.step}/{event.total}"
        return JobProgress(text, job.id, job.kind, event.step, event.total, event.loss)

    async def _ending(self, job: Job, event: JobEvent, *, record: bool) -> list[Notification]:
        if event.kind == "failed":
            return await self._job_failed(job, event, record)
        if job.kind == "train":
            return await self._training_finished(job, event, record)
        return await self._generation_finished(job, event, record)

    async def _training_finished(
        self, job: Job, event: JobEvent, record: bool
    ) -> list[Notification]:
        result = event.train_result()
        style = await self.repo.get_style(job.style_id) if job.style_id else None
        if record:
            async with self.repo.transaction():
                if style is not None:
                    await self.repo.set_style_status(style.id, StyleStatus.READY, result.lora_key)
                await self.repo.update_job(
                    job.id,
                    JobStatus.FINISHED,
                    self.clock.now(),
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
        self, job: Job, event: JobEvent, record: bool
    ) -> list[Notification]:
        result = event.generate_result()
        expected = {o.id for o in await self.repo.job_outputs(job.id)}
        images = [i for i in result.images if i.output_id in expected]
        if len(images) != len(result.images):
            log.error("job %s returned outputs it was not given; ignored them", job.id)
        if record:
            async with self.repo.transaction():
                for image in images:
                    await self.repo.set_output_blob(image.output_id, image.blob_key, image.seed)
                await self.repo.update_job(job.id, JobStatus.FINISHED, self.clock.now())
        files = [
            ImageFile(
                image.output_id,
                f"stylebot-{image.output_id}.png",
                await self.blobs.get(image.blob_key),
            )
            for image in images
        ]
        seeds = ", ".join(str(i.seed) for i in result.images)
        return [
            Notification(
                job.origin,
                ImagesReady(
                    text=(
                        f"Here you are (seed {seeds}). "
                        "Each image is watermarked; /verify traces it."
                    ),
                    job_id=job.id,
                    images=tuple(files),
                ),
            )
        ]

    async def _job_failed(self, job: Job, event: JobEvent, record: bool) -> list[Notification]:
        error = event.error or "unknown error"
        if record:
            async with self.repo.transaction():
                if job.kind == "train" and job.style_id is not None:
                    await self.repo.set_style_status(job.style_id, StyleStatus.FAILED)
                await self.repo.update_job(job.id, JobStatus.FAILED, self.clock.now(), error=error)
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


_SHARED_LABEL = {
    Visibility.SERVER: "shared here",
    Visibility.PUBLIC: "public",
    Visibility.PRIVATE: "private",
}


def _position(active: Sequence[Job], job_id: str) -> int:
    """1-based place among queued and running jobs, oldest first."""
    for index, job in enumerate(active, start=1):
        if job.id == job_id:
            return index
    return 0


def _describe_job(job: Job, position: int) -> str:
    progress = f", step {job.step}/{job.total}" if job.total else ""
    return f"- {job.kind} {job.id}: {job.status}{progress} (position {position})"


def _display(filename: str) -> str:
    """A file name safe to echo into chat."""
    cleaned = "".join(ch for ch in filename if ch.isprintable() and ch not in "/\\")
    return cleaned[-60:] or "file"
