"""Reference images and consent: what must happen before any training."""

from __future__ import annotations

import asyncio

from stylebot.bot.core import consent as consent_terms
from stylebot.bot.core.blobs import delete_unused_blobs
from stylebot.bot.core.captions import captions_digest, fitted_caption
from stylebot.bot.core.commands import ConfirmConsent, DiscardUploads, TrainStyle, UploadImages
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.embedding_duplicates import queue_comparison
from stylebot.bot.core.evidence import consent_images, record_consent
from stylebot.bot.core.image_work import admit_image_work, run_image_work
from stylebot.bot.core.images import ImageRejected, NormalizedImage, normalize_upload
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import NewConsent, Requester
from stylebot.bot.core.names import printable
from stylebot.bot.core.near_duplicates import (
    NamedHash,
    near_duplicate_pairs,
    near_duplicates_note,
    waiting_hashes,
)
from stylebot.bot.core.optout import OptedOutImage, find_opted_out
from stylebot.bot.core.perceptual import (
    NEAR_DUPLICATE_BITS,
    PerceptualHash,
    perceptual_hash_of_png,
)
from stylebot.bot.core.replies import (
    ConsentRequest,
    ErrorReply,
    Reply,
    TextReply,
    TrainingRefused,
)
from stylebot.bot.core.training import train_style
from stylebot.bot.core.training_rights import training_reservation


async def upload_images(deps: Deps, command: UploadImages) -> Reply:
    if not command.files:
        return ErrorReply("Attach at least one image (PNG, JPEG or WebP).")
    if command.posted_by is not None and command.posted_by != command.requester.user_id:
        return ErrorReply("You can only train on images you posted yourself.")
    refused = await admit_image_work(deps, command.requester, command.files)
    if refused is not None:
        return refused
    user = await deps.user(command.requester)
    pending = await deps.uow.uploads.pending_uploads(user.id)
    known = {u.blob_key for u in pending}

    # Check every file before storing any, so a bad file changes nothing.
    accepted: list[tuple[NormalizedImage, str | None]] = []
    new_hashes: list[NamedHash] = []  # of the accepted images, to point out near-duplicates
    # Already waiting: stored again all the same, which repairs a damaged stored copy.
    sent_again: list[NormalizedImage] = []
    for file in command.files:
        try:
            # Decoding is CPU work (seconds for a large photo): off the event loop, so
            # other chats are answered meanwhile, and a few at a time (image_work).
            image = await run_image_work(
                deps, normalize_upload, file.filename, file.data, deps.policy.images
            )
        except ImageRejected as exc:
            return ErrorReply(
                f"{printable(file.filename)}: {exc.reason} Nothing was saved; "
                "send the images again without it."
            )
        # The raw bytes, before normalising dropped the metadata that may reserve them.
        reservation = training_reservation(file.data)
        if reservation is not None:
            return ErrorReply(
                f"“{image.display_name}” can't be used to train a style: {reservation}. "
                "Nothing was saved; send the images again without it."
            )
        phash = await run_image_work(deps, perceptual_hash_of_png, image.data)
        copied = await copies_opted_out(deps, image, phash, command.requester)
        if copied is not None:
            return ErrorReply(
                f"“{image.display_name}” matches an image its artist registered with "
                f"{mention(CommandName.OPTOUT)}, so it can't be used to train a style here. "
                "Nothing was saved; "
                "send the images again without it."
            )
        if image.sha256 in known:
            sent_again.append(image)
        elif all(a.sha256 != image.sha256 for a, _ in accepted):
            accepted.append((image, fitted_caption(file.caption)))
            new_hashes.append((image.display_name, phash))
    duplicates = len(command.files) - len(accepted)

    total = len(pending) + len(accepted)
    if total > deps.policy.max_train_images:
        return ErrorReply(
            f"A style trains on at most {deps.policy.max_train_images} images and you "
            f"would have {total}. Nothing was saved; send fewer images."
        )

    # Until the records exist nothing names these blobs: see stylebot.bot.core.blobs.
    try:
        async with deps.blob_lock:
            # Images already waiting are stored again: that repairs a damaged copy.
            for image in [*(a for a, _ in accepted), *sent_again]:
                key = await deps.blobs.put(image.data)
                if key != image.sha256:
                    raise RuntimeError(f"blob store returned {key} for content {image.sha256}")
            async with deps.uow:
                for image, caption in accepted:
                    await deps.uow.uploads.add_upload(
                        user.id,
                        image.sha256,
                        image.display_name,
                        image.width,
                        image.height,
                        caption,
                    )
    except BaseException:
        # Nothing was saved (a full disk, say): no blob may stay behind without its record.
        await asyncio.shield(delete_unused_blobs(deps, [image.sha256 for image, _ in accepted]))
        raise

    note = f" ({duplicates} already received, skipped)" if duplicates else ""
    pairs = near_duplicate_pairs(await waiting_hashes(deps, pending), new_hashes)
    keys = [*(u.blob_key for u in pending), *(image.sha256 for image, _ in accepted)]
    await queue_comparison(deps, command.requester, user, keys, first_new=len(pending))
    return ConsentRequest(
        text=(
            f"Received {len(accepted)} image(s){note}; {total} waiting for training. "
            "Before training, confirm that you made them or hold the rights to use "
            "them, and choose a licence. "
            f"{mention(CommandName.CAPTIONS)} shows and changes what each image is captioned."
            f"{near_duplicates_note(pairs)}"
        ),
        terms=consent_terms.TERMS_TEXT,
        terms_version=consent_terms.TERMS_VERSION,
        licences=consent_terms.LICENCES,
        image_count=total,
    )


