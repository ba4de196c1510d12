"""The composition root: the one place that builds real adapters and wires them.

The front end owns the database; workers get only Redis and the blob store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from PIL import Image

from stylebot.bot.core import Notification, Policy, StyleBot
from stylebot.bot.core.delivery import DELIVERY_ATTEMPTS, Undeliverable, undelivered_notice
from stylebot.bot.core.errors import StorageFull
from stylebot.bot.core.images import ImageLimits
from stylebot.config import Settings
from stylebot.logs import job_context
from stylebot.metrics import start_metrics_server
from stylebot.provenance.content_credentials import C2paCredentialsReader
from stylebot.provenance.signing import SigningIdentity, signing_identity_for
from stylebot.queue.client import ArqJobQueue
from stylebot.queue.connection import connect
from stylebot.queue.embedded_keeper import EmbeddedRedisKeeper
from stylebot.queue.events import EventConsumer
from stylebot.queue.outage import OUTAGE_ERRORS
from stylebot.queue.payloads import JobEvent
from stylebot.queue.redis_server import EmbeddedRedis, redis_url_or_embedded
from stylebot.startup_checks import StartupError
from stylebot.storage import LocalBlobStore, SqliteRepository, open_database
from stylebot.storage.admin import open_admin_ports
from stylebot.storage.full import is_storage_full
from stylebot.storage.ledger import SqliteConsentLedger
from stylebot.storage.optout import SqliteOptOutRegistry
from stylebot.storage.queue_cleanups import SqlitePendingQueueCleanups
from stylebot.storage.usage import SqliteUsageLog

log = logging.getLogger(__name__)

# Worker events handled at once, each job's in order (FrontEnd.deliver_events).
DELIVERY_CONCURRENCY = 32
# Pauses before a failed delivery is tried again (DELIVERY_ATTEMPTS in all): long enough
# for a platform's hiccup to pass, short enough that the member is not kept waiting.
DELIVERY_RETRY_DELAYS_S = (5.0, 30.0)

NotificationSink = Callable[[Notification], Awaitable[None]]


class ChatAdapter(Protocol):
    """A platform front end (Discord, Telegram): translates, holds no business rules."""

    platform: str

    async def start(self) -> None:
        """Connect and begin taking commands; returns once ready."""
        ...

    async def stop(self) -> None:
        """Stop taking commands and disconnect."""
        ...

    async def notify(self, notification: Notification) -> None:
        """Deliver a job's progress or result to where the job came from, within the
        platform's limits; raise Undeliverable for what the platform cannot take
        (stylebot.bot.core.delivery), anything else to be tried again."""
        ...


class NoFrontEndConfigured(RuntimeError):
    pass


class NoSinkForPlatform(RuntimeError):
    pass


class FrontEndStartError(RuntimeError):
    """A chat platform refused to start (bad token, no network); the message says why."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class PngWatermarkReader:
    """The WatermarkReader port on the provenance package (imported lazily: cv2 is slow)."""

    def read(self, image_bytes: bytes) -> str | None:
        from stylebot.provenance.watermark import read_watermark

        with Image.open(io.BytesIO(image_bytes)) as image:
            try:
                return read_watermark(image.convert("RGB"))
            except ValueError:  # too small to carry our watermark
                return None


def policy_from(settings: Settings) -> Policy:
    """The core's Policy: every field Settings has under the same name, plus the
    three that are built from several settings."""
    same_name = {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(Policy)
        if f.name not in ("base_model", "train", "images") and hasattr(settings, f.name)
    }
    return Policy(
        base_model=settings.model,
        train=settings.train_settings(),
        images=ImageLimits(
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_upload_pixels,
            max_files=settings.max_upload_files,
            max_total_bytes=settings.max_upload_total_bytes,
        ),
        **same_name,
    )


def signing_identity(settings: Settings) -> SigningIdentity:
    """The C2PA identity outputs are signed with: the operator's, else a local one."""
    return signing_identity_for(
        settings.signing_dir,
        settings.c2pa_cert_chain,
        settings.c2pa_private_key,
        settings.c2pa_tsa_url,
    )


