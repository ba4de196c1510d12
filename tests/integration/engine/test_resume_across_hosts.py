"""A checkpoint records the optimiser its host resolved "auto" to, and a run
resumed on a host that resolves it otherwise (8-bit AdamW on CUDA with
bitsandbytes, AdamW elsewhere) keeps the LoRA weights and step count but starts
a fresh optimiser state, instead of failing at its first step."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.support.stored_checkpoints import as_stored

from stylebot.engine.models import load_pipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.adapter_run import TrainingCancelled
from stylebot.trainer.checkpoints import TrainingCheckpoint
from stylebot.trainer.lora import train_lora

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SETTINGS = TrainSettings(
    steps=4, resolution=64, rank=4, learning_rate=1e-3, seed=7, checkpoint_every_steps=2
)


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(2)]


def _as_if_from_8bit_adamw(checkpoint: TrainingCheckpoint) -> TrainingCheckpoint:
    """The checkpoint as a CUDA host with bitsandbytes saves it: AdamW8bit's state
    keys (state1, state2) and param-group options."""
    state = {
        index: {"step": entry["step"], "state1": torch.zeros(1), "state2": torch.zeros(1)}
        for index, entry in checkpoint.optimizer["state"].items()
    }
    groups = [{**group, "optim_bits": 32} for group in checkpoint.optimizer["param_groups"]]
    return dataclasses.replace(
        checkpoint,
        optimizer={"state": state, "param_groups": groups},
        optimizer_name="adamw8bit",
    )


def test_a_run_resumes_from_another_optimisers_checkpoint_with_a_fresh_state(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    whole_losses: list[float] = []
    train_lora(
        pipeline,
        _images(),
        "sks",
        SETTINGS,
        tmp_path / "whole",
        on_progress=lambda _step, _total, loss: whole_losses.append(loss),
    )

    saved: list[TrainingCheckpoint] = []
    done: list[int] = []
    with pytest.raises(TrainingCancelled):
        train_lora(
            pipeline,
            _images(),
            "sks",
            SETTINGS,
            tmp_path / "stopped",
            on_progress=lambda step, _total, _loss: done.append(step),
            should_stop=lambda: len(done) >= 2,
            on_checkpoint=saved.append,
        )
    checkpoint = as_stored(saved[-1], tmp_path)
    assert checkpoint.step == 2
    # What "auto" became on this (CPU) host, not "auto".
    assert checkpoint.settings["optimizer"] == "auto"
    assert checkpoint.optimizer_name == "adamw"

    foreign = as_stored(_as_if_from_8bit_adamw(checkpoint), tmp_path)
    assert foreign.optimizer_name == "adamw8bit"
    steps: list[int] = []
    losses: list[float] = []
    with caplog.at_level(logging.WARNING, logger="stylebot.trainer.lora"):
        resumed = train_lora(
            pipeline,
            _images(),
            "sks",
            SETTINGS,
            tmp_path / "resumed",
            on_progress=lambda step, _total, loss: (steps.append(step), losses.append(loss)),
            resume_from=foreign,
        )
    assert steps == [3, 4]
    assert resumed.resumed_from == 2
    assert resumed.weights_path is not None
    assert resumed.weights_path.exists()
    # Step 3's loss comes before its optimiser step: the same weights and draws
    # as the uninterrupted run give the same loss.
    assert losses[0] == pytest.approx(whole_losses[2], rel=1e-4)
    assert "saved with optimiser adamw8bit, this host trains with adamw" in caplog.text
    assert "optimiser state started afresh" in caplog.text
