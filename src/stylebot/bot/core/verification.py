"""Trace an image back to its output record, and say what is known and no more.

The watermark has no key: anyone can copy a real output id (file names and captions show
them) into any picture, and a marked output can be edited. So a mark alone attributes
nothing: the submitted picture is placed on the stored output (a crop or a rescale shows
only part of it, or at another size) and compared block by block with the part it shows
(:mod:`.aligned_match`). It is "made by" the maker only when all of that matches closely
(worded "a cropped copy" or "a resized copy" when it is one: still the maker's pixels and
no others); an "altered copy" when some regions differ or something was added around it
(the report says how much); and when most of it differs, or it was stretched, the mark
was put on another picture and nothing of the record is shown. A
picture without a mark may still "resemble" a stored output: its fingerprint is looked up
in an index (:mod:`.fingerprints`) and the candidate compared block by block as well.
A copy too worn for the mark to be read blind, placed on a stored output by that lookup
but not claimed, is checked for that one output's mark where it sits
(``WatermarkReader.carries``) and, carrying it, is compared as any marked copy. A
screenshot's frame plain to the pixel is left out of a marked copy's comparison, and
named. What of the record is shown depends on who asks (:mod:`.attribution`).

A file with transparency is compared twice, over white and over black: a PNG can equal an
output over a white background yet show something else on a dark theme, so it is "made
by" only when both match.
"""

from __future__ import annotations

import asyncio
from typing import TypedDict

from stylebot.bot.core.aligned_match import AlignedDifference, compare_aligned_png
from stylebot.bot.core.attribution import Attribution, Viewer, attribute, record_lines
from stylebot.bot.core.commands import Verify
from stylebot.bot.core.credentials import with_credentials
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.image_work import admit_image_work
from stylebot.bot.core.images import (
    ImageLimits,
    ImageRejected,
    NormalizedImage,
    normalize_for_reading,
)
from stylebot.bot.core.model import Output
from stylebot.bot.core.ports import BlobStore, WatermarkReader
from stylebot.bot.core.replies import ErrorReply, Reply, VerifyReport, VerifyVerdict
from stylebot.bot.core.resemblance import (
    carrying_its_mark,
    compared_without_frame,
    resembled_output,
    stored_image,
)
from stylebot.bot.core.stores import UnitOfWork

NO_MARK_TEXT = "No stylebot watermark found in this image."
FRAME_LEFT_OUT = ", inside a plain frame (left out to compare)"
#: An altered copy in a lossy file shrunk to this or less, differing within the output
#: in at most this share, may be worn rather than edited: worn copies of 256 px outputs
#: shrunk to 0.65-0.8x through JPEG twice differ in 8-17% (a hostile review's and this
#: module's tests' copies), and a thin line drawn beside a subject's edge reads alike.
WORN_BELOW_SCALE = 0.85
WORN_AT_MOST = 0.2
DEFAULT_READ_SIDE = 1024  # Policy.max_size's default


