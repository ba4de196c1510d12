"""DoRA and LoKr styles on FLUX.1 and SD 3.5 (issue 17's variants on issue 16's
families), on the tiny models: they train on every attention and feed-forward layer,
resume, draw with every tensor applied, and export under the names ComfyUI maps for
the family; the export, loaded back by those names, draws the trained image."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoKrConfig, LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load
from tests.integration.engine.test_family_engines import _uploads
from tests.support.comfyui_keys import comfyui_flux_targets, comfyui_sd3_targets, keys_not_loaded
from tests.support.tiny_styles import cached_copy

from stylebot.engine.families import LORA_TARGET_MODULES
from stylebot.engine.generation_request import GenerationRequest, LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.lora_files import read_safetensors_metadata, tensor_data_sha256
from stylebot.engine.lora_loading import load_checked_lora, unapplied_lora_keys
from stylebot.engine.models import load_pipeline, model_family
from stylebot.engine.runtime import JobCancelled, StyleEngine, TrainedWeights
from stylebot.queue.payloads import TrainJob, TrainSettings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TRIGGER = "sks style"
# LoKr's first factor starts at zero, so its few steps move the image less than
# LoRA's: a higher rate than test_flow_engines' makes the change plain to see.
SETTINGS = TrainSettings(steps=6, resolution=64, rank=4, learning_rate=3e-2, seed=0)
VARIANTS = ("dora", "lokr")
# The size the watermark needs, as the engine's jobs (test_family_engines._job).
REQUEST = GenerationRequest(prompt=TRIGGER, seed=11, steps=2, width=256, height=256)
EXPORT_JOB = TrainJob(job_id="export", style_id=1, trigger=TRIGGER, style_name="ink", image_keys=())


@pytest.fixture(scope="module")
def trained(flow_engine: StyleEngine) -> dict[str, TrainedWeights]:
    return {
        variant: flow_engine.train(
            _uploads(),
            TRIGGER,
            dataclasses.replace(SETTINGS, lora_variant=variant),
            export_for=EXPORT_JOB,
        )
        for variant in VARIANTS
    }


def _module(key: str) -> str:
    """The transformer module a trained tensor belongs to (peft's names after it)."""
    name = key.removeprefix("transformer.")
    for mark in (".lora_", ".lokr_"):
        if mark in name:
            return name.split(mark, 1)[0]
    raise AssertionError(f"not an adapter tensor: {key}")


def _targets(engine: StyleEngine) -> set[str]:
    transformer = engine.pipeline.transformer
    if model_family(engine.pipeline) == "flux":
        return comfyui_flux_targets(
            transformer.config.num_layers, transformer.config.num_single_layers
        )
    return comfyui_sd3_targets(transformer.config.num_layers)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_variant_trains_its_own_adapter_on_every_attention_and_feed_forward_layer(
    flow_engine: StyleEngine, trained: dict[str, TrainedWeights], variant: str
) -> None:
    weights = load(trained[variant].data)
    family = model_family(flow_engine.pipeline)
    expected = {
        name
        for name, _ in flow_engine.pipeline.transformer.named_modules()
        if any(name.endswith(target) for target in LORA_TARGET_MODULES[family])
    }
    assert {_module(key) for key in weights} == expected
    if variant == "dora":
        magnitudes = [k for k in weights if k.endswith(".lora_magnitude_vector")]
        assert len(magnitudes) == len(expected)
        assert len(weights) == 3 * len(expected)
    else:
        assert all(".lokr_w" in key for key in weights)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_variant_style_draws_another_image_with_every_tensor_applied(
    flow_engine: StyleEngine, trained: dict[str, TrainedWeights], variant: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{variant}.safetensors"
    path.write_bytes(trained[variant].data)
    pipeline = load_pipeline(flow_engine.base_model, device="cpu")
    generator = Generator(pipeline, max_loaded_adapters=1, lora_hotswap=True)
    base = np.asarray(generator.generate(REQUEST, lora=None)[0]).astype(np.int16)
    styled = np.asarray(generator.generate(REQUEST, lora=LoraWeights(variant, path))[0]).astype(
        np.int16
    )
    assert np.abs(styled - base).max() > 2
    slot = generator.adapters.adapter_slots[variant]
    assert unapplied_lora_keys(pipeline, path, slot) == ([], len(load(path.read_bytes())))


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_export_uses_the_names_comfyui_maps_for_the_family(
    flow_engine: StyleEngine, trained: dict[str, TrainedWeights], variant: str
) -> None:
    export = trained[variant].export_data
    assert export is not None
    tensors = load(export)
    assert keys_not_loaded(tensors, _targets(flow_engine)) == []
    # Every trained module is in the file: a style is not silently thinner in ComfyUI.
    assert {_module(key) for key in tensors if ".lora_" in key or ".lokr_" in key} == {
        _module(key) for key in load(trained[variant].data)
    }
    meta = read_safetensors_metadata(export)
    assert meta["ss_network_module"] == "lycoris.kohya"
    assert ("dora_wd" if variant == "dora" else '"lokr"') in meta["ss_network_args"]
    assert meta["sshs_model_hash"] == tensor_data_sha256(tensors)
    weights = cached_copy(flow_engine.cache, "loras", trained[variant].data)
    assert flow_engine.exports.export_hash(weights.path, weights.key) == meta["sshs_model_hash"]
    if variant == "dora":
        # A column per module: ComfyUI reads a first dimension of the output size as a
        # magnitude per output row, which is what peft trained.
        modules = dict(flow_engine.pipeline.transformer.named_modules())
        scales = {k: t for k, t in tensors.items() if k.endswith(".dora_scale")}
        assert scales
        for key, scale in scales.items():
            linear = modules[key.removeprefix("transformer.").removesuffix(".dora_scale")]
            assert scale.shape == (linear.out_features, 1)


# ComfyUI's tensor names under a module, as peft names them (to load an export back).
PEFT_NAMES = {"dora_scale": "lora_magnitude_vector"}


def _draw(pipeline: object) -> np.ndarray:
    image = pipeline(  # type: ignore[operator]
        TRIGGER,
        num_inference_steps=2,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(11),
        output_type="np",
    ).images[0]
    return np.asarray(image, dtype=np.float32)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_export_loaded_by_comfyui_names_draws_the_trained_image(
    flow_engine: StyleEngine, trained: dict[str, TrainedWeights], variant: str, tmp_path: Path
) -> None:
    """The export goes in as ComfyUI takes it (its "transformer." names lead each tensor
    to its layer; alpha over the halves' rank is 1) through peft by diffusers' loader,
    and must land whole and draw what the trained file draws."""
    export = trained[variant].export_data
    assert export is not None
    trained_file = tmp_path / "trained.safetensors"
    trained_file.write_bytes(trained[variant].data)
    reference = load_pipeline(flow_engine.base_model, device="cpu")
    load_checked_lora(reference, trained_file, "trained")

    tensors = load(export)
    by_layer: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        module, _, name = key.removeprefix("transformer.").rpartition(".")
        if name == "alpha":
            halves = tensors.get(f"transformer.{module}.lokr_w2_b")
            if halves is None:
                halves = tensors[f"transformer.{module}.lokr_w1_b"]
            assert tensor.item() == halves.shape[0]
            continue
        if name == "weight":  # lora_A.weight / lora_B.weight
            module, _, name = module.rpartition(".")
            name = f"{name}.weight"
        by_layer[f"{module}.{PEFT_NAMES.get(name, name)}"] = (
            tensor.reshape(-1) if name == "dora_scale" else tensor
        )
    fresh = load_pipeline(flow_engine.base_model, device="cpu")
    fresh.transformer.load_lora_adapter(by_layer, prefix=None, adapter_name="exported")
    config = fresh.transformer.peft_config["exported"]
    assert isinstance(config, LoKrConfig if variant == "lokr" else LoraConfig)
    assert variant == "lokr" or getattr(config, "use_dora", False)
    assert set(get_peft_model_state_dict(fresh.transformer, adapter_name="exported")) == set(
        by_layer
    )
    assert len(by_layer) == len(load(trained_file.read_bytes()))
    assert np.abs(_draw(fresh) - _draw(reference)).max() < 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_variant_run_resumed_from_a_checkpoint_ends_where_the_whole_run_does(
    flow_engine: StyleEngine, variant: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(SETTINGS, lora_variant=variant, checkpoint_every_steps=2)
    whole = flow_engine.train(_uploads(), TRIGGER, settings)
    saved: list[Path] = []
    done: list[int] = []
    with pytest.raises(JobCancelled):
        flow_engine.train(
            _uploads(),
            TRIGGER,
            settings,
            on_progress=lambda step, _total, _loss: done.append(step),
            should_stop=lambda: len(done) >= 3,
            # The engine reuses its checkpoint file: keep a copy of each.
            on_checkpoint=lambda state, step: saved.append(
                Path(shutil.copy(state, tmp_path / f"step-{step}.pt"))
            ),
        )
    resumed = flow_engine.train(_uploads(), TRIGGER, settings, resume_from=saved[-1])
    assert resumed.resumed_from == 3
    first, second = load(whole.data), load(resumed.data)
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key])
