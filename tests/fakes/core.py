"""In-memory fakes of the core's other ports, and builders for core tests."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from PIL import Image

from stylebot.bot.core.admin_ports import AdminPorts, parse_operators
from stylebot.bot.core.model import Requester
from stylebot.bot.core.placement import Alignment
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.ports import (
    BlobStore,
    Clock,
    ContentCredentialsReader,
    JobQueue,
    WatermarkReader,
)
from stylebot.bot.core.service import StyleBot
from stylebot.bot.core.stores import UnitOfWork
from stylebot.queue.fairness import Lane, lane_of
from stylebot.queue.payloads import (
    CaptionJob,
    CompareJob,
    GenerateJob,
    JobKind,
    TrainJob,
    TrainSettings,
)
from tests.fakes.admin import FakeAdminStore, FakeTrainingSwitch, FakeWorkerDirectory
from tests.fakes.lane_turns import LaneTurns
from tests.fakes.memory import InMemoryBlobStore, InMemoryUnitOfWork


@dataclass
class RecordingQueue:
    """The JobQueue port in memory: keeps what was enqueued, in order, and gives
    turns by the same rule as the Redis queue (`LaneTurns`)."""

    train_jobs: list[TrainJob] = field(default_factory=list)
    generate_jobs: list[GenerateJob] = field(default_factory=list)
    caption_jobs: list[CaptionJob] = field(default_factory=list)
    compare_jobs: list[CompareJob] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    forgotten_owners: list[str] = field(default_factory=list)
    revoked_blobs: list[str] = field(default_factory=list)
    # How many times the store was asked to rewrite its files, and what it had
    # forgotten by then.
    disk_rewrites: list[tuple[str, ...]] = field(default_factory=list)

    reported_failed: list[tuple[str, JobKind, str]] = field(default_factory=list)
    # Running jobs whose worker died (`worker_died`): held by no live worker.
    orphaned: set[str] = field(default_factory=set)
    turns: dict[Lane, LaneTurns] = field(
        default_factory=lambda: {"generate": LaneTurns(), "train": LaneTurns()}
    )

    async def enqueue_train(self, job: TrainJob) -> None:
        self.train_jobs.append(job)
        self.turns["train"].give(job.job_id, job.owner)

    async def enqueue_generate(self, job: GenerateJob) -> None:
        self.generate_jobs.append(job)
        self.turns["generate"].give(job.job_id, job.owner)

    async def enqueue_caption(self, job: CaptionJob) -> None:
        self.caption_jobs.append(job)
        self.turns[lane_of("caption")].give(job.job_id, job.owner)

    async def enqueue_compare(self, job: CompareJob) -> None:
        self.compare_jobs.append(job)
        self.turns[lane_of("compare")].give(job.job_id, job.owner)

    async def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)
        self.finished(job_id)

    async def waiting_order(self, kind: JobKind) -> list[str]:
        return self.turns[lane_of(kind)].order()

    async def forget_jobs(self, job_ids: Sequence[str], owner: str | None = None) -> None:
        self.forgotten.extend(job_ids)
        for job_id in job_ids:
            self.finished(job_id)
        if owner is not None:
            self.forgotten_owners.append(owner)
            for lane in self.turns.values():
                lane.owner_next_round.pop(owner, None)

    async def revoke_blobs(self, keys: Sequence[str]) -> None:
        self.revoked_blobs.extend(keys)

    async def erase_from_disk(self) -> None:
        self.disk_rewrites.append(tuple(self.forgotten))

    async def untraced(self, job_ids: Sequence[str]) -> set[str]:
        known = {job.job_id for job in [*self.train_jobs, *self.generate_jobs]}
        return {job_id for job_id in job_ids if job_id not in known}

    async def report_failed(self, job_id: str, kind: JobKind, error: str) -> None:
        self.reported_failed.append((job_id, kind, error))

    async def worker_alive(self, job_id: str) -> bool:
        return job_id not in self.orphaned

    def worker_died(self, job_id: str) -> None:
        """What killing the worker that runs the job does (until another takes it up)."""
        self.orphaned.add(job_id)

    def started(self, job_id: str) -> None:
        """What a worker does when it starts the job."""
        for lane in self.turns.values():
            lane.started(job_id)

    def finished(self, job_id: str) -> None:
        """What a worker does when the job is done: it leaves the order."""
        for lane in self.turns.values():
            lane.remove(job_id)


class PixelWatermark:
    """A WatermarkReader for unit tests: the id is looked up by the top-left pixel.

    The core strips metadata before reading, so the fake keys on pixels, as the
    real reader does; the real reader is tested on real pixels elsewhere.
    """

    def __init__(self) -> None:
        self.ids: dict[tuple[int, int, int], str] = {}

    def read(self, image_bytes: bytes) -> str | None:
        with Image.open(io.BytesIO(image_bytes)) as image:
            return self.ids.get(image.convert("RGB").getpixel((0, 0)))  # type: ignore[arg-type]

    def carries(
        self, image_bytes: bytes, output_id: str, output_size: tuple[int, int], placed: Alignment
    ) -> bool:
        """Whether the image's top-left pixel keys ``output_id`` (the placement aside)."""
        return self.read(image_bytes) == output_id


