"""Aspect-ratio buckets: train each image near its own shape instead of a centre square.

As in kohya's sd-scripts (`BucketManager`, `--enable_bucket`): the buckets are
the sizes of about `resolution²` pixels whose sides are multiples of a step;
each image goes to the bucket whose aspect ratio is closest to its own, is
scaled to cover it and loses only the overhang, centred. A batch never mixes
buckets, so every tensor in it has one shape.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

# Wider or taller than 2:1 gets cropped to 2:1 (kohya's default max_bucket_reso
# of 1024 at 512 px is the same limit).
MAX_ASPECT = 2.0
Size = tuple[int, int]  # (width, height) in pixels


def bucket_step(resolution: int) -> int:
    """Sides are multiples of 64 (kohya's default `bucket_reso_steps`); of 8 below 256 px,
    where 64 px steps would leave one square bucket. 8 is the VAE's factor,
    the least any latent-diffusion model needs."""
    return 64 if resolution >= 256 else 8


def bucket_sizes(resolution: int, step: int | None = None) -> list[Size]:
    """Every bucket of at most `resolution²` pixels, as square as the step allows,
    up to `MAX_ASPECT`; always holds the square `resolution`-sized one when
    `resolution` is a multiple of the step."""
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    step = step or bucket_step(resolution)
    if resolution < step:
        raise ValueError(f"resolution {resolution} is below the bucket step {step}")
    area = resolution * resolution
    sizes: set[Size] = set()
    # Each landscape size (the tallest height that fits under the area), and
    # its portrait twin: the set is the same whichever way an image is turned.
    width = resolution // step * step
    while width <= resolution * MAX_ASPECT:
        height = min(width, (area // width) // step * step)
        if height >= step and width / height <= MAX_ASPECT:
            sizes.add((width, height))
            sizes.add((height, width))
        width += step
    return sorted(sizes)


def nearest_bucket(size: Size, buckets: Sequence[Size]) -> Size:
    """The bucket whose aspect ratio is closest to `size`'s (in log scale, so 1:2
    and 2:1 are equally far from 1:1); of equal ones the largest."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {size}")
    aspect = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - aspect), -b[0] * b[1]))


@dataclass(frozen=True)
class BucketedImage:
    """An image fitted to its bucket, with what SDXL's size conditioning needs."""

    image: Image.Image
    bucket: Size
    # The upload's size and the crop's top-left corner in the scaled image, (x, y).
    original_size: Size
    crop_top_left: tuple[int, int]

    def size_conditioning(self) -> list[int]:
        """SDXL's "time ids": original height, width; crop top, left; target height, width."""
        (width, height), (left, top) = self.original_size, self.crop_top_left
        return [height, width, top, left, self.bucket[1], self.bucket[0]]


def fit_to_bucket(image: Image.Image, bucket: Size) -> BucketedImage:
    """Scale `image` (RGB) to cover `bucket`, then crop the overhang evenly from both sides."""
    width, height = image.size
    target_w, target_h = bucket
    scale = max(target_w / width, target_h / height)
    # Never a pixel short of the bucket after rounding.
    scaled = (max(target_w, round(width * scale)), max(target_h, round(height * scale)))
    resized = image.resize(scaled, Image.Resampling.LANCZOS) if scaled != image.size else image
    left = (scaled[0] - target_w) // 2
    top = (scaled[1] - target_h) // 2
    cropped = resized.crop((left, top, left + target_w, top + target_h))
    return BucketedImage(cropped, bucket, (width, height), (left, top))


def bucket_images(
    images: Sequence[Image.Image], resolution: int, min_step: int = 8
) -> list[BucketedImage]:
    """Each image fitted to its nearest bucket at `resolution`. `min_step`: the
    least side step the model takes (FLUX.1 and SD 3.5 see the latent in 2x2
    patches: 16 px)."""
    buckets = bucket_sizes(resolution, max(bucket_step(resolution), min_step))
    return [fit_to_bucket(image, nearest_bucket(image.size, buckets)) for image in images]


@dataclass(frozen=True)
class Sample:
    """One image of a batch: which one, and whether its mirror image is used."""

    index: int
    flipped: bool = False


def epoch_batches(
    buckets: Sequence[Size],
    *,
    repeats: int,
    batch_size: int,
    flip: bool,
    seed: int,
    epoch: int,
) -> list[tuple[Sample, ...]]:
    """The batches of one epoch: every image `repeats` times, batched within its bucket.

    The order depends only on (seed, epoch), so a run resumed at any step
    draws the batches the uninterrupted run draws without saving any state.
    A bucket's last batch may be short, as in kohya's trainer.
    """
    if repeats < 1 or batch_size < 1:
        raise ValueError(f"repeats and batch_size must be positive: {repeats}, {batch_size}")
    rng = random.Random(f"{seed}:{epoch}")
    by_bucket: dict[Size, list[Sample]] = {}
    for index, bucket in enumerate(buckets):
        for _ in range(repeats):
            sample = Sample(index, flipped=flip and rng.random() < 0.5)
            by_bucket.setdefault(bucket, []).append(sample)
    batches: list[tuple[Sample, ...]] = []
    for bucket in sorted(by_bucket):
        samples = by_bucket[bucket]
        rng.shuffle(samples)
        batches.extend(
            tuple(samples[i : i + batch_size]) for i in range(0, len(samples), batch_size)
        )
    rng.shuffle(batches)
    return batches


class BatchSchedule:
    """Step number → batch, over as many epochs as the run's steps need."""

    def __init__(
        self, buckets: Sequence[Size], *, repeats: int, batch_size: int, flip: bool, seed: int
    ) -> None:
        self._epoch_batches = functools.partial(
            epoch_batches,
            list(buckets),
            repeats=repeats,
            batch_size=batch_size,
            flip=flip,
            seed=seed,
        )
        self.batches_per_epoch = len(self._epoch_batches(epoch=0))
        self._epoch = -1
        self._batches: list[tuple[Sample, ...]] = []

    def batch(self, step: int) -> tuple[Sample, ...]:
        """The batch of 1-based `step`."""
        epoch, position = divmod(step - 1, self.batches_per_epoch)
        if epoch != self._epoch:
            self._batches = self._epoch_batches(epoch=epoch)
            self._epoch = epoch
        return self._batches[position]
