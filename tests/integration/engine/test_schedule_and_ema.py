"""The learning-rate schedule and the weights' moving average in real runs on the
tiny model: the rates each step used, and the average being what is saved."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file
from tests.support.stored_checkpoints import as_stored
from tests.support.tiny_styles import STRONG, TRIGGER, reference_images

from stylebot.engine.models import load_pipeline
from stylebot.trainer.adapter_variants import diffusers_layout
from stylebot.trainer.borrowed_unet import TRAINING_ADAPTER
from stylebot.trainer.checkpoints import TrainingCheckpoint
from stylebot.trainer.ema import ema_decay_at
from stylebot.trainer.lora import train_lora
from stylebot.trainer.lr_schedule import lr_factor

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SETTINGS = dataclasses.replace(STRONG, steps=6, checkpoint_every_steps=1)


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path) -> StableDiffusionPipeline:
    return load_pipeline(str(tiny_model_dir), device="cpu")


def _as_saved(checkpoint: TrainingCheckpoint) -> dict[str, torch.Tensor]:
    """A checkpoint's adapter named as the saved file names it."""
    peft = {name.replace(f".{TRAINING_ADAPTER}", ""): t for name, t in checkpoint.adapter.items()}
    return {f"unet.{key}": tensor for key, tensor in diffusers_layout(peft).items()}


def test_each_step_trains_at_the_scheduled_rate(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    settings = dataclasses.replace(SETTINGS, lr_warmup=0.5, lr_schedule="cosine")
    saved: list[TrainingCheckpoint] = []
    train_lora(
        pipeline, reference_images(), TRIGGER, settings, tmp_path, on_checkpoint=saved.append
    )
    rates = [c.optimizer["param_groups"][0]["lr"] for c in saved]
    expected = [settings.learning_rate * lr_factor(s, 6, 3, "cosine") for s in range(1, 6)]
    assert rates == pytest.approx(expected)
    assert rates[0] == pytest.approx(settings.learning_rate / 3)


def test_the_saved_style_is_the_average_of_the_steps_weights(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    raw_steps: list[TrainingCheckpoint] = []
    raw = train_lora(
        pipeline,
        reference_images(),
        TRIGGER,
        SETTINGS,
        tmp_path / "raw",
        on_checkpoint=raw_steps.append,
    )
    decay = 0.8
    averaged = train_lora(
        pipeline,
        reference_images(),
        TRIGGER,
        dataclasses.replace(SETTINGS, ema_decay=decay),
        tmp_path / "ema",
    )
    assert raw.weights_path is not None
    assert averaged.weights_path is not None
    last = load_file(raw.weights_path)
    # The same steps (the average does not change training): fold each step's weights in.
    weights = [_as_saved(c) for c in raw_steps] + [last]
    # The average starts from the adapter's initial weights, before step 1.
    expected = _initial_adapter(pipeline, tmp_path)
    for n, step_weights in enumerate(weights, start=1):
        d = ema_decay_at(decay, n)
        expected = {k: d * expected[k] + (1 - d) * step_weights[k] for k in expected}
    saved = load_file(averaged.weights_path)
    assert saved.keys() == last.keys()
    for key in saved:
        torch.testing.assert_close(saved[key], expected[key], rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(saved[k], last[k]) for k in saved)


def _initial_adapter(pipeline: StableDiffusionPipeline, tmp_path: Path) -> dict[str, torch.Tensor]:
    """The adapter's weights before its first step: a run stopped before step 1
    checkpoints nothing, so a one-step run at learning rate 0 saves them."""
    frozen = dataclasses.replace(SETTINGS, steps=1, learning_rate=1e-30)
    outcome = train_lora(pipeline, reference_images(), TRIGGER, frozen, tmp_path / "start")
    assert outcome.weights_path is not None
    return load_file(outcome.weights_path)


def test_a_resumed_averaging_run_saves_the_uninterrupted_runs_average(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    settings = dataclasses.replace(SETTINGS, ema_decay=0.8, checkpoint_every_steps=3)
    saved: list[TrainingCheckpoint] = []
    whole = train_lora(
        pipeline,
        reference_images(),
        TRIGGER,
        settings,
        tmp_path / "whole",
        on_checkpoint=saved.append,
    )
    [halfway] = saved
    assert halfway.ema
    resumed = train_lora(
        pipeline,
        reference_images(),
        TRIGGER,
        settings,
        tmp_path / "resumed",
        resume_from=as_stored(halfway, tmp_path),
    )
    assert whole.weights_path is not None
    assert resumed.weights_path is not None
    a, b = load_file(whole.weights_path), load_file(resumed.weights_path)
    for key in a:
        torch.testing.assert_close(a[key], b[key])
