"""/forgetme: erase everything of a user on one platform, at their request.

What goes, in one transaction with the ledger's entries, under the admission lock:

1. every style they own, as /style delete does (`styles.delete_style_records`): jobs
   using it (anyone's) are recorded cancelled, its training images, weights and every
   image made with it are deleted, and a revocation entry is appended to the ledger;
2. their other queued or running jobs are recorded cancelled;
3. their remaining records, with an erasure entry in the ledger: images waiting for
   training, unused consents, the images they generated (with anyone's style), their
   job history, their usage rows (quotas, rate limits: those the limits still count
   are kept a day at most under a one-way code, so erasing resets no limit), their
   user row (deleted, not anonymised: nothing else needs it once the rest is gone),
   and their opt-outs are handed to an anonymous id;
4. the queue's part, recorded as a pending clean-up (`queue_cleanup`): the jobs to stop
   and forget (payloads with their prompts, results, events, their place in the fair
   order), the weights workers must drop from their caches, a rewrite of the queue's
   files on disk (Redis's append-only file).

After the commit: the blobs those records named that nothing else uses (a blob is
shared by content, so another user's upload of the same image keeps it), the
database's write-ahead log is emptied (deleted rows are zeroed in the file itself),
and the queue's part is carried out. If the queue is unreachable, the erasure is still
done and the user told so; the queue's part waits in the database and is carried out
when the queue answers again (retried, and at the next start).

What stays, and why:

* the consent ledger. It is the evidence that what was trained had been agreed to, and
  that it was revoked and erased: append-only and hash-chained, so old entries are not
  rewritten. It holds ids (platform, platform user id, record ids), SHA-256 and
  perceptual hashes, the licence and terms' version, counts and times; no image, name or
  text the user wrote (see stylebot.bot.core.ledger).
* their /optout registrations: an artist who asks to be forgotten still does not want
  others to train on their work. The image hashes stay in force, handed to an anonymous
  id, so nothing links them to the person any more. (A consequence the reply states:
  should they come back, their own uploads of those images are refused like anyone's.)
* bans and the admin log, which are the operators' records (stylebot.storage.admin).

Erasing twice is safe: the second run finds little or nothing and says so.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from stylebot.bot.core.commands import EraseMyData
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.jobs import job_owner
from stylebot.bot.core.ledger import LedgerKind, erasure_payload
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import Job, Output, Requester, Style, Upload, User
from stylebot.bot.core.queue_cleanup import QueueCleanup
from stylebot.bot.core.quotas import (
    ERASE,
    admit_erasure,
    record_usage,
    usage_counted_since,
)
from stylebot.bot.core.replies import ErasureConfirmation, Reply, TextReply
from stylebot.bot.core.styles import delete_style_records, finish_deletion

ERASURE_REASON = "the owner asked for their data to be erased"


@dataclass(frozen=True)
class _Holdings:
    """What we hold of one person, as found before anything is erased."""

    user: User | None
    styles: tuple[Style, ...]
    style_images: int
    pending: tuple[Upload, ...]
    own_outputs: tuple[Output, ...]  # made by them, with any style
    others_outputs: int  # made by others with their styles
    jobs: tuple[Job, ...]  # queued or running
    optouts: int

    @property
    def images(self) -> int:
        return self.style_images + len(self.pending)

    @property
    def outputs(self) -> int:
        return len(self.own_outputs) + self.others_outputs


async def erase_my_data(deps: Deps, command: EraseMyData) -> Reply:
    if not command.confirmed:
        return _confirmation(await _holdings(deps, command.requester))
    # The SQLite part under the admission lock: a request admitted before it has its
    # job (committed and queued under the lock) cancelled and forgotten here; one after
    # it finds nothing of theirs. The queue's part runs after the lock, from the
    # clean-up recorded with the erasure, so an unreachable queue delays only it.
    async with deps.admission:
        holdings = await _holdings(deps, command.requester)
        if holdings.user is not None:  # else nothing to erase, and nothing to rewrite
            refused = await admit_erasure(deps, command.requester)
            if refused is not None:
                return refused
        unused_blobs = await _erase_records(deps, command.requester, holdings)
    return _erased_reply(holdings, await finish_deletion(deps, unused_blobs))


async def _holdings(deps: Deps, requester: Requester) -> _Holdings:
    optouts = await deps.uow.optouts.count_naming(requester.platform, requester.user_id)
    user = await deps.uow.users.find_user(requester.platform, requester.user_id)
    if user is None:
        return _Holdings(None, (), 0, (), (), 0, (), optouts)
    styles = tuple(
        s for s in await deps.uow.styles.candidate_styles(user.id, None) if s.owner_id == user.id
    )
    style_images = 0
    others_outputs = 0
    for style in styles:
        style_images += len(await deps.uow.uploads.style_uploads(style.id))
        others_outputs += sum(
            1 for o in await deps.uow.outputs.style_outputs(style.id) if o.user_id != user.id
        )
    return _Holdings(
        user=user,
        styles=styles,
        style_images=style_images,
        pending=tuple(await deps.uow.uploads.pending_uploads(user.id)),
        own_outputs=tuple(await deps.uow.outputs.user_outputs(user.id)),
        others_outputs=others_outputs,
        jobs=tuple(await deps.uow.jobs.active_jobs(user.id)),
        optouts=optouts,
    )


async def _forget_usage_and_unlink_optouts(deps: Deps, requester: Requester, h: _Holdings) -> None:
    """Inside the caller's `async with deps.uow:`, so these commit or roll back with
    the erasure."""
    # Recent requests keep counting (under a code), or erasing would reset limits.
    await deps.uow.usage.forget(requester.user_key, usage_counted_since(deps))
    if h.optouts:
        await deps.uow.optouts.reassign(
            requester.platform, requester.user_id, f"erased-{secrets.token_hex(8)}"
        )


def _confirmation(h: _Holdings) -> ErasureConfirmation:
    # The counts and the question first, the names (as many as they made) last.
    names = ", ".join(s.name for s in h.styles)
    listed = f"\nYour styles: {names}" if names else ""
    jobs = f", and stops your {len(h.jobs)} queued or running job(s)" if h.jobs else ""
    return ErasureConfirmation(
        text=(
            f"This erases everything of yours here: {len(h.styles)} style(s), {h.images} "
            f"reference image(s), {h.outputs} generated image(s) (yours, and those others "
            f"made with your styles), your job history and usage{jobs}. "
            f"{_what_stays(h.optouts)} This cannot be undone. Confirm to go ahead.{listed}"
        ),
        styles=len(h.styles),
        images=h.images,
        outputs=h.outputs,
    )


def _what_stays(optouts: int) -> str:
    kept = (
        "The consent ledger keeps its records of what was agreed and that it was erased "
        "(ids and image fingerprints, no images). Your requests of the last day still "
        "count towards your limits until they expire, under a code, not your name."
    )
    if optouts:
        kept += (
            f" Your {optouts} {mention(CommandName.OPTOUT)} registration(s) stay in force as "
            "fingerprints only, no longer linked to you; if you come back, your own uploads of "
            "those images are refused too."
        )
    return kept


async def _erase_records(deps: Deps, requester: Requester, h: _Holdings) -> frozenset[str]:
    """Every record in one transaction, with the ledger's entries and the queue's
    clean-up: all of it commits, or none of it."""
    user = h.user
    if user is None:
        # No user row (never used the bot, or erased before): usage and opt-outs only.
        async with deps.uow:
            await _forget_usage_and_unlink_optouts(deps, requester, h)
        return frozenset()
    unused: set[str] = set()
    cleanup = QueueCleanup(owner=job_owner(user), rewrite_files=True)
    async with deps.uow:
        for style in h.styles:
            deleted = await delete_style_records(deps, style, ERASURE_REASON)
            unused |= deleted.unused_blobs
            cleanup = _joined(cleanup, deleted.queue)
        # Jobs that used someone else's style, or none: the style deletions stopped the rest.
        active = await deps.uow.jobs.active_jobs(user.id)
        for job in active:
            await deps.uow.jobs.cancel_active_job(job.id, deps.clock.now())
        job_ids = await deps.uow.jobs.job_ids(user_id=user.id)
        cleanup = _joined(
            cleanup,
            QueueCleanup(
                cancel_job_ids=tuple(job.id for job in active), forget_job_ids=tuple(job_ids)
            ),
        )
        keys = await deps.uow.users.erase_user(user.id)
        unused |= await deps.uow.unreferenced_blob_keys(keys)
        # Counted with the erasure (a failed one counts not), under a code like the rest.
        await record_usage(deps, requester, ERASE, 1)
        await _forget_usage_and_unlink_optouts(deps, requester, h)
        payload = erasure_payload(
            platform=user.platform,
            platform_user_id=user.platform_user_id,
            style_ids=[s.id for s in h.styles],
            uploads=len(h.pending),
            outputs=len(h.own_outputs),
            cancelled_jobs=len(h.jobs),
            deleted_blobs=len(unused),
            optouts_kept=h.optouts,
        )
        await deps.uow.ledger.append(LedgerKind.ERASURE, payload, deps.clock.now())
        await deps.queue_cleanup.record(deps, cleanup)
    return frozenset(unused)  # the blobs to delete after the commit


def _joined(a: QueueCleanup, b: QueueCleanup) -> QueueCleanup:
    return QueueCleanup(
        cancel_job_ids=tuple(dict.fromkeys(a.cancel_job_ids + b.cancel_job_ids)),
        forget_job_ids=tuple(dict.fromkeys(a.forget_job_ids + b.forget_job_ids)),
        owner=a.owner or b.owner,
        revoke_blob_keys=tuple(dict.fromkeys(a.revoke_blob_keys + b.revoke_blob_keys)),
        rewrite_files=a.rewrite_files or b.rewrite_files,
    )


def _erased_reply(h: _Holdings, deleted_blobs: int) -> Reply:
    if h.user is None and not h.optouts:
        return TextReply("There was nothing of yours stored here; nothing to erase.")
    return TextReply(
        f"Erased: {len(h.styles)} style(s), {h.images} reference image(s) and "
        f"{h.outputs} generated image(s), with your jobs and "
        f"usage; {deleted_blobs} file(s) were removed from storage. "
        f"{_what_stays(h.optouts)}"
    )
