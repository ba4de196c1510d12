"""/verify's line on Content Credentials (C2PA), next to the watermark's record."""

from __future__ import annotations

from dataclasses import replace

from stylebot.bot.core.ports import ContentCredentialsReader
from stylebot.bot.core.replies import ErrorReply, VerifyReport

__all__ = ["NO_CREDENTIALS", "with_credentials"]

NO_CREDENTIALS = (
    "Content Credentials (C2PA): none in this file (re-saving or sending through a chat "
    "app removes them; the watermark above survives)."
)


def with_credentials(
    report: VerifyReport | ErrorReply, reader: ContentCredentialsReader | None, data: bytes
) -> VerifyReport | ErrorReply:
    """The report with the manifest's state appended. Only files that passed the upload
    checks (a VerifyReport) reach the C2PA reader, never a refused hostile file."""
    if reader is None or not isinstance(report, VerifyReport):
        return report
    line = reader.describe(data) or NO_CREDENTIALS
    return replace(report, text=f"{report.text}\n{line}")
