"""Training checkpoints move file -> blob store -> file, never whole in memory (issue 19):
a large model's optimiser state is gigabytes, and a worker holding it twice as bytes
runs out of memory. Measured with tracemalloc, which sees every Python bytes copy."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import torch
from arq.connections import ArqRedis
from tests.support.damage import flip_byte

from stylebot.queue.loop_handoff import run_on_loop
from stylebot.queue.payloads import TrainSettings
from stylebot.queue.recovery import CheckpointStore
from stylebot.storage.blobs import LocalBlobStore, sha256_of_file
from stylebot.trainer.checkpoints import (
    TrainingCheckpoint,
    checkpoint_files,
    run_fingerprint,
    usable_checkpoint,
)

SETTINGS = TrainSettings(steps=100)
# 32 MiB of adapter weights: far above what any chunked copy holds at once.
WEIGHTS = 8 * 1024 * 1024


def big_checkpoint(step: int) -> TrainingCheckpoint:
    generator = torch.Generator().manual_seed(step)
    return TrainingCheckpoint(
        step=step,
        settings=run_fingerprint(SETTINGS),
        loss=0.25,
        adapter={"unet.lora_A": torch.rand(WEIGHTS, generator=generator)},
        optimizer={"state": {}, "param_groups": []},
        rng_state=generator.get_state(),
    )


async def test_a_large_checkpoint_is_saved_and_resumed_without_a_whole_copy_in_memory(
    redis: ArqRedis, tmp_path: Path
) -> None:
    await redis.enqueue_job("train", {}, _job_id="train-big")  # a training, in arq
    checkpoints = CheckpointStore(redis, LocalBlobStore(tmp_path / "blobs"))
    state = big_checkpoint(40)
    loop = asyncio.get_running_loop()
    stored: list[tuple[str, int]] = []

    def save(file: Path, step: int) -> None:
        # As the worker does: from the training thread, stored before training goes on.
        stored.append((sha256_of_file(file), file.stat().st_size))
        run_on_loop(checkpoints.save_file("train-big", file, step), loop, 60)

    run = tmp_path / "run"
    run.mkdir()
    on_checkpoint = checkpoint_files(save, run)
    assert on_checkpoint is not None
    resumed = tmp_path / "resume.pt"
    tracemalloc.start()
    try:
        await asyncio.to_thread(on_checkpoint, state)
        step = await checkpoints.latest_to_file("train-big", resumed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    [(key, size)] = stored
    assert size > 4 * WEIGHTS, "the file holds the whole adapter"
    assert peak < size / 8, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB checkpoint"
    assert step == 40
    assert sha256_of_file(resumed) == key
    back = usable_checkpoint(resumed, SETTINGS)
    assert back is not None
    assert back.step == 40
    assert torch.equal(back.adapter["unet.lora_A"], state.adapter["unet.lora_A"])
    assert not list(run.iterdir()), "the trainer's checkpoint file does not outlive its save"


async def test_a_damaged_stored_checkpoint_gives_no_file_and_training_from_step_0(
    redis: ArqRedis, tmp_path: Path
) -> None:
    await redis.enqueue_job("train", {}, _job_id="train-damaged")  # a training, in arq
    blobs = LocalBlobStore(tmp_path / "blobs")
    checkpoints = CheckpointStore(redis, blobs)
    source = tmp_path / "state.pt"
    big_checkpoint(40).write_to(source)
    await checkpoints.save_file("train-damaged", source, 40)
    flip_byte(blobs.path(sha256_of_file(source)))

    target = tmp_path / "resume.pt"
    assert await checkpoints.latest_to_file("train-damaged", target) is None
    assert not target.exists(), "a damaged checkpoint never reaches the trainer"
    assert usable_checkpoint(None, SETTINGS) is None
