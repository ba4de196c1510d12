"""Job events from workers to the front end, on a Redis stream.

A stream, not pub/sub: an event published while the front end is down waits
in the stream, and the consumer group redelivers anything read but not
acknowledged before a crash. Readers block on XREADGROUP, so an event reaches
the front end as soon as it is written. While Redis is down the reader waits
with backoff (and has the embedded Redis started again, `on_outage`), then
carries on where the group left off (`on_back` runs first).

Each job's entry ids are indexed beside the stream (`job_events_key`, a set kept as
long as its entries), so forgetting a job deletes its entries without reading the
stream (`stylebot.queue.forgetting`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from stylebot.queue.connection import QUEUED_JOB_TTL_S
from stylebot.queue.keys import (
    EVENTS_INDEXED_MARK,
    EVENTS_STREAM,
    OLD_DELIVERY_FAILURES_KEY,
    arq_job_key,
    delivered_parts_key,
    delivery_failures_key,
    job_end_key,
    job_events_key,
)
from stylebot.queue.outage import OUTAGE_ERRORS, OutageWatch, until_redis_answers
from stylebot.queue.payloads import JobEvent
from stylebot.queue.recovery import RECORD_TTL_S
from stylebot.redis_replies import awaited

log = logging.getLogger(__name__)

FRONTEND_GROUP = "frontend"
# Failed deliveries of an event are counted in Redis, one key per event with the
# events' expiry (`delivery_failures_key`): a front end that restarts must not start
# counting again (stylebot.bot.core.delivery), and a count goes with its event.
_INDEX_PAGE = 1000
# Parts of an event's notifications that reached the platform (`delivered_parts_key`,
# part key -> note), so a retry sends only the rest (stylebot.delivery_loop).
# Bounded: the stream is a mailbox, not an archive (results live in SQLite).
STREAM_MAXLEN = 100_000
# ...in time too: events carry what users asked for (a preview's prompt is a style's
# trigger), so none stays longer than a job may wait for a front end to read it.
EVENTS_KEEP_S = QUEUED_JOB_TTL_S

# XADD, the job's index and the trim by age in one step (one round trip per event: it
# is on the way of every result). An entry is never in the stream unindexed. Entries
# older than ARGV[3] seconds go (their ids start with the ms they were added at);
# XTRIM MINID needs Redis 6.2, so an older one's error is returned, not raised, and the
# stream keeps only its length bound there.
# A job's end (`publish_end`) is told once, whatever is retried, killed or run twice:
# - with an end record (KEYS[3], `recovery.remember_end`), only if that end was not
#   told yet, and the record says it is told in the same step;
# - without one, while arq holds the job (KEYS[4]), the record is made here, told, and
#   kept for ARGV[4] seconds (one round trip on the way of every result, not two: only
#   training keeps it a step earlier, `report_finished`);
# - with neither, the job is over: arq recorded it (another run of it, whose lease had
#   lapsed, told its end) or the front end forgot it (`forgetting.forget_jobs`). Nothing
#   is told or kept.
_PUBLISH = """
if KEYS[3] then
  if redis.call('EXISTS', KEYS[3]) == 1 then
    if redis.call('HGET', KEYS[3], 'reported') == '1' then
      return {'', ''}
    end
    redis.call('HSET', KEYS[3], 'reported', '1')
  elseif redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('HSET', KEYS[3], 'event', ARGV[2], 'reported', '1')
    redis.call('EXPIRE', KEYS[3], ARGV[4])
  else
    return {'', ''}
  end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[2])
redis.call('SADD', KEYS[2], id)
redis.call('EXPIRE', KEYS[2], ARGV[3])
local newest_ms = tonumber(string.match(id, '^%d+'))
local minid = string.format('%.0f', newest_ms - tonumber(ARGV[3]) * 1000)
local trimmed = redis.pcall('XTRIM', KEYS[1], 'MINID', minid)
if type(trimmed) == 'table' and trimmed.err then
  return {id, trimmed.err}
