"""DoRA and LoKr styles on the tiny model: they train, resume, draw, and export in
the layout ComfyUI and AUTOMATIC1111 load, every module landing when loaded back."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from peft import LoKrConfig, LoraConfig
from peft.utils import get_peft_model_state_dict
from PIL import Image
from safetensors.torch import load
from tests.support.stored_checkpoints import as_stored
from tests.support.tiny_styles import REQUEST, STRONG, TRIGGER, pixels, reference_images

from stylebot.engine.generation_request import LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.lora_files import read_safetensors_metadata
from stylebot.engine.lora_loading import unapplied_lora_keys
from stylebot.engine.models import load_pipeline
from stylebot.engine.runtime import StyleEngine, TrainedWeights
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.adapter_variants import adapter_config
from stylebot.trainer.checkpoints import TrainingCheckpoint
from stylebot.trainer.lora import train_lora

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SETTINGS = dataclasses.replace(STRONG, steps=4)
VARIANTS = ("dora", "lokr")


def _pngs() -> list[bytes]:
    out = []
    for image in reference_images():
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def comfyui_unet_lora_names(unet: torch.nn.Module) -> dict[str, str]:
    """ComfyUI's names for an SD 1.x UNet's layers (comfy/lora.py, model_lora_keys_unet:
    each diffusers weight `k` maps to `lora_unet_` + k without `.weight`, dots as
    underscores), to the diffusers module path: a known-good list to check against."""
    return {
        "lora_unet_" + name.replace(".", "_"): name
        for name, module in unet.named_modules()
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d) and name
    }


# The tensor names ComfyUI's LoRA loaders look up under a module name (comfy/weight_adapter:
# lora.py for lora_up/lora_down/dora_scale, lokr.py for the LoKr factors) and `.alpha`.
COMFYUI_SUFFIXES = {
    "dora": {"lora_up.weight", "lora_down.weight", "dora_scale", "alpha"},
    "lokr": {"lokr_w1", "lokr_w2", "lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b", "alpha"},
}


@pytest.fixture(scope="module")
def plain_unet_names(tiny_model_dir: Path) -> dict[str, str]:
    return comfyui_unet_lora_names(load_pipeline(str(tiny_model_dir), device="cpu").unet)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> StyleEngine:
    return StyleEngine(str(tiny_model_dir), tmp_path_factory.mktemp("variants"), device="cpu")


@pytest.fixture(scope="module")
def trained(engine: StyleEngine) -> dict[str, TrainedWeights]:
    return {
        variant: engine.train(_pngs(), TRIGGER, dataclasses.replace(SETTINGS, lora_variant=variant))
        for variant in ("lora", *VARIANTS)
    }


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_variant_trains_its_own_kind_of_adapter(
    trained: dict[str, TrainedWeights], variant: str
) -> None:
    weights = load(trained[variant].data)
    if variant == "dora":
        magnitudes = [k for k in weights if k.endswith("lora_magnitude_vector")]
        assert magnitudes
        assert len(magnitudes) * 3 == len(weights)
    else:
        assert weights
        assert all(".lokr_w" in k for k in weights)
    assert trained[variant].data != trained["lora"].data


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_variant_style_draws_other_images_and_every_tensor_lands(
    tiny_model_dir: Path, trained: dict[str, TrainedWeights], variant: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{variant}.safetensors"
    path.write_bytes(trained[variant].data)
    pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    generator = Generator(pipeline, max_loaded_adapters=1, lora_hotswap=True)
    base = pixels(generator.generate(REQUEST, lora=None)[0])
    styled = pixels(generator.generate(REQUEST, lora=LoraWeights(variant, path))[0])
    assert np.abs(styled - base).max() > 2
    slot = generator.adapters.adapter_slots[variant]
    assert unapplied_lora_keys(pipeline, path, slot) == ([], len(load(path.read_bytes())))
    # Another style hot-swapped over it: refused (peft swaps lora_A/B only), loaded instead.
    plain = tmp_path / "plain.safetensors"
    plain.write_bytes(trained["lora"].data)
    other = tmp_path / "other.safetensors"
    other.write_bytes(trained["lora"].data)
    generator.generate(REQUEST, lora=LoraWeights("plain", plain))
    again = pixels(generator.generate(REQUEST, lora=LoraWeights(variant, path))[0])
    assert np.array_equal(again, styled)
    assert generator.adapters.hotswaps == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_export_uses_the_names_comfyui_maps_for_every_trained_module(
    tiny_model_dir: Path,
    plain_unet_names: dict[str, str],
    trained: dict[str, TrainedWeights],
    variant: str,
) -> None:
    export = trained[variant].export_data
    assert export is not None
    tensors = load(export)
    known = plain_unet_names
    modules = {key.split(".", 1)[0] for key in tensors}
    assert modules <= set(known)
    assert {key.split(".", 1)[1] for key in tensors} <= COMFYUI_SUFFIXES[variant]
    trained_modules = {
        key.removeprefix("unet.").rsplit(".", 1)[0].removesuffix(".lora.down")
        for key in load(trained[variant].data)
        if ".lokr_w1" in key or key.endswith(".lora.down.weight")
    }
    assert {known[module] for module in modules} == trained_modules
    meta = read_safetensors_metadata(export)
    assert meta["ss_network_module"] == "lycoris.kohya"
    assert variant in meta["ss_network_args"] or "dora_wd" in meta["ss_network_args"]
    if variant == "dora":
        # A column per module: ComfyUI reads a first dimension of the output size as
        # a magnitude per output row, which is what peft trained.
        unet_modules = dict(load_pipeline(str(tiny_model_dir), device="cpu").unet.named_modules())
        for module in modules:
            linear = unet_modules[known[module]]
            assert tensors[f"{module}.dora_scale"].shape == (linear.out_features, 1)


def _draw(pipeline: StableDiffusionPipeline) -> np.ndarray:
    image = pipeline(
        TRIGGER,
        num_inference_steps=3,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(11),
        output_type="np",
    ).images[0]
    return np.asarray(image, dtype=np.float32)


# ComfyUI's tensor names under a module, as peft names them (for loading an export back).
PEFT_NAMES = {
    "lora_down.weight": "lora_A.weight",
    "lora_up.weight": "lora_B.weight",
    "dora_scale": "lora_magnitude_vector",
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_export_loaded_by_comfyui_names_draws_the_trained_image(
    tiny_model_dir: Path,
    plain_unet_names: dict[str, str],
    trained: dict[str, TrainedWeights],
    variant: str,
    tmp_path: Path,
) -> None:
    """diffusers' SD loader drops `dora_scale` and takes no LoKr in kohya's layout, so
    the export goes in as ComfyUI takes it: its names (the known-good list) lead each
    tensor to its layer, with loaders' alpha rule (alpha/rank, here 1), and peft,
    through diffusers' UNet loader, applies it; every tensor must land."""
    export = trained[variant].export_data
    assert export is not None
    trained_file = tmp_path / "trained.safetensors"
    trained_file.write_bytes(trained[variant].data)
    reference = load_pipeline(str(tiny_model_dir), device="cpu")
    if variant == "dora":
        reference.load_lora_weights(str(trained_file), adapter_name="trained")
    else:
        reference.unet.load_lora_adapter(
            {k.removeprefix("unet."): v for k, v in load(trained_file.read_bytes()).items()},
            prefix=None,
            adapter_name="trained",
        )

    fresh = load_pipeline(str(tiny_model_dir), device="cpu")
    tensors = load(export)
    by_layer: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        module, name = key.split(".", 1)
        if name == "alpha":
            # Loaders scale by alpha over the low-rank halves' rank: 1, as trained.
            halves = tensors.get(f"{module}.lora_down.weight", tensors.get(f"{module}.lokr_w2_b"))
            assert halves is not None
            assert tensor.item() == halves.shape[0]
            continue
        layer = plain_unet_names[module]
        by_layer[f"{layer}.{PEFT_NAMES.get(name, name)}"] = (
            tensor.reshape(-1) if name == "dora_scale" else tensor
        )
    fresh.unet.load_lora_adapter(by_layer, prefix=None, adapter_name="exported")
    config = fresh.unet.peft_config["exported"]
    assert isinstance(config, LoKrConfig if variant == "lokr" else LoraConfig)
    assert variant == "lokr" or getattr(config, "use_dora", False)
    assert set(get_peft_model_state_dict(fresh.unet, adapter_name="exported")) == set(by_layer)
    assert len(by_layer) == len(load(trained_file.read_bytes()))
    assert np.abs(_draw(fresh) - _draw(reference)).max() < 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_variant_run_resumed_from_a_checkpoint_ends_where_the_whole_run_does(
    engine: StyleEngine, variant: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(SETTINGS, lora_variant=variant, checkpoint_every_steps=2)
    images = [Image.open(io.BytesIO(data)) for data in _pngs()]
    saved: list[TrainingCheckpoint] = []
    whole = train_lora(
        engine.pipeline, images, TRIGGER, settings, tmp_path / "whole", on_checkpoint=saved.append
    )
    assert [c.step for c in saved] == [2]
    resumed = train_lora(
        engine.pipeline,
        images,
        TRIGGER,
        settings,
        tmp_path / "resumed",
        resume_from=as_stored(saved[0], tmp_path),
    )
    assert resumed.resumed_from == 2
    assert whole.weights_path is not None
    assert resumed.weights_path is not None
    first, second = load(whole.weights_path.read_bytes()), load(resumed.weights_path.read_bytes())
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key])


def test_an_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="lora_variant"):
        adapter_config("loha", 4)
    assert TrainSettings().lora_variant == "lora"
