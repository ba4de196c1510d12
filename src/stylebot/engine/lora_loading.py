"""LoRA loading that proves the file fits the base model.

diffusers' `load_lora_weights` skips keys that match no layer of the model
(peft at most warns), so a LoRA made for another base model would load as a
silent no-op; `load_checked_lora` compares what the file holds with what was
injected and raises `LoraMismatchError` instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from diffusers.utils.state_dict_utils import (
    convert_state_dict_to_diffusers,
    convert_state_dict_to_peft,
    convert_unet_state_dict_to_peft,
)
from peft.utils import get_peft_model_state_dict

from stylebot.engine.diffusers_classes import StableDiffusionXLPipeline
from stylebot.engine.families import is_flow_pipeline
from stylebot.engine.models import lora_components
from stylebot.trainer.adapter_variants import is_lokr

# How many unmatched keys an error names: enough to recognise the model, not a wall.
_KEYS_SHOWN = 3


class LoraMismatchError(ValueError):
    """A LoRA file whose layers do not all land on the base model: made for another one."""

    def __init__(self, base_model: str, reason: str, unmatched: Sequence[str] = ()) -> None:
        self.base_model = base_model
        self.unmatched = tuple(unmatched)
        shown = ", ".join(self.unmatched[:_KEYS_SHOWN])
        more = len(self.unmatched) - _KEYS_SHOWN
        if more > 0:
            shown += f" and {more} more"
        super().__init__(
            f"LoRA does not fit base model {base_model}: {reason}"
            + (f" ({shown})" if shown else "")
        )

    @property
    def user_message(self) -> str:
        """What the style's user is told: no keys, no paths."""
        return (
            "this style was trained for a different base model than the one the "
            f"worker runs now ({self.base_model}), so it cannot be applied; its owner "
            "can train it again"
        )


def model_label(pipeline: Any) -> str:
    """A pipeline's base model as the operator named it: a folder's or file's name, or
    a hub id (never a full local path, which can end up in chat and in exported files)."""
    source = str(getattr(pipeline, "name_or_path", "") or "")
    if not source:
        return "the base model"
    path = Path(source)
    return path.name if path.is_absolute() or path.exists() else source


# -- the kohya file ---------------------------------------------------------


def load_checked_lora(pipeline: Any, path: Path, adapter_name: str) -> None:
    """`pipeline.load_lora_weights`, then proof that every LoRA tensor of the file
    landed on a layer of the model; otherwise the adapter is removed again and
    `LoraMismatchError` names what did not fit.
    """
    base_model = model_label(pipeline)
    lokr = _lokr_denoiser_state(pipeline, path, base_model)
    try:
        with warnings.catch_warnings():
            # peft warns whenever a second adapter joins a model: the generator's cache.
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            if lokr is None:
                pipeline.load_lora_weights(str(path), adapter_name=adapter_name)
            else:
                # The pipelines' loaders take LoRA names only; the denoiser's own
                # loader knows LoKr factors (diffusers' PeftAdapterMixin.load_lora_adapter).
                _denoiser(pipeline).load_lora_adapter(lokr, prefix=None, adapter_name=adapter_name)
    except ValueError as exc:  # no layer matched, or keys diffusers cannot convert
        _drop_adapter(pipeline, adapter_name)
        raise LoraMismatchError(base_model, first_line(exc)) from exc
    except RuntimeError as exc:
        if "size mismatch" not in str(exc):  # out of memory and the like stay what they are
            raise
        _drop_adapter(pipeline, adapter_name)
        raise LoraMismatchError(
            base_model,
            "its layers have other sizes than the model's",
            _size_mismatched(str(exc), adapter_name),
        ) from exc
    unmatched, total = unapplied_lora_keys(pipeline, path, adapter_name)
    if unmatched:
        _drop_adapter(pipeline, adapter_name)
        raise LoraMismatchError(
            base_model, f"{len(unmatched)} of its {total} tensors match no layer", unmatched
        )


