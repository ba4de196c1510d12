"""Training settings chosen from the number of images a style is trained on.

The front end chooses them when it queues the job and keeps them in the
style's record; the worker just follows the job. What the numbers rest on:

- steps: about 100 per training image, the rule of thumb of kohya sd-scripts'
  LoRA guides (images × repeats × epochs ≈ 100 × images) and of diffusers'
  DreamBooth-LoRA examples (5 images, 500 steps); at least 300, so one or two
  images still get a few hundred updates, and at most 2,000, past which a
  style LoRA mostly overfits.
- rank: 8 below 10 images, 16 from 10 on (kohya's style presets use 8-32;
  more images carry more to learn).
- learning rate: 1e-4, the default of diffusers' train_text_to_image_lora.py
  and kohya's usual `unet_lr` for LoRA with AdamW.
- repeats: so that the run is about 10 epochs (kohya's "10 repeats × 10
  epochs" for small sets): an epoch shows each image `repeats` times.
- held-out images: one, two from 8 images on, none for a single image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from stylebot.queue.payloads import TrainSettings

# The settings an operator may fix in config; the others follow the image count.
CHOSEN_FROM_IMAGES = ("steps", "rank", "learning_rate")
STEPS_PER_IMAGE = 100
MIN_STEPS = 300
MAX_STEPS = 2000
TARGET_EPOCHS = 10


def holdout_count(image_count: int) -> int:
    """Images kept out of training for validation: one, two from 8 images on."""
    if image_count >= 8:
        return 2
    return 1 if image_count >= 2 else 0


def default_steps(training_images: int) -> int:
    return min(MAX_STEPS, max(MIN_STEPS, STEPS_PER_IMAGE * training_images))


def default_rank(training_images: int) -> int:
    return 8 if training_images < 10 else 16


def default_learning_rate(training_images: int) -> float:
    return 1e-4


def default_repeats(training_images: int, steps: int, batch_size: int) -> int:
    return max(1, round(steps * batch_size / (TARGET_EPOCHS * training_images)))


def choose_train_settings(
    image_count: int, base: TrainSettings, chosen: Collection[str] = CHOSEN_FROM_IMAGES
) -> TrainSettings:
    """`base` with the held-out count and repeats set from `image_count`, and
    each of `chosen` (names in CHOSEN_FROM_IMAGES) from it too; the other
    fields stay as `base` has them, which is how an operator's value wins."""
    if image_count < 1:
        raise ValueError(f"training needs at least one image, got {image_count}")
    unknown = set(chosen) - set(CHOSEN_FROM_IMAGES)
    if unknown:
        raise ValueError(f"cannot choose {sorted(unknown)} from the number of images")
    holdout = holdout_count(image_count)
    training_images = image_count - holdout
    steps = default_steps(training_images) if "steps" in chosen else base.steps
    return dataclasses.replace(
        base,
        holdout_images=holdout,
        steps=steps,
        rank=default_rank(training_images) if "rank" in chosen else base.rank,
        learning_rate=(
            default_learning_rate(training_images)
            if "learning_rate" in chosen
            else base.learning_rate
        ),
        repeats=default_repeats(training_images, steps, base.batch_size),
    )
