"""Text-to-image generation on a hot base pipeline with a bounded LoRA cache."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from peft.tuners.lora import LoraLayer
from PIL import Image

from stylebot.config import FEW_STEP_MAX_STEPS, is_few_step_model
from stylebot.engine.adapter_slots import DEFAULT_HOTSWAP_RANK, AdapterSlots
from stylebot.engine.families import family_variant
from stylebot.engine.flow_sampling import drawn_size, family_call_options
from stylebot.engine.generation_request import (
    GenerationRequest,
    LoraWeights,
    StyledRequest,
    batch_key,
)
from stylebot.engine.image_modes import ImageModes
from stylebot.engine.models import AnyPipeline, denoiser
from stylebot.engine.own_tokens import only_own_style_tokens
from stylebot.engine.starting_noise import starting_noise
from stylebot.trainer.embeddings import LoadedEmbeddings

log = logging.getLogger(__name__)


# A few-step (turbo) model's guidance: distilled to sample without
# classifier-free guidance (the front end's default for it, see load_settings).
FEW_STEP_GUIDANCE = 0.0

# PEFT's per-sample adapter name for "no adapter" in a mixed batch.
BASE_ADAPTER = "__base__"


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
    comes with the scheduler config. FLUX.1 and SD 3.5 take the same call but
    for a few options (`family_call_options`). A few-step model (`few_step`;
    None: FLUX.1-schnell, or from the model's name, see `is_few_step_model`)
    samples at most `FEW_STEP_MAX_STEPS` steps without guidance: more only blur
    a distilled model's output.
    """

    def __init__(
        self,
        pipeline: AnyPipeline,
        *,
        max_loaded_adapters: int = 8,
        few_step: bool | None = None,
        lora_hotswap: bool = True,
        hotswap_rank: int = DEFAULT_HOTSWAP_RANK,
        controlnets: Mapping[str, str] | None = None,
        depth_estimator: str = "",
    ) -> None:
        self.adapters = AdapterSlots(
            pipeline,
            max_loaded_adapters=max_loaded_adapters,
            lora_hotswap=lora_hotswap,
            hotswap_rank=hotswap_rank,
        )
        self.pipeline = pipeline
        if few_step is None:
            few_step = family_variant(pipeline) == "flux-schnell" or is_few_step_model(
                str(pipeline.name_or_path or "")
            )
        self.few_step = few_step
        # Zero-terminal-SNR v-prediction models over-expose under plain
        # classifier-free guidance; their papers' fix is guidance rescale 0.7.
        zero_snr = bool(pipeline.scheduler.config.get("rescale_betas_zero_snr"))
        self.guidance_rescale = 0.7 if zero_snr else 0.0
        # Styles' textual-inversion tokens, bounded like the adapters.
        self.embeddings = LoadedEmbeddings(pipeline, max_loaded_adapters)
        # Image-to-image and the other modes, on this pipeline's own components.
        self.modes = ImageModes(pipeline, controlnets, depth_estimator)

    @property
    def loaded_adapters(self) -> tuple[str, ...]:
        """Names of the loaded styles, most recently used last."""
        return self.adapters.loaded_adapters

    def unload_files(self, stems: Collection[str]) -> int:
        """Unload the adapters and embeddings loaded from files named `<stem>.*` (the
        worker cache names them by blob key: a revoked style's weights leave memory
        too). Device thread only. Returns how many went."""
        return self.adapters.unload_files(stems) + self.embeddings.unload_files(stems)

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
        self.adapters.activate(lora)
        total = request.steps * request.count
        done_before = 0

        def step(done: int, _steps: int) -> None:
            if on_step is not None:
                on_step(done_before + done, total)

        images: list[Image.Image] = []
        for index in range(request.count):
            # One call per image: batched kernels may round differently from
            # a batch of one, and "reproducible alone" means bit-identical.
            # It also keeps peak memory flat on small GPUs.
            variation = request.variation_seed
            alone = replace(
                request,
                seed=request.seed + index,
                count=1,
                variation_seed=None if variation is None else variation + index,
            )
            done_before = index * request.steps
            images.extend(self._call_batch([alone], step)[0])
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
        self.adapters.activate(lora)
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
        slots = {name: self.adapters.ensure_loaded(lora) for name, lora in styles.items()}
        if len(styles) + (None in loras) == 1:  # one style, or none: a plain batch
            self.adapters.activate(loras[0])
            return self._call_batch(requests, on_step)
        loaded = [self.adapters.cached.get(name) for name in styles]
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
        denoiser(self.pipeline).enable_lora()  # type: ignore[operator]  # diffusers' PeftAdapterMixin

        def per_sample_names(
            module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> tuple[tuple[Any, ...], dict[str, Any]]:
            rows = len(args[0]) if args else len(next(iter(kwargs.values())))
            kwargs["adapter_names"] = names * (rows // len(names))
            return args, kwargs

        hooks = [
            layer.register_forward_pre_hook(per_sample_names, with_kwargs=True)
            for layer in denoiser(self.pipeline).modules()
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
        asked = requests
        # FLUX.1 and SD 3.5 draw in multiples of 16: a little larger, scaled back after.
        width, height = drawn_size(self.pipeline, asked[0].width, asked[0].height)
        requests = [replace(request, width=width, height=height) for request in asked]
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
                    starting_noise(self.pipeline, request, index)
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
        pipe, call = self.modes.call_for(
            requests,
            dict(
                prompt=prompts,
                num_inference_steps=first.steps,
                guidance_scale=first.guidance,
                **family_call_options(self.pipeline, negatives, self.guidance_rescale),
                width=first.width,
                height=first.height,
                # CPU generators give the same noise on every device for a seed.
                generator=generators,
                latents=latents,
                callback_on_step_end=step_end,
                output_type="pil",
            ),
        )
        with only_own_style_tokens(self.pipeline, owned):
            result = pipe(**call)
        size = (asked[0].width, asked[0].height)
        drawn = [
            image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)
            for image in result.images
        ]
        images: list[Image.Image] = self.modes.keep_unmasked(asked, drawn)
        split: list[list[Image.Image]] = []
        for request in asked:
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
