"""The exported kohya-layout LoRA on real tiny pipelines, and checked LoRA loading."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from diffusers.loaders.lora_conversion_utils import _maybe_map_sgm_blocks_to_diffusers
from diffusers.utils import convert_state_dict_to_diffusers
from diffusers.utils.state_dict_utils import (
    convert_state_dict_to_kohya,
    convert_unet_state_dict_to_peft,
)
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from PIL import Image
from safetensors.torch import load, save
from tests.support import a1111
from tests.support.text_encoder_lora import kohya_text_encoder_layers, text_encoder_lora_layers
from tests.support.tiny_styles import cached_copy

from stylebot.engine.generation_request import GenerationRequest, LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.lora_files import (
    StyleCard,
    export_model_hash,
    kohya_lora_file,
    read_safetensors_metadata,
    sgm_unet_names,
    tensor_data_sha256,
)
from stylebot.engine.lora_loading import LoraMismatchError, load_checked_lora, unapplied_lora_keys
from stylebot.engine.models import load_pipeline
from stylebot.engine.runtime import StyleEngine, TrainedWeights
from stylebot.queue.payloads import GenerateJob, TrainJob, TrainSettings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TRIGGER = "sbt ink style"
RANK = 4
# A high learning rate, so that a few steps move the images visibly.
SETTINGS = TrainSettings(steps=4, resolution=64, rank=RANK, learning_rate=5e-2, seed=3)
JOB = TrainJob(
    job_id="train-export",
    style_id=7,
    trigger=TRIGGER,
    image_keys=(),
    settings=SETTINGS,
    style_name="ink",
    licence="CC-BY-4.0",
    consent_id=42,
    base_model="tiny-sd",
)


def _pictures(count: int = 3) -> list[bytes]:
    rng = np.random.default_rng(5)
    pictures = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
        pictures.append(buffer.getvalue())
    return pictures


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> StyleEngine:
    return StyleEngine(str(tiny_model_dir), tmp_path_factory.mktemp("lora-files"), device="cpu")


@pytest.fixture(scope="module")
def trained(engine: StyleEngine) -> TrainedWeights:
    return engine.train(_pictures(), TRIGGER, SETTINGS, export_for=JOB)


@pytest.fixture(scope="module")
def files(trained: TrainedWeights, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trainer's diffusers-layout file and the export, on disk."""
    folder = tmp_path_factory.mktemp("lora-file-copies")
    assert trained.export_data is not None
    (folder / "diffusers.safetensors").write_bytes(trained.data)
    (folder / "kohya.safetensors").write_bytes(trained.export_data)
    return {"diffusers": folder / "diffusers.safetensors", "kohya": folder / "kohya.safetensors"}


def _draw(pipeline: StableDiffusionPipeline) -> np.ndarray:
    image = pipeline(
        f"{TRIGGER}, a lighthouse",
        num_inference_steps=3,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(11),
        output_type="np",
    ).images[0]
    return np.asarray(image, dtype=np.float32)


def _rewrite(source: Path, target: Path, rename: dict[str, str]) -> Path:
    """A copy of a LoRA file whose keys have `old` replaced by `new` (first match)."""
    tensors = load(source.read_bytes())
    renamed = {}
    for key, tensor in tensors.items():
        for old, new in rename.items():
            if old in key:
                key = key.replace(old, new)
                break
        renamed[key] = tensor
    target.write_bytes(save(renamed))
    return target


def test_the_export_is_in_kohya_layout_with_an_alpha_per_module(trained: TrainedWeights) -> None:
    assert trained.export_data is not None
    tensors = load(trained.export_data)
    source = load(trained.data)

    downs = {
        k.removesuffix(".lora_down.weight") for k in tensors if k.endswith(".lora_down.weight")
    }
    ups = {k.removesuffix(".lora_up.weight") for k in tensors if k.endswith(".lora_up.weight")}
    alphas = {k.removesuffix(".alpha") for k in tensors if k.endswith(".alpha")}
    assert downs == ups == alphas
    assert len(tensors) == 3 * len(downs)
    assert 2 * len(downs) == len(source)  # every trained layer, nothing else
    assert all(module.startswith("lora_unet_") and "." not in module for module in downs)
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q" in downs
    assert "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_out_0" in downs
    for module in downs:
        assert tensors[f"{module}.alpha"].item() == RANK
        assert tensors[f"{module}.lora_down.weight"].shape[0] == RANK
    # The same numbers as the trained file, only renamed.
    same = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight"
    kohya = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight"
    assert torch.equal(tensors[kohya], source[same])


