"""Nobody slows the bot for everyone with pictures (issue 13).

/verify, /optout and uploads make the front end decode images. That work is bounded: a
message's image count and total size are checked before anything is decoded, each such
command counts against the rate limit, at most `image_work_concurrency` decodes run at
once, and /verify reads a huge JPEG at a fraction of its size.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from tests.fakes.core import person, png
from tests.fakes.safety import safety_world
from tests.support.processes import child_env

from stylebot.bootstrap import policy_from
from stylebot.bot.core.commands import Command, Imagine, IncomingFile, OptOut, UploadImages, Verify
from stylebot.bot.core.images import ImageLimits, normalize_for_reading
from stylebot.bot.core.placement import Alignment
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.replies import ErrorReply, VerifyReport
from stylebot.config import Settings
from stylebot.queue.payloads import TrainSettings

ROOT = Path(__file__).resolve().parents[3]
ALICE = person("alice")


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's file: an 8000x5000 JPEG of under 1 MB (40 megapixels, within the
    upload limit)."""
    image = Image.linear_gradient("L").resize((8000, 5000)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for x in range(0, 8000, 400):
        draw.ellipse((x, x % 2500, x + 300, x % 2500 + 300), fill=(x % 256, 90, 200))
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    image.save(path, "JPEG", quality=85)
    assert path.stat().st_size < 1_000_000
    return path


# Run in a fresh process, so that its peak resident memory measures this one command.
_MEASURE = """
import asyncio, resource, sys
from tests.fakes.core import person
from tests.fakes.safety import safety_world
from stylebot.bootstrap import PngWatermarkReader
from stylebot.bot.core.commands import IncomingFile, Verify
data = open(sys.argv[1], "rb").read()
world = safety_world()
world.bot.deps.watermark = PngWatermarkReader()  # the real reader
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
reply = asyncio.run(world.bot.handle(Verify(person("a"), IncomingFile("huge.jpg", data))))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(type(reply).__name__, (after - before) // 1024)
"""


def test_verifying_a_huge_jpeg_costs_a_bounded_amount_of_memory(huge_jpeg: Path) -> None:
    # Decoded in full, read for a mark and hashed, this file took 1.4 GB and 7 s of CPU;
    # decoded at 1/4 scale and shrunk to the largest output size, about 40 MB.
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(huge_jpeg)],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    kind, grown_mb = done.stdout.split()
    assert kind == VerifyReport.__name__
    assert int(grown_mb) < 150, f"peak memory grew by {grown_mb} MB"


def _junk(count: int, size: int) -> tuple[IncomingFile, ...]:
    """Files no decoder accepts: a reply about them shows they were decoded."""
    return tuple(IncomingFile(f"f{n}.png", bytes([n % 251]) * size) for n in range(count))


MESSAGES: list[tuple[str, Callable[[tuple[IncomingFile, ...]], Command]]] = [
    ("upload", lambda files: UploadImages(ALICE, files)),
    ("optout", lambda files: OptOut(ALICE, files)),
]


@pytest.mark.parametrize(("name", "make"), MESSAGES, ids=[n for n, _ in MESSAGES])
async def test_too_many_images_in_one_message_are_refused_before_any_is_decoded(
    name: str, make: Callable[[tuple[IncomingFile, ...]], Command]
) -> None:
    world = safety_world()
    reply = await world.bot.handle(make(_junk(21, 1000)))
    assert isinstance(reply, ErrorReply)
    assert "at most 20 at a time" in reply.text
    assert world.usage.events == []  # refused before counting, too


@pytest.mark.parametrize(("name", "make"), MESSAGES, ids=[n for n, _ in MESSAGES])
async def test_too_many_bytes_in_one_message_are_refused_before_any_is_decoded(
    name: str, make: Callable[[tuple[IncomingFile, ...]], Command]
) -> None:
    world = safety_world()
    # Each file is within the 20 MB a file may have; together they pass the 50 MB.
    reply = await world.bot.handle(make(_junk(3, 19 * 1024 * 1024)))
    assert isinstance(reply, ErrorReply)
    assert "send at most 50 MB at a time" in reply.text


def _policy(**limits: int) -> Policy:
    return Policy(base_model="tiny", train=TrainSettings(steps=10, resolution=64), **limits)


async def test_image_work_counts_against_the_rate_limit() -> None:
    world = safety_world(_policy(requests_per_window=3, rate_window_s=60))
    picture = IncomingFile("p.png", png(size=128))
    for command in (
        Verify(ALICE, picture),
        UploadImages(ALICE, (picture,)),
        OptOut(ALICE, (IncomingFile("o.png", png((10, 200, 30), size=128)),)),
    ):
        await world.bot.handle(command)
    for command in (Verify(ALICE, picture), Imagine(ALICE, "a boat")):
        refused = await world.bot.handle(command)
        assert isinstance(refused, ErrorReply)
        assert "too quickly" in refused.text
    # Someone else is not held back by Alice.
    other = await world.bot.handle(Verify(person("bob"), picture))
    assert isinstance(other, VerifyReport)


class CountingReader:
    """A WatermarkReader that takes a while and notes how many reads run at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0

    def read(self, image_bytes: bytes) -> str | None:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self._lock:
            self.running -= 1
        return None

    def carries(
        self, image_bytes: bytes, output_id: str, output_size: tuple[int, int], placed: Alignment
    ) -> bool:
        return False


async def test_at_most_image_work_concurrency_images_are_worked_on_at_once() -> None:
    world = safety_world(_policy(image_work_concurrency=2))
    reader = CountingReader()
    world.bot.deps.watermark = reader
    picture = IncomingFile("p.png", png(size=128))
    replies = await asyncio.gather(
        *(world.bot.handle(Verify(person(f"user{n}"), picture)) for n in range(6))
    )
    assert all(isinstance(r, VerifyReport) for r in replies)
    assert reader.most == 2


def test_a_huge_jpeg_is_read_shrunk_to_the_largest_output_size(huge_jpeg: Path) -> None:
    image = normalize_for_reading("huge.jpg", huge_jpeg.read_bytes(), ImageLimits(), 1024)
    assert (image.width, image.height) == (1024, 640)
    with Image.open(io.BytesIO(image.data)) as decoded:
        assert decoded.size == (1024, 640)


def test_the_bounds_are_settings() -> None:
    settings = Settings(
        max_upload_files=4,
        max_upload_total_bytes=1000,
        image_work_concurrency=3,
        optouts_per_user=7,
        optouts_per_user_per_day=2,
    )
    policy = policy_from(settings)
    assert (policy.images.max_files, policy.images.max_total_bytes) == (4, 1000)
    assert (policy.optouts_per_user, policy.optouts_per_user_per_day) == (7, 2)
    assert policy.image_work_concurrency == 3  # Deps.image_work's size (tested above)
