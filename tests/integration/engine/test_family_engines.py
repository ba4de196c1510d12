"""Training and generation on each base-model family through the worker's engine.

SD 1.5 (epsilon), SD 2.x (v-prediction) and SDXL (two text encoders, size and
crop conditioning) each train a style, generate with it, batch and vary, and
every image still carries its watermark. A few-step (turbo) model is capped at
its few steps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load
from tests.support.tiny_styles import cached_copy

from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.models import model_family
from stylebot.engine.runtime import FinishedImage, StyleEngine
from stylebot.engine.tiny_model import write_tiny_model
from stylebot.provenance.watermark import read_watermark
from stylebot.queue.payloads import GenerateJob, TrainSettings
from stylebot.trainer.lora import train_lora

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TRIGGER = "sks style"
# A high learning rate so a few steps move the output visibly.
SETTINGS = TrainSettings(steps=6, resolution=64, rank=4, learning_rate=1e-2, seed=0)
MODEL_DIRS = {"sd15": "tiny_model_dir", "sd2": "tiny_sd2_model_dir", "sdxl": "tiny_sdxl_model_dir"}


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _uploads() -> list[bytes]:
    rng = np.random.default_rng(0)
    return [_png(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)) for _ in range(2)]


def _job(name: str, seed: int = 5, **changes: Any) -> GenerateJob:
    job = GenerateJob(
        job_id=name,
        prompt="a lighthouse at dawn",
        negative_prompt="",
        seed=seed,
        steps=2,
        guidance=7.5,
        # The watermark needs 256x256 pixels.
        width=256,
        height=256,
        output_ids=(hashlib.sha256(name.encode()).hexdigest()[:12],),
        style_id=1,
        style_name="mystyle",
        lora_key="k",
        trigger=TRIGGER,
    )
    return dataclasses.replace(job, **changes)


def _pixels(finished: FinishedImage) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(finished.png)).convert("RGB")).astype(np.int16)


def _watermark(finished: FinishedImage) -> str | None:
    return read_watermark(Image.open(io.BytesIO(finished.png)))


@pytest.fixture(scope="module", params=sorted(MODEL_DIRS))
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> StyleEngine:
    model_dir: Path = request.getfixturevalue(MODEL_DIRS[request.param])
    made = StyleEngine(str(model_dir), tmp_path_factory.mktemp("engine"), device="cpu")
    assert model_family(made.pipeline) == request.param
    return made


@pytest.fixture(scope="module")
def style(engine: StyleEngine) -> bytes:
    """A style trained on the engine's family: the LoRA file's bytes."""
    trained = engine.train(_uploads(), TRIGGER, SETTINGS)
    assert trained.steps == SETTINGS.steps
    assert np.isfinite(trained.final_loss)
    return trained.data


def test_a_trained_style_changes_the_image_and_every_image_is_watermarked(
    engine: StyleEngine, style: bytes
) -> None:
    weights = load(style)
    assert weights
    assert all(key.startswith("unet.") for key in weights)
    assert {"to_q", "to_k", "to_v", "to_out.0"} <= {
        part for key in weights for part in ("to_q", "to_k", "to_v", "to_out.0") if part in key
    }

    base_job, styled_job = _job("base"), _job("styled")
    [base] = engine.generate(dataclasses.replace(base_job, lora_key=None, trigger=None))
    [styled] = engine.generate(styled_job, lora=cached_copy(engine.cache, "loras", style))
    assert np.abs(_pixels(styled) - _pixels(base)).mean() > 2.0
    assert _watermark(base) == base_job.output_ids[0]
    assert _watermark(styled) == styled_job.output_ids[0]

    # The loaded adapter is reused: the same job gives the same image.
    adapters = engine.generator.loaded_adapters
    [again] = engine.generate(styled_job, lora=cached_copy(engine.cache, "loras", style))
    assert engine.generator.loaded_adapters == adapters
    assert np.array_equal(_pixels(again), _pixels(styled))


def test_a_batch_gives_each_job_its_own_watermarked_images(
    engine: StyleEngine, style: bytes
) -> None:
    jobs = [_job("batch-a", seed=1), _job("batch-b", seed=2)]
    batches = engine.generate_batch(jobs, lora=cached_copy(engine.cache, "loras", style))
    assert [len(images) for images in batches] == [1, 1]
    for job, [image] in zip(jobs, batches, strict=True):
        assert _watermark(image) == job.output_ids[0]
    assert not np.array_equal(_pixels(batches[0][0]), _pixels(batches[1][0]))


def test_a_variation_of_strength_zero_is_the_seed_and_a_stronger_one_differs(
    engine: StyleEngine,
) -> None:
    request = GenerationRequest(prompt=TRIGGER, seed=3, steps=2, width=64, height=64)
    [plain] = engine.generator.generate(request)
    [zero] = engine.generator.generate(
        dataclasses.replace(request, variation_seed=9, variation_strength=0.0)
    )
    [varied] = engine.generator.generate(
        dataclasses.replace(request, variation_seed=9, variation_strength=0.5)
    )
    assert np.array_equal(np.asarray(zero), np.asarray(plain))
    assert not np.array_equal(np.asarray(varied), np.asarray(plain))


def test_sdxl_training_conditions_on_both_encoders_size_and_crop(
    tiny_sdxl_model_dir: Path, tmp_path: Path
) -> None:
    engine = StyleEngine(str(tiny_sdxl_model_dir), tmp_path / "cache", device="cpu")
    pipeline = engine.pipeline
    seen: list[dict[str, Any]] = []

    def record(_module: torch.nn.Module, _args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if torch.is_grad_enabled():  # training steps, not validation or sampling
            seen.append(kwargs)

    handle = pipeline.unet.register_forward_pre_hook(record, with_kwargs=True)
    uploads = [Image.open(io.BytesIO(data)) for data in _uploads()]  # 80 wide, 64 high
    try:
        train_lora(pipeline, uploads, TRIGGER, dataclasses.replace(SETTINGS, steps=2), tmp_path)
    finally:
        handle.remove()
    assert len(seen) == 2
    widths = pipeline.text_encoder.config.hidden_size + pipeline.text_encoder_2.config.hidden_size
    for kwargs in seen:
        assert kwargs["encoder_hidden_states"].shape[-1] == widths
        added = kwargs["added_cond_kwargs"]
        assert added["text_embeds"].shape == (1, pipeline.text_encoder_2.config.projection_dim)
        time_ids = added["time_ids"]
        assert time_ids.shape == (1, 6)
        # The upload's own size (height, width) comes first.
        assert time_ids[0, :2].tolist() == [64, 80]


def test_a_turbo_model_samples_at_most_four_steps(tmp_path: Path) -> None:
    model_dir = write_tiny_model(tmp_path / "tiny-sd-turbo")
    engine = StyleEngine(str(model_dir), tmp_path / "cache", device="cpu")
    assert engine.generator.few_step
    steps: list[tuple[int, int]] = []
    job = _job("turbo", steps=10, guidance=0.0, lora_key=None, trigger=None)
    [image] = engine.generate(job, on_step=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert _watermark(image) == job.output_ids[0]
    # The PNG records what was sampled, not what was asked for.
    parameters = Image.open(io.BytesIO(image.png)).text["parameters"]
    assert "Steps: 4," in parameters
    assert "Sampler: DDIM," in parameters


def test_the_png_names_the_sampler_the_model_samples_with(
    tiny_sdxl_model_dir: Path, tmp_path: Path
) -> None:
    engine = StyleEngine(str(tiny_sdxl_model_dir), tmp_path / "cache", device="cpu")
    [image] = engine.generate(_job("sampler", lora_key=None, trigger=None))
    parameters = Image.open(io.BytesIO(image.png)).text["parameters"]
    assert "Sampler: Euler," in parameters
    assert "Steps: 2," in parameters


def test_the_operators_variant_setting_decides_over_the_name(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # The worker passes `few_step=settings.few_step_model` (STYLEBOT_MODEL_VARIANT).
    turbo = StyleEngine(str(tiny_model_dir), tmp_path / "turbo", device="cpu", few_step=True)
    assert turbo.generator.few_step
    request = GenerationRequest(prompt=TRIGGER, steps=6, width=64, height=64)
    totals: list[int] = []
    turbo.generator.generate(request, on_step=lambda _done, total: totals.append(total))
    assert set(totals) == {4}
    standard = StyleEngine(str(tiny_model_dir), tmp_path / "standard", device="cpu")
    assert not standard.generator.few_step
    totals.clear()
    standard.generator.generate(request, on_step=lambda _done, total: totals.append(total))
    assert set(totals) == {6}