end
return {id, ''}
"""


class EventPublisher:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._said_no_trim_by_age = False

    async def publish(
        self, event: JobEvent, *, give_up: Callable[[], bool] = lambda: False
    ) -> None:
        """Add the event to the stream. While Redis is down, an event the user must get
        (started, finished, failed, a preview) waits for it to come back (cancelling
        the caller, or `give_up()` turning true, ends the wait); a plain progress update
        is dropped with an error, as the next one soon says more."""
        if event.kind == "progress" and event.preview is None:
            await self.add(event)
            return
        await until_redis_answers(
            lambda: self.add(event),
            f"the {event.kind} event of job {event.job_id}",
            give_up=give_up,
        )

    async def publish_end(
        self, event: JobEvent, *, give_up: Callable[[], bool] = lambda: False
    ) -> None:
        """A job's end, told once: not added if its record (`recovery.remember_end`, or
        made here when there is none) says it was told, and the record marked told in the
        same step, so a retry after a lost reply, or a run after one killed in between,
        does not tell it again."""
        await until_redis_answers(
            lambda: self.add(event, the_end=True),
            f"the {event.kind} event of job {event.job_id}",
            give_up=give_up,
        )

    async def add(self, event: JobEvent, *, the_end: bool = False) -> None:
        """Add the event to the stream, once: raises while Redis is down. `the_end`: the
        job's end, checked against and marked in its end record (`publish_end`)."""
        keys = [EVENTS_STREAM, job_events_key(event.job_id)]
        if the_end:
            keys += [job_end_key(event.job_id), arq_job_key(event.job_id)]
        reply: list[bytes | str] = await awaited(
            self.redis.eval(  # type: ignore[arg-type]  # the script returns {id, error}
                _PUBLISH,
                len(keys),
                *keys,
                STREAM_MAXLEN,  # type: ignore[arg-type]  # redis-py types eval args str; any bytes/int goes
                event.to_json(),
                EVENTS_KEEP_S,  # type: ignore[arg-type]  # redis-py types eval args str; any bytes/int goes
                RECORD_TTL_S,  # type: ignore[arg-type]  # redis-py types eval args str; any bytes/int goes
            )
        )
        _message_id, error = reply
        if error and not self._said_no_trim_by_age:
            self._said_no_trim_by_age = True
            text = error.decode(errors="replace") if isinstance(error, bytes) else error
            log.warning("this Redis cannot trim the events stream by age (%s); by length", text)


async def index_old_entries(redis: Redis) -> int:
    """Once per Redis, at a front end's start: index the entries published before the
    per-job index existed, so forgetting their jobs finds them too. Returns how many."""
    if await redis.exists(EVENTS_INDEXED_MARK):
        return 0
    indexed = 0
    start = "-"
    while True:
        page = await redis.xrange(EVENTS_STREAM, min=start, max="+", count=_INDEX_PAGE)
        async with redis.pipeline(transaction=False) as pipe:
            for message_id, fields in page:
                job_id = _job_id_of(fields)
                if job_id is not None:
                    pipe.sadd(job_events_key(job_id), message_id)
                    pipe.expire(job_events_key(job_id), EVENTS_KEEP_S)
                    indexed += 1
            await pipe.execute()
        if len(page) < _INDEX_PAGE:
            break
        last = page[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else last)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(EVENTS_INDEXED_MARK, b"1")
        pipe.delete(OLD_DELIVERY_FAILURES_KEY)  # counts only: recounted from nought
        await pipe.execute()
    return indexed


def _job_id_of(fields: dict[bytes, bytes]) -> str | None:
    try:
        job_id = json.loads(fields[b"event"]).get("job_id")
    except (KeyError, ValueError, AttributeError):
        return None
    return job_id if isinstance(job_id, str) else None


