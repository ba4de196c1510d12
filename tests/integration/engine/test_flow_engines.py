"""FLUX.1 and SD 3.5 through the worker's engine, as test_family_engines does for the
UNet families: a style trains (LoRA on the transformer by flow matching), changes
the image, batches, mixes with other styles, hot-swaps, varies, and every image
carries its watermark; schnell samples its few steps without guidance."""

from __future__ import annotations

import dataclasses
import io
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from peft.tuners.lora import LoraLayer
from PIL import Image
from safetensors.torch import load
from tests.integration.engine.test_family_engines import _job, _pixels, _uploads, _watermark
from tests.support.comfyui_keys import comfyui_flux_targets, comfyui_sd3_targets, keys_not_loaded
from tests.support.tiny_styles import cached_copy

from stylebot.engine.base_quantization import is_quantized, plan_quantization
from stylebot.engine.families import LORA_TARGET_MODULES, family_variant, licence_for
from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.lora_files import read_safetensors_metadata, tensor_data_sha256
from stylebot.engine.lora_loading import load_checked_lora
from stylebot.engine.models import load_pipeline, model_family
from stylebot.engine.runtime import JobCancelled, StyleEngine
from stylebot.engine.tiny_model import write_tiny_model
from stylebot.engine.training_previews import TrainingPreviews
from stylebot.queue.job_lifecycle import user_error
from stylebot.queue.payloads import TrainJob, TrainSettings
from stylebot.trainer.borrowed_unet import text_encoders
from stylebot.trainer.checkpoints import TrainingCheckpoint
from stylebot.trainer.flow_matching import noise_levels
from stylebot.trainer.lr_schedule import lr_factor

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TRIGGER = "sks style"
SETTINGS = TrainSettings(steps=6, resolution=64, rank=4, learning_rate=1e-2, seed=0)
MODEL_DIRS = {"flux": "tiny_flux_model_dir", "sd3": "tiny_sd3_model_dir"}


@pytest.fixture(scope="module", params=sorted(MODEL_DIRS))
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> StyleEngine:
    model_dir: Path = request.getfixturevalue(MODEL_DIRS[request.param])
    made = StyleEngine(str(model_dir), tmp_path_factory.mktemp("engine"), device="cpu")
    assert model_family(made.pipeline) == request.param
    return made


@pytest.fixture(scope="module")
def style(engine: StyleEngine) -> bytes:
    trained = engine.train(_uploads(), TRIGGER, SETTINGS)
    assert trained.steps == SETTINGS.steps
    assert np.isfinite(trained.final_loss)
    return trained.data


def test_a_style_is_a_lora_on_every_attention_and_feed_forward_layer(
    engine: StyleEngine, style: bytes
) -> None:
    weights = load(style)
    family = model_family(engine.pipeline)
    assert all(key.startswith("transformer.") for key in weights)
    trained = {key.removeprefix("transformer.").rsplit(".lora_", 1)[0] for key in weights}
    expected = {
        name
        for name, _ in engine.pipeline.transformer.named_modules()
        if any(name.endswith(target) for target in LORA_TARGET_MODULES[family])
    }
    assert trained == expected
    assert any(".ff." in name for name in trained)
    assert any(".attn.add_q_proj" in name for name in trained)
    # The training adapter left the shared transformer with the run.
    assert not getattr(engine.pipeline.transformer, "peft_config", None) or all(
        name.startswith("slot") for name in engine.pipeline.transformer.peft_config
    )


def test_a_trained_style_changes_the_image_and_every_image_is_watermarked(
    engine: StyleEngine, style: bytes
) -> None:
    base_job, styled_job = _job("base"), _job("styled")
    [base] = engine.generate(dataclasses.replace(base_job, lora_key=None, trigger=None))
    [styled] = engine.generate(styled_job, lora=cached_copy(engine.cache, "loras", style))
    assert np.abs(_pixels(styled) - _pixels(base)).mean() > 1.0
    assert _watermark(base) == base_job.output_ids[0]
    assert _watermark(styled) == styled_job.output_ids[0]
    adapters = engine.generator.loaded_adapters
    [again] = engine.generate(styled_job, lora=cached_copy(engine.cache, "loras", style))
    assert engine.generator.loaded_adapters == adapters
    assert np.array_equal(_pixels(again), _pixels(styled))
    # The base model again: the style is off, the image is the base one.
    [plain] = engine.generate(dataclasses.replace(base_job, lora_key=None, trigger=None))
    assert np.array_equal(_pixels(plain), _pixels(base))


