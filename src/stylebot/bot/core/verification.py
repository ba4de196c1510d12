"""Trace an image back to its output record through the invisible watermark."""

from __future__ import annotations

from stylebot.bot.core.commands import Verify
from stylebot.bot.core.credentials import with_credentials
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.images import ImageLimits, ImageRejected, normalize_upload
from stylebot.bot.core.ports import Repository, WatermarkReader
from stylebot.bot.core.replies import ErrorReply, Reply, VerifyReport


async def verify_image(
    repo: Repository,
    watermark: WatermarkReader,
    filename: str,
    data: bytes,
    limits: ImageLimits,
) -> VerifyReport | ErrorReply:
    """Read the watermark and describe the record it points to.

    The file goes through the same checks as an upload first, so a hostile
    file is refused before the decoder sees it.
    """
    try:
        image = normalize_upload(filename, data, limits)
    except ImageRejected as exc:
        return ErrorReply(f"I can't check that file: {exc.reason}")
    output_id = watermark.read(image.data)
    if output_id is None:
        return VerifyReport("No stylebot watermark found in this image.", None)
    output = await repo.get_output(output_id)
    if output is None:
        return VerifyReport(
            f"This image carries stylebot watermark {output_id}, but this bot has no "
            "record of it: another instance made it, or it was deleted.",
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


async def verify(deps: Deps, command: Verify) -> Reply:
    report = await verify_image(
        deps.repo, deps.watermark, command.file.filename, command.file.data, deps.policy.images
    )
    return with_credentials(report, deps.credentials, command.file.data)
