"""The bot core: turns commands into replies and worker events into notifications.

It holds every business rule (consent, permissions, limits), in one handler
module per concern, and talks to the world only through its ports, so each
platform adapter stays a translator.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from stylebot.bot.core import (
    admin,
    artist_optout,
    caption_suggestions,
    captions,
    erasure,
    events,
    extend,
    generation,
    jobs,
    optout_review,
    reconcile,
    restyle,
    styles,
    training,
    uploads,
    upscale,
)
from stylebot.bot.core.admin_commands import (
    AdminCommand,
    BanUser,
    ListOptOuts,
    PauseTraining,
    RemoveOptOuts,
    RemoveSharedStyle,
    ResumeTraining,
    SetQuota,
    ShowQueue,
    UnbanUser,
)
from stylebot.bot.core.admin_ports import AdminPorts
from stylebot.bot.core.commands import (
    AcceptCaptions,
    CancelJob,
    Command,
    ConfirmConsent,
    DeleteOutput,
    DeleteStyle,
    DiscardUploads,
    EraseMyData,
    ExportStyle,
    ExtendOutput,
    Imagine,
    ListStyles,
    OptOut,
    OutputInfo,
    RerollOutput,
    Restyle,
    SetCaption,
    ShareStyle,
    ShowCaptions,
    ShowStatus,
    StyleInfo,
    SuggestCaptions,
    TrainStyle,
    UnshareStyle,
    UploadImages,
    UpscaleOutput,
    UsableStyles,
    VaryOutput,
    Verify,
)
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.errors import (
    QUEUE_UNAVAILABLE_TEXT,
    STORAGE_FULL_MESSAGE,
    DamagedBlob,
    QueueUnavailable,
    StorageFull,
)
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.ports import (
    BlobStore,
    Clock,
    ContentCredentialsReader,
    JobQueue,
    WatermarkReader,
)
from stylebot.bot.core.replies import ErrorReply, Notification, Reply
from stylebot.bot.core.stores import UnitOfWork
from stylebot.bot.core.verification import verify
from stylebot.queue.payloads import JobEvent

Handler = Callable[[Deps, Any], Awaitable[Reply]]
STORAGE_FULL_REPLY = f"Sorry: {STORAGE_FULL_MESSAGE}. Please try again later."

log = logging.getLogger(__name__)

DAMAGED_FILE = (
    "A stored file this needs is damaged, so nothing was done. If it is one of your "
    f"waiting images, send it again (that repairs it) or discard them with "
    f"{mention(CommandName.DISCARD)}; otherwise the "
    "operator has to restore it from a backup."
)


async def _reroll(deps: Deps, command: RerollOutput) -> Reply:
    return await generation.generate_again(deps, command.requester, command.output_id, vary=False)


async def _vary(deps: Deps, command: VaryOutput) -> Reply:
    return await generation.generate_again(deps, command.requester, command.output_id, vary=True)


HANDLERS: dict[type, Handler] = {
    UploadImages: uploads.upload_images,
    ConfirmConsent: uploads.confirm_consent,
    DiscardUploads: uploads.discard_uploads,
    ShowCaptions: captions.show_captions,
    SetCaption: captions.set_caption,
    SuggestCaptions: caption_suggestions.suggest_captions,
    AcceptCaptions: caption_suggestions.accept_captions,
    TrainStyle: training.train_style,
    Imagine: generation.imagine,
    Restyle: restyle.restyle,
    RerollOutput: _reroll,
    VaryOutput: _vary,
    UpscaleOutput: upscale.upscale_output,
    ExtendOutput: extend.extend_output,
    OutputInfo: generation.output_info,
    DeleteOutput: generation.delete_output,
    ListStyles: styles.list_styles,
    StyleInfo: styles.style_info,
    ShareStyle: styles.share_style,
    UnshareStyle: styles.unshare_style,
    DeleteStyle: styles.delete_style,
    ExportStyle: styles.export_style,
    UsableStyles: styles.usable_styles,
    ShowStatus: jobs.show_status,
    CancelJob: jobs.cancel,
    Verify: verify,
    PauseTraining: admin.handle_pause_training,
    ResumeTraining: admin.handle_resume_training,
    SetQuota: admin.handle_set_quota,
    RemoveSharedStyle: admin.handle_remove_shared_style,
    BanUser: admin.handle_ban_user,
    UnbanUser: admin.handle_unban_user,
    ShowQueue: admin.handle_show_queue,
    ListOptOuts: optout_review.handle_list_optouts,
    RemoveOptOuts: optout_review.handle_remove_optouts,
    OptOut: artist_optout.opt_out,
    EraseMyData: erasure.erase_my_data,
}


class StyleBot:
    def __init__(
        self,
        uow: UnitOfWork,
        blobs: BlobStore,
        queue: JobQueue,
        watermark: WatermarkReader,
        clock: Clock,
        policy: Policy,
        *,
        credentials: ContentCredentialsReader,
        admin: AdminPorts,
    ) -> None:
        self.deps = Deps(uow, blobs, queue, watermark, clock, policy, credentials, admin)

    @property
    def policy(self) -> Policy:
        return self.deps.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self.deps.policy = policy

    async def handle(self, command: Command | AdminCommand) -> Reply:
        handler = HANDLERS.get(type(command))
        if handler is None:
            raise TypeError(f"no handler for {type(command).__name__}")
        try:
            # A ban stops use of the bot, not the right to have one's data erased.
            if not isinstance(command, EraseMyData):
                refusal = await admin.banned_refusal(self.deps, command.requester)
                if refusal is not None:
                    return refusal
            return await handler(self.deps, command)
        except QueueUnavailable:
            # Raised before anything was queued or recorded (see training, generation).
            return ErrorReply(QUEUE_UNAVAILABLE_TEXT)
        except StorageFull as full:
            # The operator's one line; the user's plain answer (the write was undone).
            log.error("%s refused: %s", type(command).__name__, full)
            return ErrorReply(STORAGE_FULL_REPLY)
        except DamagedBlob as exc:
            # Said once, in words, to both; never a crash that repeats at every retry.
            # No person in the line (blob key and command name say what to restore).
            log.error(
                "%s on %s failed: %s; restore the blob store (STYLEBOT_BLOB_URL) from a "
                "backup, or have the user send the image again",
                type(command).__name__,
                command.requester.platform,
                exc,
            )
            return ErrorReply(DAMAGED_FILE)

    async def handle_event(self, event: JobEvent) -> list[Notification]:
        return await events.handle_event(self.deps, event)

    async def carry_out_queue_cleanups(self) -> bool:
        """The queue's part of erasures and deletions still recorded (`queue_cleanup`):
        at start and when the queue is reachable again. True when none is left;
        on failure it is retried on a backoff."""
        return await self.deps.queue_cleanup.carry_out(self.deps)

    async def stop_queue_cleanups(self) -> None:
        """Cancel a scheduled retry; what is left stays recorded for the next start."""
        await self.deps.queue_cleanup.stop()

    async def reconcile_with_queue(self) -> list[str]:
        """Fail the jobs the queue lost (see `reconcile`); at start and after an outage."""
        return await reconcile.reconcile_with_queue(self.deps)