def unapplied_lora_keys(pipeline: Any, path: Path, adapter_name: str) -> tuple[list[str], int]:
    """The file's LoRA tensors (in peft's naming) that the adapter `adapter_name`
    does not hold, and how many LoRA tensors the file has."""
    lokr = _lokr_denoiser_state(pipeline, path, model_label(pipeline))
    if lokr is not None:
        denoiser = _denoiser(pipeline)
        held = (
            set(get_peft_model_state_dict(denoiser, adapter_name=adapter_name))
            if adapter_name in (getattr(denoiser, "peft_config", None) or {})
            else set()
        )
        prefix = _denoiser_prefix(pipeline)
        return [f"{prefix}{key}" for key in sorted(set(lokr) - held)], len(lokr)
    # As load_lora_weights reads the file: an SDXL pipeline passes its UNet's config,
    # which maps SGM block names (sd-scripts' SDXL layout) to diffusers' blocks.
    if is_flow_pipeline(pipeline):
        # Flux's and SD 3's loaders take no UNet config; Flux's may add the alphas.
        read = pipeline.lora_state_dict(str(path))
        state = read[0] if isinstance(read, tuple) else read
    else:
        sdxl = isinstance(pipeline, StableDiffusionXLPipeline)
        unet_config = pipeline.unet.config if sdxl else None
        state, _alphas = pipeline.lora_state_dict(str(path), unet_config=unet_config)
    components = lora_components(pipeline)
    parts: dict[str, dict[str, torch.Tensor]] = {}
    unmatched: list[str] = []
    for key, tensor in state.items():
        prefix, _, rest = key.partition(".")
        if prefix in components:
            parts.setdefault(prefix, {})[rest] = tensor
        else:
            unmatched.append(key)
    for prefix, part in parts.items():
        module = components[prefix]
        expected = _component_peft_keys(prefix, module, part)
        applied = (
            set(get_peft_model_state_dict(module, adapter_name=adapter_name))
            if adapter_name in (getattr(module, "peft_config", None) or {})
            else set()
        )
        unmatched.extend(f"{prefix}.{key}" for key in sorted(expected - applied))
    return unmatched, len(state)


def _denoiser(pipeline: Any) -> Any:
    """The UNet, or a FLUX.1 / SD 3.5 pipeline's transformer: what a style adapts."""
    return pipeline.transformer if is_flow_pipeline(pipeline) else pipeline.unet


def _denoiser_prefix(pipeline: Any) -> str:
    return "transformer." if is_flow_pipeline(pipeline) else "unet."


def _lokr_denoiser_state(
    pipeline: Any, path: Path, base_model: str
) -> dict[str, torch.Tensor] | None:
    """A LoKr file's UNet (or transformer) factors in peft's naming (None: not LoKr).
    Only the denoiser's: the trainers make no text-encoder LoKr, so any other key
    cannot be applied."""
    with safetensors.safe_open(str(path), framework="pt") as tensors:
        keys = list(tensors.keys())
    if not is_lokr(keys):
        return None
    state = safetensors.torch.load_file(str(path))
    prefix = _denoiser_prefix(pipeline)
    outside = [key for key in state if not key.startswith(prefix)]
    if outside:
        where = "the transformer" if prefix == "transformer." else "the UNet"
        raise LoraMismatchError(base_model, f"LoKr factors outside {where}", outside)
    return {key.removeprefix(prefix): tensor for key, tensor in state.items()}


def _component_peft_keys(
    prefix: str, module: torch.nn.Module, part: dict[str, torch.Tensor]
) -> set[str]:
    """Keys as diffusers renames them on the way into peft (loaders.peft / lora_base)."""
    if prefix == "unet":
        return set(convert_unet_state_dict_to_peft(part))
    if all(_in_peft_naming(key) for key in part):
        keys = set(part)
    else:
        keys = set(convert_state_dict_to_peft(convert_state_dict_to_diffusers(part)))
    if not hasattr(module, "text_model"):  # transformers 5 flattened CLIPTextModel
        keys = {key.removeprefix("text_model.") for key in keys}
    return keys


def _in_peft_naming(key: str) -> bool:
    """A LoRA tensor named as peft names it (the flow trainer's files): its halves, or
    DoRA's magnitude."""
    return ".lora_A." in key or ".lora_B." in key or key.endswith(".lora_magnitude_vector")


def _drop_adapter(pipeline: Any, adapter_name: str) -> None:
    """Remove a half-loaded adapter so the pipeline generates as before."""
    loaded_in = [
        module
        for module in lora_components(pipeline).values()
        if adapter_name in (getattr(module, "peft_config", None) or {})
    ]
    if loaded_in:
        with warnings.catch_warnings():
            # peft says which adapter it made active instead: the generator sets its own.
            warnings.filterwarnings("ignore", message="Adapter .* was active")
            pipeline.delete_adapters([adapter_name])


def _size_mismatched(message: str, adapter_name: str) -> list[str]:
    """Parameter names from torch's "size mismatch for NAME: ..." lines, named as
    in the file (without the adapter's name that peft puts in)."""
    names = []
    for line in message.splitlines():
        line = line.strip()
        if line.startswith("size mismatch for "):
            name = line.removeprefix("size mismatch for ").split(":", 1)[0]
            names.append(name.replace(f".{adapter_name}.", "."))
    return names


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
