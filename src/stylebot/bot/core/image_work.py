"""Bounds on the image work a command brings to the front end (uploads, /optout, /verify).

Decoding a photo costs seconds of CPU and a lot of memory, and Telegram hands the bot
updates concurrently, so without bounds one user sending large pictures slows the bot
for everyone. Three bounds, cheapest first:

1. a message's image count and total size, checked before any file is decoded;
2. the rate limit of stylebot.bot.core.quotas: each such command counts as a request;
3. a small semaphore (``Deps.image_work``, sized by ``Policy.image_work_concurrency``):
   at most that many decodes run at once in the whole front end, the rest wait their
   turn without holding a thread or memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from stylebot.bot.core.commands import IncomingFile
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.images import ImageLimits
from stylebot.bot.core.model import Requester
from stylebot.bot.core.quotas import IMAGE_CHECK, rate_limited, record_usage
from stylebot.bot.core.replies import ErrorReply

T = TypeVar("T")


def message_too_big(files: Sequence[IncomingFile], limits: ImageLimits) -> ErrorReply | None:
    """A refusal when a message carries more images, or more bytes, than one command may."""
    if len(files) > limits.max_files:
        return ErrorReply(
            f"That is {len(files)} images; send at most {limits.max_files} at a time. "
            "Nothing was done."
        )
    total = sum(len(file.data) for file in files)
    if total > limits.max_total_bytes:
        return ErrorReply(
            f"Those images come to {total / 1_048_576:.1f} MB; send at most "
            f"{limits.max_total_bytes / 1_048_576:.0f} MB at a time. Nothing was done."
        )
    return None


async def admit_image_work(
    deps: Deps, requester: Requester, files: Sequence[IncomingFile]
) -> ErrorReply | None:
    """Check a command's images before any is decoded, then count it against the rate
    limit (under `Deps.admission`, so requests sent at once cannot all pass one check)."""
    refused = message_too_big(files, deps.policy.images)
    if refused is not None:
        return refused
    async with deps.admission:
        refused = await rate_limited(deps, requester)
        if refused is not None:
            return refused
        await record_usage(deps, requester, IMAGE_CHECK, len(files))
    return None


async def run_image_work(deps: Deps, work: Callable[..., T], *args: object) -> T:
    """Run CPU-bound image work in a thread, at most `image_work_concurrency` at once."""
    async with deps.image_work:
        return await asyncio.to_thread(work, *args)
