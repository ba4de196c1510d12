"""Training checkpoints as a worker saves them (a file, through the blob store) and
gets them back (written to a file, read again)."""

from __future__ import annotations

from pathlib import Path

from stylebot.queue.recovery import CheckpointStore
from stylebot.trainer.checkpoints import TrainingCheckpoint


def as_stored(checkpoint: TrainingCheckpoint, directory: Path) -> TrainingCheckpoint:
    path = directory / f"checkpoint-{checkpoint.step}.pt"
    checkpoint.write_to(path)
    return TrainingCheckpoint.read_from(path)


async def save_checkpoint(
    store: CheckpointStore, job_id: str, state: bytes, step: int, directory: Path
) -> None:
    """What a worker's run leaves: `state` saved as the job's checkpoint at `step`."""
    path = directory / f"{job_id}-step-{step}.pt"
    path.write_bytes(state)
    await store.save_file(job_id, path, step)
