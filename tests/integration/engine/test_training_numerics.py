"""Training numerics: a float16 VAE that overflows (SDXL's, `force_upcast`) encodes
in float32, and a run whose latents or loss are not finite fails with a clear
error instead of saving a broken LoRA.

No GPU here: the tiny SDXL VAE is cast to float16 on the CPU (which runs fp16
convolutions) and its first convolution scaled so that its activations pass
float16's largest value, as the real SDXL VAE's do on some images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    FluxPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)
from peft.tuners.tuners_utils import BaseTunerLayer
from PIL import Image

from stylebot.engine.models import load_pipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.adapter_run import TrainingNotFinite
from stylebot.trainer.buckets import bucket_images
from stylebot.trainer.flow_matching import train_flow_lora
from stylebot.trainer.latents import LatentCache, needs_upcast
from stylebot.trainer.lora import WEIGHTS_NAME, train_lora

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SETTINGS = TrainSettings(steps=2, resolution=64, rank=4, learning_rate=1e-3, seed=3)


def _images(count: int = 2) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(count)
    ]


def _overflowing_in_fp16(vae: AutoencoderKL) -> AutoencoderKL:
    """The VAE, float16, with activations past 65504 (finite in float32: its
    group norm scales them back)."""
    with torch.no_grad():
        vae.encoder.conv_in.weight.mul_(1e5)
        vae.encoder.conv_in.bias.mul_(1e5)
    return vae.to(dtype=torch.float16)


def _has_peft_layers(module: torch.nn.Module) -> bool:
    return any(isinstance(m, BaseTunerLayer) for m in module.modules())


@pytest.fixture
def sdxl(tiny_sdxl_model_dir: Path) -> StableDiffusionXLPipeline:
    # Fresh per test: the tests change the VAE's weights and dtype.
    pipeline = load_pipeline(str(tiny_sdxl_model_dir), device="cpu")
    assert isinstance(pipeline, StableDiffusionXLPipeline)
    return pipeline


def test_only_a_float16_vae_that_asks_for_it_is_upcast(sdxl: StableDiffusionXLPipeline) -> None:
    vae = sdxl.vae
    assert vae.config.force_upcast  # as SDXL's VAE config says
    assert not needs_upcast(vae)  # float32 already
    vae.to(dtype=torch.float16)
    assert needs_upcast(vae)
    vae.register_to_config(force_upcast=False)
    assert not needs_upcast(vae)


def test_an_sdxl_vae_that_overflows_in_float16_encodes_finite_latents(
    sdxl: StableDiffusionXLPipeline,
) -> None:
    vae = _overflowing_in_fp16(sdxl.vae)
    images = bucket_images(_images(), 64)
    seen: list[torch.dtype] = []
    vae.encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].dtype))

    cache = LatentCache(vae, images, flip=True, device=torch.device("cpu"))

    assert cache.non_finite() == []
    assert set(seen) == {torch.float32}
    # Put back as it was: the pipeline is shared with generation.
    assert vae.dtype == torch.float16
    assert all(p.dtype == torch.float16 for p in vae.parameters())


def test_sdxl_trains_with_a_float16_vae_that_overflows(
    sdxl: StableDiffusionXLPipeline, tmp_path: Path
) -> None:
    _overflowing_in_fp16(sdxl.vae)
    outcome = train_lora(sdxl, _images(), "sks", SETTINGS, tmp_path / "out")
    assert outcome.weights_path is not None
    assert outcome.weights_path.exists()
    assert np.isfinite(outcome.final_loss)


def test_nan_latents_fail_the_run_and_save_nothing(
    sdxl: StableDiffusionXLPipeline, tmp_path: Path
) -> None:
    # A VAE that does not say it needs float32 is used as it is.
    _overflowing_in_fp16(sdxl.vae).register_to_config(force_upcast=False)
    with pytest.raises(TrainingNotFinite, match="NaN or infinite latents") as failed:
        train_lora(sdxl, _images(), "sks", SETTINGS, tmp_path / "out")
    assert "float32" in failed.value.user_message
    assert not (tmp_path / "out" / WEIGHTS_NAME).exists()
    assert not _has_peft_layers(sdxl.unet)


def test_nan_latents_fail_a_flow_run_too(tiny_flux_model_dir: Path, tmp_path: Path) -> None:
    pipeline = load_pipeline(str(tiny_flux_model_dir), device="cpu")
    assert isinstance(pipeline, FluxPipeline)
    _overflowing_in_fp16(pipeline.vae).register_to_config(force_upcast=False)
    with pytest.raises(TrainingNotFinite, match="NaN or infinite latents"):
        train_flow_lora(pipeline, _images(), "sks", SETTINGS, tmp_path / "out")
    assert not (tmp_path / "out" / WEIGHTS_NAME).exists()
    assert not _has_peft_layers(pipeline.transformer)


def test_a_diverging_loss_fails_the_run_and_saves_no_weights(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    assert isinstance(pipeline, StableDiffusionPipeline)
    # AdamW's first step moves each LoRA weight by about the learning rate:
    # the second step's activations overflow float32.
    diverging = TrainSettings(steps=4, resolution=64, rank=4, learning_rate=1e30, seed=3)
    losses: list[float] = []
    with pytest.raises(TrainingNotFinite, match="loss became") as failed:
        train_lora(
            pipeline,
            _images(),
            "sks",
            diverging,
            tmp_path / "out",
            on_progress=lambda _step, _total, loss: losses.append(loss),
        )
    assert "learning rate" in failed.value.user_message
    assert not (tmp_path / "out" / WEIGHTS_NAME).exists()
    assert not _has_peft_layers(pipeline.unet)
    # Reported before anything else sees the step's loss.
    assert all(np.isfinite(losses))
