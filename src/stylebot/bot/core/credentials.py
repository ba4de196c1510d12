"""/verify's line on Content Credentials (C2PA), next to the watermark's record."""

from __future__ import annotations

from dataclasses import replace

from stylebot.bot.core.ports import ContentCredentialsReader
from stylebot.bot.core.replies import ErrorReply, VerifyReport, VerifyVerdict

NO_CREDENTIALS = (
    "Content Credentials (C2PA): none in this file (re-saving or sending through a chat "
    "app removes them)."
)
# Only when a watermark was read: it is what survives where the manifest does not.
NO_CREDENTIALS_BUT_MARKED = (
    "Content Credentials (C2PA): none in this file (re-saving or sending through a chat "
    "app removes them; the watermark above survives that)."
)


def with_credentials(
    report: VerifyReport | ErrorReply, reader: ContentCredentialsReader, data: bytes
) -> VerifyReport | ErrorReply:
    """The report with the manifest's state appended. Only files that passed the upload
    checks (a VerifyReport) reach the C2PA reader, never a refused hostile file."""
    if not isinstance(report, VerifyReport):
        return report
    unmarked = report.verdict in (VerifyVerdict.NO_MARK, VerifyVerdict.RESEMBLES)
    none = NO_CREDENTIALS if unmarked else NO_CREDENTIALS_BUT_MARKED
    line = reader.describe(data) or none
    return replace(report, text=f"{report.text}\n{line}")
