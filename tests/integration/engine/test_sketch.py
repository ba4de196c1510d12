"""Follow a sketch (ControlNet) on the hot tiny pipeline: the ControlNet pipeline is made
from the base pipeline's own components, the control image steers the output (measured on
the pixels), the style's LoRA applies, and a ControlNet the base cannot take is refused
at start-up."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.integration.engine.test_restyle import _stripes
from tests.support.tiny_styles import REQUEST, STRONG, TRIGGER, pixels, reference_images

from stylebot.engine.generation_request import LoraWeights, generation_batch_key
from stylebot.engine.generator import Generator
from stylebot.engine.models import load_pipeline
from stylebot.engine.sketch_control import SketchUnsupported, canny_edges
from stylebot.engine.tiny_model import write_tiny_controlnet
from stylebot.queue.payloads import GenerateJob
from stylebot.trainer.lora import train_lora

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SKETCH = replace(REQUEST, steps=3, strength=1.0, follow="edges")


@pytest.fixture(scope="module")
def generator(tiny_model_dir: Path, tiny_controlnet_dir: Path) -> Generator:
    pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    return Generator(pipeline, controlnets={"edges": str(tiny_controlnet_dir)})


def _ring() -> Image.Image:
    """Another drawing: a white ring on black (edges nothing like the stripes')."""
    grid = np.hypot(*np.mgrid[-32:32, -32:32])
    ring = np.where(np.abs(grid - 20) < 4, 250, 5).astype(np.uint8)
    return Image.fromarray(np.repeat(ring[:, :, None], 3, axis=2))


def _mean_difference(first: Image.Image, second: Image.Image) -> float:
    return float(np.abs(pixels(first) - pixels(second)).mean())


def test_canny_edges_are_white_on_the_drawings_lines_and_black_elsewhere() -> None:
    edges = np.asarray(canny_edges(_stripes()))
    assert edges.shape == (64, 64, 3)
    assert set(np.unique(edges)) == {0, 255}
    # The stripes change every 8 px across: the edges are columns there, none inside.
    columns = edges[:, :, 0].max(axis=0)
    assert columns[7] == 255 or columns[8] == 255
    assert columns[3] == 0


def test_the_controlnet_pipeline_shares_every_component_of_the_text_pipeline(
    generator: Generator, tiny_controlnet_dir: Path
) -> None:
    sketch = generator.modes.sketches.pipeline("edges")
    base = generator.pipeline
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert getattr(sketch, name) is getattr(base, name), name
    assert sketch.controlnet.config.block_out_channels == base.unet.config.block_out_channels
    assert generator.modes.sketches.pipeline("edges") is sketch  # made once


def test_the_controlnet_pipeline_draws_no_progress_bar_as_the_text_pipeline(
    generator: Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    generator.generate(replace(SKETCH, init_image=_stripes()))
    assert "%|" not in capsys.readouterr().err, "a progress bar"


def test_the_control_image_steers_the_output(generator: Generator) -> None:
    [stripes] = generator.generate(replace(SKETCH, init_image=_stripes()))
    [ring] = generator.generate(replace(SKETCH, init_image=_ring()))
    [again] = generator.generate(replace(SKETCH, init_image=_stripes()))
    [text_only] = generator.generate(replace(REQUEST, steps=3))
    assert stripes.size == (64, 64)
    # Same seed, same prompt: only the drawing differs, and so does the picture.
    assert _mean_difference(stripes, ring) > 5
    assert _mean_difference(stripes, text_only) > 5
    assert np.array_equal(pixels(stripes), pixels(again))
    # A lighter hand (conditioning scale) moves the picture less from text alone.
    [light] = generator.generate(replace(SKETCH, init_image=_stripes(), strength=0.1))
    assert _mean_difference(light, text_only) < _mean_difference(stripes, text_only)


def test_text_to_image_is_unchanged_by_sketches_in_between(generator: Generator) -> None:
    [before] = generator.generate(REQUEST)
    generator.generate(replace(SKETCH, init_image=_ring()))
    [after] = generator.generate(REQUEST)
    assert np.array_equal(pixels(before), pixels(after))


def test_the_styles_lora_applies_to_a_sketch(generator: Generator, tmp_path: Path) -> None:
    pipeline = generator.pipeline
    outcome = train_lora(pipeline, reference_images(), TRIGGER, STRONG, tmp_path)
    assert outcome.weights_path is not None
    style = LoraWeights("sketch_style", outcome.weights_path)
    request = replace(SKETCH, init_image=_ring())
    [plain] = generator.generate(request)
    [styled] = generator.generate(request, lora=style)
    assert _mean_difference(plain, styled) > 2


def test_depth_follows_the_estimators_map_of_the_picture(
    tiny_model_dir: Path, tiny_controlnet_dir: Path, tiny_depth_estimator_dir: Path
) -> None:
    # The tiny ControlNet stands for a depth one: the same architecture, other weights.
    depth = Generator(
        load_pipeline(str(tiny_model_dir), device="cpu"),
        controlnets={"depth": str(tiny_controlnet_dir)},
        depth_estimator=str(tiny_depth_estimator_dir),
    )
    stripes_map = np.asarray(depth.modes.sketches.control_image("depth", _stripes()))
    ring_map = np.asarray(depth.modes.sketches.control_image("depth", _ring()))
    assert stripes_map.shape == ring_map.shape == (64, 64, 3)
    # Grey (the same in each channel), from black to white, and made from the picture.
    assert (stripes_map[..., 0] == stripes_map[..., 2]).all()
    assert (stripes_map.min(), stripes_map.max()) == (0, 255)
    assert float(np.abs(stripes_map.astype(int) - ring_map.astype(int)).mean()) > 5
    request = replace(SKETCH, follow="depth")
    [stripes] = depth.generate(replace(request, init_image=_stripes()))
    [ring] = depth.generate(replace(request, init_image=_ring()))
    assert _mean_difference(stripes, ring) > 2


def test_a_depth_controlnet_without_its_estimator_is_refused_at_start_up(
    tiny_model_dir: Path, tiny_controlnet_dir: Path
) -> None:
    pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    with pytest.raises(SketchUnsupported, match="without STYLEBOT_DEPTH_ESTIMATOR"):
        Generator(pipeline, controlnets={"depth": str(tiny_controlnet_dir)})


def test_sketches_share_a_batch_only_with_sketches(generator: Generator) -> None:
    first = replace(SKETCH, init_image=_stripes())
    second = replace(first, seed=99, init_image=_ring())
    made = generator.generate_batch([first, second])
    assert [len(images) for images in made] == [1, 1]
    restyle = replace(first, follow=None)
    with pytest.raises(ValueError, match="same steps"):
        generator.generate_batch([first, restyle])


def test_the_worker_batches_sketch_jobs_only_with_sketches_of_the_same_kind() -> None:
    restyle = GenerateJob(
        "job-1", "a castle", "", 1, 3, 7.5, 64, 64, ("out-1",), source_key="a", strength=1.0
    )
    edges = replace(restyle, job_id="job-2", source_key="b", follow="edges")
    key = generation_batch_key(edges)
    assert generation_batch_key(replace(edges, job_id="job-3", source_key="c")) == key
    assert generation_batch_key(restyle) != key
    assert generation_batch_key(replace(edges, follow="depth")) != key


def test_sdxl_follows_a_sketch_with_its_own_controlnet(
    tiny_sdxl_model_dir: Path, tmp_path: Path
) -> None:
    controlnet = write_tiny_controlnet(tmp_path / "sdxl-controlnet", tiny_sdxl_model_dir)
    pipeline = load_pipeline(str(tiny_sdxl_model_dir), device="cpu")
    sdxl = Generator(pipeline, controlnets={"edges": str(controlnet)})
    [stripes] = sdxl.generate(replace(SKETCH, steps=2, init_image=_stripes()))
    [ring] = sdxl.generate(replace(SKETCH, steps=2, init_image=_ring()))
    assert type(sdxl.modes.sketches.pipeline("edges")).__name__ == (
        "StableDiffusionXLControlNetPipeline"
    )
    assert _mean_difference(stripes, ring) > 2


def test_a_controlnet_for_another_base_model_is_refused_at_start_up(
    tiny_sdxl_model_dir: Path, tiny_controlnet_dir: Path
) -> None:
    pipeline = load_pipeline(str(tiny_sdxl_model_dir), device="cpu")
    with pytest.raises(SketchUnsupported, match="ControlNet for another base model"):
        Generator(pipeline, controlnets={"edges": str(tiny_controlnet_dir)})


def test_a_single_file_or_another_kind_of_controlnet_is_refused_with_what_to_name(
    tiny_model_dir: Path, tiny_controlnet_dir: Path, tmp_path: Path
) -> None:
    pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    single = tmp_path / "control_canny.safetensors"
    shutil.copy(tiny_controlnet_dir / "diffusion_pytorch_model.safetensors", single)
    with pytest.raises(SketchUnsupported, match=r"is a single file: .* diffusers' layout"):
        Generator(pipeline, controlnets={"edges": str(single)})
    # SDXL's union ControlNets are another class, which /sketch does not drive.
    union = shutil.copytree(tiny_controlnet_dir, tmp_path / "union")
    config = json.loads((union / "config.json").read_text())
    config["_class_name"] = "ControlNetUnionModel"
    (union / "config.json").write_text(json.dumps(config))
    with pytest.raises(SketchUnsupported, match="is a ControlNetUnionModel, which /sketch"):
        Generator(pipeline, controlnets={"edges": str(union)})