def test_a_batch_and_a_mixed_style_batch_match_their_single_images(
    engine: StyleEngine, style: bytes
) -> None:
    jobs = [_job("batch-a", seed=1), _job("batch-b", seed=2)]
    batches = engine.generate_batch(jobs, lora=cached_copy(engine.cache, "loras", style))
    for job, [image] in zip(jobs, batches, strict=True):
        assert _watermark(image) == job.output_ids[0]
    [[alone]] = [engine.generate(jobs[0], lora=cached_copy(engine.cache, "loras", style))]
    assert np.abs(_pixels(batches[0][0]) - _pixels(alone)).max() <= 2

    base_job = dataclasses.replace(jobs[1], lora_key=None, trigger=None)
    mixed = engine.generate_mixed(
        [jobs[0], base_job], [cached_copy(engine.cache, "loras", style), None]
    )
    [base_alone] = engine.generate(base_job)
    assert np.abs(_pixels(mixed[0][0]) - _pixels(alone)).max() <= 2
    assert np.abs(_pixels(mixed[1][0]) - _pixels(base_alone)).max() <= 2


def test_a_second_style_is_hot_swapped_into_a_full_cache(
    engine: StyleEngine, style: bytes, tmp_path: Path
) -> None:
    other = engine.train(_uploads(), TRIGGER, dataclasses.replace(SETTINGS, seed=1)).data
    engine.generator.adapters.max_loaded_adapters = 1
    try:
        [first] = engine.generate(_job("swap-a"), lora=cached_copy(engine.cache, "loras", style))
        swaps = engine.generator.adapters.hotswaps
        [second] = engine.generate(
            dataclasses.replace(_job("swap-b"), style_id=2),
            lora=cached_copy(engine.cache, "loras", other),
        )
        assert engine.generator.adapters.hotswaps == swaps + 1
        assert len(engine.generator.loaded_adapters) == 1
        assert not np.array_equal(_pixels(first), _pixels(second))
    finally:
        engine.generator.adapters.max_loaded_adapters = 8


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


def test_flow_styles_train_a_lora_only(engine: StyleEngine) -> None:
    with pytest.raises(ValueError, match="LoRA only"):
        engine.train(_uploads(), TRIGGER, dataclasses.replace(SETTINGS, method="both"))


def test_a_token_on_a_flow_base_is_refused_with_whom_to_ask(engine: StyleEngine) -> None:
    with pytest.raises(ValueError, match="LoRA only") as refused:
        engine.train(_uploads(), TRIGGER, dataclasses.replace(SETTINGS, method="textual_inversion"))

    told = user_error(refused.value)
    assert "LoRA only (plain, DoRA or LoKr), not textual_inversion" in told
    assert "train_method" in told


