"""Text-to-image generation on a hot base pipeline with a bounded LoRA cache."""

from __future__ import annotations

import logging
import math
import warnings
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from peft.tuners.lora import LoraLayer
from PIL import Image
from safetensors import safe_open

from stylebot.config import FEW_STEP_MAX_STEPS, is_few_step_model
from stylebot.engine.lora_files import _first_line, load_checked_lora
from stylebot.engine.models import BasePipeline
from stylebot.engine.own_tokens import only_own_style_tokens
from stylebot.trainer.embeddings import LoadedEmbeddings, StyleEmbedding

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 20
    guidance: float = 7.5
    width: int = 512
    height: int = 512
    count: int = 1
    # A variation (AUTOMATIC1111's "variation seed"): each image's starting
    # noise moves from its seed's towards `variation_seed`'s by this much.
    variation_seed: int | None = None
    variation_strength: float = 0.0
    # The style's textual-inversion token, loaded before the call (its prompt names it):
    # the only added token the request's text reaches (stylebot.engine.own_tokens).
    embedding: StyleEmbedding | None = None

    @property
    def own_tokens(self) -> frozenset[str]:
        return frozenset({self.embedding.token}) if self.embedding is not None else frozenset()


@dataclass(frozen=True)
class LoraWeights:
    """A style's LoRA: `path` is a .safetensors file written by `train_lora`."""

    adapter_name: str
    path: Path


# A request and the style it is drawn in (None: the base model), for `generate_mixed`.
StyledRequest = tuple[GenerationRequest, "LoraWeights | None"]

# A few-step (turbo) model's guidance: distilled to sample without
# classifier-free guidance (the front end's default for it, see load_settings).
FEW_STEP_GUIDANCE = 0.0

# PEFT's per-sample adapter name for "no adapter" in a mixed batch.
BASE_ADAPTER = "__base__"
# The largest LoRA rank the trainer makes by default (training_defaults.default_rank).
DEFAULT_HOTSWAP_RANK = 16


@dataclass(frozen=True)
class _CachedStyle:
    """A style in the adapter cache and the PEFT adapter slot that holds it."""

    path: Path
    slot: str
    # Rank the slot's tensors can hold: padded to the hot-swap rank when they could be.
    capacity: int
    # Text-encoder LoRA layers: diffusers cannot hot-swap those.
    text_encoder: bool


@dataclass(frozen=True)
class _LoraFileShape:
    """What a LoRA file holds, read from its safetensors header only."""

    rank: int
    text_encoder: bool


def _lora_file_shape(path: Path) -> _LoraFileShape:
    ranks: list[int] = []
    text_encoder = False
    with safe_open(str(path), framework="pt") as tensors:
        for key in tensors.keys():  # noqa: SIM118 (safe_open is not a mapping)
            # diffusers ("text_encoder."), kohya ("lora_te_", "lora_te1_") and peft layouts.
            if key.startswith(("text_encoder", "lora_te")):
                text_encoder = True
            if any(down in key for down in ("lora_A", "lora.down", "lora_down")):
                shape = tensors.get_slice(key).get_shape()
                if len(shape) >= 2:
                    ranks.append(int(shape[0]))
    return _LoraFileShape(rank=max(ranks, default=0), text_encoder=text_encoder)