class NoCredentials:
    """A ContentCredentialsReader that finds no C2PA manifest in any file."""

    def describe(self, data: bytes) -> str | None:
        return None


def fake_admin(operators: str = "") -> AdminPorts:
    return AdminPorts(
        FakeAdminStore(), FakeTrainingSwitch(), FakeWorkerDirectory(), parse_operators(operators)
    )


def bot_on(
    uow: UnitOfWork,
    blobs: BlobStore,
    queue: JobQueue,
    watermark: WatermarkReader,
    clock: Clock,
    policy: Policy,
    *,
    credentials: ContentCredentialsReader | None = None,
    admin: AdminPorts | None = None,
) -> StyleBot:
    """The core on these ports; the ports a test does not look at are fakes."""
    return StyleBot(
        uow,
        blobs,
        queue,
        watermark,
        clock,
        policy,
        credentials=credentials or NoCredentials(),
        admin=admin or fake_admin(),
    )


class SteppingClock:
    def __init__(self) -> None:
        self.current = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        self.current += timedelta(seconds=1)
        return self.current


@dataclass
class CoreWorld:
    """The core on fakes; tests act through `bot` and look at the rest."""

    bot: StyleBot
    uow: InMemoryUnitOfWork
    blobs: InMemoryBlobStore
    queue: RecordingQueue
    watermark: PixelWatermark


def core_world(**policy_options: object) -> CoreWorld:
    """The core on fresh fakes with quotas and rate limits off (their own tests,
    tests/unit/safety, turn them on); `policy_options` change the policy."""
    options: dict[str, object] = {
        "base_model": "tiny",
        "train": TrainSettings(steps=10, resolution=64),
        "requests_per_window": 0,
        "images_per_user_per_day": 0,
        "trainings_per_user_per_day": 0,
        "erasures_per_user_per_day": 0,
        **policy_options,
    }
    uow, blobs, queue, watermark = (
        InMemoryUnitOfWork(),
        InMemoryBlobStore(),
        RecordingQueue(),
        PixelWatermark(),
    )
    bot = bot_on(uow, blobs, queue, watermark, SteppingClock(), Policy(**options))  # type: ignore[arg-type]
    return CoreWorld(bot, uow, blobs, queue, watermark)


def person(
    user_id: str = "alice", server: str | None = "guild-1", platform: str = "discord"
) -> Requester:
    return Requester(platform, user_id, user_id.title(), chat_id=f"chat-{server}", server_id=server)


def png(colour: tuple[int, int, int] = (200, 40, 40), size: int = 96) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, "PNG")
    return buffer.getvalue()
