"""Upscale: an earlier image at twice its size, with detail drawn in ("hires fix").

The image is enlarged, then drawn again lightly (image-to-image) at the larger size with
its own prompt, seed and style, so the added pixels are the style's, not a blur. Who may
upscale is who may re-roll (`earlier_output`); admission is /imagine's.
"""

from __future__ import annotations

from dataclasses import replace

from stylebot.bot.core.commands import UpscaleOutput
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.generation import GenerationSpec, admit_and_queue, earlier_output
from stylebot.bot.core.picture_sources import PictureSource
from stylebot.bot.core.replies import ErrorReply, Reply

UPSCALE_FACTOR = 2
# AUTOMATIC1111's hires-fix range: enough to draw detail, little enough to keep the image.
UPSCALE_STRENGTH = 0.35


async def upscale_output(deps: Deps, command: UpscaleOutput) -> Reply:
    found = await earlier_output(deps, command.requester, command.output_id)
    if isinstance(found, ErrorReply):
        return found
    output, user, style = found
    if output.blob_key is None:
        return ErrorReply("That image has not arrived yet: upscale it once it has.")
    width, height = output.width * UPSCALE_FACTOR, output.height * UPSCALE_FACTOR
    largest = deps.policy.max_size
    if max(width, height) > largest:
        return ErrorReply(
            f"At twice its size that image would be {width}x{height}, larger than the "
            f"{largest} pixels a side this bot makes."
        )
    spec = replace(
        GenerationSpec.of_output(output),
        width=width,
        height=height,
        described_as=f"output {output.id} to {width}x{height}",
        # The output as stored (its manifest too): the new image's ingredient.
        source=PictureSource(output.blob_key, UPSCALE_STRENGTH, output_id=output.id),
        action="Upscaling",
    )
    return await admit_and_queue(deps, command.requester, user, style, spec)
