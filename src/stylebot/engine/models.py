"""Loading diffusion pipelines: a user's SD 1.5, SD 2.x, SDXL, Flux.1 or SD 3.5
model, or a tiny one.

There is one loading path (`load_pipeline`) for a real user's model and for the
tiny models that tests and the demo write with `write_tiny_model`
(stylebot.engine.tiny_model), so the tests exercise the code that users run.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeGuard, get_args

import torch
from diffusers.utils import deprecation_utils
from safetensors import safe_open

from stylebot.engine.diffusers_classes import (
    DiffusionPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)
from stylebot.engine.families import (
    FLOW_PIPELINE_CLASSES,
    REFERENCE_MODELS,
    FlowPipeline,
    flow_family,
    load_flow_single_file,
    single_file_flow_variant,
)

log = logging.getLogger(__name__)

# The UNet pipelines; both share the LoRA and sampling API the generator and
# trainer use.
BasePipeline: TypeAlias = StableDiffusionPipeline | StableDiffusionXLPipeline
# Every pipeline the engine samples with: the UNet ones and the flow-matching
# transformers (stylebot.engine.families).
AnyPipeline: TypeAlias = BasePipeline | FlowPipeline
# sd15: SD 1.x (epsilon); sd2: SD 2.x (v-prediction, or epsilon for the
# 512 px base); sdxl: two text encoders with size and crop conditioning;
# flux: FLUX.1 dev or schnell; sd3: SD 3.5 Medium or Large.
ModelFamily = Literal["sd15", "sd2", "sdxl", "flux", "sd3"]
MODEL_FAMILIES: tuple[str, ...] = get_args(ModelFamily)

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}
# The SD 1.5 noise schedule: LoRA training and sampling must use the same one.
# SD 2.x and SDXL use the same betas.
SD15_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
}
_PIPELINE_CLASSES: dict[str, type[AnyPipeline]] = {
    "StableDiffusionPipeline": StableDiffusionPipeline,
    "StableDiffusionXLPipeline": StableDiffusionXLPipeline,
    **FLOW_PIPELINE_CLASSES,
}
# Keys only an SDXL checkpoint in the original (Stability) layout has: its
# second text encoder (OpenCLIP bigG) is embedder 1 of the conditioner.
_SDXL_SINGLE_FILE_KEY = "conditioner.embedders.1."
_SD2_SINGLE_FILE_KEY = "cond_stage_model.model."  # SD 2.x's OpenCLIP ViT-H
# diffusers renamed `torch_dtype` to `dtype` (the old name warns); support both.
_DTYPE_KWARG = "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


class ModelLoadError(RuntimeError):
    """The base model cannot be loaded; the message says what the operator can do."""


def resolve_device(device: str) -> torch.device:
    """`"auto"` → the first CUDA GPU when there is one, else the CPU; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`"auto"` → float16 on CUDA (half the memory, same images), float32 elsewhere:
    CPUs are slow or wrong with half precision."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[dtype.lower()]
    except KeyError:
        raise ModelLoadError(
            f"unknown dtype {dtype!r}: use one of auto, {', '.join(sorted(_DTYPES))}"
        ) from None


def pipeline_class_for(
    model_index: dict[str, Any] | None, *, source: str | None = None
) -> type[AnyPipeline]:
    """The pipeline class for a model, from its `model_index.json` when there is one.

    SD 1.x and 2.x models are `StableDiffusionPipeline` (2.x differs only in
    configs: v-prediction in the scheduler, linear projections in the UNet),
    SDXL models `StableDiffusionXLPipeline`, FLUX.1 dev and schnell `FluxPipeline`
    (the transformer's config tells them apart), SD 3.5 `StableDiffusion3Pipeline`.
    `source` names the model in the error.
    """
    class_name = (model_index or {}).get("_class_name", "StableDiffusionPipeline")
    cls = _PIPELINE_CLASSES.get(class_name)
    if cls is not None:
        return cls
    where = f"{source} is a {class_name} model" if source else f"{class_name} models are"
    raise ModelLoadError(
        f"{where}: not a supported family; use an SD 1.5, SD 2.x, SDXL, FLUX.1 or SD 3.5 "
        "text-to-image model "
        f"({', '.join(_PIPELINE_CLASSES)})"
    )


def pipeline_class_for_family(family: str) -> type[AnyPipeline]:
    if family in ("flux", "sd3"):
        return FLOW_PIPELINE_CLASSES[
            "FluxPipeline" if family == "flux" else "StableDiffusion3Pipeline"
        ]
    return StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline


def model_family(pipeline: DiffusionPipeline) -> ModelFamily:
    """flux or sd3 for a flow-matching pipeline; sdxl for an SDXL pipeline; sd2 for
    an SD pipeline with SD 2.x's linear attention projections or v-prediction;
    sd15 otherwise."""
    flow = flow_family(pipeline)
    if flow is not None:
        return flow
    if isinstance(pipeline, StableDiffusionXLPipeline):
        return "sdxl"
    if (
        pipeline.unet.config.get("use_linear_projection")
        or pipeline.scheduler.config.get("prediction_type") == "v_prediction"
    ):
        return "sd2"
    return "sd15"