class EventConsumer:
    """Reads events as one member of the front end's consumer group."""

    def __init__(
        self,
        redis: Redis,
        consumer: str | None = None,
        *,
        on_outage: Callable[[], Awaitable[None]] | None = None,
        on_back: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.redis = redis
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        # Called at each failed try while Redis is down (start the embedded one again).
        self.on_outage = on_outage
        # Called once Redis answers again, before reading goes on (reconcile the jobs).
        self.on_back = on_back
        self._outage = OutageWatch("event delivery")

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(EVENTS_STREAM, FRONTEND_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await index_old_entries(self.redis)

    async def read(self, block_ms: int = 1000, count: int = 32) -> list[tuple[str, JobEvent]]:
        """New events for this group, waiting up to block_ms for one to arrive."""
        response = await self.redis.xreadgroup(
            FRONTEND_GROUP, self.consumer, {EVENTS_STREAM: ">"}, count=count, block=block_ms
        )
        events, dropped = _split(response)
        await self._drop(dropped)
        return events

    async def unacknowledged(self, count: int = 100) -> list[tuple[str, JobEvent]]:
        """Events delivered to any front end but never acknowledged: claim them.

        min_idle_time 0 because a front end only calls this at start, when the
        previous process that read them is gone.
        """
        events: list[tuple[str, JobEvent]] = []
        start: bytes | str = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                EVENTS_STREAM, FRONTEND_GROUP, self.consumer, 0, start_id=start, count=count
            )
            next_start, messages = reply[0], reply[1]
            batch, dropped = _split([[EVENTS_STREAM, [m for m in messages if m[0] is not None]]])
            if len(reply) > 2:
                # Redis 7 names the pending entries trimmed from the stream (and drops
                # them from the group itself).
                await forget_delivery_state(self.redis, [_text(mid) for mid in reply[2]])
            elif any(mid is None for mid, _fields in messages):
                # 6.2 claims them as nils, without their ids, and keeps them pending.
                dropped += await self._claimed_but_gone(start, next_start, batch)
            await self._drop(dropped)
            events.extend(batch)
            # Only the cursor says it is done: a batch may hold nothing but deleted entries.
            if _text(next_start) == "0-0":
                return events
            start = next_start

    async def _claimed_but_gone(
        self, start: bytes | str, next_start: bytes | str, kept: list[tuple[str, JobEvent]]
    ) -> list[str]:
        """The ids this consumer just claimed from ``start`` up to ``next_start`` whose
        entries are no longer in the stream (all it claimed, less what it got back)."""
        end = "+" if _text(next_start) == "0-0" else f"({_text(next_start)}"
        pending = await self.redis.xpending_range(
            EVENTS_STREAM, FRONTEND_GROUP, start, end, 10_000, consumername=self.consumer
        )
        present = {mid for mid, _event in kept}
        return [_text(p["message_id"]) for p in pending if _text(p["message_id"]) not in present]

    async def _drop(self, message_ids: list[str]) -> None:
        """Events trimmed away or undecodable: acknowledged, with their delivery state,
        or they would be claimed (and their counts kept) for ever."""
        if message_ids:
            await self._ack_and_forget(message_ids)

    async def ack(self, message_id: str) -> None:
        await self._ack_and_forget([message_id])

    async def _ack_and_forget(self, message_ids: list[str]) -> None:
        """Acknowledge the events and forget their delivery state, in one round trip
        (an acknowledgement is on every event's way)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(EVENTS_STREAM, FRONTEND_GROUP, *message_ids)
            pipe.delete(*(key for mid in message_ids for key in delivery_state_keys(mid)))
            await pipe.execute()

    async def delivered_parts(self, message_id: str) -> dict[str, str]:
        """The parts of this event's notifications that reached their platform."""
        raw = await awaited(self.redis.hgetall(delivered_parts_key(message_id)))
        return {_text(part): _text(note) for part, note in raw.items()}

    async def part_delivered(self, message_id: str, part: str, note: str = "") -> None:
        """Record one more part as delivered, with the events' expiry."""
        key = delivered_parts_key(message_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, part, note)
            pipe.expire(key, EVENTS_KEEP_S)
            await pipe.execute()

    async def delivery_failures(self, message_id: str) -> int:
        """How many times delivering this event's notifications failed so far."""
        count = await self.redis.get(delivery_failures_key(message_id))
        return int(count or 0)

    async def delivery_failed(self, message_id: str) -> int:
        """Count one more failed delivery of this event; returns the count."""
        key = delivery_failures_key(message_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, EVENTS_KEEP_S)
            count, _ = await pipe.execute()
        return int(count)

    async def __aiter__(self) -> AsyncIterator[tuple[str, JobEvent]]:
        """Every event for this group, for ever: a Redis outage only pauses it."""
        # First the events an earlier front end read and did not acknowledge.
        joined = False
        while True:
            try:
                if joined:
                    batch = await self.read()
                else:
                    await self.ensure_group()
                    batch = await self.unacknowledged()
                    joined = True
            except OUTAGE_ERRORS as exc:
                delay = self._outage.failed(exc)
                if self.on_outage is not None:
                    await self._quietly(self.on_outage, "restarting Redis")
                await asyncio.sleep(delay)
                continue
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # A Redis that came back without its data: the group goes too.
                log.warning("the front end's consumer group was gone; creating it again")
                joined = False
                continue
            if self._outage.succeeded() and self.on_back is not None:
                await self._quietly(self.on_back, "catching up after the outage")
            for item in batch:
                yield item

    @staticmethod
    async def _quietly(hook: Callable[[], Awaitable[None]], what: str) -> None:
        """Run a hook; its failure is logged, and delivery goes on."""
        try:
            await hook()
        except Exception:
            log.exception("%s failed", what)

    @staticmethod
    def decode_entries(entries: list[Any]) -> list[tuple[str, JobEvent]]:
        """Stream entries (as XRANGE returns them) as events; undecodable ones dropped."""
        return EventConsumer._decode([[EVENTS_STREAM, entries]])

    @staticmethod
    def _decode(response: list[Any] | None) -> list[tuple[str, JobEvent]]:
        return _split(response)[0]


def delivery_state_keys(message_id: str) -> tuple[str, str]:
    """What is kept about delivering one event: its failure count, its parts sent."""
    return delivery_failures_key(message_id), delivered_parts_key(message_id)


async def forget_delivery_state(redis: Redis, message_ids: list[str]) -> None:
    """Remove what is kept about delivering these events (failure counts, parts sent)."""
    if message_ids:
        await redis.delete(*(key for mid in message_ids for key in delivery_state_keys(mid)))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _split(
    response: list[Any] | None,
) -> tuple[list[tuple[str, JobEvent]], list[str]]:
    """Stream entries as events, and the ids of those trimmed away or undecodable."""
    decoded: list[tuple[str, JobEvent]] = []
    dropped: list[str] = []
    for _stream, messages in response or []:
        for message_id, fields in messages:
            mid = _text(message_id)
            if not fields:  # trimmed away while pending
                dropped.append(mid)
                continue
            raw = fields.get(b"event") or fields.get("event")
            try:
                event = JobEvent.from_json(raw)
                # A stream id starts with the milliseconds Redis added it at.
                sent_at = int(mid.split("-", 1)[0]) / 1000
                decoded.append((mid, dataclasses.replace(event, sent_at=sent_at)))
            except (TypeError, ValueError, KeyError):
                log.exception("undecodable event %s dropped", mid)
                dropped.append(mid)
    return decoded, dropped
