"""Follow a sketch (ControlNet): generation guided by the edges or depth of a given picture.

The operator names a ControlNet per kind of guidance (`STYLEBOT_CONTROLNET_EDGES`, one
trained on Canny edges, `STYLEBOT_CONTROLNET_DEPTH`, one trained on depth maps, which a
transformers depth estimator, `STYLEBOT_DEPTH_ESTIMATOR`, makes from the picture on the
worker), each for the worker's base family. diffusers' `from_pipe`
builds the ControlNet pipeline from the hot pipeline's very components (UNet or
transformer, VAE, text encoders, scheduler), so the LoRA adapters and tokens loaded into
them apply and no second copy of the base is in memory; only the ControlNet itself is
added, on first use. Each family takes its own ControlNet class, which the ControlNet's
config names (`_class_name`): SD 1.x, 2.x and SDXL `ControlNetModel`, FLUX.1
`FluxControlNetModel`, SD 3.5 `SD3ControlNetModel`; one of another family, or of another
model's widths, is refused at start-up.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import torch
from diffusers.models.controlnets.controlnet import ControlNetModel
from diffusers.models.controlnets.controlnet_flux import FluxControlNetModel
from diffusers.models.controlnets.controlnet_sd3 import SD3ControlNetModel
from diffusers.pipelines.auto_pipeline import AutoPipelineForText2Image
from PIL import Image

from stylebot.engine.diffusers_classes import AutoencoderKL
from stylebot.engine.models import (
    SINGLE_FILE_SUFFIXES,
    AnyPipeline,
    denoiser,
    model_family,
    pipeline_from,
)

# Each ControlNet class /sketch loads (a ControlNet's config names it), the families
# whose denoiser takes its residuals, and the families in words.
CONTROLNET_CLASSES: dict[str, type[ControlNetModel | FluxControlNetModel | SD3ControlNetModel]] = {
    "ControlNetModel": ControlNetModel,
    "FluxControlNetModel": FluxControlNetModel,
    "SD3ControlNetModel": SD3ControlNetModel,
}
_CLASS_FAMILIES = {
    "ControlNetModel": ("sd15", "sd2", "sdxl"),
    "FluxControlNetModel": ("flux",),
    "SD3ControlNetModel": ("sd3",),
}
_FAMILY_NAMES = {
    "ControlNetModel": "Stable Diffusion 1.x, 2.x or SDXL",
    "FluxControlNetModel": "FLUX.1",
    "SD3ControlNetModel": "SD 3.5",
}
# cv2.Canny's hysteresis thresholds as the ControlNet paper's canny annotator uses them.
CANNY_LOW, CANNY_HIGH = 100, 200
# Each kind's preprocessor as AUTOMATIC1111's ControlNet extension names it.
_MODULES = {"edges": "canny", "depth": "depth"}
# A FLUX.1 union ControlNet (one for many kinds, `num_mode` set) is told the kind by
# number: InstantX's and Shakker-Labs' union models number canny 0 and depth 2.
_UNION_MODES = {"edges": 0, "depth": 2}


class SketchUnsupported(ValueError):
    """A ControlNet is configured that this worker's base model cannot use."""


def canny_edges(picture: Image.Image) -> Image.Image:
    """White Canny edges on black, in RGB: the control image an edges ControlNet was
    trained on."""
    grey = np.asarray(picture.convert("L"))
    edges = cv2.Canny(grey, CANNY_LOW, CANNY_HIGH)
    return Image.fromarray(np.stack([edges] * 3, axis=-1))


