"""Trace an image back to its output record through the invisible watermark.

The watermark has no key: anyone can copy a real output id (file names and captions show
them) into any picture. So a mark alone attributes nothing; while the output's image is
still stored, the submitted picture must also look like it (perceptual hash) before its
record is shown.
"""

from __future__ import annotations

import asyncio

from stylebot.bot.core.commands import Verify
from stylebot.bot.core.credentials import with_credentials
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.image_work import admit_image_work
from stylebot.bot.core.images import ImageLimits, ImageRejected, normalize_for_reading
from stylebot.bot.core.model import Output
from stylebot.bot.core.perceptual import hamming, perceptual_hash_of_png
from stylebot.bot.core.ports import BlobStore, Repository, WatermarkReader
from stylebot.bot.core.replies import ErrorReply, Reply, VerifyReport

__all__ = ["SAME_OUTPUT_BITS", "same_picture", "verify", "verify_image"]

#: At most this many of the 64 perceptual-hash bits may differ for a picture to count as
#: the output its mark names. The edits the watermark survives (JPEG q60, half size and
#: back, Telegram's 1280 px JPEG q87) move a few bits on generated images; an unrelated
#: picture differs in about 32 +- 6, so 10 (the opt-out threshold) leaves room both ways.
SAME_OUTPUT_BITS = 10
DEFAULT_READ_SIDE = 1024  # Policy.max_size's default


def same_picture(submitted_png: bytes, stored_png: bytes) -> bool:
    """Whether a normalised upload shows the stored output image (CPU-bound: run it in a
    thread)."""
    submitted = perceptual_hash_of_png(submitted_png)
    stored = perceptual_hash_of_png(stored_png)
    if not stored.informative:
        # A (nearly) flat output's hash bits are noise: the best test left is that the
        # submitted picture is flat too.
        return not submitted.informative
    return submitted.informative and hamming(submitted, stored) <= SAME_OUTPUT_BITS


async def verify_image(
    repo: Repository,
    watermark: WatermarkReader,
    filename: str,
    data: bytes,
    limits: ImageLimits,
    *,
    blobs: BlobStore,
    max_side: int = DEFAULT_READ_SIDE,
) -> VerifyReport | ErrorReply:
    """Read the watermark and describe the record it points to.

    The file goes through the same checks as an upload first, so a hostile
    file is refused before the decoder sees it. Decoding, reading the mark and hashing
    run in worker threads: a large picture must not stall every other chat.

    ``max_side`` is the largest side of the images this bot makes (Policy.max_size): a
    bigger picture cannot be an untouched output, so it is decoded shrunk to fit (a JPEG
    at 1/2^k scale, see normalize_for_reading) before the mark is read. That bounds the
    work a huge photo costs, and an output enlarged by a whole factor reads again.
    """
    try:
        image = await asyncio.to_thread(normalize_for_reading, filename, data, limits, max_side)
    except ImageRejected as exc:
        return ErrorReply(f"I can't check that file: {exc.reason}")
    output_id = await asyncio.to_thread(watermark.read, image.data)
    if output_id is None:
        return VerifyReport("No stylebot watermark found in this image.", None)
    output = await repo.get_output(output_id)
    if output is None:
        return VerifyReport(
            f"This image carries stylebot watermark {output_id}, but this bot has no "
            "record of it: another instance made it, or it was deleted.",
            output_id,
        )
    stored = await _stored_image(blobs, output)
    if stored is not None and not await asyncio.to_thread(same_picture, image.data, stored):
        # Nothing from the record: it belongs to whoever made the real output.
        return VerifyReport(
            f"This image carries the stylebot watermark of output {output_id}, but it "
            "does not match that output's image: it was altered, or the mark was copied "
            "onto another picture. It can't be traced to anyone.",
            output_id,
        )
    owner = await repo.get_user(output.user_id)
    style = await repo.get_style(output.style_id) if output.style_id else None
    made_by = f"{owner.display_name} ({owner.platform})" if owner else "a deleted user"
    return VerifyReport(
        text=(
            f"Made with stylebot: output {output.id}\n"
            f"by: {made_by}\n"
            f"style: {style.name if style else 'none (base model)'}\n"
            f"prompt: {output.prompt}\n"
            f"seed: {output.seed}, steps: {output.steps}, "
            f"size: {output.width}x{output.height}\n"
            f"made: {output.created_at.isoformat(timespec='seconds')}"
        ),
        output_id=output.id,
        output=output,
    )


async def _stored_image(blobs: BlobStore, output: Output) -> bytes | None:
    """The output's image as stored, or None when there is none to compare with (not
    delivered yet, or its blob is gone)."""
    if output.blob_key is None:
        return None
    try:
        return await blobs.get(output.blob_key)
    except KeyError:
        return None


async def verify(deps: Deps, command: Verify) -> Reply:
    refused = await admit_image_work(deps, command.requester, (command.file,))
    if refused is not None:
        return refused
    # All of it is image work (decode, mark, hashes, C2PA): one turn of Deps.image_work.
    async with deps.image_work:
        report = await verify_image(
            deps.repo,
            deps.watermark,
            command.file.filename,
            command.file.data,
            deps.policy.images,
            blobs=deps.blobs,
            max_side=deps.policy.max_size,
        )
        # Parsing the C2PA manifest is CPU work too; each call builds its own c2pa Reader.
        return await asyncio.to_thread(
            with_credentials, report, deps.credentials, command.file.data
        )
