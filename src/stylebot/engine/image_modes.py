"""Image-to-image on the hot base pipeline: restyle, upscale, extend, repaint and sketch.

diffusers' ``from_pipe`` builds the image-to-image pipeline of the loaded model's family
(SD 1.5/2.x, SDXL, and FLUX.1's and SD 3.5's Img2Img and Inpaint pipelines) from the
very same components (UNet or transformer, VAE, text encoders, scheduler): no second copy of
the model in memory, and the LoRA adapters and textual-inversion tokens loaded into those
components serve both. The pipeline is made once, on first use, and kept.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from diffusers.pipelines.auto_pipeline import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
)
from PIL import Image, ImageFilter

from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.models import AnyPipeline, pipeline_from
from stylebot.engine.sketch_control import SketchPipelines
from stylebot.queue.payloads import GenerateJob

# Keyword arguments of a text-to-image call that an image-to-image call takes
# differently: its size is the picture's (fitted to the request's), and its noise
# comes from the picture. FLUX.1's and SD 3.5's image-to-image pipelines take the
# size as well, and without it draw at their default size: they are given it.
_TEXT_ONLY = ("width", "height", "latents")
_SIZE = ("width", "height")


def steps_for_strength(steps: int, strength: float) -> int:
    """The schedule's length for `steps` at `strength`: the image pipelines run
    int(length x strength) of its steps, so few steps at a low strength (an upscale's
    0.35 with 2 steps) ran none and failed; the schedule is made long enough for one."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be above 0 and at most 1, not {strength}")
    length = max(1, steps)
    while int(length * strength) < 1:
        length += 1
    return length


def fitted_picture(picture: Image.Image, width: int, height: int) -> Image.Image:
    """The picture as RGB at exactly the request's size (the front end chose the size
    from the picture's shape, in multiples of 8, so this only rounds)."""
    rgb = picture.convert("RGB")
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.LANCZOS)
    return rgb


def extended_canvas(
    picture: Image.Image, width: int, height: int, box: tuple[int, int, int, int]
) -> tuple[Image.Image, Image.Image]:
    """The picture at `box` (left, top, width, height) on a `width` x `height` canvas, and
    the mask of the rest. The new area starts from the picture stretched and blurred, so
    its colours carry on from the edges; the mask is white there, black on the picture."""
    left, top, inner_width, inner_height = box
    placed = picture.convert("RGB").resize((inner_width, inner_height), Image.Resampling.LANCZOS)
    canvas = placed.resize((width, height), Image.Resampling.BILINEAR)
    canvas = canvas.filter(ImageFilter.GaussianBlur(max(width, height) / 16))
    canvas.paste(placed, (left, top))
    mask = Image.new("L", (width, height), 255)
    mask.paste(0, (left, top, left + inner_width, top + inner_height))
    return canvas, mask


def box_mask(width: int, height: int, box: tuple[int, int, int, int]) -> Image.Image:
    """A mask that is white in `box` (left, top, width, height) and black elsewhere."""
    left, top, box_width, box_height = box
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (left, top, left + box_width, top + box_height))
    return mask


def mask_from_png(mask: Image.Image, width: int, height: int) -> Image.Image:
    """A member's mask image at the request's size, as pure black and white (white: drawn
    anew), whatever its mode: a grey or coloured pixel counts as white from half way."""
    grey = mask.convert("L").resize((width, height), Image.Resampling.NEAREST)
    return grey.point(lambda level: 255 if level >= 128 else 0)


def job_picture_and_mask(
    job: GenerateJob, picture: Image.Image | None, mask: Image.Image | None
) -> tuple[Image.Image | None, Image.Image | None]:
    """The picture a job starts from and its mask, from what the job says: extended onto
    a larger canvas (`keep_box`), a box to repaint, or a member's mask image."""
    if picture is None:
        return None, None
    if job.keep_box is not None:
        return extended_canvas(picture, job.width, job.height, job.keep_box)
    if job.repaint_box is not None:
        return picture, box_mask(job.width, job.height, job.repaint_box)
    if mask is not None:
        return picture, mask_from_png(mask, job.width, job.height)
    return picture, None