class DepthMaps:
    """Depth maps of pictures by a transformers depth estimator (DPT, Depth Anything),
    loaded on first use: near is white, far is black, as depth ControlNets are trained."""

    def __init__(self, source: str, device: torch.device) -> None:
        self.source = source
        self.device = device
        self._model: Any = None
        self._processor: Any = None

    def __call__(self, picture: Image.Image) -> Image.Image:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        if self._model is None:
            self._processor = AutoImageProcessor.from_pretrained(self.source)
            self._model = AutoModelForDepthEstimation.from_pretrained(self.source)
            self._model.to(self.device).eval()
        rgb = picture.convert("RGB")
        inputs = self._processor(images=rgb, return_tensors="pt").to(self.device)
        with torch.no_grad():
            depth = self._model(**inputs).predicted_depth
        depth = torch.nn.functional.interpolate(
            depth[:, None].float(), size=(rgb.height, rgb.width), mode="bicubic"
        )[0, 0]
        low, high = depth.min(), depth.max()
        scaled = (depth - low) / (high - low) if high > low else torch.zeros_like(depth)
        levels = (scaled * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return Image.fromarray(np.stack([levels] * 3, axis=-1))


def check_controlnets(
    pipeline: AnyPipeline, controlnets: Mapping[str, str], depth_estimator: str = ""
) -> dict[str, str]:
    """Refuse, with what to do, ControlNets this base model cannot take: another family's
    class, or (read from each ControlNet's config only) another model's widths; and a depth
    ControlNet without the estimator that makes its depth maps. Returns each kind's
    ControlNet class name."""
    configured = {kind: source for kind, source in controlnets.items() if source}
    if "depth" in configured and not depth_estimator:
        raise SketchUnsupported(
            "STYLEBOT_CONTROLNET_DEPTH is set without STYLEBOT_DEPTH_ESTIMATOR: name a "
            "depth-estimation model (e.g. depth-anything/Depth-Anything-V2-Small-hf)"
        )
    family = model_family(pipeline)
    denoiser_config: Any = denoiser(pipeline).config
    model_widths = _widths(denoiser_config)
    classes: dict[str, str] = {}
    for kind, source in configured.items():
        named = f"STYLEBOT_CONTROLNET_{kind.upper()}={source}"
        config = controlnet_config(named, source)
        # diffusers writes the class into every config; an old hand-made one may lack it.
        class_name = str(config.get("_class_name") or "ControlNetModel")
        if class_name not in CONTROLNET_CLASSES:
            raise SketchUnsupported(
                f"{named} is a {class_name}, which /sketch does not load: name a "
                + ", ".join(f"{cls} ({_FAMILY_NAMES[cls]})" for cls in CONTROLNET_CLASSES)
            )
        if family not in _CLASS_FAMILIES[class_name]:
            wanted = next(cls for cls, families in _CLASS_FAMILIES.items() if family in families)
            raise SketchUnsupported(
                f"{named} is a ControlNet for {_FAMILY_NAMES[class_name]} ({class_name}), "
                f"not for this worker's {family} model: name a {wanted} trained for {family}"
            )
        differ = [
            f"{name} {width}, this {family} model's {model_widths.get(name)}"
            for name, width in _widths(config).items()
            if width is not None and width != model_widths.get(name)
        ]
        if differ:
            raise SketchUnsupported(
                f"{named} is a ControlNet for another base model ({'; '.join(differ)}): "
                f"name one trained for {family}"
            )
        classes[kind] = class_name
    return classes


def controlnet_config(named: str, source: str) -> dict[str, Any]:
    """A ControlNet's config (its folder's or hub repository's config.json)."""
    if Path(source).suffix in SINGLE_FILE_SUFFIXES:
        raise SketchUnsupported(
            f"{named} is a single file: /sketch loads ControlNets in diffusers' layout, a "
            "folder with config.json and the weights, or a hub id"
        )
    config: dict[str, Any] = dict(ControlNetModel.load_config(source))
    return config


def _widths(config: Mapping[str, Any]) -> dict[str, Any]:
    """The widths a ControlNet and the denoiser it feeds must share: the text's for a
    UNet; the tokens', the text's, the pooled vector's and the latent's for a transformer."""
    if "cross_attention_dim" in config:
        return {"text width": config["cross_attention_dim"]}
    return {
        "width": config["num_attention_heads"] * config["attention_head_dim"],
        "text width": config.get("joint_attention_dim"),
        "pooled width": config.get("pooled_projection_dim"),
        "latent channels": config.get("in_channels"),
    }


class _MeanLatents:
    """A VAE encoding's latent distribution that answers its mean when sampled."""

    def __init__(self, mean: torch.Tensor) -> None:
        self.mean = mean

    def sample(self, generator: object = None) -> torch.Tensor:
        return self.mean

    def mode(self) -> torch.Tensor:
        return self.mean


@contextmanager
def control_latents_at_their_mean(vae: AutoencoderKL) -> Iterator[None]:
    """While it lasts, `vae.encode` gives its latents' mean for a sample, as ComfyUI
    encodes. FLUX.1's and SD 3.5's ControlNet pipelines encode the control image with a
    sample: SD 3.5's draws it from torch's global generator, so the same seed drew another
    picture every time; FLUX.1's from the request's generator, so its noise was not the
    seed's own (a text-to-image picture's). Not thread-safe, as the generator is not."""
    encode = vae.encode

    def at_mean(*args: Any, **kwargs: Any) -> SimpleNamespace:
        return SimpleNamespace(latent_dist=_MeanLatents(encode(*args, **kwargs).latent_dist.mode()))

    vae.encode = at_mean  # on this instance, for one call
    try:
        yield
    finally:
        del vae.encode


class SketchPipelines:
    """The ControlNet pipeline of each configured kind, made from the base pipeline's parts
    on first use and kept."""

    def __init__(
        self, base: AnyPipeline, controlnets: Mapping[str, str], depth_estimator: str = ""
    ) -> None:
        # At start-up, not at a member's first /sketch.
        self.classes = check_controlnets(base, controlnets, depth_estimator)
        self.base = base
        self.sources = {kind: source for kind, source in controlnets.items() if source}
        self._pipelines: dict[str, Any] = {}
        self.depth_maps = DepthMaps(depth_estimator, base.device)

    def pipeline(self, kind: str) -> Any:
        """The family's ControlNet pipeline (StableDiffusion[XL]ControlNetPipeline,
        FluxControlNetPipeline, StableDiffusion3ControlNetPipeline) for `kind`."""
        if kind not in self._pipelines:
            source = self.sources.get(kind)
            if source is None:
                raise SketchUnsupported(f"no ControlNet is configured for {kind} on this worker")
            controlnet_class = CONTROLNET_CLASSES[self.classes[kind]]
            controlnet: torch.nn.Module = controlnet_class.from_pretrained(
                source, torch_dtype=self.base.dtype
            )
            self._pipelines[kind] = pipeline_from(
                AutoPipelineForText2Image, self.base, controlnet=controlnet.to(self.base.device)
            )
        return self._pipelines[kind]

    def run(self, pipe: Any, **call: Any) -> Any:
        """Call `pipe`, a ControlNet pipeline, with its control images' latents at their
        mean (`control_latents_at_their_mean`)."""
        with control_latents_at_their_mean(pipe.vae):
            return pipe(**call)

    def control_arguments(self, kind: str, pictures: list[Image.Image]) -> dict[str, Any]:
        """The pipeline call's control images of `pictures` (SD's ControlNet pipelines take
        them as `image`, FLUX.1's and SD 3.5's as `control_image`), and a union
        ControlNet's mode."""
        pipe = self.pipeline(kind)
        images = [self.control_image(kind, picture) for picture in pictures]
        takes = inspect.signature(pipe.__call__).parameters
        arguments: dict[str, Any] = {
            "control_image" if "control_image" in takes else "image": images
        }
        if pipe.controlnet.config.get("num_mode") is not None:
            arguments["control_mode"] = _UNION_MODES[kind]
        return arguments

    def infotext(self, kind: str | None, weight: float) -> str | None:
        """The ControlNet as AUTOMATIC1111's ControlNet extension writes it in an image's
        `parameters` (None: no sketch)."""
        if kind is None:
            return None
        name = self.sources[kind].rstrip("/").rsplit("/", 1)[-1]
        return f"Module: {_MODULES[kind]}, Model: {name}, Weight: {weight:g}"

    def control_image(self, kind: str, picture: Image.Image) -> Image.Image:
        if kind == "edges":
            return canny_edges(picture)
        if kind == "depth":
            return self.depth_maps(picture)
        raise SketchUnsupported(f"unknown kind of guidance {kind!r}")