def test_the_export_carries_its_metadata(trained: TrainedWeights) -> None:
    assert trained.export_data is not None
    meta = read_safetensors_metadata(trained.export_data)

    expected = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(RANK),
        "ss_network_alpha": str(RANK),
        "ss_base_model_version": "sd_v1",
        "ss_steps": str(SETTINGS.steps),
        "ss_resolution": "(64, 64)",
        "ss_learning_rate": str(SETTINGS.learning_rate),
        "ss_output_name": "ink",
        "modelspec.title": "ink",
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.trigger_phrase": TRIGGER,
        "modelspec.license": "CC-BY-4.0",
        "stylebot.style_name": "ink",
        "stylebot.consent_id": "42",
        "stylebot.licence": "CC-BY-4.0",
    }
    assert {key: meta.get(key) for key in expected} == expected
    assert meta["ss_sd_model_name"] == meta["stylebot.base_model"] == "tiny-sd"
    assert meta["stylebot.version"]
    trained_at = datetime.fromisoformat(meta["modelspec.date"])
    assert trained_at.tzinfo is not None
    # The hash covers the tensor data, so the file can carry it; recomputed here.
    data_hash = tensor_data_sha256(load(trained.export_data))
    assert meta["sshs_model_hash"] == meta["stylebot.weights_sha256"] == data_hash
    assert meta["modelspec.hash_sha256"] == f"0x{data_hash}"
    header = int.from_bytes(trained.export_data[:8], "little")
    assert hashlib.sha256(trained.export_data[8 + header :]).hexdigest() == data_hash
    # And the trained file's hash: what generated images' provenance names.
    assert meta["stylebot.source_lora_sha256"] == hashlib.sha256(trained.data).hexdigest()
    assert all(isinstance(value, str) for value in meta.values())


def test_the_export_loads_through_diffusers_kohya_path_and_draws_the_same_image(
    tiny_model_dir: Path, files: dict[str, Path]
) -> None:
    plain = load_pipeline(str(tiny_model_dir), device="cpu")
    without_lora = _draw(plain)
    plain.load_lora_weights(str(files["diffusers"]), adapter_name="trained")
    with_trained_file = _draw(plain)

    fresh = load_pipeline(str(tiny_model_dir), device="cpu")
    fresh.load_lora_weights(str(files["kohya"]), adapter_name="exported")
    with_export = _draw(fresh)

    assert np.abs(with_trained_file - without_lora).max() > 0.01  # the LoRA does something
    assert np.abs(with_export - with_trained_file).max() < 1e-4
    trained_tensors = len(load(files["diffusers"].read_bytes()))
    assert unapplied_lora_keys(fresh, files["kohya"], "exported") == ([], trained_tensors)


def test_checked_loading_takes_both_files(engine: StyleEngine, files: dict[str, Path]) -> None:
    generator = Generator(engine.pipeline)
    request = GenerationRequest("a lighthouse", seed=4, steps=2, width=64, height=64)
    for name, path in files.items():
        images = generator.generate(request, lora=LoraWeights(f"checked_{name}", path))
        assert len(images) == 1
    assert set(generator.loaded_adapters) == {"checked_diffusers", "checked_kohya"}
    engine.pipeline.delete_adapters(list(generator.adapters.adapter_slots.values()))


def _refused(engine: StyleEngine, path: Path) -> LoraMismatchError:
    """Load `path` through a Generator: it must be refused and leave nothing behind."""
    generator = Generator(engine.pipeline)
    request = GenerationRequest("a lighthouse", seed=4, steps=2, width=64, height=64)
    before = generator.generate(request)[0]
    with pytest.raises(LoraMismatchError) as refused:
        generator.generate(request, lora=LoraWeights("refused", path))
    assert generator.loaded_adapters == ()
    assert "refused" not in getattr(engine.pipeline.unet, "peft_config", {})
    after = generator.generate(request)[0]
    assert np.array_equal(np.asarray(before), np.asarray(after))
    assert "different base model" in refused.value.user_message
    assert "tiny-sd" in str(refused.value)  # names the base model
    return refused.value


