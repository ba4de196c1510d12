"""Loading diffusion pipelines, and writing the tiny random model used offline.

There is one loading path (`load_pipeline`) for a real user's SD 1.5 checkpoint
and for the tiny model that tests and the demo write with `write_tiny_model`, so
the tests exercise the code that users run.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.utils import deprecation_utils
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

log = logging.getLogger(__name__)

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
SD15_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
}
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


def pipeline_class_for(model_index: dict[str, Any] | None) -> type[DiffusionPipeline]:
    """The pipeline class for a model, from its `model_index.json` when there is one.

    Only SD 1.x/2.x-style pipelines are supported for now; SDXL slots in here
    (return `StableDiffusionXLPipeline`) without changing callers.
    """
    class_name = (model_index or {}).get("_class_name", "StableDiffusionPipeline")
    if class_name == "StableDiffusionPipeline":
        return StableDiffusionPipeline
    raise ModelLoadError(
        f"{class_name} models are not supported yet; use a Stable Diffusion 1.5-style model"
    )


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
) -> StableDiffusionPipeline:
    """Load a Stable Diffusion pipeline, ready for inference on `device`.

    `base_model` is a diffusers folder, a single `.safetensors`/`.ckpt`
    checkpoint, or a hub id such as `stable-diffusion-v1-5/stable-diffusion-v1-5`
    (which needs the hub or its local cache). `config` is only used for single
    files: a diffusers folder (or hub id) holding the component configs, needed
    offline or for checkpoints whose architecture diffusers cannot infer.
    """
    target = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target)
    path = Path(base_model).expanduser()
    pipeline: DiffusionPipeline
    # safety_checker=None: outputs are moderated and watermarked elsewhere.
    common: dict[str, Any] = {
        _DTYPE_KWARG: torch_dtype,
        "safety_checker": None,
        "requires_safety_checker": False,
    }
    try:
        if path.is_dir():
            index_file = path / "model_index.json"
            if not index_file.is_file():
                raise ModelLoadError(
                    f"{path} is a folder but not a diffusers model (no model_index.json); "
                    "point base_model at a diffusers model folder or a .safetensors checkpoint"
                )
            cls = pipeline_class_for(json.loads(index_file.read_text()))
            pipeline = cls.from_pretrained(path, **common)
        elif path.is_file() and path.suffix.lower() in SINGLE_FILE_SUFFIXES:
            cls = pipeline_class_for(None)
            extra: dict[str, Any] = {"config": str(config)} if config is not None else {}
            pipeline = cls.from_single_file(str(path), **common, **extra)
        elif path.exists():
            raise ModelLoadError(
                f"{path} is neither a diffusers model folder nor a "
                f"{'/'.join(SINGLE_FILE_SUFFIXES)} checkpoint"
            )
        elif _HUB_ID.match(base_model) and not _looks_like_path(base_model):
            cls = pipeline_class_for(None)
            pipeline = cls.from_pretrained(base_model, **common)
        else:
            raise ModelLoadError(
                f"base model {str(path)!r} does not exist: set it to a diffusers model folder, "
                "a .safetensors checkpoint, or a hub id like org/name "
                "(`stylebot model tiny PATH` writes a small offline test model)"
            )
    except ModelLoadError:
        raise
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"could not load base model {base_model!r}: {exc}. Check the path, or for a hub id "
            "the network / hub cache (HF_HOME)"
        ) from exc

    assert isinstance(pipeline, StableDiffusionPipeline)
    pipeline.safety_checker = None
    pipeline.set_progress_bar_config(disable=True)
    pipeline.to(target)
    log.info("loaded %s on %s (%s)", base_model, target, torch_dtype)
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


def write_tiny_model(path: Path, *, seed: int = 0) -> Path:
    """Write an SD 1.5-architecture pipeline with tiny random weights to `path`.

    Same block types, VAE scale factor (8), scheduler and folder layout as SD 1.5,
    so every code path is the real one; widths are tiny so that it trains and
    samples 256x256 in seconds on a CPU. Deterministic for a given seed.
    """
    path = Path(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
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
            attention_head_dim=2,  # diffusers' legacy name: the number of heads
            norm_num_groups=16,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(16, 32, 32, 32),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=256,
            scaling_factor=0.18215,
        )
        tokenizer_dir = path / "tokenizer"
        _write_tiny_tokenizer_files(tokenizer_dir)
        # from_pretrained reads the two files with every transformers version;
        # the constructor's signature changed between 4.x and 5.x.
        tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, model_max_length=_TINY_TEXT_LEN)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_attention_heads=2,
                num_hidden_layers=2,
                max_position_embeddings=_TINY_TEXT_LEN,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        scheduler = DDIMScheduler(
            **SD15_SCHEDULE, clip_sample=False, set_alpha_to_one=False, steps_offset=1
        )
        pipeline = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipeline.save_pretrained(path, safe_serialization=True)
    return path
