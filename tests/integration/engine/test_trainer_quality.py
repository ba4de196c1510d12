"""The trainer's quality features on the tiny model: aspect-ratio buckets, cached
latents with flips, repeats, min-SNR weighting, offset noise, gradient
checkpointing and validation against the base model on held-out images."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, StableDiffusionPipeline
from PIL import Image
from tests.support.stored_checkpoints import as_stored

from stylebot.engine.models import load_pipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.adapter_run import TrainingCancelled
from stylebot.trainer.buckets import bucket_images
from stylebot.trainer.checkpoints import TrainingCheckpoint
from stylebot.trainer.lora import train_lora
from stylebot.trainer.objectives import min_snr_weights
from stylebot.trainer.validation import split_holdout

TRIGGER = "sks style"
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

BASE = TrainSettings(steps=6, resolution=64, rank=4, learning_rate=1e-3, seed=7)
# Three shapes that land in three different buckets at 64 px.
SHAPES = [(96, 48), (48, 96), (64, 64)]


def _images(shapes: list[tuple[int, int]]) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in shapes]


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path) -> StableDiffusionPipeline:
    return load_pipeline(str(tiny_model_dir), device="cpu")


class _Recorder:
    """What reaches the VAE encoder and the UNet, through forward pre-hooks."""

    def __init__(self, pipeline: StableDiffusionPipeline) -> None:
        self.vae_inputs: list[tuple[int, ...]] = []
        self.unet_inputs: list[tuple[int, ...]] = []
        self.timesteps: list[torch.Tensor] = []
        self._handles = [
            pipeline.vae.encoder.register_forward_pre_hook(self._vae),
            pipeline.unet.register_forward_pre_hook(self._unet, with_kwargs=True),
        ]

    def _vae(self, _module: Any, args: tuple[Any, ...]) -> None:
        self.vae_inputs.append(tuple(args[0].shape))

    def _unet(self, _module: Any, args: tuple[Any, ...], _kwargs: dict[str, Any]) -> None:
        self.unet_inputs.append(tuple(args[0].shape))
        self.timesteps.append(args[1].clone())

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *_: object) -> None:
        for handle in self._handles:
            handle.remove()


def _train(
    pipeline: StableDiffusionPipeline,
    images: list[Image.Image],
    settings: TrainSettings,
    out: Path,
    **kwargs: Any,
) -> tuple[list[float], Any]:
    losses: list[float] = []
    outcome = train_lora(
        pipeline,
        images,
        TRIGGER,
        settings,
        out,
        on_progress=lambda _step, _total, loss: losses.append(loss),
        **kwargs,
    )
    return losses, outcome


def test_images_train_in_their_own_aspect_ratio_buckets(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    images = _images(SHAPES)
    buckets = {b.bucket for b in bucket_images(images, 64)}
    assert len(buckets) == 3
    settings = dataclasses.replace(BASE, steps=12, repeats=2, min_snr_gamma=0)
    with _Recorder(pipeline) as seen:
        losses, outcome = _train(pipeline, images, settings, tmp_path)
    assert outcome.weights_path.is_file()
    assert all(math.isfinite(loss) for loss in losses)
    # One VAE pass per image, each at its bucket's size (not a centre square).
    assert sorted(shape[2:] for shape in seen.vae_inputs) == sorted((h, w) for w, h in buckets)
    # Each UNet step sees one image's latents at 1/8 of its bucket; with two
    # repeats an epoch is six steps, each image twice.
    latent_sizes = {(h // 8, w // 8) for w, h in buckets}
    steps = [shape[2:] for shape in seen.unet_inputs]
    assert set(steps) <= latent_sizes
    for epoch in range(2):
        assert Counter(steps[epoch * 6 : (epoch + 1) * 6]) == {size: 2 for size in latent_sizes}


def test_flips_encode_a_mirror_latent_and_batches_stay_within_a_bucket(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    images = _images([(96, 48), (96, 48), (64, 64), (64, 64), (64, 64)])
    settings = dataclasses.replace(BASE, batch_size=2, flip=True, repeats=2)
    with _Recorder(pipeline) as seen:
        losses, _ = _train(pipeline, images, settings, tmp_path)
    assert len(seen.vae_inputs) == 2 * len(images)
    assert len(losses) == 6
    # Batches of two (or a bucket's remainder of one), one shape each.
    assert {shape[0] for shape in seen.unet_inputs} <= {1, 2}
    assert 2 in {shape[0] for shape in seen.unet_inputs}


def test_min_snr_weighting_scales_each_steps_loss_by_its_timesteps_weight(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    images = _images(SHAPES)
    plain = dataclasses.replace(BASE, min_snr_gamma=0.0, steps=1)
    weighted = dataclasses.replace(plain, min_snr_gamma=5.0)
    plain_losses, _ = _train(pipeline, images, plain, tmp_path / "plain")
    with _Recorder(pipeline) as seen:
        weighted_losses, _ = _train(pipeline, images, weighted, tmp_path / "weighted")
    # The first step's prediction is the base model's either way (the LoRA's
    # up-projection starts at zero), so the losses differ by the weight alone.
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    weight = float(min_snr_weights(scheduler, seen.timesteps[0], 5.0, "epsilon")[0])
    assert weighted_losses[0] == pytest.approx(plain_losses[0] * weight, rel=1e-4)


def test_noise_offset_changes_the_noise(pipeline: StableDiffusionPipeline, tmp_path: Path) -> None:
    images = _images(SHAPES[:2])
    plain, _ = _train(pipeline, images, BASE, tmp_path / "plain")
    offset, _ = _train(
        pipeline, images, dataclasses.replace(BASE, noise_offset=0.1), tmp_path / "o"
    )
    assert all(math.isfinite(loss) for loss in offset)
    assert offset != pytest.approx(plain, rel=1e-4)


class _WaitingGeneration:
    """Generation that asks for the device once, after the first training step."""

    def __init__(self, pipeline: StableDiffusionPipeline) -> None:
        self.pipeline = pipeline
        self.images: list[np.ndarray] = []

    def has_waiting(self) -> bool:
        return not self.images

    def run_waiting(self) -> None:
        self.images.append(_sample(self.pipeline))


def _sample(pipeline: StableDiffusionPipeline) -> np.ndarray:
    image = pipeline(
        TRIGGER,
        num_inference_steps=3,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(3),
    ).images[0]
    return np.asarray(image)


def test_gradient_checkpointing_trains_the_same_and_lends_the_device(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    images = _images(SHAPES[:2])
    idle_image = _sample(pipeline)
    without, _ = _train(pipeline, images, BASE, tmp_path / "without")
    checkpointing: list[bool] = []
    waiting = _WaitingGeneration(pipeline)
    with_losses: list[float] = []

    def progress(_step: int, _total: int, loss: float) -> None:
        with_losses.append(loss)
        checkpointing.append(pipeline.unet.is_gradient_checkpointing)

    train_lora(
        pipeline,
        images,
        TRIGGER,
        dataclasses.replace(BASE, gradient_checkpointing=True),
        tmp_path / "with",
        on_progress=progress,
        device_sharing=waiting,
    )
    assert checkpointing == [True] * 6
    assert with_losses == pytest.approx(without, rel=1e-4)
    # Generation between steps saw the base pipeline; afterwards it is as it was.
    assert len(waiting.images) == 1
    assert np.array_equal(waiting.images[0], idle_image)
    assert not pipeline.unet.is_gradient_checkpointing
    assert np.array_equal(_sample(pipeline), idle_image)


def test_validation_compares_with_the_base_model_at_each_checkpoint(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    images = _images([(96, 48), (48, 96), (64, 64), (64, 64)])
    settings = dataclasses.replace(BASE, holdout_images=1, checkpoint_every_steps=2)
    [held] = split_holdout(4, 1, settings.seed)[1]
    held_shape = bucket_images([images[held]], 64)[0].bucket
    with _Recorder(pipeline) as seen:
        _losses, outcome = _train(pipeline, images, settings, tmp_path / "whole")
    curve = outcome.validation
    assert [point.step for point in curve] == [2, 4, 6]
    # Same noise and timesteps every time: the base model's loss never moves.
    assert len({point.base_loss for point in curve}) == 1
    assert all(math.isfinite(p.loss) and p.loss > 0 for p in curve)
    assert all(p.loss != p.base_loss for p in curve)
    # Four images encoded, but the held-out one never trained: the six
    # training steps (batch 1) all had another image.
    assert len(seen.vae_inputs) == 4
    training_steps = [s for s in seen.unet_inputs if s[0] == 1]
    assert len(training_steps) == 6
    if held_shape[0] != held_shape[1]:  # a bucket of its own
        assert (held_shape[1] // 8, held_shape[0] // 8) not in {s[2:] for s in training_steps}

    # A run stopped after step 3 and resumed returns the same whole curve.
    saved: list[TrainingCheckpoint] = []
    done: list[int] = []
    with pytest.raises(TrainingCancelled):
        train_lora(
            pipeline,
            images,
            TRIGGER,
            settings,
            tmp_path / "stopped",
            on_progress=lambda step, _t, _l: done.append(step),
            should_stop=lambda: len(done) >= 3,
            on_checkpoint=saved.append,
        )
    restored = as_stored(saved[-1], tmp_path)
    assert [point[0] for point in restored.validation] == [2]
    _, resumed = _train(pipeline, images, settings, tmp_path / "resumed", resume_from=restored)
    assert [p.step for p in resumed.validation] == [2, 4, 6]
    assert [p.loss for p in resumed.validation] == pytest.approx([p.loss for p in curve], rel=1e-4)
    assert resumed.validation[0].base_loss == pytest.approx(curve[0].base_loss, rel=1e-6)


def test_a_single_image_trains_without_validation(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    settings = dataclasses.replace(BASE, holdout_images=1)
    losses, outcome = _train(pipeline, _images([(64, 64)]), settings, tmp_path)
    assert len(losses) == 6
    assert outcome.validation == ()


def test_sdxl_is_conditioned_on_each_images_bucket_and_crop(tmp_path: Path) -> None:
    from stylebot.engine.tiny_model import write_tiny_model

    pipeline = load_pipeline(
        str(write_tiny_model(tmp_path / "tiny-sdxl", family="sdxl")), device="cpu"
    )
    images = _images(SHAPES)
    expected = {
        tuple(image.size_conditioning()) for image in bucket_images(images, BASE.resolution)
    }
    seen: list[tuple[int, ...]] = []

    def hook(_module: Any, _args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        for row in kwargs["added_cond_kwargs"]["time_ids"].tolist():
            seen.append(tuple(int(v) for v in row))

    handle = pipeline.unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        settings = dataclasses.replace(BASE, repeats=2)
        losses, outcome = _train(pipeline, images, settings, tmp_path / "out")
    finally:
        handle.remove()
    assert outcome.weights_path.is_file()
    assert all(math.isfinite(loss) for loss in losses)
    # Original size, crop corner and bucket of each image, as SDXL was trained on.
    assert set(seen) == expected
