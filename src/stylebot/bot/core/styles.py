"""Finding, listing and managing styles: the owner decides who may use one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from stylebot.bot.core.blobs import delete_unused_blobs
from stylebot.bot.core.commands import (
    DeleteStyle,
    ExportStyle,
    ListStyles,
    ShareStyle,
    StyleInfo,
    UnshareStyle,
    UsableStyles,
)
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.evidence import record_revocation
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import Requester, Style, StyleStatus, User, Visibility
from stylebot.bot.core.names import InvalidStyleName, normalise_style_name, printable
from stylebot.bot.core.permissions import can_use, pick_style
from stylebot.bot.core.queue_cleanup import QueueCleanup
from stylebot.bot.core.quotas import ERASE, admit_erasure, record_usage
from stylebot.bot.core.replies import ErrorReply, FileReply, Reply, StyleChoices, TextReply
from stylebot.bot.core.style_metrics import metrics_lines
from stylebot.bot.core.training import validation_summary


async def resolve_style(
    deps: Deps, user: User, requester: Requester, raw_name: str, *, require_ready: bool = True
) -> Style | ErrorReply:
    try:
        name = normalise_style_name(raw_name)
    except InvalidStyleName:
        return ErrorReply(
            f"There is no style named {printable(raw_name)!r}. See {mention(CommandName.STYLES)}."
        )
    candidates = await deps.uow.styles.candidate_styles(user.id, requester.scope)
    style = pick_style(candidates, name, user.id, requester.scope)
    if style is None:
        # Do not tell a private style exists: "not found" for both cases.
        return ErrorReply(
            f"There is no style named {name} that you can use here. "
            f"See {mention(CommandName.STYLES)}."
        )
    if not require_ready:  # e.g. /style info: a style in training or failed has one too
        return style
    if style.status is StyleStatus.TRAINING:
        return ErrorReply(f"Style {name} is still training. Try again when it is ready.")
    if style.status is StyleStatus.FAILED or (style.lora_key is None and not style.embedding_key):
        return ErrorReply(f"Style {name} failed to train; its owner can train it again.")
    return style


async def own_style(deps: Deps, requester: Requester, raw_name: str) -> Style | ErrorReply:
    """A style the requester owns; others' styles are "not yours" whatever they are."""
    try:
        name = normalise_style_name(raw_name)
    except InvalidStyleName as exc:
        return ErrorReply(str(exc))
    user = await deps.user(requester)
    style = await deps.uow.styles.find_style(user.id, name)
    if style is None:
        return ErrorReply(
            f"You have no style named {name}. {mention(CommandName.STYLES)} lists yours."
        )
    return style


async def list_styles(deps: Deps, command: ListStyles) -> Reply:
    user = await deps.user(command.requester)
    scope = command.requester.scope
    styles = [
        s
        for s in await deps.uow.styles.candidate_styles(user.id, scope)
        if can_use(s, user.id, scope)
    ]
    if not styles:
        return TextReply(
            f"No styles yet. Upload images and run {mention(CommandName.TRAIN, 'NAME')} to "
            "make one.",
            private=True,
        )
    lines = []
    for style in styles:
        whose = "yours" if style.owner_id == user.id else _SHARED_LABEL[style.visibility]
        lines.append(f"- {style.name} ({style.status}, {whose})")
    # It names the asker's private styles: for their eyes only.
    return TextReply("Styles you can use:\n" + "\n".join(lines), private=True)


async def style_info(deps: Deps, command: StyleInfo) -> Reply:
    user = await deps.user(command.requester)
    found = await resolve_style(deps, user, command.requester, command.name, require_ready=False)
    if isinstance(found, ErrorReply):
        return found
    style = found
    owner = await deps.uow.users.get_user(style.owner_id)
    images = await deps.uow.uploads.style_uploads(style.id)
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
        f"{base_model_line(style)}"
        f"{await _training_lines(deps, style)}"
        f"trigger: {style.trigger}\n"
        f"created: {style.created_at.isoformat(timespec='seconds')}",
        private=True,
    )


async def _training_lines(deps: Deps, style: Style) -> str:
    """How the style was trained and what its held-out images say, a line each."""
    settings = style.train_settings
    held_out = int(str(settings.get("holdout_images", 0)))
    lines = (
        f"training: rank {settings.get('rank', '?')}, "
        f"learning rate {settings.get('learning_rate', '?')}, "
        f"{held_out} image(s) held out for validation\n"
    )
    summary = validation_summary(await deps.uow.styles.style_validation(style.id)).strip()
    if summary:
        lines += f"validation: {summary}\n"
    return lines + metrics_lines(await deps.uow.styles.style_metrics(style.id))


