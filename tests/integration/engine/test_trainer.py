"""LoRA training on the tiny model: output, progress, cost, cancel, and the
shared pipeline being left exactly as it was."""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
from PIL import Image
from safetensors.torch import load_file
from tests.support.stored_checkpoints import as_stored

from stylebot.engine.models import load_pipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.adapter_run import TrainingCancelled
from stylebot.trainer.checkpoints import TrainingCheckpoint
from stylebot.trainer.dataset import prepare_training_image
from stylebot.trainer.lora import WEIGHTS_NAME, train_lora

TRIGGER = "sks style"
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = TrainSettings(steps=6, resolution=64, rank=4, learning_rate=1e-3, seed=7)


def _images(count: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (72 + 8 * i, 96, 3), dtype=np.uint8))
        for i in range(count)
    ]


def _sample(pipeline: StableDiffusionPipeline) -> np.ndarray:
    image = pipeline(
        TRIGGER,
        num_inference_steps=3,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(3),
    ).images[0]
    return np.asarray(image)


def _unet_state(pipeline: StableDiffusionPipeline) -> tuple[list[str], list[bool], list[bool]]:
    unet = pipeline.unet
    names = [name for name, _ in unet.named_modules()]
    grads = [p.requires_grad for p in unet.parameters()]
    modes = [m.training for m in unet.modules()]
    return names, grads, modes


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path) -> StableDiffusionPipeline:
    return load_pipeline(str(tiny_model_dir), device="cpu")


