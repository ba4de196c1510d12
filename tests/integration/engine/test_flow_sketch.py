"""Follow a sketch (ControlNet) on FLUX.1 and SD 3.5 (issue 18: every mode for every family
the worker supports), on the tiny models with tiny random ControlNets of each family's
class: the ControlNet pipeline is made from the loaded one's parts, the control image
steers the output (measured on the pixels), the style's LoRA applies, and a ControlNet
of another family, or of another model's widths, is refused at start-up."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tests.integration.engine.conftest import FLOW_CONTROLNET_DIRS, FLOW_MODEL_DIRS
from tests.integration.engine.test_restyle import _stripes
from tests.integration.engine.test_sketch import SKETCH, _mean_difference, _ring
from tests.support.tiny_styles import REQUEST, STRONG, TRIGGER, pixels, reference_images

from stylebot.engine.generation_request import LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.models import load_pipeline, model_family
from stylebot.engine.sketch_control import SketchUnsupported
from stylebot.engine.tiny_model import write_tiny_controlnet
from stylebot.trainer.flow_matching import train_flow_lora

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

# Two steps: enough for the ControlNet to steer every step's prediction.
FLOW_SKETCH = replace(SKETCH, steps=2)
_PIPELINES = {
    "flux": ("FluxControlNetPipeline", "FluxControlNetModel"),
    "sd3": ("StableDiffusion3ControlNetPipeline", "SD3ControlNetModel"),
}


@pytest.fixture(scope="module", params=sorted(FLOW_MODEL_DIRS))
def generator(request: pytest.FixtureRequest) -> Generator:
    """A generator on the tiny FLUX.1 model with its edges ControlNet, then on SD 3.5's."""
    model_dir = request.getfixturevalue(FLOW_MODEL_DIRS[request.param])
    controlnet = request.getfixturevalue(FLOW_CONTROLNET_DIRS[request.param])
    pipeline = load_pipeline(str(model_dir), device="cpu")
    assert model_family(pipeline) == request.param
    return Generator(pipeline, controlnets={"edges": str(controlnet)})


def test_the_controlnet_pipeline_is_the_familys_and_shares_every_component(
    generator: Generator,
) -> None:
    base = generator.pipeline
    sketch = generator.modes.sketches.pipeline("edges")
    expected = _PIPELINES[model_family(base)]
    assert (type(sketch).__name__, type(sketch.controlnet).__name__) == expected
    for name, component in base.components.items():
        assert getattr(sketch, name) is component, name
    assert generator.modes.sketches.pipeline("edges") is sketch  # made once


def test_the_control_image_steers_the_output(generator: Generator) -> None:
    [stripes] = generator.generate(replace(FLOW_SKETCH, init_image=_stripes()))
    [ring] = generator.generate(replace(FLOW_SKETCH, init_image=_ring()))
    [again] = generator.generate(replace(FLOW_SKETCH, init_image=_stripes()))
    assert stripes.size == (64, 64)
    # Same seed, same prompt: only the drawing differs, and so does the picture.
    assert _mean_difference(stripes, ring) > 2
    assert np.array_equal(pixels(stripes), pixels(again))
    # The same drawing with the ControlNet's output all but switched off is the
    # text-to-image picture of the seed: the ControlNet's output made the difference.
    [faint] = generator.generate(replace(FLOW_SKETCH, init_image=_stripes(), strength=1e-4))
    [text_only] = generator.generate(replace(REQUEST, steps=2))
    assert _mean_difference(faint, text_only) < 0.5
    assert _mean_difference(stripes, text_only) > 2


def test_text_to_image_is_unchanged_by_sketches_in_between(generator: Generator) -> None:
    text = replace(REQUEST, steps=2)
    [before] = generator.generate(text)
    generator.generate(replace(FLOW_SKETCH, init_image=_ring()))
    [after] = generator.generate(text)
    assert np.array_equal(pixels(before), pixels(after))


def test_the_styles_lora_applies_to_a_sketch(generator: Generator, tmp_path: Path) -> None:
    pipeline = generator.pipeline
    outcome = train_flow_lora(pipeline, reference_images(), TRIGGER, STRONG, tmp_path)  # type: ignore[arg-type]
    assert outcome.weights_path is not None
    style = LoraWeights("flow_sketch_style", outcome.weights_path)
    # A lighter hand: the tiny random ControlNet at full weight outweighs a six-step style.
    request = replace(FLOW_SKETCH, init_image=_ring(), strength=0.3)
    [plain] = generator.generate(request)
    [styled] = generator.generate(request, lora=style)
    # As much as the style changes a text-to-image picture (test_flow_engines).
    assert _mean_difference(plain, styled) > 1.0
    [plain_again] = generator.generate(request)
    assert np.array_equal(pixels(plain), pixels(plain_again))  # the style left with it


