"""Loading diffusion pipelines, and writing the tiny random models used offline.

There is one loading path (`load_pipeline`) for a real user's SD 1.5, SD 2.x or
SDXL model and for the tiny models that tests and the demo write with
`write_tiny_model`, so the tests exercise the code that users run.
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
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

from stylebot.engine.diffusers_classes import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)

log = logging.getLogger(__name__)

# The pipelines the engine trains and samples with; both share the LoRA and
# sampling API the generator and trainer use.
BasePipeline: TypeAlias = StableDiffusionPipeline | StableDiffusionXLPipeline
# sd15: SD 1.x (epsilon); sd2: SD 2.x (v-prediction, or epsilon for the
# 512 px base); sdxl: two text encoders with size and crop conditioning.
ModelFamily = Literal["sd15", "sd2", "sdxl"]
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
_PIPELINE_CLASSES: dict[str, type[BasePipeline]] = {
    "StableDiffusionPipeline": StableDiffusionPipeline,
    "StableDiffusionXLPipeline": StableDiffusionXLPipeline,
}
# Keys only an SDXL checkpoint in the original (Stability) layout has: its
# second text encoder (OpenCLIP bigG) is embedder 1 of the conditioner.
_SDXL_SINGLE_FILE_KEY = "conditioner.embedders.1."
_SD2_SINGLE_FILE_KEY = "cond_stage_model.model."  # SD 2.x's OpenCLIP ViT-H
_TINY_TEXT_LEN = 77  # CLIP's context length; pipelines pad prompts to it.
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
) -> type[BasePipeline]:
    """The pipeline class for a model, from its `model_index.json` when there is one.

    SD 1.x and 2.x models are `StableDiffusionPipeline` (2.x differs only in
    configs: v-prediction in the scheduler, linear projections in the UNet),
    SDXL models `StableDiffusionXLPipeline`. `source` names the model in the error.
    """
    class_name = (model_index or {}).get("_class_name", "StableDiffusionPipeline")
    cls = _PIPELINE_CLASSES.get(class_name)
    if cls is not None:
        return cls
    where = f"{source} is a {class_name} model" if source else f"{class_name} models are"
    raise ModelLoadError(
        f"{where}: not a supported family; use an SD 1.5, SD 2.x or SDXL text-to-image model "
        f"({', '.join(_PIPELINE_CLASSES)})"
    )


def pipeline_class_for_family(family: str) -> type[BasePipeline]:
    return StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline


def model_family(pipeline: DiffusionPipeline) -> ModelFamily:
    """sdxl for an SDXL pipeline; sd2 for an SD pipeline with SD 2.x's linear
    attention projections or v-prediction; sd15 otherwise."""
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
            "STYLEBOT_BASE_MODEL_FAMILY (sd15, sd2, sdxl) to skip this check"
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


def _class_kwargs(cls: type[BasePipeline]) -> dict[str, Any]:
    # Outputs are moderated and watermarked by stylebot itself: no safety
    # checker, and no SDXL watermark (its pixels would fight ours).
    if cls is StableDiffusionXLPipeline:
        return {"add_watermarker": False}
    return {"safety_checker": None, "requires_safety_checker": False}


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
) -> BasePipeline:
    """Load an SD 1.5, SD 2.x or SDXL pipeline, ready for inference on `device`.

    `base_model` is a diffusers folder, a single `.safetensors`/`.ckpt`
    checkpoint, or a hub id such as `stable-diffusion-v1-5/stable-diffusion-v1-5`
    (which needs the hub or its local cache). A folder's or hub model's family
    comes from its `model_index.json`, its prediction type from its scheduler
    config. For single files, `family` (sd15, sd2, sdxl; auto: read from the
    checkpoint's keys) picks the pipeline class, and `config` is a diffusers
    folder (or hub id) holding the component configs, needed offline or for
    checkpoints whose architecture diffusers cannot infer.
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
            cls = pipeline_class_for_family(single_file_family(path, family))
            extra: dict[str, Any] = {"config": str(config)} if config is not None else {}
            pipeline = cls.from_single_file(str(path), **common, **_class_kwargs(cls), **extra)
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

    assert isinstance(pipeline, StableDiffusionPipeline | StableDiffusionXLPipeline)
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
        pipeline.scheduler.config.get("prediction_type", "epsilon"),
    )
    return pipeline


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def _write_tiny_tokenizer_files(folder: Path) -> None:
    """A byte-level CLIP BPE vocabulary: every byte with and without `</w>`, a
    few merges so that common letters pair up, and CLIP's two special tokens."""
    byte_chars = list(_bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    merges = ["t h", "th e</w>", "a n", "i n", "e r", "o n", "s t", "a r"]
    tokens += [merge.replace(" ", "") for merge in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def write_tiny_model(path: Path, *, seed: int = 0, family: str = "sd15") -> Path:
    """Write a pipeline of `family`'s architecture with tiny random weights to `path`.

    sd15: SD 1.5's block types, VAE scale factor (8), scheduler and folder
    layout. sd2: the same with SD 2.x's marks, linear attention projections in
    the UNet, a GELU text encoder (OpenCLIP's activation) and a v-prediction
    scheduler. sdxl: SDXL's three-level UNet with "text_time" added
    conditioning, two text encoders (the second with a projection, for the
    pooled embedding), two tokenizers and SDXL's Euler scheduler. Widths are
    tiny so that every family trains and samples 256x256 in seconds on a CPU,
    and every code path is the real one. Deterministic for a given seed.
    """
    if family not in MODEL_FAMILIES:
        raise ValueError(f"unknown model family {family!r}: use one of {', '.join(MODEL_FAMILIES)}")
    path = Path(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipeline = _tiny_sdxl(path) if family == "sdxl" else _tiny_sd(path, v2=family == "sd2")
        pipeline.save_pretrained(path, safe_serialization=True)
    return path


def _tiny_tokenizer(folder: Path, **options: Any) -> CLIPTokenizer:
    _write_tiny_tokenizer_files(folder)
    # from_pretrained reads the two files with every transformers version;
    # the constructor's signature changed between 4.x and 5.x.
    tokenizer: CLIPTokenizer = CLIPTokenizer.from_pretrained(
        folder, model_max_length=_TINY_TEXT_LEN, **options
    )
    return tokenizer


def _tiny_text_config(tokenizer: CLIPTokenizer, **options: Any) -> CLIPTextConfig:
    config: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "max_position_embeddings": _TINY_TEXT_LEN,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return CLIPTextConfig(**{**config, **options})


def _tiny_vae(scaling_factor: float) -> AutoencoderKL:
    # Typed here: diffusers' @register_to_config leaves the constructor's result untyped.
    vae: AutoencoderKL = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=256,
        scaling_factor=scaling_factor,
    )
    return vae


def _tiny_sd(path: Path, *, v2: bool) -> StableDiffusionPipeline:
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=(
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        up_block_types=(
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=1,
        cross_attention_dim=32,
        # diffusers' legacy name: the number of heads (SD 2.x: per block).
        attention_head_dim=(2, 2, 4, 4) if v2 else 2,
        use_linear_projection=v2,
        norm_num_groups=16,
    )
    vae = _tiny_vae(0.18215)
    tokenizer = _tiny_tokenizer(path / "tokenizer")
    text_encoder = CLIPTextModel(
        _tiny_text_config(tokenizer, hidden_act="gelu" if v2 else "quick_gelu")
    )
    scheduler = DDIMScheduler(
        **{**SD15_SCHEDULE, "prediction_type": "v_prediction" if v2 else "epsilon"},
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        # None is diffusers' documented "no checker"; its annotations lack the Optional.
        safety_checker=None,  # type: ignore[arg-type]  # diffusers' annotation lacks None
        feature_extractor=None,  # type: ignore[arg-type]  # diffusers' annotation lacks None
        requires_safety_checker=False,
    )


def _tiny_sdxl(path: Path) -> StableDiffusionXLPipeline:
    tokenizer = _tiny_tokenizer(path / "tokenizer")
    # SDXL's second tokenizer pads with "!" (OpenCLIP's token 0), not end-of-text.
    tokenizer_2 = _tiny_tokenizer(path / "tokenizer_2", pad_token="!")
    text_encoder = CLIPTextModel(_tiny_text_config(tokenizer))
    # Wider than the first, as in SDXL (768 and 1280): single-file loaders
    # tell the two encoders apart by width.
    projection_dim = 48
    text_encoder_2 = CLIPTextModelWithProjection(
        _tiny_text_config(
            tokenizer_2,
            hidden_size=48,
            intermediate_size=96,
            projection_dim=projection_dim,
            hidden_act="gelu",
        )
    )
    time_embed_dim = 8  # per size/crop number; SDXL's is 256
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        transformer_layers_per_block=(1, 1, 2),
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        # The two encoders' hidden states side by side.
        cross_attention_dim=text_encoder.config.hidden_size + text_encoder_2.config.hidden_size,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        # Six size/crop numbers, each embedded, plus the pooled text embedding.
        projection_class_embeddings_input_dim=6 * time_embed_dim + projection_dim,
        norm_num_groups=16,
    )
    scheduler = EulerDiscreteScheduler(
        **SD15_SCHEDULE, timestep_spacing="leading", steps_offset=1, interpolation_type="linear"
    )
    return StableDiffusionXLPipeline(
        vae=_tiny_vae(0.13025),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