@pytest.mark.slow
def test_training_writes_lora_weights_and_reports_progress(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    progress: list[tuple[int, int, float]] = []
    outcome = train_lora(
        pipeline,
        _images(),
        TRIGGER,
        SETTINGS,
        tmp_path / "out",
        on_progress=lambda step, total, loss: progress.append((step, total, loss)),
    )
    assert outcome.weights_path == tmp_path / "out" / WEIGHTS_NAME
    weights = load_file(outcome.weights_path)
    assert weights
    assert all(key.startswith("unet.") and ".lora" in key for key in weights)
    assert any("to_q" in key for key in weights)
    assert any("to_out.0" in key for key in weights)
    # rank 4: the down projections are (4, in_features)
    downs = [w for key, w in weights.items() if key.endswith("lora.down.weight")]
    assert downs
    assert all(w.shape[0] == 4 for w in downs)

    assert [step for step, _, _ in progress] == [1, 2, 3, 4, 5, 6]
    assert all(total == 6 for _, total, _ in progress)
    assert all(math.isfinite(loss) and loss > 0 for _, _, loss in progress)
    assert outcome.steps == 6
    assert outcome.final_loss == progress[-1][2]
    assert outcome.seconds > 0


@pytest.mark.slow
def test_training_is_reproducible_for_a_seed(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    def losses(seed: int, name: str) -> list[float]:
        seen: list[float] = []
        settings = TrainSettings(steps=4, resolution=64, rank=4, learning_rate=1e-3, seed=seed)
        train_lora(
            pipeline,
            _images(2),
            TRIGGER,
            settings,
            tmp_path / name,
            on_progress=lambda _step, _total, loss: seen.append(loss),
        )
        return seen

    first, again, other = losses(7, "a"), losses(7, "b"), losses(8, "c")
    # Threaded CPU kernels may sum in another order, so "the same run" means
    # equal up to float rounding; another seed draws other noise and timesteps.
    assert first == pytest.approx(again, rel=1e-5)
    assert first != pytest.approx(other, rel=1e-3)


@pytest.mark.slow
def test_vae_and_text_encoder_run_once_per_image_and_caption_not_per_step(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    calls = {"vae_encoder": 0, "text_encoder": 0, "unet": 0}

    def counter(name: str):
        def hook(*_: object) -> None:
            calls[name] += 1

        return hook

    hooks = [
        pipeline.vae.encoder.register_forward_hook(counter("vae_encoder")),
        pipeline.text_encoder.register_forward_hook(counter("text_encoder")),
        pipeline.unet.register_forward_hook(counter("unet")),
    ]
    try:
        train_lora(pipeline, _images(3), TRIGGER, SETTINGS, tmp_path)
    finally:
        for handle in hooks:
            handle.remove()
    assert calls == {"vae_encoder": 3, "text_encoder": 1, "unet": 6}


@pytest.mark.slow
def test_pipeline_generates_the_same_after_training(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    before_image = _sample(pipeline)
    before_state = _unet_state(pipeline)
    vae_grads = [p.requires_grad for p in pipeline.vae.parameters()]
    train_lora(pipeline, _images(2), TRIGGER, TrainSettings(steps=4, resolution=64), tmp_path)
    assert _unet_state(pipeline) == before_state
    assert [p.requires_grad for p in pipeline.vae.parameters()] == vae_grads
    assert pipeline.get_list_adapters().get("unet", []) == []
    assert np.array_equal(_sample(pipeline), before_image)


@pytest.mark.slow
def test_should_stop_cancels_and_restores_the_pipeline(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    before_image = _sample(pipeline)
    before_state = _unet_state(pipeline)
    steps: list[int] = []
    with pytest.raises(TrainingCancelled):
        train_lora(
            pipeline,
            _images(2),
            TRIGGER,
            SETTINGS,
            tmp_path,
            on_progress=lambda step, _total, _loss: steps.append(step),
            should_stop=lambda: len(steps) >= 2,
        )
    assert steps == [1, 2]
    assert not (tmp_path / WEIGHTS_NAME).exists()
    assert _unet_state(pipeline) == before_state
    assert np.array_equal(_sample(pipeline), before_image)


@pytest.mark.slow
def test_a_run_resumed_from_a_checkpoint_ends_where_the_uninterrupted_run_ends(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    settings = dataclasses.replace(SETTINGS, checkpoint_every_steps=2)
    whole_losses: list[float] = []
    whole = train_lora(
        pipeline,
        _images(2),
        TRIGGER,
        settings,
        tmp_path / "whole",
        on_progress=lambda _step, _total, loss: whole_losses.append(loss),
    )

    saved: list[TrainingCheckpoint] = []
    stopped_steps: list[int] = []
    with pytest.raises(TrainingCancelled):
        train_lora(
            pipeline,
            _images(2),
            TRIGGER,
            settings,
            tmp_path / "stopped",
            # Stopped after step 3: one checkpoint at step 2, one on the stop.
            on_progress=lambda step, _total, _loss: stopped_steps.append(step),
            should_stop=lambda: len(stopped_steps) >= 3,
            on_checkpoint=saved.append,
        )
    assert [c.step for c in saved] == [2, 3]

    # Through bytes, as a worker on another host would get it.
    restored = as_stored(saved[-1], tmp_path)
    assert restored.continues(settings)
    resumed_steps: list[int] = []
    resumed_losses: list[float] = []
    resumed = train_lora(
        pipeline,
        _images(2),
        TRIGGER,
        settings,
        tmp_path / "resumed",
        on_progress=lambda step, _total, loss: (
            resumed_steps.append(step),
            resumed_losses.append(loss),
        ),
        resume_from=restored,
    )
    assert resumed_steps == [4, 5, 6]
    assert resumed.resumed_from == 3
    assert resumed.steps == whole.steps == 6
    assert resumed_losses == pytest.approx(whole_losses[3:], rel=1e-4)
    a, b = load_file(whole.weights_path), load_file(resumed.weights_path)
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)

    other = dataclasses.replace(settings, seed=8)
    assert not restored.continues(other)
    with pytest.raises(ValueError, match="checkpoint"):
        train_lora(pipeline, _images(2), TRIGGER, other, tmp_path / "x", resume_from=restored)


class _WaitingGeneration:
    """Generation that asks for the device once, after the first training step."""

    def __init__(self, pipeline: StableDiffusionPipeline) -> None:
        self.pipeline = pipeline
        self.images: list[np.ndarray] = []

    def has_waiting(self) -> bool:
        return not self.images

    def run_waiting(self) -> None:
        self.images.append(_sample(self.pipeline))


@pytest.mark.slow
def test_training_lends_the_pipeline_to_waiting_generation_between_steps(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    idle_image = _sample(pipeline)
    before_state = _unet_state(pipeline)
    whole_losses: list[float] = []
    train_lora(
        pipeline,
        _images(2),
        TRIGGER,
        SETTINGS,
        tmp_path / "alone",
        on_progress=lambda _step, _total, loss: whole_losses.append(loss),
    )
    waiting = _WaitingGeneration(pipeline)
    shared_losses: list[float] = []
    train_lora(
        pipeline,
        _images(2),
        TRIGGER,
        SETTINGS,
        tmp_path / "shared",
        on_progress=lambda _step, _total, loss: shared_losses.append(loss),
        device_sharing=waiting,
    )
    # The generation saw the base pipeline, not the half-trained adapter...
    assert len(waiting.images) == 1
    assert np.array_equal(waiting.images[0], idle_image)
    # ...and training carried on as if nothing had happened.
    assert shared_losses == pytest.approx(whole_losses, rel=1e-4)
    assert _unet_state(pipeline) == before_state


@pytest.mark.slow
def test_v_prediction_models_train(tiny_model_dir: Path, tmp_path: Path) -> None:
    pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    pipeline.scheduler = DDIMScheduler.from_config(
        pipeline.scheduler.config, prediction_type="v_prediction"
    )
    losses: list[float] = []
    outcome = train_lora(
        pipeline,
        _images(1),
        TRIGGER,
        SETTINGS,
        tmp_path,
        on_progress=lambda _step, _total, loss: losses.append(loss),
    )
    assert outcome.weights_path.is_file()
    assert len(losses) == 6
    assert all(math.isfinite(loss) for loss in losses)


def test_prepare_training_image_crops_the_centre_square() -> None:
    image = Image.new("RGB", (300, 100), "red")
    image.paste(Image.new("RGB", (100, 100), "blue"), (100, 0))
    out = prepare_training_image(image, 100)
    assert out.size == (100, 100)
    assert out.mode == "RGB"
    # Only the blue centre survives the crop.
    assert np.unique(np.asarray(out).reshape(-1, 3), axis=0).tolist() == [[0, 0, 255]]
    assert prepare_training_image(image, 64).size == (64, 64)


def test_prepare_training_image_applies_exif_rotation_and_drops_metadata() -> None:
    image = Image.new("RGBA", (200, 100), (0, 255, 0, 128))
    image.paste(Image.new("RGBA", (100, 100), (255, 0, 0, 255)), (0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    uploaded = Image.open(io.BytesIO(buffer.getvalue()))
    assert uploaded.getexif().get(0x0112) == 6

    out = prepare_training_image(uploaded, 50)
    assert out.size == (50, 50)
    assert out.mode == "RGB"
    assert not out.info
    assert len(out.getexif()) == 0
    # Displayed upright the 200x100 image is 100x200 with red on top, so the
    # centre crop straddles both halves: red above, green below.
    pixels = np.asarray(out).astype(int)
    top, bottom = pixels[2, 25], pixels[47, 25]
    assert top[0] > 200
    assert top[1] < 60
    assert bottom[1] > 200
    assert bottom[0] < 60


def test_prepare_training_image_rejects_bad_resolution() -> None:
    with pytest.raises(ValueError, match="resolution"):
        prepare_training_image(Image.new("RGB", (10, 10)), 0)
