"""Results too large for a chat platform, without generating them: generating four
1024x1536 images with the tiny model takes minutes, storing noise takes a moment.

Noise, because it does not compress: a PNG of it is as large as a real photo-like
result of that size can get (about 3 bytes a pixel), so it tests the platforms' limits.
"""

from __future__ import annotations

import asyncio
import io

import numpy as np
from PIL import Image

from stylebot.bootstrap import FrontEnd
from stylebot.queue.events import FRONTEND_GROUP, EventPublisher
from stylebot.queue.keys import EVENTS_STREAM
from stylebot.queue.payloads import GeneratedImage, GenerateResult, JobEvent


def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    """An RGB PNG of random pixels: about ``3 * width * height`` bytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


async def finish_with_images(frontend: FrontEnd, job_id: str, images: list[bytes]) -> JobEvent:
    """Store ``images`` as the results of the queued generation ``job_id`` (one per output
    it was given, in order) and publish its "finished" event, as a worker would."""
    outputs = await frontend.uow.outputs.job_outputs(job_id)
    assert len(outputs) == len(images), (len(outputs), len(images))
    made = [
        GeneratedImage(output.id, await frontend.blobs.put(data), seed)
        for seed, (output, data) in enumerate(zip(outputs, images, strict=True))
    ]
    result = GenerateResult(tuple(made), 1.0).to_dict()
    event = JobEvent(job_id, "generate", "finished", result=result)
    await EventPublisher(frontend.events.redis).publish(event)
    return event


async def unacknowledged_events(frontend: FrontEnd, *, wait_s: float = 5.0) -> int:
    """Events the front end read and has not acknowledged, once it had up to ``wait_s``
    to finish with them (acknowledging comes just after the last message is sent)."""
    for _ in range(int(wait_s / 0.02)):
        summary = await frontend.events.redis.xpending(EVENTS_STREAM, FRONTEND_GROUP)
        if int(summary["pending"]) == 0:
            return 0
        await asyncio.sleep(0.02)
    return int(summary["pending"])