class ImageModes:
    """The pipelines other than text-to-image, made from the base pipeline's parts."""

    def __init__(
        self,
        pipeline: AnyPipeline,
        controlnets: Mapping[str, str] | None = None,
        depth_estimator: str = "",
    ) -> None:
        self.base = pipeline
        # Follow a sketch: the ControlNet of each kind the operator configured.
        self.sketches = SketchPipelines(pipeline, controlnets or {}, depth_estimator)
        self._image_to_image: Any = None
        self._inpainting: Any = None

    def image_to_image(self) -> Any:
        if self._image_to_image is None:
            self._image_to_image = pipeline_from(AutoPipelineForImage2Image, self.base)
        return self._image_to_image

    def inpainting(self) -> Any:
        if self._inpainting is None:
            self._inpainting = pipeline_from(AutoPipelineForInpainting, self.base)
        return self._inpainting

    @staticmethod
    def keep_unmasked(
        requests: Sequence[GenerationRequest], images: Sequence[Image.Image]
    ) -> list[Image.Image]:
        """Extend and repaint keep what the mask keeps, pixel for pixel: the VAE's round
        trip would otherwise soften the kept part too."""
        kept: list[Image.Image] = []
        rows = [request for request in requests for _ in range(request.count)]
        for request, image in zip(rows, images, strict=True):
            if request.mask_image is None or request.init_image is None:
                kept.append(image)
                continue
            original = fitted_picture(request.init_image, image.width, image.height)
            mask = mask_from_png(request.mask_image, image.width, image.height)
            kept.append(Image.composite(image.convert("RGB"), original, mask))
        return kept

    def call_for(
        self, requests: Sequence[GenerationRequest], kwargs: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """The pipeline (for a sketch, what calls it, `SketchPipelines.run`) and its
        arguments for one call of compatible requests: `kwargs` (a text-to-image call's)
        as they are, or turned into an image-to-image call when the requests start from
        pictures."""
        first = requests[0]
        if first.init_image is None:
            return self.base, kwargs
        rows = [request for request in requests for _ in range(request.count)]
        pictures = [
            fitted_picture(request.init_image, request.width, request.height)
            for request in rows
            if request.init_image is not None
        ]
        if first.follow is not None:
            return self._sketch_call(first.follow, first.strength, pictures, kwargs)
        if first.mask_image is not None:
            pipe = self.inpainting()
            # The inpainting call takes the size; its noise comes from the picture too.
            call = {key: value for key, value in kwargs.items() if key != "latents"}
            call["mask_image"] = [
                mask_from_png(request.mask_image, request.width, request.height)
                for request in rows
                if request.mask_image is not None
            ]
        else:
            pipe = self.image_to_image()
            takes = _parameters(pipe)
            call = {
                key: value
                for key, value in kwargs.items()
                if key not in _TEXT_ONLY or (key in _SIZE and key in takes)
            }
        call["image"] = pictures
        call["strength"] = first.strength
        call["num_inference_steps"] = steps_for_strength(first.steps, first.strength)
        if "guidance_rescale" not in _parameters(pipe):
            call.pop("guidance_rescale", None)
        return pipe, call

    def _sketch_call(
        self, kind: str, weight: float, pictures: list[Image.Image], kwargs: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """A text-to-image call (its size and noise as they are) guided by the pictures'
        control images, `weight` being the ControlNet's conditioning scale."""
        pipe = self.sketches.pipeline(kind)
        call = dict(kwargs)
        call.update(self.sketches.control_arguments(kind, pictures))
        call["controlnet_conditioning_scale"] = weight
        if "guidance_rescale" not in _parameters(pipe):
            call.pop("guidance_rescale", None)
        return partial(self.sketches.run, pipe), call


def _parameters(pipe: Any) -> frozenset[str]:
    return frozenset(inspect.signature(pipe.__call__).parameters)
