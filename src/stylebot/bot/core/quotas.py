"""Quotas, rate limits and the prompt blocklist: the operator's limits on what people ask.

Quotas are over a rolling day, per user and per server (or group), for generated images
and for trainings, and per user for erasures (style deletions and /forgetme). The rate
limit is a sliding window per user over every generation and training request, and every
command that makes the front end decode images (uploads, /optout, /verify: see
stylebot.bot.core.image_work), which has no quota of its own. All come from the usage
log (a port, SQLite in production), so they hold across restarts and across several
front-end processes.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta

from stylebot.bot.core.admin import admin_quota_limit
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ErrorReply, TooQuickly

ERASE = "erase"
GENERATE = "generate"
TRAIN = "train"
IMAGE_CHECK = "image-check"  # images decoded on the front end; rate-limited, no quota
_DAY = timedelta(days=1)


def usage_counted_since(deps: Deps) -> datetime:
    """The oldest request any limit still counts: the daily quotas' day, or the rate
    window when an operator set it longer."""
    return deps.clock.now() - max(_DAY, timedelta(seconds=deps.policy.rate_window_s))


async def check_allowance(
    deps: Deps, requester: Requester, kind: str, amount: int
) -> ErrorReply | None:
    """An ErrorReply when this request would go over a limit; None when it may go ahead."""
    usage = deps.uow.usage
    p = deps.policy
    now = deps.clock.now()
    who = requester.user_key

    too_quick = await rate_limited(deps, requester, now)
    if too_quick is not None:
        return too_quick

    if kind == GENERATE:
        per_user, per_server, unit = (
            p.images_per_user_per_day,
            p.images_per_server_per_day,
            "images",
        )
    else:
        per_user, per_server, unit = (
            p.trainings_per_user_per_day,
            p.trainings_per_server_per_day,
            "trainings",
        )
    since = now - _DAY
    # An admin's quota for this server (or everywhere) can only make it stricter.
    admin_limit = await admin_quota_limit(deps, requester, kind)
    if admin_limit is not None:
        per_user = min(per_user, admin_limit) if per_user > 0 else admin_limit
    if per_user > 0:
        used = await usage.total(kind, since, user_key=who)
        if used + amount > per_user:
            return ErrorReply(
                f"You have used {used} of your {per_user} {unit} for the last 24 hours"
                f"{_asked(amount)}. Try again later."
            )
    scope = requester.scope
    if per_server > 0 and scope is not None:
        used = await usage.total(kind, since, scope=scope)
        if used + amount > per_server:
            return ErrorReply(
                f"This server has used {used} of its {per_server} {unit} for the last 24 "
                f"hours{_asked(amount)}. Try again later."
            )
    return None


async def rate_limited(
    deps: Deps, requester: Requester, now: datetime | None = None
) -> ErrorReply | None:
    """An ErrorReply when the requester already made `requests_per_window` requests of
    any kind within the window; None when one more may go ahead."""
    usage, p = deps.uow.usage, deps.policy
    if usage is None or p.requests_per_window <= 0:
        return None
    now = now or deps.clock.now()
    window = timedelta(seconds=p.rate_window_s)
    recent = await usage.request_times(requester.user_key, now - window)
    if len(recent) < p.requests_per_window:
        return None
    # The oldest request that still counts leaves the window first.
    frees_at = recent[len(recent) - p.requests_per_window] + window
    wait = max(1, math.ceil((frees_at - now).total_seconds()))
    return TooQuickly(
        f"You're sending requests too quickly (at most {p.requests_per_window} "
        f"every {p.rate_window_s} s). Try again in {wait} s.",
        retry_after_s=wait,
    )


async def admit_generation(
    deps: Deps, requester: Requester, prompt: str, count: int
) -> ErrorReply | None:
    """The blocklist, then the rate limit and image quotas, for one generation request."""
    phrase = blocked_phrase(prompt, deps.policy.prompt_blocklist)
    if phrase is not None:
        return ErrorReply(
            f"Your prompt contains {phrase!r}, which this server does not allow. "
            "Nothing was queued; rephrase it."
        )
    return await check_allowance(deps, requester, GENERATE, count)


async def admit_erasure(deps: Deps, requester: Requester) -> ErrorReply | None:
    """The daily limit on a user's style deletions and erasures: each one rewrites the
    queue's files on disk, so they must not be a way to slow the bot for everyone.

    Counted like the other quotas, from the usage log; an erasure keeps its own count
    (under a code) like every other recent request, so erasing resets nothing."""
    limit = deps.policy.erasures_per_user_per_day
    if limit <= 0:
        return None
    used = await deps.uow.usage.total(ERASE, deps.clock.now() - _DAY, user_key=requester.user_key)
    if used >= limit:
        return ErrorReply(
            f"You have deleted styles or erased your data {used} times in the last 24 hours "
            f"(at most {limit}). Try again later."
        )
    return None


async def record_usage(deps: Deps, requester: Requester, kind: str, amount: int) -> None:
    await deps.uow.usage.record(kind, requester.user_key, requester.scope, amount, deps.clock.now())


def _asked(amount: int) -> str:
    return f", and this asks for {amount} more" if amount > 1 else ""


def _fold(text: str) -> str:
    """Lower case, accents and compatibility forms folded, anything not a letter or digit
    a single space: so 'N.S.F.W', 'Ｎｓｆｗ' and 'nsfw!' all compare alike."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.split(r"[\W_]+", letters)).strip()


def blocked_phrase(prompt: str, blocklist: Iterable[str]) -> str | None:
    """The first blocklisted word or phrase the prompt contains, as whole words."""
    words = f" {_fold(prompt)} "
    for phrase in blocklist:
        folded = _fold(phrase)
        if not folded:
            continue
        if f" {folded} " in words:
            return phrase
        # Letters spaced out to dodge the list ("n s f w", "n.s.f.w"): a run of single
        # characters that spells the phrase.
        if len(folded.replace(" ", "")) > 2:
            singles = re.findall(r"(?:\b\w\b ?){3,}", words)
            if any(folded.replace(" ", "") in run.replace(" ", "") for run in singles):
                return phrase
    return None
