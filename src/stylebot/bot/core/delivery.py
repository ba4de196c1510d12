"""A notification a chat platform will not take: the rule for every platform.

Adapters check their platform's limits before sending, and split or convert what does
not fit in one message (the PNG files, which carry the provenance, always stay whole).
What still cannot go, they raise as :class:`Undeliverable`, with the reason in the
member's words. A platform that cannot be reached (a network outage, its servers
failing, a rate limit it would not lift) is :class:`PlatformUnreachable`: tried again
for as long as that lasts, never counted, for an outage says nothing about the
notification. Any other failure (a real refusal) is tried again, up to
:data:`DELIVERY_ATTEMPTS` times in all (restarts included). Either way, in the end the
member is told why, in the notice :func:`undelivered_notice` words, and the event is
done with: retrying what a platform refuses would fail the same way at every start, and
the member would never hear of their result.
"""

from __future__ import annotations

from collections.abc import Mapping

from stylebot.bot.core.replies import ImagesReady, JobFinished, JobProgress, Notification

#: Tries at delivering one event's notifications before the member is told it failed.
DELIVERY_ATTEMPTS = 3


class Undeliverable(Exception):
    """The platform will not take this notification as it is; retrying cannot help.

    ``reason`` completes "… could not be delivered here: ", for the member to read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PlatformUnreachable(Exception):
    """The platform did not answer (network down, 5xx, still rate-limited): the
    notification was not refused, so it waits, uncounted, until the platform is back."""


class PartsSentHere:
    """SentParts kept in memory: for a notification sent outside the event loop's
    records (a retry then starts again from the beginning)."""

    def __init__(self) -> None:
        self._sent: dict[str, str] = {}

    async def sent(self) -> Mapping[str, str]:
        return dict(self._sent)

    async def mark_sent(self, part: str, note: str = "") -> None:
        self._sent[part] = note


def image_part(output_id: str) -> str:
    """The part name adapters mark once a result's image (its PNG file) was delivered."""
    return f"image:{output_id}"


def undelivered_notice(
    notification: Notification, reason: str, sent: Mapping[str, str] | None = None
) -> Notification | None:
    """What to tell the member instead of ``notification``; None when nothing needs
    saying (progress is superseded by the result, a training preview is a courtesy).
    ``sent``: its parts that did reach them, to name only the images that did not."""
    reply = notification.reply
    if isinstance(reply, JobProgress):
        return None
    if isinstance(reply, ImagesReady):
        if reply.preview_of is not None:
            return None
        arrived = sent or {}
        missing = [i.filename for i in reply.images if image_part(i.output_id) not in arrived]
        count = len(reply.images)
        if not missing:
            return None
        if len(missing) < count:
            what = f"{len(missing)} of your {count} images ({', '.join(missing)})"
        else:
            what = "your image" if count == 1 else f"your {count} images"
        text = (
            f"Generation finished, but {what} could not be delivered here: {reason}. "
            "Please ask again for fewer images at once, or a smaller size."
        )
        return Notification(notification.to, JobFinished(text, reply.job_id, "generate", False))
    if isinstance(reply, JobFinished):
        text = f"A message about your job could not be delivered here: {reason}."
        return Notification(notification.to, JobFinished(text, reply.job_id, reply.kind, False))
    return None