async def share_style(deps: Deps, command: ShareStyle) -> Reply:
    style = await own_style(deps, command.requester, command.name)
    if isinstance(style, ErrorReply):
        return style
    if command.public:
        await deps.uow.styles.set_style_visibility(style.id, Visibility.PUBLIC)
        return TextReply(f"Style {style.name} is now public: anyone can use it.")
    scope = command.requester.scope
    if scope is None:
        return ErrorReply(
            "Share from inside the server or group you want to share it with "
            "(or share it publicly)."
        )
    await deps.uow.styles.set_style_visibility(style.id, Visibility.SERVER, scope)
    return TextReply(f"Style {style.name} is now shared with the members here.")


async def unshare_style(deps: Deps, command: UnshareStyle) -> Reply:
    style = await own_style(deps, command.requester, command.name)
    if isinstance(style, ErrorReply):
        return style
    await deps.uow.styles.set_style_visibility(style.id, Visibility.PRIVATE)
    return TextReply(f"Style {style.name} is private again: only you can use it.")


async def delete_style(deps: Deps, command: DeleteStyle) -> Reply:
    style = await own_style(deps, command.requester, command.name)
    if isinstance(style, ErrorReply):
        return style
    refused = await admit_erasure(deps, command.requester)
    if refused is not None:
        return refused
    await record_usage(deps, command.requester, ERASE, 1)
    revoked = await revoke_style(deps, style, "the owner deleted the style")
    return TextReply(
        f"Deleted style {style.name}: its {revoked.images} training image(s), its weights "
        "and the images made with it."
    )


@dataclass(frozen=True)
class RevokedStyle:
    images: int  # training images the style had
    deleted_blobs: int  # blobs removed from the store (those nothing else used)


@dataclass(frozen=True)
class StyleRecordsDeleted:
    """What `delete_style_records` did in SQLite, and what the queue still owes."""

    images: int
    unused_blobs: frozenset[str]  # to delete after the commit
    queue: QueueCleanup


async def revoke_style(deps: Deps, style: Style, reason: str) -> RevokedStyle:
    """Make a style unusable at once and remove it: stop every queued or running job
    that uses it (anyone's: a worker may hold its weights in memory), delete its
    records together with a revocation entry in the ledger, then delete the blobs
    nothing else uses. /style delete and the admins' removal.

    Beyond the records: the queue forgets every job that used the style (their
    payloads hold its name and trigger), workers drop their cached copies of its
    weights, and the queue's store rewrites its files. That work is recorded with the
    deletion and carried out after it (`queue_cleanup`): an unreachable queue delays
    it, never the deletion.

    Under the admission lock (`Deps.admission`), SQLite work only: a request for this
    style admitted before it has its job cancelled here, and one admitted after finds
    no style.
    """
    async with deps.admission, deps.uow:
        deleted = await delete_style_records(deps, style, reason)
        await deps.queue_cleanup.record(deps, replace(deleted.queue, rewrite_files=True))
    removed = await finish_deletion(deps, deleted.unused_blobs)
    return RevokedStyle(images=deleted.images, deleted_blobs=removed)


async def delete_style_records(deps: Deps, style: Style, reason: str) -> StyleRecordsDeleted:
    """Inside the caller's transaction and admission lock: the jobs using the style are
    recorded cancelled, its records deleted with a revocation entry in the ledger."""
    job_ids_to_stop: list[str] = []
    for job in await deps.uow.jobs.active_jobs():
        if job.style_id == style.id:
            await deps.uow.jobs.cancel_active_job(job.id, deps.clock.now())
            job_ids_to_stop.append(job.id)
    uploads = await deps.uow.uploads.style_uploads(style.id)
    # Read before delete_style, which unlinks the jobs and the export from the style.
    job_ids = await deps.uow.jobs.job_ids(style_id=style.id)
    weights = {
        style.lora_key,
        style.embedding_key,
        await deps.uow.styles.style_export_key(style.id),
    }
    keys = await deps.uow.styles.delete_style(style.id)
    unused = await deps.uow.unreferenced_blob_keys(keys)
    await record_revocation(deps, style, [u.blob_key for u in uploads], len(unused), reason)
    return StyleRecordsDeleted(
        images=len(uploads),
        unused_blobs=frozenset(unused),
        queue=QueueCleanup(
            cancel_job_ids=tuple(job_ids_to_stop),
            forget_job_ids=tuple(job_ids),
            # Only weights nothing else uses: another style with the same bytes keeps its copy.
            revoke_blob_keys=tuple(sorted(key for key in weights if key and key in unused)),
        ),
    )


async def finish_deletion(deps: Deps, unused_blobs: Iterable[str]) -> int:
    """After a deletion's commit: its blobs, the queue's part (recorded with it), then
    the deleted rows' traces in the database's files. Returns how many blobs went."""
    removed = await delete_unused_blobs(deps, unused_blobs)
    # Its records name what was erased (job ids, the owner's queue key): after them.
    await deps.queue_cleanup.carry_out(deps)
    await deps.uow.wipe_deleted()
    return removed


