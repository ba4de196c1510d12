"""Extend (outpainting): an earlier image zoomed out or made another shape, the new area
drawn in its style around the image, which is kept as it is.

Who may extend is who may re-roll (`earlier_output`); admission is /imagine's. The image
as stored is the job's picture (its manifest too: the new image's ingredient).
"""

from __future__ import annotations

from dataclasses import replace

from stylebot.bot.core.commands import ExtendOutput
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.generation import GenerationSpec, admit_and_queue, earlier_output
from stylebot.bot.core.picture_sources import PictureSource
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.replies import ErrorReply, Reply

#: What each extension does, as the buttons say it.
EXTENSIONS = {
    "zoom1.5": "zoomed out 1.5x",
    "zoom2": "zoomed out 2x",
    "square": "made square",
    "portrait": "made portrait (2:3)",
}
# The new area starts from noise: all of it is drawn anew (the kept part is pasted back).
EXTEND_STRENGTH = 1.0


def _eight(value: float) -> int:
    return max(8, round(value / 8) * 8)


def extend_geometry(
    width: int, height: int, how: str, policy: Policy
) -> tuple[int, int, tuple[int, int, int, int]] | str:
    """The canvas (width, height) and where the image goes on it (left, top, width,
    height), all within the allowed sizes; or why it cannot be done."""
    if how.startswith("zoom"):
        factor = float(how.removeprefix("zoom"))
        canvas_w, canvas_h = width * factor, height * factor
    elif how == "square":
        if width == height:
            return "That image is square already."
        canvas_w = canvas_h = max(width, height)
    elif how == "portrait":
        if height * 2 >= width * 3:
            return "That image is portrait-shaped (2:3 or taller) already."
        canvas_w, canvas_h = max(width, height * 2 / 3), max(height, width * 3 / 2)
    else:
        return f"Unknown extension {how!r}: one of {', '.join(EXTENSIONS)}."
    # Larger than allowed: all of it smaller, the image with it (at least min_size a side).
    scale = min(1.0, policy.max_size / max(canvas_w, canvas_h))
    scale = max(scale, policy.min_size / min(canvas_w, canvas_h))
    final_w, final_h = _eight(canvas_w * scale), _eight(canvas_h * scale)
    if max(final_w, final_h) > policy.max_size:
        return f"That image cannot be {EXTENSIONS[how]} within {policy.max_size} pixels a side."
    inner_w, inner_h = round(width * scale), round(height * scale)
    left, top = (final_w - inner_w) // 2, (final_h - inner_h) // 2
    return final_w, final_h, (left, top, inner_w, inner_h)


async def extend_output(deps: Deps, command: ExtendOutput) -> Reply:
    found = await earlier_output(deps, command.requester, command.output_id)
    if isinstance(found, ErrorReply):
        return found
    output, user, style = found
    if output.blob_key is None:
        return ErrorReply("That image has not arrived yet: extend it once it has.")
    geometry = extend_geometry(output.width, output.height, command.how, deps.policy)
    if isinstance(geometry, str):
        return ErrorReply(geometry)
    width, height, box = geometry
    spec = replace(
        GenerationSpec.of_output(output),
        width=width,
        height=height,
        described_as=f"output {output.id}, {EXTENSIONS[command.how]} ({width}x{height})",
        source=PictureSource(output.blob_key, EXTEND_STRENGTH, output.id, keep_box=box),
        action="Extending",
    )
    return await admit_and_queue(deps, command.requester, user, style, spec)