def test_a_file_with_renamed_keys_is_refused(
    engine: StyleEngine, files: dict[str, Path], tmp_path: Path
) -> None:
    # One module moved to a block this model does not have: diffusers alone
    # would load the rest and silently drop it.
    module = "attentions_0_transformer_blocks_0_attn1_to_q."
    renamed = _rewrite(
        files["kohya"],
        tmp_path / "renamed.safetensors",
        {f"down_blocks_0_{module}": f"down_blocks_9_{module}"},
    )
    error = _refused(engine, renamed)
    assert any("down_blocks.9" in key for key in error.unmatched)
    assert "down_blocks.9" in str(error)


def test_a_file_of_foreign_keys_is_refused(engine: StyleEngine, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.safetensors"
    tensors = {}
    for index in range(2):
        tensors[f"lora_unet_not_a_layer_{index}.lora_down.weight"] = torch.ones(RANK, 32)
        tensors[f"lora_unet_not_a_layer_{index}.lora_up.weight"] = torch.ones(32, RANK)
        tensors[f"lora_unet_not_a_layer_{index}.alpha"] = torch.tensor(float(RANK))
    foreign.write_bytes(save(tensors))
    _refused(engine, foreign)


def other_architecture_lora(folder: Path) -> Path:
    """A real LoRA of a model with a wider text encoder (cross-attention dim 48)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            sample_size=32,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(32, 64, 64),
            layers_per_block=1,
            cross_attention_dim=48,
            attention_head_dim=2,
            norm_num_groups=16,
        )
        config = LoraConfig(
            r=RANK,
            lora_alpha=RANK,
            init_lora_weights="gaussian",
            target_modules=["to_k", "to_q", "to_v", "to_out.0"],
        )
        unet.add_adapter(config)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=layers, safe_serialization=True
    )
    return folder / "pytorch_lora_weights.safetensors"


def test_a_lora_of_another_architecture_is_refused(engine: StyleEngine, tmp_path: Path) -> None:
    error = _refused(engine, other_architecture_lora(tmp_path))
    assert error.unmatched  # names layers that did not fit
    assert all(".refused." not in key for key in error.unmatched)


def test_the_engine_reports_a_mismatched_style_as_an_error_not_a_plain_image(
    engine: StyleEngine, tmp_path: Path
) -> None:
    job = GenerateJob(
        job_id="gen-mismatch",
        prompt="a lighthouse",
        negative_prompt="",
        seed=1,
        steps=2,
        guidance=7.5,
        width=64,
        height=64,
        output_ids=("0123456789ab",),
        style_id=99,
        style_name="other",
        trigger="sbt other style",
    )
    with pytest.raises(LoraMismatchError):
        engine.generate(
            job,
            lora=cached_copy(engine.cache, "loras", other_architecture_lora(tmp_path).read_bytes()),
        )
    assert engine.generator.loaded_adapters == ()


def test_text_encoder_layers_are_checked_too(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A kohya file with `lora_te1_` layers (as other trainers make): taken when they
    fit the text encoder, refused when one is for a layer it does not have."""
    pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    text_encoder = pipeline.text_encoder
    layers = text_encoder_lora_layers(text_encoder, RANK)
    kohya = kohya_text_encoder_layers(layers)
    fits = tmp_path / "te.safetensors"
    fits.write_bytes(save(kohya))
    layer = next(key for key in kohya if key.startswith("lora_te1_")).split("layers_")[1]
    wrong = _rewrite(fits, tmp_path / "te-wrong.safetensors", {f"layers_{layer[0]}_": "layers_7_"})

    load_checked_lora(pipeline, fits, "fits")
    assert unapplied_lora_keys(pipeline, fits, "fits") == ([], len(layers))
    with pytest.raises(LoraMismatchError) as refused:
        load_checked_lora(pipeline, wrong, "wrong")

    assert any("layers.7" in key for key in refused.value.unmatched)
    assert "wrong" not in (getattr(text_encoder, "peft_config", None) or {})
    assert "fits" in text_encoder.peft_config


def test_an_alpha_saved_with_the_weights_carries_over(
    tiny_model_dir: Path, trained: TrainedWeights, tmp_path: Path
) -> None:
    """A diffusers file that says lora_alpha = 2 x rank loads at double strength;
    the export says the same in kohya's terms, and draws the same image."""
    config = LoraConfig(
        r=RANK, lora_alpha=2 * RANK, target_modules=["to_k", "to_q", "to_v", "to_out.0"]
    )
    StableDiffusionPipeline.save_lora_weights(
        tmp_path,
        # peft's naming, which diffusers pairs with a saved config.
        unet_lora_layers={
            key.removeprefix("unet."): tensor
            for key, tensor in convert_unet_state_dict_to_peft(load(trained.data)).items()
        },
        weight_name="scaled.safetensors",
        unet_lora_adapter_metadata=config.to_dict(),
    )
    scaled = (tmp_path / "scaled.safetensors").read_bytes()
    saved = json.loads(read_safetensors_metadata(scaled)["lora_adapter_metadata"])
    assert saved["unet.lora_alpha"] == 2 * RANK
    export = kohya_lora_file(
        scaled,
        StyleCard("ink", TRIGGER, base_model="tiny-sd"),
        SETTINGS,
        family="sd15",
        prediction_type="epsilon",
        trained_at=datetime.now(UTC),
    )
    assert read_safetensors_metadata(export)["ss_network_alpha"] == str(2 * RANK)
    alphas = [t.item() for k, t in load(export).items() if k.endswith(".alpha")]
    assert alphas
    assert set(alphas) == {2 * RANK}

    (tmp_path / "export.safetensors").write_bytes(export)
    drawn = []
    for name in ("scaled", "export"):
        pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
        pipeline.load_lora_weights(str(tmp_path / f"{name}.safetensors"), adapter_name=name)
        drawn.append(_draw(pipeline))
    assert np.abs(drawn[0] - drawn[1]).max() < 1e-4


# -- SDXL: kohya sd-scripts' SGM block names ------------------------------------------

SDXL_JOB = dataclasses.replace(JOB, job_id="train-export-sdxl", base_model="tiny-sdxl")


@pytest.fixture(scope="module")
def sdxl_files(
    tiny_sdxl_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """A style trained on the tiny SDXL model: the trainer's file and its export."""
    engine = StyleEngine(
        str(tiny_sdxl_model_dir), tmp_path_factory.mktemp("lora-files-sdxl"), device="cpu"
    )
    trained = engine.train(_pictures(), TRIGGER, SETTINGS, export_for=SDXL_JOB)
    assert trained.export_data is not None
    folder = tmp_path_factory.mktemp("lora-file-copies-sdxl")
    (folder / "diffusers.safetensors").write_bytes(trained.data)
    (folder / "kohya.safetensors").write_bytes(trained.export_data)
    return {"diffusers": folder / "diffusers.safetensors", "kohya": folder / "kohya.safetensors"}


def _modules(tensors: dict[str, torch.Tensor]) -> set[str]:
    return {k.removesuffix(".lora_down.weight") for k in tensors if k.endswith(".lora_down.weight")}


def test_sgm_names_are_sd_scripts_names_for_sdxl_unet() -> None:
    """SDXL's own UNet (two layers per level, a middle block): the names sd-scripts
    gives its LoRAs, which AUTOMATIC1111 and ComfyUI look up."""
    sdxl_unet = {
        "layers_per_block": 2,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    }
    tail = "transformer_blocks_0_attn1_to_q.lora_down.weight"
    expected = {
        f"lora_unet_down_blocks_1_attentions_0_{tail}": f"lora_unet_input_blocks_4_1_{tail}",
        f"lora_unet_down_blocks_1_attentions_1_{tail}": f"lora_unet_input_blocks_5_1_{tail}",
        f"lora_unet_down_blocks_2_attentions_1_{tail}": f"lora_unet_input_blocks_8_1_{tail}",
        f"lora_unet_mid_block_attentions_0_{tail}": f"lora_unet_middle_block_1_{tail}",
        f"lora_unet_up_blocks_0_attentions_0_{tail}": f"lora_unet_output_blocks_0_1_{tail}",
        f"lora_unet_up_blocks_0_attentions_2_{tail}": f"lora_unet_output_blocks_2_1_{tail}",
        f"lora_unet_up_blocks_1_attentions_0_{tail}": f"lora_unet_output_blocks_3_1_{tail}",
        f"lora_unet_up_blocks_1_attentions_2_{tail}": f"lora_unet_output_blocks_5_1_{tail}",
        # Text encoder layers have no blocks to rename.
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.alpha": (
            "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.alpha"
        ),
    }
    tensors = {old: torch.full((1,), float(i)) for i, old in enumerate(expected)}
    renamed = sgm_unet_names(tensors, sdxl_unet)
    assert renamed == {new: tensors[old] for old, new in expected.items()}


def test_sgm_names_refuse_layers_the_unet_config_does_not_have() -> None:
    config = {"layers_per_block": 1, "down_block_types": ("A", "B"), "up_block_types": ("C", "D")}
    one = torch.ones(1)
    fits = sgm_unet_names({"lora_unet_up_blocks_1_attentions_1_x.alpha": one}, config)
    assert list(fits) == ["lora_unet_output_blocks_3_1_x.alpha"]
    for module in (
        "lora_unet_down_blocks_2_attentions_0_x",  # a third level
        "lora_unet_down_blocks_1_attentions_1_x",  # a second layer in a level
        "lora_unet_up_blocks_1_attentions_2_x",  # a third layer in an up level
        "lora_unet_down_blocks_1_resnets_0_conv1",  # not an attention block
    ):
        with pytest.raises(ValueError, match=module):
            sgm_unet_names({f"{module}.alpha": one}, config)


def test_an_sdxl_export_names_blocks_as_sd_scripts_does_from_the_unet_config(
    tiny_sdxl_model_dir: Path, sdxl_files: dict[str, Path]
) -> None:
    export = load(sdxl_files["kohya"].read_bytes())
    source = load(sdxl_files["diffusers"].read_bytes())
    modules = _modules(export)
    assert 2 * len(modules) == len(source)
    assert all(
        m.startswith(("lora_unet_input_blocks_", "lora_unet_middle_block_1_"))
        or m.startswith("lora_unet_output_blocks_")
        for m in modules
    )
    # The tiny UNet has one layer per level, so its second level's transformer is
    # input block 3 (SDXL's, with two layers per level, is 4).
    unet = UNet2DConditionModel.load_config(tiny_sdxl_model_dir / "unet")
    assert unet["layers_per_block"] == 1
    assert "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q" in modules
    assert "lora_unet_middle_block_1_transformer_blocks_0_attn2_to_out_0" in modules
    assert "lora_unet_output_blocks_1_1_transformer_blocks_0_attn1_to_v" in modules
    # diffusers' own SGM-to-diffusers block mapping, and its renaming of the stages
    # (`_convert_unet_lora_key`), give back exactly the trained layers and numbers.
    mapped = _maybe_map_sgm_blocks_to_diffusers(
        dict(export), SimpleNamespace(layers_per_block=unet["layers_per_block"])
    )
    stages = {
        "input_blocks": "down_blocks",
        "middle_block": "mid_block",
        "output_blocks": "up_blocks",
    }
    back = {}
    for key, tensor in mapped.items():
        for sgm, diffusers in stages.items():
            key = key.replace(f"lora_unet_{sgm}_", f"lora_unet_{diffusers}_")
        back[key] = tensor
    diffusers_names = convert_state_dict_to_kohya(convert_unet_state_dict_to_peft(source))
    weights = {k: v for k, v in diffusers_names.items() if not k.endswith(".alpha")}
    assert {k for k in back if not k.endswith(".alpha")} == set(weights)
    for key, tensor in weights.items():
        assert torch.equal(back[key], tensor)
    meta = read_safetensors_metadata(sdxl_files["kohya"].read_bytes())
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    # What generation names the export by, from the trainer's file alone (SGM names too).
    named = export_model_hash(
        sdxl_files["diffusers"].read_bytes(), family="sdxl", unet_config=dict(unet)
    )
    assert named == a1111.addnet_hash(sdxl_files["kohya"].read_bytes())


def test_an_sdxl_export_loads_in_diffusers_and_draws_the_trained_image(
    tiny_sdxl_model_dir: Path, sdxl_files: dict[str, Path]
) -> None:
    plain = load_pipeline(str(tiny_sdxl_model_dir), device="cpu")
    without_lora = _draw(plain)
    plain.load_lora_weights(str(sdxl_files["diffusers"]), adapter_name="trained")
    with_trained_file = _draw(plain)

    fresh = load_pipeline(str(tiny_sdxl_model_dir), device="cpu")
    load_checked_lora(fresh, sdxl_files["kohya"], "exported")  # every tensor lands
    with_export = _draw(fresh)

    assert np.abs(with_trained_file - without_lora).max() > 0.01  # the LoRA does something
    assert np.abs(with_export - with_trained_file).max() < 1e-4
    trained_tensors = len(load(sdxl_files["diffusers"].read_bytes()))
    assert unapplied_lora_keys(fresh, sdxl_files["kohya"], "exported") == ([], trained_tensors)