async def verify_image(
    records: UnitOfWork,
    watermark: WatermarkReader,
    filename: str,
    data: bytes,
    limits: ImageLimits,
    *,
    blobs: BlobStore,
    viewer: Viewer,
    max_side: int = DEFAULT_READ_SIDE,
) -> VerifyReport | ErrorReply:
    """Read the watermark and describe the record it points to, as `viewer` may see it.

    The file goes through the same checks as an upload first, so a hostile
    file is refused before the decoder sees it. Decoding, reading the mark, comparing
    and hashing run in worker threads: a large picture must not stall every other chat.

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
        return await _without_mark(records, blobs, watermark, image, viewer)
    output = await records.outputs.get_output(output_id)
    if output is None:
        return VerifyReport(
            f"This image carries stylebot watermark {output_id}, but this bot has no "
            "record of it: another instance made it, or it was deleted.",
            output_id,
            verdict=VerifyVerdict.UNKNOWN_MARK,
        )
    stored = await stored_image(blobs, output)
    if stored is None:
        return await _mark_only(records, output, viewer)
    return await _marked(records, image, output, stored, viewer)


async def _marked(
    records: UnitOfWork, image: NormalizedImage, output: Output, stored: bytes, viewer: Viewer
) -> VerifyReport:
    """A picture carrying ``output``'s mark, compared with the output's stored image."""
    # A crop or a rescale is placed on the output first, then compared with the part of
    # the output it shows (aligned_match).
    difference = await asyncio.to_thread(compare_aligned_png, image.data, stored)
    # A screenshot's plain window around the picture is not the maker's, nor an edit of
    # their picture: compared without it (not for a translucent file, whose frame looks
    # different over another background), and the report says it was left out.
    framed = ""
    if not difference.same and image.over_black is None:
        inside = await asyncio.to_thread(compared_without_frame, image.data, stored)
        # Only when the picture without its frame was placed on the output and matches
        # it better: one that can't be placed is compared whole (a framed crop would
        # read "the mark was copied onto another picture").
        if (
            inside is not None
            and inside.alignment is not None
            and inside.comparable
            and inside.share < difference.share
        ):
            difference, framed = inside, FRAME_LEFT_OUT
    if image.over_black is not None:
        over_black = await asyncio.to_thread(
            compare_aligned_png, image.over_black, stored, difference
        )
        if difference.same and not over_black.same:
            return await _depends_on_background(records, output, viewer, over_black)
        # An altered copy is as altered as it looks on either background (a hostile
        # review: text that shows only over black was not counted).
        if over_black.share > difference.share:
            difference = over_black
    if difference.same:
        attribution = await attribute(records, output, viewer)
        return VerifyReport(
            text="\n".join(
                [
                    f"Made with stylebot: {copy_of(difference, output.id)}{framed}",
                    *record_lines(output, attribution),
                ]
            ),
            output_id=output.id,
            output=output if attribution.full else None,
            verdict=VerifyVerdict.MADE,
            private=shows_private(attribution),
            **_geometry(difference),
        )
    if difference.altered:
        attribution = await attribute(records, output, viewer)
        added = ", or added around it" if difference.outside_share > 0 else ""
        # A copy shrunk and re-compressed blurs and rings at hard edges as much as a thin
        # line drawn there changes them (measured: docs/provenance.md): say so, for a
        # lossy file shrunk that much whose differences within the output are few
        # enough to be that (a PNG went through no re-compression here).
        worn = (
            ", or worn by shrinking and re-compression, which at this size can't be told "
            "from an edit"
            if image.source_format != "PNG"
            and difference.scale <= WORN_BELOW_SCALE
            and difference.difference.share <= WORN_AT_MOST
            else ""
        )
        return VerifyReport(
            text="\n".join(
                [
                    f"An altered copy of stylebot output {output.id}"
                    f"{_cut_and_size(difference)}{framed}: about {difference.percent}% of this "
                    f"picture differs from that output (covered, replaced or pasted over{added}"
                    f"{worn}), so only the rest is certainly its maker's work. The output it "
                    "was made from:",
                    *record_lines(output, attribution),
                ]
            ),
            output_id=output.id,
            verdict=VerifyVerdict.ALTERED,
            private=shows_private(attribution),
            **_geometry(difference),
        )
    # Nothing from the record: it belongs to whoever made the real output.
    return VerifyReport(
        f"This image carries the stylebot watermark of output {output.id}, but it "
        f"{_why_not_traced(difference)} It can't be traced to anyone.",
        output.id,
        verdict=VerifyVerdict.MISMATCH,
        differs_percent=difference.percent,
    )


def copy_of(difference: AlignedDifference, output_id: str) -> str:
    """What a picture that matches an output is of it: the output itself, or a cropped
    and/or resized copy (still its maker's pixels and no others, so "made by" holds for
    what it shows)."""
    kinds = [
        kind
        for kind, is_it in (("cropped", difference.cropped), ("resized", difference.resized))
        if is_it
    ]
    if not kinds:
        return f"output {output_id}"
    details = []
    if difference.cropped:
        details.append(f"it shows {difference.shown_percent}% of that picture")
    if difference.resized:
        details.append(f"at {difference.scale_percent}% of its size")
    return f"a {' and '.join(kinds)} copy of output {output_id} ({', '.join(details)})"


def _cut_and_size(difference: AlignedDifference) -> str:
    """ ", cropped to N% of it and resized to M%" for an altered copy, or nothing."""
    parts = []
    if difference.cropped:
        parts.append(f"cropped to {difference.shown_percent}% of it")
    if difference.resized:
        parts.append(f"resized to {difference.scale_percent}%")
    return f", {' and '.join(parts)}" if parts else ""


class _Geometry(TypedDict):
    differs_percent: int
    shown_percent: int
    scale_percent: int


def _geometry(difference: AlignedDifference) -> _Geometry:
    """The report's figures of a picture compared with an output."""
    return {
        "differs_percent": difference.percent,
        "shown_percent": difference.shown_percent,
        "scale_percent": difference.scale_percent,
    }


def _why_not_traced(difference: AlignedDifference) -> str:
    if difference.stretched:
        return (
            "was stretched to another shape than that output's (resized more across than "
            "down, or the other way), so it is not that output's picture."
        )
    if not difference.comparable:
        return (
            "has another shape than that output's, and no part of that output large "
            "enough to compare (a quarter of it or more) could be found in it."
        )
    return (
        f"does not match that output's image (about {difference.percent}% of it differs): "
        "the mark was copied onto another picture, or the picture was changed beyond "
        "recognition."
    )


