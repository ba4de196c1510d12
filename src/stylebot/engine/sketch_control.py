"""Follow a sketch (ControlNet): generation guided by the edges or depth of a given picture.

The operator names a ControlNet per kind of guidance (`STYLEBOT_CONTROLNET_EDGES`, one
trained on Canny edges, `STYLEBOT_CONTROLNET_DEPTH`, one trained on depth maps, which a
transformers depth estimator, `STYLEBOT_DEPTH_ESTIMATOR`, makes from the picture on the
worker), each for the worker's base family. diffusers' `from_pipe`
builds the ControlNet pipeline from the hot pipeline's very components (UNet, VAE, text
encoders, scheduler), so the LoRA adapters and tokens loaded into them apply and no second
copy of the base is in memory; only the ControlNet itself is added, on first use.
Stable Diffusion 1.x, 2.x and SDXL are supported (`ControlNetModel`); FLUX.1 and SD 3.5
take other ControlNet classes and calls, and are refused at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import torch
from diffusers.models.controlnets.controlnet import ControlNetModel
from diffusers.pipelines.auto_pipeline import AutoPipelineForText2Image
from PIL import Image

from stylebot.engine.models import AnyPipeline, denoiser, model_family, pipeline_from

# The families whose UNet takes `ControlNetModel`'s residuals.
SKETCH_FAMILIES = ("sd15", "sd2", "sdxl")
# cv2.Canny's hysteresis thresholds as the ControlNet paper's canny annotator uses them.
CANNY_LOW, CANNY_HIGH = 100, 200
# Each kind's preprocessor as AUTOMATIC1111's ControlNet extension names it.
_MODULES = {"edges": "canny", "depth": "depth"}


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
) -> None:
    """Refuse, with what to do, ControlNets this base model cannot take: another family,
    or (read from each ControlNet's config only) another text-encoder width; and a depth
    ControlNet without the estimator that makes its depth maps."""
    configured = {kind: source for kind, source in controlnets.items() if source}
    if not configured:
        return
    if "depth" in configured and not depth_estimator:
        raise SketchUnsupported(
            "STYLEBOT_CONTROLNET_DEPTH is set without STYLEBOT_DEPTH_ESTIMATOR: name a "
            "depth-estimation model (e.g. depth-anything/Depth-Anything-V2-Small-hf)"
        )
    family = model_family(pipeline)
    if family not in SKETCH_FAMILIES:
        raise SketchUnsupported(
            f"STYLEBOT_CONTROLNET_{next(iter(configured)).upper()} is set, but /sketch "
            f"supports Stable Diffusion 1.x, 2.x and SDXL, not this worker's {family} "
            "model: unset it"
        )
    unet_config: Any = denoiser(pipeline).config
    width = unet_config.get("cross_attention_dim")
    for kind, source in configured.items():
        config: Any = ControlNetModel.load_config(source)
        if config.get("cross_attention_dim") != width:
            raise SketchUnsupported(
                f"STYLEBOT_CONTROLNET_{kind.upper()}={source} is a ControlNet for another "
                f"base model (text width {config.get('cross_attention_dim')}, this {family} "
                f"model's is {width}): name one trained for {family}"
            )


class SketchPipelines:
    """The ControlNet pipeline of each configured kind, made from the base pipeline's parts
    on first use and kept."""

    def __init__(
        self, base: AnyPipeline, controlnets: Mapping[str, str], depth_estimator: str = ""
    ) -> None:
        # At start-up, not at a member's first /sketch.
        check_controlnets(base, controlnets, depth_estimator)
        self.base = base
        self.sources = {kind: source for kind, source in controlnets.items() if source}
        self._pipelines: dict[str, Any] = {}
        self.depth_maps = DepthMaps(depth_estimator, base.device)

    def pipeline(self, kind: str) -> Any:
        if kind not in self._pipelines:
            source = self.sources.get(kind)
            if source is None:
                raise SketchUnsupported(f"no ControlNet is configured for {kind} on this worker")
            controlnet = ControlNetModel.from_pretrained(source, torch_dtype=self.base.dtype)
            self._pipelines[kind] = pipeline_from(
                AutoPipelineForText2Image, self.base, controlnet=controlnet.to(self.base.device)
            )
        return self._pipelines[kind]

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