def test_flux_schnell_samples_at_most_four_steps_without_guidance(tmp_path: Path) -> None:
    model_dir = write_tiny_model(tmp_path / "tiny-flux-schnell", family="flux-schnell")
    engine = StyleEngine(str(model_dir), tmp_path / "cache", device="cpu")
    assert engine.generator.few_step
    steps: list[tuple[int, int]] = []
    job = _job("schnell", steps=10, guidance=3.5, lora_key=None, trigger=None)
    [image] = engine.generate(job, on_step=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert _watermark(image) == job.output_ids[0]
    parameters = Image.open(io.BytesIO(image.png)).text["parameters"]
    assert "Steps: 4," in parameters
    assert "CFG scale: 0," in parameters


def test_noise_levels_are_logit_normal_and_shifted_towards_noise() -> None:
    draw = torch.Generator().manual_seed(0)
    plain = noise_levels(20_000, draw, shift=1.0, mu=None)
    draw = torch.Generator().manual_seed(0)
    shifted = noise_levels(20_000, draw, shift=3.0, mu=None)
    assert float(plain.min()) > 0.0
    assert float(plain.max()) < 1.0
    # Logit-normal(0, 1): median 0.5, and the logits have unit spread.
    assert abs(float(plain.median()) - 0.5) < 0.02
    assert abs(float(torch.logit(plain).std()) - 1.0) < 0.03
    # Shift 3 (SD 3.5) moves the median to 3/4: more steps near pure noise.
    assert abs(float(shifted.median()) - 0.75) < 0.02
    # FLUX.1-dev's mu = log(shift) is the same shift.
    draw = torch.Generator().manual_seed(0)
    by_mu = noise_levels(20_000, draw, shift=1.0, mu=float(np.log(3.0)))
    assert torch.allclose(by_mu, shifted, atol=1e-5)


def test_the_export_loads_in_comfyui_and_diffusers_with_every_module_applied(
    engine: StyleEngine, tmp_path: Path
) -> None:
    job = TrainJob(
        job_id="export",
        style_id=1,
        trigger=TRIGGER,
        style_name="mystyle",
        image_keys=(),
        licence="CC-BY-4.0",
    )
    trained = engine.train(_uploads(), TRIGGER, SETTINGS, export_for=job)
    assert trained.export_data is not None
    tensors = load(trained.export_data)
    transformer = engine.pipeline.transformer
    family = model_family(engine.pipeline)
    if family == "flux":
        targets = comfyui_flux_targets(
            transformer.config.num_layers, transformer.config.num_single_layers
        )
    else:
        targets = comfyui_sd3_targets(transformer.config.num_layers)
    assert keys_not_loaded(tensors, targets) == []
    # Every trained layer is in the file: a style is not silently thinner in ComfyUI.
    assert {key.rsplit(".lora_", 1)[0] for key in tensors} == {
        key.rsplit(".lora_", 1)[0] for key in load(trained.data)
    }
    metadata = read_safetensors_metadata(trained.export_data)
    variant = family_variant(engine.pipeline)
    assert variant is not None
    assert metadata["stylebot.base_model_variant"] == variant
    licence = licence_for(variant)
    assert metadata["stylebot.base_model_licence"] == licence.name
    assert metadata["stylebot.base_model_licence_url"] == licence.url
    if family == "flux":  # the tiny Flux takes guidance, as FLUX.1 [dev]
        assert metadata["modelspec.architecture"] == "flux-1-dev/lora"
        assert metadata["stylebot.base_model_licence"] == "FLUX.1 [dev] Non-Commercial License"
    # The style's record gets the same base model and licence (TrainResult.base).
    assert trained.base is not None
    assert (trained.base.variant, trained.base.licence) == (variant, licence.name)
    assert trained.base.name == Path(engine.base_model).name
    assert metadata["ss_base_model_version"] == ("flux1" if family == "flux" else "sd3")
    assert metadata["modelspec.trigger_phrase"] == TRIGGER
    assert metadata["modelspec.license"] == "CC-BY-4.0"
    assert metadata["sshs_model_hash"] == tensor_data_sha256(tensors)
    # The image's "Lora hashes" name the export a user downloads.
    weights = cached_copy(engine.cache, "loras", trained.data)
    assert engine.exports.export_hash(weights.path, weights.key) == metadata["sshs_model_hash"]

    # diffusers loads the export onto a fresh pipeline with every module applied.
    exported = tmp_path / "export.safetensors"
    exported.write_bytes(trained.export_data)
    fresh = load_pipeline(engine.base_model, device="cpu")
    load_checked_lora(fresh, exported, "exported")
    applied = {
        name
        for name, module in fresh.transformer.named_modules()
        if isinstance(module, LoraLayer) and "exported" in module.lora_A
    }
    assert {f"transformer.{name}" for name in applied} == {
        key.rsplit(".lora_", 1)[0] for key in tensors
    }


def test_a_cancelled_run_resumes_from_its_checkpoint_to_the_same_weights(
    engine: StyleEngine, tmp_path: Path
) -> None:
    settings = dataclasses.replace(SETTINGS, checkpoint_every_steps=2)
    whole = engine.train(_uploads(), TRIGGER, settings)
    saved: list[tuple[Path, int]] = []
    done: list[int] = []
    with pytest.raises(JobCancelled):
        engine.train(
            _uploads(),
            TRIGGER,
            settings,
            on_progress=lambda step, _total, _loss: done.append(step),
            should_stop=lambda: len(done) >= 3,
            # The engine reuses its checkpoint file: keep a copy of each.
            on_checkpoint=lambda state, step: saved.append(
                (Path(shutil.copy(state, tmp_path / f"step-{step}.pt")), step)
            ),
        )
    state, step = saved[-1]
    assert step == 3
    resumed = engine.train(_uploads(), TRIGGER, settings, resume_from=state)
    assert resumed.resumed_from == 3
    assert resumed.steps == settings.steps
    resumed_weights, whole_weights = load(resumed.data), load(whole.data)
    assert resumed_weights.keys() == whole_weights.keys()
    for key, tensor in whole_weights.items():
        assert torch.allclose(resumed_weights[key], tensor, atol=1e-6), key


def test_previews_draw_while_the_text_encoders_are_away(engine: StyleEngine) -> None:
    """On a GPU a FLUX.1 / SD 3.5 run sends its text encoders off the device for the
    whole run (trainer.flow_captions); previews drew from the text and so failed,
    logged, every time. Here the encoders refuse any call once the run has begun."""
    running: list[int] = []

    def away(_module: torch.nn.Module, _args: object) -> None:
        if running:
            raise RuntimeError("a text encoder was called during the run")

    hooks = [part.register_forward_pre_hook(away) for part in text_encoders(engine.pipeline)]
    previews: list[int] = []
    try:
        engine.train(
            _uploads(),
            TRIGGER,
            dataclasses.replace(SETTINGS, steps=3, preview_every_steps=2),
            on_progress=lambda step, _total, _loss: running.append(step),
            previews=TrainingPreviews("job-away", lambda step, _p, _i: previews.append(step)),
        )
    finally:
        for hook in hooks:
            hook.remove()
    assert running == [1, 2, 3]
    assert previews == [2]


def test_a_flow_run_validates_on_held_out_images_and_renders_previews(
    engine: StyleEngine, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        SETTINGS, steps=4, holdout_images=1, checkpoint_every_steps=2, preview_every_steps=2
    )
    previews: list[tuple[int, str]] = []
    whole = engine.train(
        _uploads(),
        TRIGGER,
        settings,
        previews=TrainingPreviews(
            "job-flow", lambda step, preview, _image: previews.append((step, preview.prompt))
        ),
    )
    # The last step's image is the style itself: one preview, at step 2.
    assert previews == [(2, TRIGGER)]
    curve = whole.validation
    assert [point.step for point in curve] == [2, 4]
    assert all(math.isfinite(p.loss) and math.isfinite(p.base_loss) for p in curve)
    # Same noise and levels every time: the base model's loss never moves, the LoRA's does.
    assert len({point.base_loss for point in curve}) == 1
    assert all(p.loss != p.base_loss for p in curve)

    # A run stopped after step 3 and resumed returns the same whole curve.
    saved: list[Path] = []
    done: list[int] = []
    with pytest.raises(JobCancelled):
        engine.train(
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
    assert [p[0] for p in TrainingCheckpoint.read_from(saved[-1]).validation] == [2]
    resumed = engine.train(_uploads(), TRIGGER, settings, resume_from=saved[-1])
    assert [p.step for p in resumed.validation] == [2, 4]
    assert [p.loss for p in resumed.validation] == pytest.approx([p.loss for p in curve], rel=1e-4)
    assert resumed.validation[0].base_loss == pytest.approx(curve[0].base_loss, rel=1e-6)


def test_a_style_trains_and_samples_on_an_int8_base_transformer(
    tiny_flux_model_dir: Path, tmp_path: Path
) -> None:
    engine = StyleEngine(
        str(tiny_flux_model_dir), tmp_path / "cache", device="cpu", quantization="int8"
    )
    assert engine.quantization == "int8"
    transformer = engine.pipeline.transformer
    assert is_quantized(transformer)
    quantized = {
        name
        for name, param in transformer.named_parameters()
        if type(param).__module__.startswith("torchao")
    }
    assert "transformer_blocks.0.attn.to_q.weight" in quantized
    trained = engine.train(_uploads(), TRIGGER, SETTINGS)
    assert np.isfinite(trained.final_loss)
    # The LoRA trained in full precision on top of the int8 weights.
    assert all(tensor.dtype == torch.float32 for tensor in load(trained.data).values())
    [base] = engine.generate(_job("q-base", lora_key=None, trigger=None))
    [styled] = engine.generate(
        _job("q-styled"), lora=cached_copy(engine.cache, "loras", trained.data)
    )
    assert np.abs(_pixels(styled) - _pixels(base)).mean() > 1.0
    assert _watermark(styled) == _job("q-styled").output_ids[0]


def test_auto_quantises_a_flow_base_only_on_a_gpu_too_small_for_it() -> None:
    gib = 1024**3
    assert plan_quantization("auto", "flux-dev", "cuda", 16 * gib) == "int8"
    assert plan_quantization("auto", "flux-dev", "cuda", 48 * gib) == "none"
    assert plan_quantization("auto", "flux-dev", "cpu", None) == "none"
    assert plan_quantization("auto", "sdxl", "cuda", 8 * gib) == "none"
    assert plan_quantization("int8", "sd3-large", "cpu", None) == "int8"
    with pytest.raises(ValueError, match="int4"):
        plan_quantization("int4", "flux-dev", "cuda", 16 * gib)


def test_a_flow_run_trains_at_the_scheduled_rate_and_checkpoints_its_average(
    engine: StyleEngine,
) -> None:
    """The flow trainer shares the UNet trainer's optimisation (trainer.adapter_run):
    it once ran at a constant rate and kept no moving average, whatever was set."""
    settings = dataclasses.replace(
        SETTINGS, steps=4, checkpoint_every_steps=1, lr_warmup=0.5, ema_decay=0.8
    )
    saved: list[TrainingCheckpoint] = []
    engine.train(
        _uploads(),
        TRIGGER,
        settings,
        on_checkpoint=lambda state, _step: saved.append(TrainingCheckpoint.read_from(state)),
    )
    rates = [c.optimizer["param_groups"][0]["lr"] for c in saved]
    expected = [settings.learning_rate * lr_factor(s, 4, 2, "cosine") for s in range(1, 4)]
    assert rates == pytest.approx(expected)
    # The average goes into each checkpoint, so a resumed run ends with the same one.
    assert all(c.ema and c.ema.keys() - {"__updates__"} == c.adapter.keys() for c in saved)
