"""A training checkpoint as a worker gets it back: written to a file, read again."""

from __future__ import annotations

from pathlib import Path

from stylebot.trainer.checkpoints import TrainingCheckpoint


def as_stored(checkpoint: TrainingCheckpoint, directory: Path) -> TrainingCheckpoint:
    path = directory / f"checkpoint-{checkpoint.step}.pt"
    checkpoint.write_to(path)
    return TrainingCheckpoint.read_from(path)
