"""Follow a sketch (ControlNet): generation guided by the edges of a given picture.

The operator names a ControlNet per kind of guidance (`STYLEBOT_CONTROLNET_EDGES`, a
ControlNet trained on Canny edges for the worker's base family). diffusers' `from_pipe`
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
from diffusers.models.controlnets.controlnet import ControlNetModel
from diffusers.pipelines.auto_pipeline import AutoPipelineForText2Image
from PIL import Image

from stylebot.engine.models import AnyPipeline, denoiser, model_family

# The families whose UNet takes `ControlNetModel`'s residuals.
SKETCH_FAMILIES = ("sd15", "sd2", "sdxl")
# cv2.Canny's hysteresis thresholds as the ControlNet paper's canny annotator uses them.
CANNY_LOW, CANNY_HIGH = 100, 200
# Each kind's preprocessor as AUTOMATIC1111's ControlNet extension names it.
_MODULES = {"edges": "canny"}


class SketchUnsupported(ValueError):
    """A ControlNet is configured that this worker's base model cannot use."""


def canny_edges(picture: Image.Image) -> Image.Image:
    """White Canny edges on black, in RGB: the control image an edges ControlNet was
    trained on."""
    grey = np.asarray(picture.convert("L"))
    edges = cv2.Canny(grey, CANNY_LOW, CANNY_HIGH)
    return Image.fromarray(np.stack([edges] * 3, axis=-1))


def check_controlnets(pipeline: AnyPipeline, controlnets: Mapping[str, str]) -> None:
    """Refuse, with what to do, ControlNets this base model cannot take: another family,
    or (read from each ControlNet's config only) another text-encoder width."""
    configured = {kind: source for kind, source in controlnets.items() if source}
    if not configured:
        return
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

    def __init__(self, base: AnyPipeline, controlnets: Mapping[str, str]) -> None:
        check_controlnets(base, controlnets)  # at start-up, not at a member's first /sketch
        self.base = base
        self.sources = {kind: source for kind, source in controlnets.items() if source}
        self._pipelines: dict[str, Any] = {}

    def pipeline(self, kind: str) -> Any:
        if kind not in self._pipelines:
            source = self.sources.get(kind)
            if source is None:
                raise SketchUnsupported(f"no ControlNet is configured for {kind} on this worker")
            controlnet = ControlNetModel.from_pretrained(source, torch_dtype=self.base.dtype)
            self._pipelines[kind] = AutoPipelineForText2Image.from_pipe(
                self.base, controlnet=controlnet.to(self.base.device)
            )
        return self._pipelines[kind]

    def infotext(self, kind: str | None, weight: float) -> str | None:
        """The ControlNet as AUTOMATIC1111's ControlNet extension writes it in an image's
        `parameters` (None: no sketch)."""
        if kind is None:
            return None
        name = self.sources[kind].rstrip("/").rsplit("/", 1)[-1]
        return f"Module: {_MODULES[kind]}, Model: {name}, Weight: {weight:g}"

    @staticmethod
    def control_image(kind: str, picture: Image.Image) -> Image.Image:
        if kind == "edges":
            return canny_edges(picture)
        raise SketchUnsupported(f"unknown kind of guidance {kind!r}")