async def confirm_consent(deps: Deps, command: ConfirmConsent) -> Reply:
    """Record consent, then start the training it names (if it names one)."""
    consented = await _record_consent(deps, command)
    if isinstance(consented, ErrorReply) or not command.train_as:
        return consented
    queued = await train_style(
        deps, TrainStyle(command.requester, command.train_as, variant=command.train_variant)
    )
    return TrainingRefused(queued.text) if isinstance(queued, ErrorReply) else queued


async def _record_consent(deps: Deps, command: ConfirmConsent) -> Reply:
    licence = consent_terms.find_licence(command.licence)
    if licence is None:
        choices = ", ".join(lic.id for lic in consent_terms.LICENCES)
        return ErrorReply(f"Unknown licence {command.licence!r}. Choose one of: {choices}.")
    if not command.rights_confirmed:
        return ErrorReply(
            "Training needs your confirmation that you made the images or hold the "
            "rights to them. Nothing was recorded."
        )
    if command.identifiable_people and not command.people_agreed:
        return ErrorReply(
            "Recognisable people in the images must have agreed to their use for "
            "training. Nothing was recorded; discard these images and upload a set "
            "without them, or confirm that they agreed."
        )
    user = await deps.user(command.requester)
    pending = await deps.uow.uploads.pending_uploads(user.id)
    if not pending:
        return ErrorReply("There are no images waiting. Upload images first, then confirm.")
    images = await consent_images(deps, pending)
    # The consent record and its ledger entry land together or not at all.
    async with deps.uow:
        record = await deps.uow.consents.add_consent(
            NewConsent(
                user.id,
                licence.id,
                consent_terms.TERMS_VERSION,
                True,
                sorted(u.blob_key for u in pending),
                deps.clock.now(),
                captions_digest(pending),
            )
        )
        await record_consent(
            deps, user, record, images, command.identifiable_people, command.people_agreed
        )
    return TextReply(
        f"Consent recorded (#{record.id}) for {len(pending)} image(s) under "
        f"{licence.label}. Now train a style with {mention(CommandName.TRAIN, 'NAME')}."
    )


async def discard_uploads(deps: Deps, command: DiscardUploads) -> Reply:
    user = await deps.user(command.requester)
    removed = await deps.uow.uploads.discard_pending_uploads(user.id)
    await delete_unused_blobs(deps, [u.blob_key for u in removed])
    return TextReply(f"Discarded {len(removed)} waiting image(s).")


async def copies_opted_out(
    deps: Deps, image: NormalizedImage, phash: PerceptualHash, requester: Requester
) -> OptedOutImage | None:
    # The registry's index finds the few registrations that may match; only those are
    # compared, whatever the size of the registry.
    found = await deps.uow.optouts.candidates(image.sha256, phash, NEAR_DUPLICATE_BITS)
    return find_opted_out(found, image.sha256, phash, requester.platform, requester.user_id)
