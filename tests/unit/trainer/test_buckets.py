"""Aspect-ratio buckets: sizes, the bucket an image gets, minimal crops, batches."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from stylebot.trainer.buckets import (
    MAX_ASPECT,
    BatchSchedule,
    Sample,
    bucket_images,
    bucket_sizes,
    bucket_step,
    epoch_batches,
    fit_to_bucket,
    nearest_bucket,
)


@pytest.mark.parametrize("resolution", [512, 768, 1024])
def test_buckets_hold_about_resolution_squared_pixels_in_steps_of_64(resolution: int) -> None:
    sizes = bucket_sizes(resolution)
    assert (resolution, resolution) in sizes
    for width, height in sizes:
        assert width % 64 == 0
        assert height % 64 == 0
        assert width * height <= resolution * resolution
        # As close to the area as a 64 px step allows.
        short, long = sorted((width, height))
        assert long * (short + 64) > resolution * resolution
        assert max(width, height) / min(width, height) <= MAX_ASPECT
    # Every landscape bucket has its portrait twin.
    assert {(h, w) for w, h in sizes} == set(sizes)


def test_small_resolutions_step_by_eight() -> None:
    assert bucket_step(512) == 64
    assert bucket_step(128) == 8
    sizes = bucket_sizes(64)
    assert (64, 64) in sizes
    assert all(w % 8 == 0 and h % 8 == 0 for w, h in sizes)
    assert len(sizes) > 1


def test_bad_resolutions_are_refused() -> None:
    with pytest.raises(ValueError, match="resolution"):
        bucket_sizes(0)
    with pytest.raises(ValueError, match="bucket step"):
        bucket_sizes(32, step=64)


def test_each_image_goes_to_the_bucket_nearest_its_aspect_ratio() -> None:
    sizes = bucket_sizes(512)
    assert nearest_bucket((1000, 1000), sizes) == (512, 512)
    wide = nearest_bucket((1920, 1080), sizes)
    tall = nearest_bucket((1080, 1920), sizes)
    assert wide == (tall[1], tall[0])
    assert wide[0] > wide[1]
    best = min(abs(math.log(w / h) - math.log(1920 / 1080)) for w, h in sizes)
    assert abs(math.log(wide[0] / wide[1]) - math.log(1920 / 1080)) == pytest.approx(best)
    # Beyond 2:1 the widest bucket there is.
    assert nearest_bucket((5000, 500), sizes) == max(sizes, key=lambda s: s[0] / s[1])
    with pytest.raises(ValueError, match="size"):
        nearest_bucket((0, 10), sizes)


def test_an_image_is_scaled_to_cover_its_bucket_and_loses_only_the_overhang() -> None:
    # 300x100 with a blue middle third: into a 2:1 bucket it keeps the red sides,
    # which a centre square crop would have cut away.
    image = Image.new("RGB", (300, 100), "red")
    image.paste(Image.new("RGB", (100, 100), "blue"), (100, 0))
    fitted = fit_to_bucket(image, (128, 64))
    assert fitted.image.size == (128, 64)
    assert fitted.original_size == (300, 100)
    # Scale 0.64 → 192x64, 64 px overhang, 32 each side.
    assert fitted.crop_top_left == (32, 0)
    pixels = np.asarray(fitted.image).astype(int)
    assert pixels[32, 2, 0] > 200
    assert pixels[32, 2, 2] < 60
    assert pixels[32, 64, 2] > 200  # blue in the middle
    assert fitted.size_conditioning() == [100, 300, 0, 32, 64, 128]


def test_bucket_images_keeps_the_shape_of_each_image() -> None:
    images = [Image.new("RGB", size) for size in [(640, 480), (480, 640), (500, 500)]]
    fitted = bucket_images(images, 64)
    assert [f.image.size for f in fitted] == [f.bucket for f in fitted]
    (w0, h0), (w1, h1), (w2, h2) = (f.bucket for f in fitted)
    assert w0 > h0
    assert w1 < h1
    assert w2 == h2


def test_an_epoch_shows_every_image_repeats_times_in_single_bucket_batches() -> None:
    buckets = [(64, 64), (64, 64), (64, 64), (80, 48), (80, 48)]
    batches = epoch_batches(buckets, repeats=3, batch_size=2, flip=False, seed=1, epoch=0)
    counts = Counter(sample.index for batch in batches for sample in batch)
    assert counts == {i: 3 for i in range(5)}
    for batch in batches:
        assert 1 <= len(batch) <= 2
        assert len({buckets[s.index] for s in batch}) == 1
        assert not any(s.flipped for s in batch)
    # 9 square samples -> 5 batches, 6 wide ones -> 3.
    assert len(batches) == 8


def test_epochs_are_shuffled_by_seed_and_epoch_and_flips_come_in_when_asked() -> None:
    buckets = [(64, 64)] * 6
    first = epoch_batches(buckets, repeats=4, batch_size=1, flip=True, seed=1, epoch=0)
    assert first == epoch_batches(buckets, repeats=4, batch_size=1, flip=True, seed=1, epoch=0)
    assert first != epoch_batches(buckets, repeats=4, batch_size=1, flip=True, seed=1, epoch=1)
    assert first != epoch_batches(buckets, repeats=4, batch_size=1, flip=True, seed=2, epoch=0)
    flips = [s.flipped for batch in first for s in batch]
    assert any(flips)
    assert not all(flips)
    with pytest.raises(ValueError, match="positive"):
        epoch_batches(buckets, repeats=0, batch_size=1, flip=False, seed=0, epoch=0)


def test_the_schedule_runs_epoch_after_epoch_and_any_step_can_be_looked_up() -> None:
    buckets = [(64, 64), (64, 64), (72, 56)]
    schedule = BatchSchedule(buckets, repeats=2, batch_size=1, flip=False, seed=5)
    assert schedule.batches_per_epoch == 6
    steps = [schedule.batch(step) for step in range(1, 19)]
    for epoch in range(3):
        chunk = steps[epoch * 6 : (epoch + 1) * 6]
        assert Counter(s[0].index for s in chunk) == {0: 2, 1: 2, 2: 2}
    # A resumed run (a fresh schedule) draws the same batch at any step.
    fresh = BatchSchedule(buckets, repeats=2, batch_size=1, flip=False, seed=5)
    assert fresh.batch(14) == steps[13]
    assert fresh.batch(2) == steps[1]
    assert all(isinstance(s, Sample) for batch in steps for s in batch)
