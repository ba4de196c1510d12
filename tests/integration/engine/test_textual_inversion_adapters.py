"""A textual-inversion-only run trains against the base model, not against the
style a Generator left active on the shared pipeline (nor one it activates in
generation lent the device mid-run), and leaves the adapters as it found them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from PIL import Image
from safetensors.torch import load_file

from stylebot.engine.generation_request import GenerationRequest, LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.models import load_pipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.lora import train_lora

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TRIGGER = "sks style"
LORA = TrainSettings(steps=2, resolution=64, rank=4, learning_rate=1e-1, seed=1)
EMBEDDING = TrainSettings(
    steps=4,
    resolution=64,
    rank=4,
    seed=2,
    method="textual_inversion",
    embedding_learning_rate=5e-2,
)
REQUEST = GenerationRequest("a house", steps=2, width=64, height=64)


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(2)]


def _layers(module: torch.nn.Module) -> list[BaseTunerLayer]:
    return [m for m in module.modules() if isinstance(m, BaseTunerLayer)]


def _any_enabled(module: torch.nn.Module) -> bool:
    return any(not layer.disable_adapters for layer in _layers(module))


def _adapter_flags(pipeline: StableDiffusionPipeline) -> list[tuple[bool, tuple[str, ...]]]:
    return [
        (bool(layer.disable_adapters), tuple(layer.active_adapters))
        for component in (pipeline.unet, pipeline.text_encoder)
        for layer in _layers(component)
    ]


def _lora_grads(module: torch.nn.Module) -> dict[str, bool]:
    return {n: p.requires_grad for n, p in module.named_parameters() if "lora_" in n}


class _GenerateOnce:
    """Device sharing with one generation in the style waiting, after the first step."""

    def __init__(self, generator: Generator, lora: LoraWeights) -> None:
        self.generator = generator
        self.lora = lora
        self.ran = 0

    def has_waiting(self) -> bool:
        return self.ran == 0

    def run_waiting(self) -> None:
        self.ran += 1
        self.generator.generate(REQUEST, lora=self.lora)


@pytest.fixture(scope="module")
def style_lora(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    outcome = train_lora(pipeline, _images(), "a", LORA, tmp_path_factory.mktemp("style"))
    assert outcome.weights_path is not None
    return outcome.weights_path


def _embedding(outcome_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(outcome_dir / "learned_embeds.safetensors")


def test_the_embedding_trains_as_on_a_pipeline_no_style_was_ever_loaded_on(
    tiny_model_dir: Path, style_lora: Path, tmp_path: Path
) -> None:
    clean = load_pipeline(str(tiny_model_dir), device="cpu")
    expected = train_lora(clean, _images(), TRIGGER, EMBEDDING, tmp_path / "clean")

    pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    generator = Generator(pipeline)
    style = LoraWeights("styleX", style_lora)
    generator.generate(REQUEST, lora=style)  # leaves styleX active on the UNet
    before = _adapter_flags(pipeline)
    grads = [p.requires_grad for p in pipeline.unet.parameters()]
    assert _any_enabled(pipeline.unet)

    enabled_while_training: list[bool] = []
    sharing = _GenerateOnce(generator, style)
    outcome = train_lora(
        pipeline,
        _images(),
        TRIGGER,
        EMBEDDING,
        tmp_path / "shared",
        on_progress=lambda *_: enabled_while_training.append(_any_enabled(pipeline.unet)),
        device_sharing=sharing,
    )

    assert sharing.ran == 1
    assert enabled_while_training == [False] * EMBEDDING.steps
    assert outcome.final_loss == pytest.approx(expected.final_loss, rel=1e-5)
    assert outcome.embedding_path is not None
    assert expected.embedding_path is not None
    trained, reference = _embedding(tmp_path / "shared"), _embedding(tmp_path / "clean")
    assert torch.allclose(trained["emb_params"], reference["emb_params"], atol=1e-6)
    # The style is active again, as the lent-out generation left it.
    assert _adapter_flags(pipeline) == before
    assert [p.requires_grad for p in pipeline.unet.parameters()] == grads


def test_a_text_encoder_adapter_is_off_while_the_embedding_trains(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    # A style with text-encoder LoRA layers, as another trainer may make; random
    # up-projections, so it changes what the encoder outputs. (peft directly, as
    # diffusers injects it: transformers' add_adapter wants a newer peft.)
    inject_adapter_in_model(
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
        pipeline.text_encoder,
        adapter_name="te_style",
    )
    assert _any_enabled(pipeline.text_encoder)
    grads = _lora_grads(pipeline.text_encoder)
    seen: list[bool] = []
    train_lora(
        pipeline,
        _images(),
        TRIGGER,
        EMBEDDING,
        tmp_path / "out",
        on_progress=lambda *_: seen.append(_any_enabled(pipeline.text_encoder)),
    )
    assert seen == [False] * EMBEDDING.steps
    assert _any_enabled(pipeline.text_encoder)
    assert _lora_grads(pipeline.text_encoder) == grads
