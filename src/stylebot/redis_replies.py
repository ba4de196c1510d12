"""Redis replies, checked for the shape their command returns.

redis-py types each command of its blocking and its asyncio client alike as
``Awaitable[Any] | Any`` (or ``Awaitable[X] | X``), so a reply read without a check is
unchecked everywhere it flows. The ``*_reply`` functions narrow a reply of the blocking
client at run time: a reply of the wrong shape (an asyncio client passed by mistake, a
command renamed) fails here, by name. `awaited` takes the asyncio client's replies.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.typing import ResponseT

T = TypeVar("T")


class UnexpectedReply(TypeError):
    """A Redis reply is not of the shape its command returns."""


def _unexpected(reply: object, expected: str) -> UnexpectedReply:
    return UnexpectedReply(f"Redis replied {type(reply).__name__}, expected {expected}")


def dict_reply(reply: ResponseT) -> dict[Any, Any]:
    """INFO, CONFIG GET, HGETALL."""
    if not isinstance(reply, dict):
        raise _unexpected(reply, "a dict")
    return reply


def list_reply(reply: ResponseT) -> list[Any]:
    """ZRANGE, XRANGE, XREVRANGE, LRANGE."""
    if not isinstance(reply, list):
        raise _unexpected(reply, "a list")
    return reply


def int_reply(reply: ResponseT) -> int:
    """PTTL, TTL, EXISTS, a counter."""
    if not isinstance(reply, int):
        raise _unexpected(reply, "an integer")
    return reply


def value_reply(reply: ResponseT) -> str | bytes | None:
    """GET: the value (text with decode_responses, else bytes), or None for no key."""
    if reply is not None and not isinstance(reply, str | bytes):
        raise _unexpected(reply, "a string or nothing")
    return reply


async def awaited(reply: Awaitable[T] | T) -> T:
    """A reply of the asyncio client. redis-py types its commands once for both clients
    (``Awaitable[X] | X``); on the asyncio client the reply is always the awaitable."""
    if isinstance(reply, Awaitable):
        value: T = await reply
        return value
    return reply