def single_file_family(path: Path, family: str = "auto") -> ModelFamily:
    """The family of a single-file checkpoint: `family` when given, else read
    from its keys: SDXL's second text encoder, SD 2.x's OpenCLIP one. Only
    SDXL needs another pipeline class; diffusers tells SD 1.x from 2.x itself."""
    if family != "auto":
        if not _is_model_family(family):
            raise ModelLoadError(
                f"unknown model family {family!r} for {path}: use auto, "
                + ", ".join(MODEL_FAMILIES)
            )
        return family
    keys = _checkpoint_keys(path)
    flow = single_file_flow_variant(keys)
    if flow is not None:
        return "flux" if flow.startswith("flux") else "sd3"
    if any(key.startswith(_SDXL_SINGLE_FILE_KEY) for key in keys):
        return "sdxl"
    if not any(key.startswith("model.diffusion_model.") for key in keys):
        raise ModelLoadError(
            f"{path} does not look like a Stable Diffusion checkpoint (no "
            "model.diffusion_model.* weights): of an unknown family, or not a full model "
            "(a LoRA or a VAE alone?)"
        )
    if any(key.startswith(_SD2_SINGLE_FILE_KEY) for key in keys):
        return "sd2"
    return "sd15"


# Empty marker tensors that v-prediction SDXL fine-tunes (NoobAI-XL v-pred and its
# kin) carry, as ComfyUI and Forge read them: the model predicts velocity, and
# was trained with zero terminal SNR. diffusers' single-file loader ignores both.
_V_PREDICTION_MARKER = "v_pred"
_ZERO_SNR_MARKER = "ztsnr"


def _apply_checkpoint_markers(pipeline: DiffusionPipeline, path: Path) -> None:
    """A single-file model's v-prediction / zero-terminal-SNR markers into its
    scheduler config, which the trainer's objective and the sampler read."""
    keys = set(_checkpoint_keys(path))
    changes: dict[str, Any] = {}
    if _V_PREDICTION_MARKER in keys:
        changes["prediction_type"] = "v_prediction"
    if _ZERO_SNR_MARKER in keys:
        # Zero terminal SNR needs the last timestep sampled (trailing spacing).
        changes.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    if changes:
        scheduler = pipeline.scheduler
        pipeline.scheduler = type(scheduler).from_config(scheduler.config, **changes)
        log.info("%s: scheduler set from its markers: %s", path.name, changes)


def _is_model_family(name: str) -> TypeGuard[ModelFamily]:
    return name in MODEL_FAMILIES


def _checkpoint_keys(path: Path) -> list[str]:
    try:
        if path.suffix.lower() == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                return list(handle.keys())
        # mmap: reading the key names does not pull gigabytes into memory.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # safetensors and pickle raise many kinds for a bad file
        raise ModelLoadError(
            f"{path} is not a readable checkpoint: {exc}. If diffusers can read it, set "
            "STYLEBOT_BASE_MODEL_FAMILY (sd15, sd2, sdxl, flux, sd3) to skip this check"
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return [str(key) for key in state] if isinstance(state, dict) else []


def _hub_model_index(repo_id: str) -> dict[str, Any]:
    """The hub model's `model_index.json` (from the local cache when offline)."""
    from huggingface_hub import hf_hub_download

    return _model_index(Path(hf_hub_download(repo_id, "model_index.json")), repo_id)


def _model_index(index_file: Path, source: str) -> dict[str, Any]:
    index = json.loads(index_file.read_text())
    if not isinstance(index, dict):
        raise ModelLoadError(f"{source}'s model_index.json is not a JSON object")
    return index


def _class_kwargs(cls: type[AnyPipeline]) -> dict[str, Any]:
    # Outputs are moderated and watermarked by stylebot itself: no safety
    # checker, and no SDXL watermark (its pixels would fight ours). The flow
    # pipelines have neither.
    if cls is StableDiffusionXLPipeline:
        return {"add_watermarker": False}
    if cls is StableDiffusionPipeline:
        return {"safety_checker": None, "requires_safety_checker": False}
    return {}


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", ".", "~"))
        or "\\" in name
        or name.count("/") > 1
        or name.lower().endswith(SINGLE_FILE_SUFFIXES)
    )


