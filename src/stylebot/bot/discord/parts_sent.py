"""Which messages of a Discord delivery went out, and where, so that a retry after a
failure half-way sends only the rest, in the same place (stylebot.bot.core.delivery).

Each message of a delivery is its index in the list of parts; the note on each says
where it went: the job's interaction, the channel, or the member's DMs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stylebot.bot.core.delivery import PartsSentHere, image_part
from stylebot.bot.core.replies import SentParts

INTERACTION = "interaction"
CHANNEL = "channel"
DM = "dm"


def part_name(index: int) -> str:
    return f"discord:{index}"


@dataclass
class DeliveryProgress:
    """Marks each message of one notification as it goes out."""

    sent: SentParts
    where: str = ""

    async def mark(self, index: int, output_ids: tuple[str, ...]) -> None:
        await self.sent.mark_sent(part_name(index), self.where)
        for output_id in output_ids:  # the images (with their buttons) this message carried
            await self.sent.mark_sent(image_part(output_id))

    def at(self, where: str) -> DeliveryProgress:
        """The same record, for messages going to ``where``."""
        return DeliveryProgress(self.sent, where)


def progress_of(sent: SentParts | None) -> DeliveryProgress:
    return DeliveryProgress(sent if sent is not None else PartsSentHere())


def already_sent(done: Mapping[str, str], count: int) -> tuple[str | None, list[int]]:
    """Where an earlier try sent the first messages (None: nothing went), and the
    indexes of the ``count`` messages it did not send."""
    where = done.get(part_name(0))
    return where, [i for i in range(count) if part_name(i) not in done]
