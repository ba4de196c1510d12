"""FLUX.1 and SD 3.5: the tiny models (every component, T5's tokenizer included,
built with no download), and telling the families and variants apart from a
folder, a hub id or a single-file checkpoint through the users' loading path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from diffusers import FluxPipeline, StableDiffusion3Pipeline
from safetensors.torch import save_file
from transformers import T5EncoderModel

from stylebot.cli import main
from stylebot.engine.families import family_variant, licence_for
from stylebot.engine.models import load_pipeline, model_family, single_file_family

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TRANSFORMER_WEIGHTS = Path("transformer") / "diffusion_pytorch_model.safetensors"


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    expected, loaded = a.state_dict(), b.state_dict()
    return loaded.keys() == expected.keys() and all(
        torch.equal(loaded[k], expected[k]) for k in expected
    )


@pytest.mark.parametrize(
    ("kind", "pipeline_class", "variant", "folders"),
    [
        ("flux", FluxPipeline, "flux-dev", 7),
        ("flux-schnell", FluxPipeline, "flux-schnell", 7),
        ("sd3", StableDiffusion3Pipeline, "sd3-medium", 9),
    ],
)
def test_cli_writes_a_tiny_flow_model_with_every_component(
    tmp_path: Path,
    kind: str,
    pipeline_class: type[FluxPipeline | StableDiffusion3Pipeline],
    variant: str,
    folders: int,
) -> None:
    assert main(["model", "tiny", "--family", kind, str(tmp_path / kind)]) == 0
    index = json.loads((tmp_path / kind / "model_index.json").read_text())
    assert index["_class_name"] == pipeline_class.__name__
    # The optional IP-adapter parts (image encoder, feature extractor) are null.
    components = [name for name, kind in index.items() if not name.startswith("_") and kind[0]]
    assert len(components) == folders
    for name in components:
        assert (tmp_path / kind / name).is_dir(), name
    t5_tokenizer = "tokenizer_3" if kind == "sd3" else "tokenizer_2"
    assert (tmp_path / kind / t5_tokenizer / "tokenizer.json").is_file()

    pipeline = load_pipeline(str(tmp_path / kind), device="cpu")
    assert isinstance(pipeline, pipeline_class)
    assert model_family(pipeline) == ("sd3" if kind == "sd3" else "flux")
    assert family_variant(pipeline) == variant
    t5 = pipeline.text_encoder_3 if kind == "sd3" else pipeline.text_encoder_2
    assert isinstance(t5, T5EncoderModel)
    tokenizer = pipeline.tokenizer_3 if kind == "sd3" else pipeline.tokenizer_2
    # Known words are whole tokens; anything else spells out, never "unknown".
    ids = tokenizer("a lighthouse at dawn, zqx").input_ids
    assert tokenizer.unk_token_id not in ids
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.convert_ids_to_tokens(ids[1]) == "▁lighthouse"
    assert pipeline.vae_scale_factor == 8
    image = pipeline(
        "a lighthouse at dawn",
        num_inference_steps=2,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert np.asarray(image).shape == (64, 64, 3)


def test_the_same_seed_writes_the_same_flow_model(
    tmp_path: Path, tiny_flux_model_dir: Path
) -> None:
    assert main(["model", "tiny", "--family", "flux", str(tmp_path / "again")]) == 0
    again = (tmp_path / "again" / TRANSFORMER_WEIGHTS).read_bytes()
    assert again == (tiny_flux_model_dir / TRANSFORMER_WEIGHTS).read_bytes()


def test_a_flow_hub_id_loads_from_the_hub_cache_with_its_family(
    tiny_sd3_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "hub" / "models--stylebot-tests--tiny-sd3"
    commit = "0" * 40
    shutil.copytree(tiny_sd3_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    pipeline = load_pipeline("stylebot-tests/tiny-sd3", device="cpu")
    assert isinstance(pipeline, StableDiffusion3Pipeline)
    assert model_family(pipeline) == "sd3"


def test_a_flux_transformer_file_loads_with_the_config_folder(
    tiny_flux_model_dir: Path, tmp_path: Path
) -> None:
    # A fine-tune shared as the transformer alone, in diffusers' layout.
    checkpoint = tmp_path / "my-flux-finetune.safetensors"
    shutil.copy(tiny_flux_model_dir / TRANSFORMER_WEIGHTS, checkpoint)
    assert single_file_family(checkpoint) == "flux"
    pipeline = load_pipeline(str(checkpoint), device="cpu", config=tiny_flux_model_dir)
    assert isinstance(pipeline, FluxPipeline)
    assert family_variant(pipeline) == "flux-dev"
    from_folder = load_pipeline(str(tiny_flux_model_dir), device="cpu")
    assert _same_weights(pipeline.transformer, from_folder.transformer)


@pytest.mark.parametrize(
    ("keys", "family"),
    [
        # Black Forest Labs' release layout: dev has the guidance input, schnell not.
        (["double_blocks.0.img_attn.qkv.weight", "guidance_in.in_layer.weight"], "flux"),
        (["model.diffusion_model.double_blocks.0.img_attn.qkv.weight"], "flux"),
        # Stability's SD 3.5 layout; Medium's MMDiT-X blocks have a second attention.
        (["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"], "sd3"),
        (
            [
                "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight",
                "model.diffusion_model.joint_blocks.0.x_block.attn2.qkv.weight",
            ],
            "sd3",
        ),
    ],
)
def test_flow_single_file_family_comes_from_the_original_layouts_keys(
    tmp_path: Path, keys: list[str], family: str
) -> None:
    checkpoint = tmp_path / "base.safetensors"
    save_file({key: torch.zeros(1) for key in keys}, checkpoint)
    assert single_file_family(checkpoint) == family


def test_each_flow_variant_names_its_licence() -> None:
    assert "Non-Commercial" in licence_for("flux-dev").name
    assert licence_for("flux-schnell").name == "Apache-2.0"
    assert "Community" in licence_for("sd3-medium").name
    assert licence_for("sd3-large") == licence_for("sd3-medium")
