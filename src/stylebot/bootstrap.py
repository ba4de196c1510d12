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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from PIL import Image

from stylebot.bot.core.images import ImageLimits
from stylebot.bot.core.placement import Alignment
from stylebot.bot.core.policy import Policy, PolicySettings
from stylebot.bot.core.replies import Notification
from stylebot.bot.core.service import StyleBot
from stylebot.config import Settings
from stylebot.delivery_loop import EventDelivery
from stylebot.metrics import start_metrics_server
from stylebot.provenance.content_credentials import C2paCredentialsReader
from stylebot.provenance.signing import SigningIdentity, signing_identity_for
from stylebot.queue.client import ArqJobQueue
from stylebot.queue.connection import connect
from stylebot.queue.embedded_keeper import EmbeddedRedisKeeper
from stylebot.queue.events import EventConsumer
from stylebot.queue.fresh_blobs import with_fresh_copies
from stylebot.queue.redis_endpoint import RedisEndpoint
from stylebot.queue.redis_server import EmbeddedRedis, redis_url_or_embedded
from stylebot.startup_checks import StartupError
from stylebot.storage.admin import open_admin_ports
from stylebot.storage.blob_storage import BlobStorage, open_blob_store
from stylebot.storage.database import open_database
from stylebot.storage.full import is_storage_full
from stylebot.storage.unit_of_work import SqliteUnitOfWork

log = logging.getLogger(__name__)


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

    def carries(
        self, image_bytes: bytes, output_id: str, output_size: tuple[int, int], placed: Alignment
    ) -> bool:
        import numpy as np

        from stylebot.provenance.watermark_at_placement import carries_mark

        with Image.open(io.BytesIO(image_bytes)) as image:
            rgb = np.asarray(image.convert("RGB"))
        return carries_mark(
            rgb, output_id, output_size, (placed.scale_x, placed.scale_y), (placed.left, placed.top)
        )


def policy_from(settings: Settings) -> Policy:
    """The core's Policy: the PolicySettings Settings inherits, plus what is built
    from several settings."""
    knobs = {f.name: getattr(settings, f.name) for f in dataclasses.fields(PolicySettings)}
    return Policy(
        base_model=settings.model,
        train=settings.train_settings(),
        images=ImageLimits(
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_upload_pixels,
            max_files=settings.max_upload_files,
            max_total_bytes=settings.max_upload_total_bytes,
        ),
        train_chosen_from_images=settings.train_chosen_from_images,
        captioner_configured=bool(settings.captioner),
        clip_configured=bool(settings.clip_model),
        sketch_follows=tuple(settings.controlnets),
        **knobs,
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
class FrontEnd(EventDelivery):
    """The bot core wired to SQLite, the blob store and the queue, plus event delivery
    (stylebot.delivery_loop)."""

    settings: Settings
    uow: SqliteUnitOfWork
    blobs: BlobStorage
    queue: ArqJobQueue
    redis_url: str


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
        # The records and every store that must commit with them, on one connection.
        uow = SqliteUnitOfWork(await open_database(settings.database_path))
        stack.push_async_callback(uow.close)
        redis = await connect(RedisEndpoint.from_settings(settings, redis_url))
        stack.push_async_callback(redis.aclose)
        # Results' pictures come from the copies workers leave in Redis when there are.
        blobs = with_fresh_copies(open_blob_store(settings), redis, leaves_copies=False)
        queue = ArqJobQueue(redis, blobs)
        stack.push_async_callback(queue.close)
        events = EventConsumer(redis, on_outage=keeper.revive)
        await events.ensure_group()
        identity = await asyncio.to_thread(signing_identity, settings)
        admin_ports, admin_store = await open_admin_ports(settings, redis)
        stack.push_async_callback(admin_store.close)
        bot = StyleBot(
            uow,
            blobs,
            queue,
            PngWatermarkReader(),
            SystemClock(),
            policy_from(settings),
            credentials=C2paCredentialsReader(identity.chain_pem),
            admin=admin_ports,  # the admin store keeps a connection of its own (WAL)
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
        frontend = FrontEnd(
            bot=bot,
            events=events,
            settings=settings,
            uow=uow,
            blobs=blobs,
            queue=queue,
            redis_url=redis_url,
        )
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
        from stylebot.bot.discord.adapter import DiscordAdapter

        adapters.append(DiscordAdapter(frontend.bot, settings))
    if settings.telegram_token:
        from stylebot.bot.telegram.adapter import TelegramAdapter

        # Unset: python-telegram-bot's own api.telegram.org URLs.
        api_url = (settings.telegram_api_url or "").rstrip("/")
        adapters.append(
            TelegramAdapter(
                frontend.bot,
                settings,
                base_url=f"{api_url}/bot" if api_url else None,
                base_file_url=f"{api_url}/file/bot" if api_url else None,
            )
        )
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
        verify_page = None
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
            if settings.verify_web_port:  # aiohttp is imported only when the page is on
                from stylebot.bot.web.server import start_verify_web

                verify_page = await start_verify_web(frontend.bot, settings)
            frontend.start_delivery()
            await stop.wait()
        finally:
            if verify_page is not None:
                await verify_page.stop()
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
    from stylebot.queue.worker import build_worker

    redis_url, embedded = start_worker_redis(settings)
    keeper = EmbeddedRedisKeeper(embedded)
    metrics = None
    try:
        metrics = start_metrics_server(settings, redis_url, role="worker")
        asyncio.set_event_loop(asyncio.new_event_loop())
        worker = build_worker(settings, redis_url, burst=burst, redis_keeper=keeper)
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