async def export_style(deps: Deps, command: ExportStyle) -> Reply:
    style = await own_style(deps, command.requester, command.name)
    if isinstance(style, ErrorReply):
        return style
    if style.status is StyleStatus.READY and style.lora_key is None and style.embedding_key:
        # Trained as a textual-inversion embedding only: that file is the style.
        return FileReply(
            text=(
                f"Style {style.name} as a textual-inversion embedding (safetensors, "
                "AUTOMATIC1111/diffusers layout): it loads in AUTOMATIC1111 (embeddings) "
                "and diffusers (pipe.load_textual_inversion(path, token=...)); put its "
                f"token before the trigger phrase {style.trigger!r} in prompts."
            ),
            filename=f"{style.name}-embedding.safetensors",
            data=await deps.blobs.get(style.embedding_key),
        )
    if style.status is not StyleStatus.READY or style.lora_key is None:
        return ErrorReply(f"Style {style.name} has no trained weights to export yet.")
    # Style names are [a-z][a-z0-9_-]*, so the file name is safe on every platform.
    filename = f"{style.name}.safetensors"
    trigger = f"Use the trigger phrase {style.trigger!r} in prompts."
    export_key = await deps.uow.styles.style_export_key(style.id)
    if export_key is None:
        # Trained before stylebot wrote kohya-layout files: the weights it has.
        return FileReply(
            text=(
                f"Style {style.name} as LoRA weights in diffusers' layout (safetensors). "
                "It was trained before stylebot exported AUTOMATIC1111/ComfyUI files, so "
                "it loads in diffusers (pipe.load_lora_weights) but other tools may not "
                "read it, and it carries no metadata; train it again for a file that loads "
                f"everywhere. {trigger}"
            ),
            filename=filename,
            data=await deps.blobs.get(style.lora_key),
        )
    return FileReply(
        text=(
            f"Style {style.name} as a LoRA in kohya's format (safetensors): it loads in "
            "AUTOMATIC1111/Forge (models/Lora), ComfyUI (models/loras, LoraLoader) and "
            f"diffusers (pipe.load_lora_weights), on the base model it was trained on "
            f"({_model_name(style.base_model)}).{_base_licence(style)} {trigger} Its "
            "metadata records the base "
            "model, the trigger, the training settings, the licence, the consent record "
            f"and a hash of the weights.{_embedding_left_out(style)}"
        ),
        filename=filename,
        data=await deps.blobs.get(export_key),
    )


def _base_licence(style: Style) -> str:
    """The base model's licence travels with the file: say which it is."""
    if not style.base_model_licence:
        return ""
    return f" The base model's licence applies to its use: {style.base_model_licence}."


def _embedding_left_out(style: Style) -> str:
    """Trained both ways: say that the file is the LoRA alone, so no one is surprised."""
    if not style.embedding_key:
        return ""
    return (
        " Here the style also uses a textual-inversion embedding trained with it; this "
        "file holds the LoRA alone, so elsewhere the style may come out a little weaker."
    )


# A base model's family variant (queue.payloads.TrainedBase.variant) as people call it.
_VARIANT_NAMES = {
    "sd15": "Stable Diffusion 1.5",
    "sd2": "Stable Diffusion 2.x",
    "sdxl": "SDXL",
    "flux-dev": "FLUX.1 [dev]",
    "flux-schnell": "FLUX.1 [schnell]",
    "sd3-medium": "Stable Diffusion 3.5 Medium",
    "sd3-large": "Stable Diffusion 3.5 Large",
}


def base_model_line(style: Style) -> str:
    """The base model the style trained on, its family and its licence, as a line."""
    line = f"base model: {_model_name(style.base_model)}"
    if style.base_model_variant:
        line += f" ({_VARIANT_NAMES.get(style.base_model_variant, style.base_model_variant)})"
    if style.base_model_licence:
        line += f", licence: {style.base_model_licence}"
        if style.base_model_licence_url:
            line += f" ({style.base_model_licence_url})"
    return line + "\n"


def _model_name(base_model: str) -> str:
    """A model's name for chat: a hub id (org/name) as is, a local path by its last part."""
    parts = [part for part in base_model.replace("\\", "/").split("/") if part]
    if len(parts) == 2 and not base_model.startswith(("/", ".", "~")):
        return base_model
    return parts[-1] if parts else "unknown"


async def usable_styles(deps: Deps, command: UsableStyles) -> Reply:
    user = await deps.user(command.requester)
    scope = command.requester.scope
    prefix = command.prefix.strip().lower()
    styles = [
        s
        for s in await deps.uow.styles.candidate_styles(user.id, scope)
        if can_use(s, user.id, scope)
        and s.status is StyleStatus.READY
        and s.name.startswith(prefix)
    ]
    styles.sort(key=lambda s: (s.owner_id != user.id, s.name))
    names = tuple(dict.fromkeys(s.name for s in styles))
    return StyleChoices(names[: command.limit])


_SHARED_LABEL = {
    Visibility.SERVER: "shared here",
    Visibility.PUBLIC: "public",
    Visibility.PRIVATE: "private",
}