class Generator:
    """Generates images with one base pipeline and the styles' LoRA adapters.

    Loading a LoRA costs a file read and a walk over the UNet, so adapters stay
    loaded (up to `max_loaded_adapters`, least recently used evicted) and a
    request for a loaded style only switches the active adapter. Not
    thread-safe: the worker runs one GPU job at a time per pipeline.

    Each cached style lives in a PEFT adapter *slot* (`slot0_`, `slot1_`, ...).
    With `lora_hotswap`, a new style that finds the cache full is hot-swapped
    into the least recently used style's slot (diffusers' `hotswap=True`: its
    tensors are overwritten in place) instead of deleting that adapter and
    injecting a new one, which walks the UNet again and, under torch.compile,
    recompiles it. A slot's tensors are zero-padded to `hotswap_rank` when it
    is first loaded, so any style up to that rank fits into it; a larger
    rank, a text-encoder LoRA (diffusers cannot hot-swap those) or a swap that
    PEFT refuses falls back to unload and load, with a log line saying why.

    SD 1.5, SD 2.x and SDXL pipelines all take the same call: SDXL's pipeline
    computes its pooled embeddings and size/crop ids itself, and v-prediction
    comes with the scheduler config. A few-step model (`few_step`; None: from
    the model's name, see `is_few_step_model`) samples at most
    `FEW_STEP_MAX_STEPS` steps: more only blur a distilled model's output.
    """

    def __init__(
        self,
        pipeline: BasePipeline,
        *,
        max_loaded_adapters: int = 8,
        few_step: bool | None = None,
        lora_hotswap: bool = True,
        hotswap_rank: int = DEFAULT_HOTSWAP_RANK,
    ) -> None:
        if max_loaded_adapters < 1:
            raise ValueError("max_loaded_adapters must be at least 1")
        if hotswap_rank < 1:
            raise ValueError("hotswap_rank must be at least 1")
        self.pipeline = pipeline
        self.max_loaded_adapters = max_loaded_adapters
        self.few_step = (
            is_few_step_model(str(pipeline.name_or_path or "")) if few_step is None else few_step
        )
        # Zero-terminal-SNR v-prediction models over-expose under plain
        # classifier-free guidance; their papers' fix is guidance rescale 0.7.
        zero_snr = bool(pipeline.scheduler.config.get("rescale_betas_zero_snr"))
        self.guidance_rescale = 0.7 if zero_snr else 0.0
        self.lora_hotswap = lora_hotswap
        self.hotswap_rank = hotswap_rank
        # Why not diffusers' `enable_lora_hotswap`: it pads only the first
        # adapter loaded after it (our cache fills several slots) and pads
        # every adapter on the UNet at that moment, including a training run's
        # adapter whose parameters the optimiser holds. `_pad_slot` pads just
        # the slot being loaded, before anything is hot-swapped into it.
        # style (adapter) name -> its slot, most recently used last.
        self._adapters: OrderedDict[str, _CachedStyle] = OrderedDict()
        # Slot loads and hot-swaps, for tests and benchmarks.
        self.loads = 0
        self.hotswaps = 0
        # Styles' textual-inversion tokens, bounded like the adapters.
        self.embeddings = LoadedEmbeddings(pipeline, max_loaded_adapters)

    @property
    def loaded_adapters(self) -> tuple[str, ...]:
        """Names of the loaded styles, most recently used last."""
        return tuple(self._adapters)

    @property
    def adapter_slots(self) -> dict[str, str]:
        """Style name -> the PEFT adapter (slot) that holds it."""
        return {name: cached.slot for name, cached in self._adapters.items()}

    def unload_files(self, stems: Collection[str]) -> int:
        """Unload the adapters and embeddings loaded from files named `<stem>.*` (the
        worker cache names them by blob key: a revoked style's weights leave memory
        too). Device thread only. Returns how many went."""
        gone = [name for name, cached in self._adapters.items() if cached.path.stem in stems]
        for name in gone:
            self._evict(name)
        return len(gone) + self.embeddings.unload_files(stems)

    def _activate(self, lora: LoraWeights | None) -> None:
        """Make exactly `lora` (or no LoRA) active for the next call."""
        if lora is None:
            if self._adapters:
                self.pipeline.disable_lora()
            return
        slot = self._ensure_loaded(lora)
        self.pipeline.enable_lora()
        self.pipeline.set_adapters([slot], adapter_weights=[1.0])

    def _ensure_loaded(self, lora: LoraWeights) -> str:
        """`lora` in a slot, marked most recently used; returns the slot's name."""
        path = Path(lora.path)
        cached = self._adapters.get(lora.adapter_name)
        if cached is not None and cached.path != path:
            # Same style name, new weights (a retrained style): reload.
            self._evict(lora.adapter_name)
            cached = None
        if cached is not None:
            self._adapters.move_to_end(lora.adapter_name)
            return cached.slot
        if len(self._adapters) >= self.max_loaded_adapters:
            swapped = self._hotswap_into_oldest(lora.adapter_name, path)
            if swapped is not None:
                return swapped
        while len(self._adapters) >= self.max_loaded_adapters:
            self._evict(next(iter(self._adapters)))
        slot = self._free_slot()
        # Raises LoraMismatchError, with nothing loaded, unless every
        # layer of the file landed on the model (diffusers skips the rest).
        load_checked_lora(self.pipeline, path, slot)
        self.loads += 1
        shape = _lora_file_shape(path)
        capacity = shape.rank
        if self.lora_hotswap and not shape.text_encoder:
            capacity = self._pad_slot(slot, shape.rank)
        self._adapters[lora.adapter_name] = _CachedStyle(
            path, slot, capacity, text_encoder=shape.text_encoder
        )
        return slot

    def _hotswap_into_oldest(self, adapter_name: str, path: Path) -> str | None:
        """Hot-swap `path` into the least recently used style's slot; its slot
        name, or None (logged) when hot-swap does not apply."""
        if not self.lora_hotswap:
            return None
        oldest_name, oldest = next(iter(self._adapters.items()))
        shape = _lora_file_shape(path)
        refusal = None
        if shape.text_encoder or oldest.text_encoder:
            refusal = "diffusers cannot hot-swap text-encoder LoRA layers"
        elif shape.rank > oldest.capacity:
            refusal = f"rank {shape.rank} is above the slot's {oldest.capacity} (lora_hotswap_rank)"
        if refusal is None:
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                    self.pipeline.load_lora_weights(
                        str(path), adapter_name=oldest.slot, hotswap=True
                    )
            except (ValueError, RuntimeError) as exc:  # other target modules, alpha patterns
                refusal = _first_line(exc)
            else:
                if not self._slot_fits_model(oldest.slot):
                    # PEFT swaps in tensors of any shape; a file made for
                    # another model must be refused by the checked load.
                    refusal = "its layers have other sizes than the model's"
            if refusal is not None:
                # diffusers may have dropped part of the slot: clear the rest.
                self._discard_slot(oldest.slot)
                del self._adapters[oldest_name]
            else:
                self._match_scale_to_scaling(oldest.slot)
                del self._adapters[oldest_name]
                self._adapters[adapter_name] = replace(oldest, path=path)
                self.hotswaps += 1
                return oldest.slot
        log.info(
            "LoRA %s not hot-swapped into %s's slot (%s): unloading and loading instead",
            adapter_name,
            oldest_name,
            refusal,
        )
        return None

    def _evict(self, adapter_name: str) -> None:
        cached = self._adapters.pop(adapter_name)
        self.pipeline.delete_adapters([cached.slot])

    def _free_slot(self) -> str:
        used = {cached.slot for cached in self._adapters.values()}
        # "slot1" is a substring of "slot11"; PEFT's hot-swap finds a slot's
        # tensors by substring, so the names end in a separator.
        return next(
            name
            for index in range(self.max_loaded_adapters + 1)
            if (name := f"slot{index}_") not in used
        )

    def _lora_layers(self, slot: str) -> list[LoraLayer]:
        return [
            module
            for module in self.pipeline.unet.modules()
            if isinstance(module, LoraLayer) and slot in module.lora_A
        ]

    def _pad_slot(self, slot: str, rank: int) -> int:
        """Zero-pad the slot's LoRA matrices to `hotswap_rank` (same output: the
        extra rows and columns are zero) so that a style of any rank up to it
        can be hot-swapped in without new tensors; returns the rank it holds."""
        target = self.hotswap_rank
        if rank >= target:
            return rank
        layers = self._lora_layers(slot)
        if not all(_paddable(layer.lora_A[slot], layer.lora_B[slot]) for layer in layers):
            return rank
        for layer in layers:
            layer.lora_A[slot] = _padded(layer.lora_A[slot], target, down=True)
            layer.lora_B[slot] = _padded(layer.lora_B[slot], target, down=False)
        return target

    def _slot_fits_model(self, slot: str) -> bool:
        """Every layer of the slot maps the base layer's inputs to its outputs."""
        for layer in self._lora_layers(slot):
            base = _weight(layer.get_base_layer())
            down, up = _weight(layer.lora_A[slot]), _weight(layer.lora_B[slot])
            if down.shape[1] != base.shape[1] or up.shape[0] != base.shape[0]:
                return False
            if down.shape[0] != up.shape[1]:
                return False
        return True

    def _match_scale_to_scaling(self, slot: str) -> None:
        """After a hot-swap PEFT updates each layer's `scaling` (alpha / rank of the
        new style) but not the `lora_alpha` and `r` that `set_adapters` computes
        the scaling from again; make those give the new scaling back."""
        for layer in self._lora_layers(slot):
            scaling = float(layer.scaling[slot])
            rank = layer.r[slot]
            root = math.sqrt(rank) if layer.use_rslora.get(slot, False) else rank
            layer.lora_alpha[slot] = scaling * root

    def _discard_slot(self, slot: str) -> None:
        """Remove whatever is left of a slot after a failed hot-swap."""
        for name in ("unet", "text_encoder", "text_encoder_2"):
            component = getattr(self.pipeline, name, None)
            if component is None:
                continue
            for module in component.modules():
                if isinstance(module, LoraLayer) and slot in module.lora_A:
                    module.delete_adapter(slot)
            config = getattr(component, "peft_config", None)
            if config:
                config.pop(slot, None)

    def generate(
        self,
        request: GenerationRequest,
        *,
        lora: LoraWeights | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[Image.Image]:
        """`request.count` images; image i uses seed `request.seed + i`, so any one
        of them can be reproduced alone. `on_step(step, total)` counts denoising
        steps over all images (total = steps x count)."""
        request = self._within_preset(request)
        # The VAE downsamples by 8; the bot core has already validated sizes.
        assert request.width % 8 == 0, "width must be a multiple of 8"
        assert request.height % 8 == 0, "height must be a multiple of 8"
        self._activate(lora)
        self.embeddings.ensure([request.embedding])
        # CPU generators give the same noise on every device for a seed.
        generators = [
            torch.Generator(device="cpu").manual_seed(request.seed + i)
            for i in range(request.count)
        ]
        total = request.steps * request.count
        done = 0

        def step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            nonlocal done
            done += 1
            if on_step is not None:
                on_step(done, total)
            return kwargs

        images: list[Image.Image] = []
        for index, generator in enumerate(generators):
            latents = self._variation_latents(request, index)
            # One call per image: batched kernels may round differently from
            # a batch of one, and "reproducible alone" means bit-identical.
            # It also keeps peak memory flat on small GPUs.
            with only_own_style_tokens(self.pipeline, [request.own_tokens]):
                result = self.pipeline(
                    prompt=request.prompt,
                    negative_prompt=request.negative_prompt or None,
                    num_inference_steps=request.steps,
                    guidance_scale=request.guidance,
                    guidance_rescale=self.guidance_rescale,
                    width=request.width,
                    height=request.height,
                    generator=generator,
                    latents=latents,
                    callback_on_step_end=step_end,
                    output_type="pil",
                )
            images.extend(result.images)
        return images

    def generate_batch(
        self,
        requests: Sequence[GenerationRequest],
        *,
        lora: LoraWeights | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[list[Image.Image]]:
        """Several compatible requests (`batch_key`) in one pipeline call.

        Every image keeps its own CPU generator seeded as in `generate`, so it
        starts from the same noise; batched kernels may round differently
        from a batch of one, so an image matches its `generate` twin up to a
        level of 255 (measured on the CPU: under 0.1% of pixels differ), not bit
        for bit.
        `on_step(step, total)` counts denoising steps of the one call.
        """
        if not requests:
            return []
        requests = self._compatible(requests)
        self._activate(lora)
        if self._zeroes_empty_negative() and len({bool(r.negative_prompt) for r in requests}) > 1:
            return self._split_by_negative(requests, on_step)
        return self._call_batch(requests, on_step)

    def _zeroes_empty_negative(self) -> bool:
        """SDXL's unconditional embedding for "no negative prompt" is zeros, not the
        encoded "" that a call with any negative prompt gives every request."""
        return bool(getattr(self.pipeline.config, "force_zeros_for_empty_prompt", False))

    def _split_by_negative(
        self,
        requests: Sequence[GenerationRequest],
        on_step: Callable[[int, int], None] | None,
    ) -> list[list[Image.Image]]:
        """Requests with and without a negative prompt in two calls, results in order,
        so that each image is the one it gets alone (`_zeroes_empty_negative`)."""
        results: list[list[Image.Image]] = [[] for _ in requests]
        for has_negative in (False, True):
            indices = [i for i, r in enumerate(requests) if bool(r.negative_prompt) == has_negative]
            images = self._call_batch([requests[i] for i in indices], on_step)
            for index, made in zip(indices, images, strict=True):
                results[index] = made
        return results

    def generate_mixed(
        self,
        requests_with_loras: Sequence[StyledRequest],
        *,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[list[Image.Image]]:
        """Compatible requests (`batch_key`) in different styles in one pipeline call.

        PEFT's LoRA layers take per-sample adapter names (`adapter_names`,
        `"__base__"` for none) and apply each adapter to its own rows of the
        batch; the diffusers pipeline does not pass them on, so forward
        pre-hooks on the UNet's LoRA layers put them in. Classifier-free
        guidance runs the UNet on the unconditional half and then the
        conditional half of a doubled batch, so the names are repeated then.
        An image matches its `generate` twin as in `generate_batch`.

        Every style must be loaded at once: more distinct styles than
        `max_loaded_adapters`, or a style with text-encoder layers (the
        prompts are encoded with one text encoder setting), falls back to one
        `generate_batch` call per style. On a CPU this saves nothing (the
        worker uses it on a GPU only, see `mixed_style_batches`).
        """
        if not requests_with_loras:
            return []
        requests = self._compatible([request for request, _ in requests_with_loras])
        loras = [lora for _, lora in requests_with_loras]
        styles = {lora.adapter_name: lora for lora in loras if lora is not None}
        slots = {name: self._ensure_loaded(lora) for name, lora in styles.items()}
        if len(styles) + (None in loras) == 1:  # one style, or none: a plain batch
            self._activate(loras[0])
            return self._call_batch(requests, on_step)
        loaded = [self._adapters.get(name) for name in styles]
        if any(cached is None for cached in loaded):
            log.info("mixed-style batch split by style: more styles than max_loaded_adapters")
            return self._per_style(requests, loras, on_step)
        if any(cached is not None and cached.text_encoder for cached in loaded):
            log.info("mixed-style batch split by style: a style has text-encoder LoRA layers")
            return self._per_style(requests, loras, on_step)
        names: list[str] = []
        for request, lora in zip(requests, loras, strict=True):
            slot = BASE_ADAPTER if lora is None else slots[lora.adapter_name]
            names.extend([slot] * request.count)
        # The text encoders run without LoRA; the UNet's layers pick per sample.
        self.pipeline.disable_lora()
        self.pipeline.unet.enable_lora()

        def per_sample_names(
            module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> tuple[tuple[Any, ...], dict[str, Any]]:
            rows = len(args[0]) if args else len(next(iter(kwargs.values())))
            kwargs["adapter_names"] = names * (rows // len(names))
            return args, kwargs

        unet: torch.nn.Module = self.pipeline.unet
        hooks = [
            layer.register_forward_pre_hook(per_sample_names, with_kwargs=True)
            for layer in unet.modules()
            if isinstance(layer, LoraLayer)
        ]
        try:
            return self._call_batch(requests, on_step)
        finally:
            for hook in hooks:
                hook.remove()

    def _per_style(
        self,
        requests: Sequence[GenerationRequest],
        loras: Sequence[LoraWeights | None],
        on_step: Callable[[int, int], None] | None,
    ) -> list[list[Image.Image]]:
        """One `generate_batch` call per style, results in the requests' order."""
        results: list[list[Image.Image]] = [[] for _ in requests]
        groups: dict[str | None, list[int]] = {}
        for index, lora in enumerate(loras):
            groups.setdefault(None if lora is None else lora.adapter_name, []).append(index)
        for indices in groups.values():
            images = self.generate_batch(
                [requests[i] for i in indices], lora=loras[indices[0]], on_step=on_step
            )
            for index, made in zip(indices, images, strict=True):
                results[index] = made
        return results

    def _compatible(self, requests: Sequence[GenerationRequest]) -> list[GenerationRequest]:
        """The requests within the preset, if they can share one call."""
        checked = [self._within_preset(request) for request in requests]
        key = batch_key(checked[0])
        if any(batch_key(r) != key for r in checked):
            raise ValueError("requests in one batch need the same steps, guidance and size")
        assert checked[0].width % 8 == 0, "width must be a multiple of 8"
        assert checked[0].height % 8 == 0, "height must be a multiple of 8"
        return checked

    def _call_batch(
        self,
        requests: Sequence[GenerationRequest],
        on_step: Callable[[int, int], None] | None,
    ) -> list[list[Image.Image]]:
        """One pipeline call for compatible requests, with the adapters as set up."""
        self.embeddings.ensure([request.embedding for request in requests])
        first = requests[0]
        prompts: list[str] = []
        negatives: list[str] = []
        generators: list[torch.Generator] = []
        for request in requests:
            for index in range(request.count):
                prompts.append(request.prompt)
                negatives.append(request.negative_prompt)
                generators.append(torch.Generator(device="cpu").manual_seed(request.seed + index))
        latents = None
        if any(r.variation_seed is not None for r in requests):
            # The pipeline takes starting noise for all images or for none.
            latents = torch.cat(
                [
                    self._starting_noise(request, index)
                    for request in requests
                    for index in range(request.count)
                ]
            )

        def step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            if on_step is not None:
                on_step(step + 1, first.steps)
            return kwargs

        # One row per image in each text-encoder call, prompts and negatives alike.
        owned = [request.own_tokens for request in requests for _ in range(request.count)]
        with only_own_style_tokens(self.pipeline, owned):
            result = self.pipeline(
                prompt=prompts,
                negative_prompt=negatives if any(negatives) else None,
                num_inference_steps=first.steps,
                guidance_scale=first.guidance,
                guidance_rescale=self.guidance_rescale,
                width=first.width,
                height=first.height,
                generator=generators,
                latents=latents,
                callback_on_step_end=step_end,
                output_type="pil",
            )
        images: list[Image.Image] = list(result.images)
        split: list[list[Image.Image]] = []
        for request in requests:
            split.append(images[: request.count])
            images = images[request.count :]
        return split

    def sampled_steps(self, steps: int) -> int:
        """The denoising steps a request for `steps` gets: a few-step model's are capped."""
        return min(steps, FEW_STEP_MAX_STEPS) if self.few_step else steps

    def sampled_guidance(self, guidance: float) -> float:
        """The guidance a request for `guidance` gets: none on a few-step model."""
        return min(guidance, FEW_STEP_GUIDANCE) if self.few_step else guidance

    def _within_preset(self, request: GenerationRequest) -> GenerationRequest:
        """The request with a few-step model's step cap and guidance applied. The
        front end's defaults and limits come from the same setting, so this only
        bites when a worker's model and the front end's settings disagree: logged."""
        if not self.few_step:
            return request
        if request.steps > FEW_STEP_MAX_STEPS:
            log.warning(
                "few-step (turbo) model: %d steps requested, sampling %d; set "
                "STYLEBOT_MODEL_VARIANT=turbo where the front end runs so it asks for at most %d",
                request.steps,
                FEW_STEP_MAX_STEPS,
                FEW_STEP_MAX_STEPS,
            )
            request = replace(request, steps=FEW_STEP_MAX_STEPS)
        if request.guidance > FEW_STEP_GUIDANCE:
            # Distilled without classifier-free guidance: guidance only burns its images.
            log.warning(
                "few-step (turbo) model: guidance %g requested, sampling with %g; set "
                "STYLEBOT_MODEL_VARIANT=turbo where the front end runs so it asks for %g",
                request.guidance,
                FEW_STEP_GUIDANCE,
                FEW_STEP_GUIDANCE,
            )
            request = replace(request, guidance=FEW_STEP_GUIDANCE)
        return request

    def _starting_noise(self, request: GenerationRequest, index: int) -> torch.Tensor:
        """Image `index`'s starting noise, as the pipeline would draw it for its seed."""
        latents = self._variation_latents(request, index)
        if latents is not None:
            return latents
        pipe = self.pipeline
        shape = (
            1,
            pipe.unet.config.in_channels,
            request.height // pipe.vae_scale_factor,
            request.width // pipe.vae_scale_factor,
        )
        generator = torch.Generator(device="cpu").manual_seed(request.seed + index)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32)
        return noise.to(device=pipe.unet.device, dtype=pipe.unet.dtype)

    def _variation_latents(self, request: GenerationRequest, index: int) -> torch.Tensor | None:
        """Starting noise between the image's seed and the variation seed, or None.

        Drawn on the CPU like the pipeline's own noise, so strength 0 gives
        exactly the image the seed alone gives.
        """
        if request.variation_seed is None:
            return None
        pipe = self.pipeline
        shape = (
            1,
            pipe.unet.config.in_channels,
            request.height // pipe.vae_scale_factor,
            request.width // pipe.vae_scale_factor,
        )

        def noise(seed: int) -> torch.Tensor:
            generator = torch.Generator(device="cpu").manual_seed(seed)
            return torch.randn(shape, generator=generator, dtype=torch.float32)

        mixed = slerp(
            request.variation_strength,
            noise(request.seed + index),
            noise(request.variation_seed + index),
        )
        return mixed.to(device=pipe.unet.device, dtype=pipe.unet.dtype)


def _paddable(down: torch.nn.Module, up: torch.nn.Module) -> bool:
    if isinstance(down, torch.nn.Linear) and isinstance(up, torch.nn.Linear):
        return True
    return (
        isinstance(down, torch.nn.Conv2d)
        and isinstance(up, torch.nn.Conv2d)
        and down.groups == 1
        and up.groups == 1
    )


def _weight(layer: torch.nn.Module) -> torch.Tensor:
    """The weight of a layer LoRA wraps or adds (a Linear or a Conv2d: all have one)."""
    weight = layer.weight
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"a {type(layer).__name__} has no weight tensor")
    return weight


def _pair(values: tuple[int, ...]) -> tuple[int, int]:
    """A Conv2d's kernel size, stride, padding or dilation: torch types them as
    tuples of any length, but a Conv2d's hold two numbers."""
    first, second = values
    return first, second


def _padded(layer: torch.nn.Module, rank: int, *, down: bool) -> torch.nn.Module:
    """A LoRA down (A) or up (B) projection with `rank` rows (A) or columns (B),
    the ones it did not have zero."""
    if not isinstance(layer, torch.nn.Linear | torch.nn.Conv2d):
        raise TypeError(f"cannot pad a {type(layer).__name__}: `_paddable` admits no other")
    weight = layer.weight.data
    bias = layer.bias
    made: torch.nn.Linear | torch.nn.Conv2d
    if isinstance(layer, torch.nn.Linear):
        made = (
            torch.nn.Linear(layer.in_features, rank, bias=bias is not None)
            if down
            else torch.nn.Linear(rank, layer.out_features, bias=bias is not None)
        )
    else:
        made = torch.nn.Conv2d(
            layer.in_channels if down else rank,
            rank if down else layer.out_channels,
            _pair(layer.kernel_size),
            _pair(layer.stride),
            layer.padding if isinstance(layer.padding, str) else _pair(layer.padding),
            _pair(layer.dilation),
            bias=bias is not None,
        )
    made = made.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        made.weight.zero_()
        if down:
            made.weight[: weight.shape[0]] = weight
        else:
            made.weight[:, : weight.shape[1]] = weight
        if bias is not None and made.bias is not None:  # made has a bias iff layer has
            made.bias.copy_(bias)
    made.requires_grad_(layer.weight.requires_grad)
    return made


def batch_key(request: GenerationRequest) -> tuple[int, float, int, int]:
    """Requests with equal keys (and the same LoRA) can share one pipeline call."""
    return (request.steps, request.guidance, request.width, request.height)


def slerp(t: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: keeps the noise's norm, which linear mixing shrinks."""
    a_unit, b_unit = a / a.norm(), b / b.norm()
    omega = torch.acos((a_unit * b_unit).sum().clamp(-1.0, 1.0))
    if torch.sin(omega).abs() < 1e-6:
        return (1.0 - t) * a + t * b
    return (torch.sin((1.0 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