@dataclass
class FrontEnd:
    """The bot core wired to SQLite, the blob store and the queue, plus event delivery."""

    settings: Settings
    bot: StyleBot
    repo: SqliteRepository
    blobs: LocalBlobStore
    queue: ArqJobQueue
    events: EventConsumer
    redis_url: str
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
                lane.add_done_callback(
                    lambda done, job_id=event.job_id: (
                        lanes.pop(job_id) if lanes.get(job_id) is done else None
                    )
                )
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
        the event is acknowledged (stylebot.bot.core.delivery).
        """
        try:
            failures = await self.events.delivery_failures(message_id)
        except OUTAGE_ERRORS:
            failures = 0  # Redis is back soon or the next start counts again
        while True:
            sending: Notification | None = None
            try:
                async with self._delivering:
                    notifications = await self.bot.handle_event(event)
                    for sending in notifications:
                        await self._deliver(sending)
            except asyncio.CancelledError:
                raise
            except StorageFull as full:
                # Tried again (in this job's order) until there is space; a restart in
                # between finds it unacknowledged and handles it then.
                self._note_storage_full(full)
                await asyncio.sleep(self.storage_full_retry_s)
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

    async def _tell_undelivered(self, notification: Notification, reason: str) -> None:
        """Best effort: the member hears why, when anything reaches them at all."""
        notice = undelivered_notice(notification, reason)
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


async def _start_redis(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """REDIS_URL, else the embedded Redis, started on a thread. Cancelled meanwhile
    (SIGTERM at start-up), the thread still starts the server: it is stopped then."""
    starting = asyncio.ensure_future(
        asyncio.to_thread(redis_url_or_embedded, settings.redis_url, settings.data_dir)
    )
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            _url, embedded = await starting
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
        raise


def _report_delivery_end(delivery: asyncio.Task[None]) -> None:
    """Event delivery runs for ever (an outage only pauses it): its end is news."""
    if not delivery.cancelled() and (error := delivery.exception()) is not None:
        log.error("event delivery stopped: %r; no results reach users", error, exc_info=error)


@contextlib.asynccontextmanager
async def open_frontend(settings: Settings) -> AsyncIterator[FrontEnd]:
    """Start everything the front end needs; stop it all on exit.

    Event delivery starts when the caller has added its sinks (`start_delivery`).
    """
    redis_url, embedded = await _start_redis(settings)
    async with contextlib.AsyncExitStack() as stack:
        # Whoever notices the embedded Redis died starts it again (event delivery does).
        keeper = EmbeddedRedisKeeper(embedded)
        stack.callback(keeper.stop)
        connection = await open_database(settings.database_path)
        repo = SqliteRepository(connection)
        stack.push_async_callback(repo.close)
        blobs = LocalBlobStore(settings.blob_dir)
        redis = await connect(redis_url)
        stack.push_async_callback(redis.aclose)
        queue = ArqJobQueue(redis, blobs)
        stack.push_async_callback(queue.close)
        events = EventConsumer(redis, on_outage=keeper.revive)
        await events.ensure_group()
        # The ledger, opt-outs and usage write on the repository's connection, so that
        # their writes commit with the records they go with (a consent and its ledger
        # entry, an erasure and all it removes); the admin store keeps its own (WAL).
        ledger = SqliteConsentLedger(repo)
        optouts = SqliteOptOutRegistry(repo)
        usage = SqliteUsageLog(repo)
        identity = await asyncio.to_thread(signing_identity, settings)
        admin_ports, admin_store = await open_admin_ports(settings, redis)
        stack.push_async_callback(admin_store.close)
        bot = StyleBot(
            repo,
            blobs,
            queue,
            PngWatermarkReader(),
            SystemClock(),
            policy_from(settings),
            ledger=ledger,
            optouts=optouts,
            usage=usage,
            credentials=C2paCredentialsReader(identity.chain_pem),
            admin=admin_ports,
            cleanups=SqlitePendingQueueCleanups(repo),
        )
        # Stopped before the connections close (the exit stack unwinds in reverse).
        stack.push_async_callback(bot.stop_queue_cleanups)
        # An erasure's queue part the last run could not finish (the queue was down,
        # or the front end stopped): done now, or retried until the queue answers.
        await bot.carry_out_queue_cleanups()
        # Jobs the database holds but Redis lost (it may drop its last second, or come
        # back empty) are failed now and again after each outage: they would never run.
        await bot.reconcile_with_queue()
        events.on_back = _after_outage(bot)
        frontend = FrontEnd(settings, bot, repo, blobs, queue, events, redis_url)
        stack.push_async_callback(frontend.stop_delivery)
        yield frontend


def _after_outage(bot: StyleBot) -> Callable[[], Awaitable[None]]:
    async def queue_is_back() -> None:
        await bot.carry_out_queue_cleanups()  # erasures' queue part first: it never raises
        await bot.reconcile_with_queue()

    return queue_is_back


def chat_adapters(frontend: FrontEnd) -> list[ChatAdapter]:
    """The platform adapters whose tokens are configured."""
    settings = frontend.settings
    adapters: list[ChatAdapter] = []
    if settings.discord_token:
        from stylebot.bot.discord import DiscordAdapter

        adapters.append(DiscordAdapter(frontend.bot, settings))
    if settings.telegram_token:
        from stylebot.bot.telegram import TelegramAdapter

        # Unset: python-telegram-bot's own api.telegram.org URLs.
        api_url = (settings.telegram_api_url or "").rstrip("/")
        server = {"base_url": f"{api_url}/bot", "base_file_url": f"{api_url}/file/bot"}
        adapters.append(TelegramAdapter(frontend.bot, settings, **(server if api_url else {})))
    return adapters


async def run_frontends(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """`stylebot run`: every configured platform in one event loop, until SIGINT/SIGTERM."""
    if not (settings.discord_token or settings.telegram_token):
        raise NoFrontEndConfigured(
            "No chat platform is configured: set DISCORD_TOKEN and/or TELEGRAM_TOKEN "
            "(or try `stylebot console`)."
        )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with open_frontend(settings) as frontend:
        started: list[ChatAdapter] = []
        metrics = start_metrics_server(settings, frontend.redis_url, role="frontend")
        try:
            for adapter in chat_adapters(frontend):
                frontend.add_sink(adapter.platform, adapter.notify)
                try:
                    await adapter.start()
                except Exception as exc:
                    raise FrontEndStartError(
                        f"the {adapter.platform} front end could not start: {exc}"
                    ) from exc
                started.append(adapter)
                log.info("%s front end running", adapter.platform)
            frontend.start_delivery()
            await stop.wait()
        finally:
            if metrics is not None:
                metrics.stop()
            for adapter in reversed(started):
                await adapter.stop()


def start_worker_redis(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """The Redis a worker uses: REDIS_URL, else the data directory's embedded one."""
    return redis_url_or_embedded(settings.redis_url, settings.data_dir)


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    """`stylebot worker`: serve jobs until SIGINT/SIGTERM (or the queue is empty, in burst).

    A Redis outage pauses it (and it starts the embedded Redis again if it runs it);
    an error it cannot go on from is raised, so the process exits non-zero.
    """
    from stylebot.queue.outage_worker import KEEPER_CTX_KEY
    from stylebot.queue.worker import build_worker

    redis_url, embedded = start_worker_redis(settings)
    keeper = EmbeddedRedisKeeper(embedded)
    metrics = None
    try:
        metrics = start_metrics_server(settings, redis_url, role="worker")
        asyncio.set_event_loop(asyncio.new_event_loop())
        worker = build_worker(settings, redis_url, burst=burst, ctx={KEEPER_CTX_KEY: keeper})
        try:
            worker.run()
        except OSError as exc:
            if not is_storage_full(exc):
                raise
            raise StartupError(f"the worker cannot start: {exc}") from None
        except Exception as exc:
            from stylebot.engine.models import ModelLoadError  # torch: workers only

            if not isinstance(exc, ModelLoadError):
                raise
            message = " ".join(str(exc).split())
            raise StartupError(
                f"the base model {settings.model} does not load: {message}"
            ) from None
    finally:
        if metrics is not None:
            metrics.stop()
        keeper.stop()
