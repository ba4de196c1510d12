"""Text-to-image generation on a hot base pipeline with a bounded LoRA cache."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import StableDiffusionPipeline
from PIL import Image


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


@dataclass(frozen=True)
class LoraWeights:
    """A style's LoRA: `path` is a .safetensors file written by `train_lora`."""

    adapter_name: str
    path: Path


class Generator:
    """Generates images with one base pipeline and the styles' LoRA adapters.

    Loading a LoRA costs a file read and a walk over the UNet, so adapters stay
    loaded (up to `max_loaded_adapters`, least recently used evicted) and a
    request for a loaded style only switches the active adapter. Not
    thread-safe: the worker runs one GPU job at a time per pipeline.
    """

    def __init__(self, pipeline: StableDiffusionPipeline, *, max_loaded_adapters: int = 8) -> None:
        if max_loaded_adapters < 1:
            raise ValueError("max_loaded_adapters must be at least 1")
        self.pipeline = pipeline
        self.max_loaded_adapters = max_loaded_adapters
        # adapter name -> the file it was loaded from, most recently used last.
        self._adapters: OrderedDict[str, Path] = OrderedDict()

    @property
    def loaded_adapters(self) -> tuple[str, ...]:
        """Names of the loaded adapters, most recently used last."""
        return tuple(self._adapters)

    def _activate(self, lora: LoraWeights | None) -> None:
        """Make exactly `lora` (or no LoRA) active for the next call."""
        if lora is None:
            if self._adapters:
                self.pipeline.disable_lora()
            return
        path = Path(lora.path)
        loaded_from = self._adapters.get(lora.adapter_name)
        if loaded_from is not None and loaded_from != path:
            # Same style name, new weights (a retrained style): reload.
            self._evict(lora.adapter_name)
        if lora.adapter_name in self._adapters:
            self._adapters.move_to_end(lora.adapter_name)
        else:
            while len(self._adapters) >= self.max_loaded_adapters:
                self._evict(next(iter(self._adapters)))
            with warnings.catch_warnings():
                # peft warns whenever a second adapter joins a model: that is the cache.
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                self.pipeline.load_lora_weights(str(path), adapter_name=lora.adapter_name)
            self._adapters[lora.adapter_name] = path
        self.pipeline.enable_lora()
        self.pipeline.set_adapters([lora.adapter_name], adapter_weights=[1.0])

    def _evict(self, adapter_name: str) -> None:
        self.pipeline.delete_adapters([adapter_name])
        del self._adapters[adapter_name]

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
        # The VAE downsamples by 8; the bot core has already validated sizes.
        assert request.width % 8 == 0, "width must be a multiple of 8"
        assert request.height % 8 == 0, "height must be a multiple of 8"
        self._activate(lora)
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
            result = self.pipeline(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt or None,
                num_inference_steps=request.steps,
                guidance_scale=request.guidance,
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
        key = batch_key(requests[0])
        if any(batch_key(r) != key for r in requests):
            raise ValueError("requests in one batch need the same steps, guidance and size")
        first = requests[0]
        assert first.width % 8 == 0, "width must be a multiple of 8"
        assert first.height % 8 == 0, "height must be a multiple of 8"
        self._activate(lora)
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

        result = self.pipeline(
            prompt=prompts,
            negative_prompt=negatives if any(negatives) else None,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
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
