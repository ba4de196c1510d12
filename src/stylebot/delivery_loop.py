"""Event delivery: each worker event recorded by the core, sent to its chat platform,
then acknowledged (the front end's loop; bootstrap wires it)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field

from stylebot.bot.core.delivery import (
    DELIVERY_ATTEMPTS,
    PlatformUnreachable,
    Undeliverable,
    undelivered_notice,
)
from stylebot.bot.core.errors import StorageFull
from stylebot.bot.core.replies import Notification
from stylebot.bot.core.service import StyleBot
from stylebot.logs import job_context
from stylebot.queue.events import EventConsumer
from stylebot.queue.outage import OUTAGE_ERRORS
from stylebot.queue.payloads import JobEvent

log = logging.getLogger(__name__)

# Worker events handled at once, each job's in order (EventDelivery.deliver_events).
DELIVERY_CONCURRENCY = 32
# Pauses before a failed delivery is tried again (DELIVERY_ATTEMPTS in all): long enough
# for a platform's hiccup to pass, short enough that the member is not kept waiting.
DELIVERY_RETRY_DELAYS_S = (5.0, 30.0)
# First and longest pause while a platform cannot be reached: it is tried again for as
# long as the outage lasts, and within a minute of its end.
UNREACHABLE_BACKOFF_S = (1.0, 60.0)
# What a sink raising means the platform was not reached, whatever the adapter said.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (PlatformUnreachable, OSError, TimeoutError)

NotificationSink = Callable[[Notification], Awaitable[None]]


class NoSinkForPlatform(RuntimeError):
    pass


class EventParts:
    """SentParts of one notification of an event, kept in Redis until the event is
    acknowledged (queue.events.delivered_parts_key). Redis away, a part goes unrecorded:
    a retry may then send it again, which beats not sending the rest."""

    def __init__(self, events: EventConsumer, message_id: str, notification_index: int) -> None:
        self.events = events
        self.message_id = message_id
        self.prefix = f"{notification_index}/"

    async def sent(self) -> Mapping[str, str]:
        try:
            parts = await self.events.delivered_parts(self.message_id)
        except OUTAGE_ERRORS as exc:
            log.warning("parts sent of event %s unknown: %r", self.message_id, exc)
            return {}
        n = len(self.prefix)
        return {name[n:]: note for name, note in parts.items() if name.startswith(self.prefix)}

    async def mark_sent(self, part: str, note: str = "") -> None:
        try:
            await self.events.part_delivered(self.message_id, self.prefix + part, note)
        except OUTAGE_ERRORS as exc:
            log.warning("part %s of event %s sent but not recorded: %r", part, self.message_id, exc)


@dataclass
class EventDelivery:
    """Worker events recorded through the bot core and delivered to the chat platforms."""

    bot: StyleBot
    events: EventConsumer
    _: KW_ONLY
    sinks: dict[str, NotificationSink] = field(default_factory=dict)
    _delivery: asyncio.Task[None] | None = field(default=None, repr=False)
    # An event that could not be recorded for a full disk is tried again this often.
    storage_full_retry_s: float = 30.0
    # Whether the last event failed for a full disk (logged once, not per event).
    _storage_full: bool = field(default=False, repr=False)
    # Events being handled at once (each job's in order): bounded, so a backlog after
    # a restart does not open hundreds of database transactions and uploads together.
    _delivering: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(DELIVERY_CONCURRENCY), repr=False
    )
    retry_delays_s: tuple[float, ...] = DELIVERY_RETRY_DELAYS_S
    unreachable_backoff_s: tuple[float, float] = UNREACHABLE_BACKOFF_S

    def add_sink(self, platform: str, sink: NotificationSink) -> None:
        """Where notifications for users of `platform` go (an adapter's send method)."""
        self.sinks[platform] = sink

    async def deliver_events(self) -> None:
        """Run forever: record each worker event, notify the user, then acknowledge.

        An event is acknowledged only once its notifications went out, so one
        that was being handled when the process died is handled again at the
        next start (the core makes that repeat harmless).

        Each job's events are handled in order, but jobs do not wait for each other:
        a chat platform that makes us wait (Telegram's flood limits ask for tens of
        seconds) holds up only the jobs whose messages go there.
        """
        lanes: dict[str, asyncio.Task[None]] = {}
        try:
            async for message_id, event in self.events:
                previous = lanes.get(event.job_id)
                lane = asyncio.create_task(
                    self._handle_after(previous, message_id, event),
                    name=f"deliver-{event.job_id}",
                )
                lanes[event.job_id] = lane
                lane.add_done_callback(functools.partial(_forget_lane, lanes, event.job_id))
        finally:
            for lane in list(lanes.values()):
                lane.cancel()
            await asyncio.gather(*lanes.values(), return_exceptions=True)

    async def _handle_after(
        self, previous: asyncio.Task[None] | None, message_id: str, event: JobEvent
    ) -> None:
        """Handle one event once the job's previous event is done (whatever became of it)."""
        if previous is not None:
            await asyncio.wait([previous])
        # Every line about this event carries its job id, the adapters' included.
        with job_context(event.job_id):
            await self._handle(message_id, event)

    async def _handle(self, message_id: str, event: JobEvent) -> None:
        """Record the event and deliver its notifications, then acknowledge it.

        The core's failures leave it unacknowledged (handled again at the next start:
        nothing is recorded until that works). A platform that refuses a notification
        is tried DELIVERY_ATTEMPTS times in all, restarts included, unless the adapter
        says trying again cannot help (Undeliverable); then the member is told why and
        the event is acknowledged (stylebot.bot.core.delivery). A platform that cannot
        be reached is no refusal: tried again with capped backoff, uncounted, until it is.
        """
        unreachable_pause = 0.0
        while True:
            sending: Notification | None = None
            try:
                async with self._delivering:
                    notifications = await self.bot.handle_event(event)
                    for index, unrecorded in enumerate(notifications):
                        parts = EventParts(self.events, message_id, index)
                        sending = dataclasses.replace(unrecorded, sent=parts)
                        await self._deliver(sending)
            except asyncio.CancelledError:
                raise
            except StorageFull as full:
                # Tried again (in this job's order) until there is space; a restart in
                # between finds it unacknowledged and handles it then.
                self._note_storage_full(full)
                await asyncio.sleep(self.storage_full_retry_s)
                continue
            except UNREACHABLE_ERRORS as error:
                if sending is None:  # the core's (an OSError reading a blob): it waits
                    log.exception("event %s for job %s not handled", message_id, event.job_id)
                    return
                unreachable_pause = self._next_unreachable_pause(unreachable_pause)
                log.warning(
                    "event %s for job %s waits: %s is unreachable (%r); trying again in %.0f s",
                    message_id,
                    event.job_id,
                    sending.to.platform,
                    error,
                    unreachable_pause,
                )
                await asyncio.sleep(unreachable_pause)
                continue
            except Undeliverable as refused:
                assert sending is not None  # only adapters raise it
                log.error("event %s for job %s refused: %s", message_id, event.job_id, refused)
                await self._tell_undelivered(sending, refused.reason)
            except Exception as error:
                log.exception("event %s for job %s not delivered", message_id, event.job_id)
                if sending is None or isinstance(error, NoSinkForPlatform):
                    return  # the core failed, or the platform is not running: it waits
                failures = await self.events.delivery_failed(message_id)
                if failures < DELIVERY_ATTEMPTS:
                    delays = self.retry_delays_s or (0.0,)
                    await asyncio.sleep(delays[min(failures, len(delays)) - 1])
                    continue
                await self._tell_undelivered(
                    sending,
                    f"the chat platform refused it {failures} times (the operator's log "
                    "has the details)",
                )
            try:
                await self.events.ack(message_id)
            except OUTAGE_ERRORS as exc:
                # Delivered; only the ack is lost: handled again (harmlessly) at the next
                # start.
                log.warning("event %s delivered but not acknowledged: %r", message_id, exc)
            if self._storage_full:
                log.warning("storage has space again: events are recorded")
                self._storage_full = False
            return

    def _next_unreachable_pause(self, previous: float) -> float:
        first, longest = self.unreachable_backoff_s
        return first if previous <= 0 else min(previous * 2, longest)

    async def _tell_undelivered(self, notification: Notification, reason: str) -> None:
        """Best effort: the member hears why (and which images did not arrive), when
        anything reaches them at all."""
        sent = await notification.sent.sent() if notification.sent is not None else {}
        notice = undelivered_notice(notification, reason, sent)
        if notice is None:
            return
        try:
            await self._deliver(notice)
        except Exception:
            log.exception("the member could not be told either; the result stays recorded")

    def _note_storage_full(self, full: StorageFull) -> None:
        """One line while the disk stays full, not a traceback per progress event."""
        if not self._storage_full:
            log.error("events wait until there is space: %s", full)
        self._storage_full = True

    async def _deliver(self, notification: Notification) -> None:
        sink = self.sinks.get(notification.to.platform)
        if sink is None:
            # Left unacknowledged: the event is handled again at the next
            # start, when that platform's front end may be running.
            raise NoSinkForPlatform(
                f"no {notification.to.platform} front end is running; the event waits"
            )
        await sink(notification)

    def start_delivery(self) -> None:
        """Begin handling worker events. Call after every sink is added, or a
        result that arrived while the bot was down finds nobody to tell."""
        if self._delivery is None:
            self._delivery = asyncio.create_task(self.deliver_events(), name="deliver-events")
            self._delivery.add_done_callback(_report_delivery_end)

    async def stop_delivery(self) -> None:
        delivery, self._delivery = self._delivery, None
        if delivery is not None:
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivery


def _forget_lane(
    lanes: dict[str, asyncio.Task[None]], job_id: str, done: asyncio.Task[None]
) -> None:
    """A job's lane is dropped once its last event is done (a newer one replaced it else)."""
    if lanes.get(job_id) is done:
        lanes.pop(job_id)


def _report_delivery_end(delivery: asyncio.Task[None]) -> None:
    """Event delivery runs for ever (an outage only pauses it): its end is news."""
    if not delivery.cancelled() and (error := delivery.exception()) is not None:
        log.error("event delivery stopped: %r; no results reach users", error, exc_info=error)