async def _depends_on_background(
    records: UnitOfWork, output: Output, viewer: Viewer, over_black: AlignedDifference
) -> VerifyReport:
    """A translucent file that is the output over white but not over black: what a
    viewer sees depends on their background, so it is not the maker's picture."""
    attribution = await attribute(records, output, viewer)
    return VerifyReport(
        text="\n".join(
            [
                f"An altered copy of stylebot output {output.id}: this file has "
                "transparency, and while over a white background it shows that output, "
                f"over a dark one (a dark theme) about {over_black.percent}% of it shows "
                "something else. What it looks like depends on the background, so it "
                "is not that output's maker's work. The output it was made from:",
                *record_lines(output, attribution),
            ]
        ),
        output_id=output.id,
        verdict=VerifyVerdict.ALTERED,
        private=shows_private(attribution),
        differs_percent=over_black.percent,
    )


def shows_private(attribution: Attribution) -> bool:
    """Whether the report shows this viewer what only they may see (their own private
    prompt and style): then it goes to them alone, never to a group."""
    return attribution.private and attribution.full


async def _mark_only(records: UnitOfWork, output: Output, viewer: Viewer) -> VerifyReport:
    """A mark of a known output whose image is not stored (never delivered, or its blob
    is gone): a mark can be copied, so this is no proof of who made the picture."""
    attribution = await attribute(records, output, viewer)
    return VerifyReport(
        text="\n".join(
            [
                f"This image carries the stylebot watermark of output {output.id}, but that "
                "output's image is no longer stored (or its copy is damaged), so the "
                "picture could not be compared with it: a watermark can be copied onto "
                "another picture, so this does not prove who made it. The record the mark names:",
                *record_lines(output, attribution),
            ]
        ),
        output_id=output.id,
        verdict=VerifyVerdict.MARK_ONLY,
        private=shows_private(attribution),
    )


async def _without_mark(
    records: UnitOfWork,
    blobs: BlobStore,
    watermark: WatermarkReader,
    picture: NormalizedImage,
    viewer: Viewer,
) -> VerifyReport:
    """No mark read blind: a likeness, or the mark of an output the picture was placed on
    (the reader checks one output's bits where the placement puts them, which a copy
    too worn for a blind read still carries: ``provenance/watermark_at_placement.py``)."""
    lookup = await resembled_output(records, blobs, picture)
    placed = await carrying_its_mark(lookup, watermark)
    found = lookup.resemblance
    if placed is not None and (found is None or placed.output.id != found.output.id):
        return await _marked(records, picture, placed.output, placed.stored, viewer)
    if found is None:
        return VerifyReport(NO_MARK_TEXT, None)
    if placed is None and lookup.placed:
        # Twins (the same picture made again), and no mark tells which it came from.
        ids = ", ".join(twin.output.id for twin in lookup.placed)
        return VerifyReport(
            f"{NO_MARK_TEXT} It closely resembles several stylebot outputs that look the "
            f"same ({ids}); without its watermark, which one it was made from can't be told.",
            None,
            verdict=VerifyVerdict.RESEMBLES,
        )
    output, difference = found.output, found.difference
    framed = FRAME_LEFT_OUT if found.framed else ""
    attribution = await attribute(records, output, viewer)
    return VerifyReport(
        text="\n".join(
            [
                f"{NO_MARK_TEXT} But it closely resembles stylebot output {output.id}"
                f"{_cut_and_size(difference)}{framed}: its fingerprint and its regions "
                "match that output's. Its watermark may "
                "have been removed (e.g. by re-compression); a likeness is not proof.",
                *record_lines(output, attribution),
            ]
        ),
        output_id=output.id,
        verdict=VerifyVerdict.RESEMBLES,
        private=shows_private(attribution),
        **_geometry(difference),
    )


async def verify(deps: Deps, command: Verify) -> Reply:
    refused = await admit_image_work(deps, command.requester, (command.file,))
    if refused is not None:
        return refused
    # All of it is image work (decode, mark, hashes, C2PA): one turn of Deps.image_work.
    async with deps.image_work:
        report = await verify_image(
            deps.uow,
            deps.watermark,
            command.file.filename,
            command.file.data,
            deps.policy.images,
            blobs=deps.blobs,
            viewer=command.requester,
            max_side=deps.policy.max_size,
        )
        # Parsing the C2PA manifest is CPU work too; each call builds its own c2pa Reader.
        return await asyncio.to_thread(
            with_credentials, report, deps.credentials, command.file.data
        )