def load_pipeline(
    base_model: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    config: str | Path | None = None,
    family: str = "auto",
) -> AnyPipeline:
    """Load an SD 1.5, SD 2.x, SDXL, FLUX.1 or SD 3.5 pipeline, ready for inference
    on `device`.

    `base_model` is a diffusers folder, a single `.safetensors`/`.ckpt`
    checkpoint, or a hub id such as `stable-diffusion-v1-5/stable-diffusion-v1-5`
    (which needs the hub or its local cache). A folder's or hub model's family
    comes from its `model_index.json`, its prediction type from its scheduler
    config. For single files, `family` (sd15, sd2, sdxl, flux, sd3; auto: read
    from the checkpoint's keys) picks the pipeline class, and `config` is a
    diffusers folder (or hub id) holding the component configs, needed offline
    or for checkpoints whose architecture diffusers cannot infer. A Flux or
    SD 3.5 file is a transformer alone (as Black Forest Labs and Stability ship
    them): the other components come from `config`, else the family's
    reference model on the hub.
    """
    target = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target)
    path = Path(base_model).expanduser()
    pipeline: DiffusionPipeline
    common: dict[str, Any] = {_DTYPE_KWARG: torch_dtype}
    try:
        if path.is_dir():
            index_file = path / "model_index.json"
            if not index_file.is_file():
                raise ModelLoadError(
                    f"{path} is a folder but not a diffusers model (no model_index.json); "
                    "point base_model at a diffusers model folder or a .safetensors checkpoint"
                )
            cls = pipeline_class_for(_model_index(index_file, str(path)), source=str(path))
            pipeline = cls.from_pretrained(path, **common, **_class_kwargs(cls))
        elif path.is_file() and path.suffix.lower() in SINGLE_FILE_SUFFIXES:
            family_name = single_file_family(path, family)
            cls = pipeline_class_for_family(family_name)
            if family_name in ("flux", "sd3"):
                variant = single_file_flow_variant(_checkpoint_keys(path))
                source = (
                    str(config)
                    if config is not None
                    else REFERENCE_MODELS[
                        variant or ("flux-dev" if family_name == "flux" else "sd3-large")
                    ]
                )
                pipeline = load_flow_single_file(path, family_name, source, common)
            else:
                extra: dict[str, Any] = {"config": str(config)} if config is not None else {}
                pipeline = cls.from_single_file(str(path), **common, **_class_kwargs(cls), **extra)
                _apply_checkpoint_markers(pipeline, path)
        elif path.exists():
            raise ModelLoadError(
                f"{path} is neither a diffusers model folder nor a "
                f"{'/'.join(SINGLE_FILE_SUFFIXES)} checkpoint"
            )
        elif _HUB_ID.match(base_model) and not _looks_like_path(base_model):
            cls = pipeline_class_for(_hub_model_index(base_model), source=base_model)
            pipeline = cls.from_pretrained(base_model, **common, **_class_kwargs(cls))
        else:
            raise ModelLoadError(
                f"base model {str(path)!r} does not exist: set it to a diffusers model folder, "
                "a .safetensors checkpoint, or a hub id like org/name "
                "(`stylebot model tiny PATH` writes a small offline test model)"
            )
    except ModelLoadError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        # RuntimeError, KeyError: weights that do not fit the family's architecture.
        raise ModelLoadError(
            f"could not load base model {base_model!r}: {exc}. Check the path, or for a hub id "
            "the network / hub cache (HF_HOME)"
        ) from exc

    assert isinstance(pipeline, StableDiffusionPipeline | StableDiffusionXLPipeline) or (
        flow_family(pipeline) is not None
    )
    if isinstance(pipeline, StableDiffusionPipeline):
        pipeline.safety_checker = None
    pipeline.set_progress_bar_config(disable=True)
    pipeline.to(target)
    log.info(
        "loaded %s on %s (%s): %s, %s",
        base_model,
        target,
        torch_dtype,
        model_family(pipeline),
        pipeline.scheduler.config.get("prediction_type", type(pipeline.scheduler).__name__),
    )
    return pipeline


def pipeline_from(auto_class: Any, base: AnyPipeline, **components: Any) -> Any:
    """The pipeline of another task (`auto_class`: one of diffusers' AutoPipelineFor...)
    made from `base`'s very components (`from_pipe`, no second copy), with what
    `load_pipeline` set on `base` that `from_pipe` does not carry: no progress bar (the
    worker's log got one per restyle, repaint and sketch)."""
    pipe = auto_class.from_pipe(base, **components)
    pipe.set_progress_bar_config(**getattr(base, "_progress_bar_config", {}))
    return pipe


# AUTOMATIC1111's names for diffusers' schedulers, for the PNG's "Sampler" field.
SAMPLER_NAMES = {
    "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PLMS",
    "LMSDiscreteScheduler": "LMS",
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSinglestepScheduler": "DPM++ SDE",
    "HeunDiscreteScheduler": "Heun",
    "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM",
}


def sampler_name(scheduler: object) -> str:
    """The sampler an image was made with, as A1111 names it (else the class name)."""
    name = type(scheduler).__name__
    return SAMPLER_NAMES.get(name, name.removesuffix("Scheduler"))


def denoiser(pipeline: Any) -> torch.nn.Module:
    """The network that denoises: the UNet, or the flow families' transformer."""
    module: torch.nn.Module = getattr(pipeline, "unet", None) or pipeline.transformer
    return module


def lora_components(pipeline: Any) -> dict[str, torch.nn.Module]:
    """The parts of a pipeline that LoRA layers can be on, by attribute name."""
    return {
        name: module
        for name in ("unet", "transformer", "text_encoder", "text_encoder_2", "text_encoder_3")
        if (module := getattr(pipeline, name, None)) is not None
    }