@pytest.mark.parametrize(
    ("model", "controlnet", "refusal"),
    [
        ("tiny_flux_model_dir", "tiny_sd3_controlnet_dir", "for SD 3.5 \\(SD3ControlNetModel\\)"),
        ("tiny_sd3_model_dir", "tiny_flux_controlnet_dir", "for FLUX.1 \\(FluxControlNetModel\\)"),
        ("tiny_flux_model_dir", "tiny_controlnet_dir", "for Stable Diffusion 1.x, 2.x or SDXL"),
        ("tiny_model_dir", "tiny_sd3_controlnet_dir", "not for this worker's sd15 model"),
    ],
)
def test_a_controlnet_of_another_family_is_refused_at_start_up(
    request: pytest.FixtureRequest, model: str, controlnet: str, refusal: str
) -> None:
    pipeline = load_pipeline(str(request.getfixturevalue(model)), device="cpu")
    source = request.getfixturevalue(controlnet)
    with pytest.raises(SketchUnsupported, match=refusal):
        Generator(pipeline, controlnets={"edges": str(source)})


def test_a_controlnet_for_another_models_widths_is_refused_at_start_up(
    tiny_sd3_model_dir: Path, tiny_sd3_controlnet_dir: Path, tmp_path: Path
) -> None:
    # An SD 3.5 ControlNet, but for a model with a wider T5 (SD 3.5 Large's and
    # Medium's ControlNets are not interchangeable either).
    other = shutil.copytree(tiny_sd3_controlnet_dir, tmp_path / "wider")
    config = json.loads((other / "config.json").read_text())
    config["joint_attention_dim"] *= 2
    (other / "config.json").write_text(json.dumps(config))
    pipeline = load_pipeline(str(tiny_sd3_model_dir), device="cpu")
    with pytest.raises(SketchUnsupported, match=r"ControlNet for another base model.*text width"):
        Generator(pipeline, controlnets={"edges": str(other)})


def test_a_batch_of_sketches_draws_what_each_draws_alone(generator: Generator) -> None:
    first = replace(FLOW_SKETCH, init_image=_stripes())
    second = replace(first, seed=99, init_image=_ring())
    [[together_first], [together_second]] = generator.generate_batch([first, second])
    [alone_first] = generator.generate(first)
    [alone_second] = generator.generate(second)
    # Up to a batched kernel's rounding (Generator.generate_batch).
    assert _mean_difference(together_first, alone_first) < 0.5
    assert _mean_difference(together_second, alone_second) < 0.5


def test_every_mode_draws_at_a_size_in_eights_not_only_sixteens(generator: Generator) -> None:
    # The front end sizes pictures in multiples of 8 (restyle_size); FLUX.1's and SD 3.5's
    # transformers take 2x2 patches of the 8x smaller latent, so their pipelines want 16s
    # (SD 3.5's refused 72 px, FLUX.1's drew 64).
    picture = _stripes().resize((72, 56))
    text = replace(REQUEST, steps=2, width=72, height=56)
    [drawn] = generator.generate(text)
    [restyled] = generator.generate(replace(text, init_image=picture, strength=0.6))
    [sketched] = generator.generate(replace(FLOW_SKETCH, width=72, height=56, init_image=picture))
    assert drawn.size == restyled.size == sketched.size == (72, 56)


def test_a_flux_union_controlnet_is_told_the_kind_it_follows(
    tiny_flux_model_dir: Path, tmp_path: Path
) -> None:
    # One ControlNet for many kinds (InstantX's and Shakker-Labs' FLUX.1 union models):
    # without its mode it refuses to run.
    union = write_tiny_controlnet(tmp_path / "union", tiny_flux_model_dir, union_modes=7)
    pipeline = load_pipeline(str(tiny_flux_model_dir), device="cpu")
    flux = Generator(pipeline, controlnets={"edges": str(union)})
    [stripes] = flux.generate(replace(FLOW_SKETCH, init_image=_stripes()))
    [ring] = flux.generate(replace(FLOW_SKETCH, init_image=_ring()))
    assert flux.modes.sketches.pipeline("edges").controlnet.union
    assert _mean_difference(stripes, ring) > 2


def test_a_flux_union_controlnet_follows_depth_as_its_mode_2(
    tiny_flux_model_dir: Path, tiny_depth_estimator_dir: Path, tmp_path: Path
) -> None:
    union = write_tiny_controlnet(tmp_path / "union", tiny_flux_model_dir, union_modes=7)
    flux = Generator(
        load_pipeline(str(tiny_flux_model_dir), device="cpu"),
        controlnets={"edges": str(union), "depth": str(union)},
        depth_estimator=str(tiny_depth_estimator_dir),
    )
    sketches = flux.modes.sketches
    assert sketches.control_arguments("edges", [_stripes()])["control_mode"] == 0
    assert sketches.control_arguments("depth", [_stripes()])["control_mode"] == 2
    edges = replace(FLOW_SKETCH, init_image=_stripes())
    [followed_edges] = flux.generate(edges)
    [followed_depth] = flux.generate(replace(edges, follow="depth"))
    # The same ControlNet and picture, another kind: another control image and mode.
    assert _mean_difference(followed_edges, followed_depth) > 1
