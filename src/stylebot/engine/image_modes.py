"""Image-to-image on the hot base pipeline: restyle a picture in a style.

diffusers' ``from_pipe`` builds the image-to-image pipeline of the loaded model's family
from the very same components (UNet, VAE, text encoders, scheduler): no second copy of
the model in memory, and the LoRA adapters and textual-inversion tokens loaded into those
components serve both. The pipeline is made once, on first use, and kept.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from diffusers.pipelines.auto_pipeline import AutoPipelineForImage2Image
from PIL import Image

from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.models import BasePipeline

__all__ = ["ImageModes", "fitted_picture"]

# Keyword arguments of a text-to-image call that an image-to-image call takes
# differently: its size is the picture's, and its noise comes from the picture.
_TEXT_ONLY = ("width", "height", "latents")


def fitted_picture(picture: Image.Image, width: int, height: int) -> Image.Image:
    """The picture as RGB at exactly the request's size (the front end chose the size
    from the picture's shape, in multiples of 8, so this only rounds)."""
    rgb = picture.convert("RGB")
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.LANCZOS)
    return rgb


class ImageModes:
    """The pipelines other than text-to-image, made from the base pipeline's parts."""

    def __init__(self, pipeline: BasePipeline) -> None:
        self.base = pipeline
        self._image_to_image: Any = None

    def image_to_image(self) -> Any:
        if self._image_to_image is None:
            self._image_to_image = AutoPipelineForImage2Image.from_pipe(self.base)
        return self._image_to_image

    def call_for(
        self, requests: Sequence[GenerationRequest], kwargs: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """The pipeline and its arguments for one call of compatible requests:
        `kwargs` (a text-to-image call's) as they are, or turned into an
        image-to-image call when the requests start from pictures."""
        first = requests[0]
        if first.init_image is None:
            return self.base, kwargs
        pipe = self.image_to_image()
        call = {key: value for key, value in kwargs.items() if key not in _TEXT_ONLY}
        call["image"] = [
            fitted_picture(request.init_image, request.width, request.height)
            for request in requests
            if request.init_image is not None
            for _ in range(request.count)
        ]
        call["strength"] = first.strength
        if "guidance_rescale" not in _parameters(pipe):
            call.pop("guidance_rescale", None)
        return pipe, call


def _parameters(pipe: Any) -> frozenset[str]:
    return frozenset(inspect.signature(pipe.__call__).parameters)
