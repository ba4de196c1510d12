"""Training settings chosen from a style's number of images, and operator overrides."""

from __future__ import annotations

import dataclasses

import pytest

from stylebot.bot.core.training_defaults import (
    MAX_STEPS,
    MIN_STEPS,
    TARGET_EPOCHS,
    choose_train_settings,
    holdout_count,
)
from stylebot.config import load_settings
from stylebot.queue.payloads import TrainSettings
from stylebot.setting_rules import SettingsError


def test_holdout_is_one_image_two_from_eight_none_for_one() -> None:
    assert [holdout_count(n) for n in (1, 2, 7, 8, 40)] == [0, 1, 1, 2, 2]


@pytest.mark.parametrize("images", [1, 2, 4, 8, 12, 40])
def test_steps_rank_and_rate_follow_the_number_of_training_images(images: int) -> None:
    chosen = choose_train_settings(images, TrainSettings(resolution=768, seed=3))
    training = images - holdout_count(images)
    assert chosen.holdout_images == holdout_count(images)
    assert chosen.steps == min(MAX_STEPS, max(MIN_STEPS, 100 * training))
    assert chosen.rank == (8 if training < 10 else 16)
    assert chosen.learning_rate == 1e-4
    # The rest stays as the operator set it.
    assert (chosen.resolution, chosen.seed) == (768, 3)
    # About TARGET_EPOCHS epochs of images x repeats.
    epochs = chosen.steps / (training * chosen.repeats)
    assert TARGET_EPOCHS / 2 <= epochs <= TARGET_EPOCHS * 2


def test_more_images_mean_more_steps_and_a_larger_rank() -> None:
    few, many = (
        choose_train_settings(3, TrainSettings()),
        choose_train_settings(30, TrainSettings()),
    )
    assert many.steps > few.steps
    assert many.rank > few.rank


def test_an_operator_value_wins_over_the_choice() -> None:
    base = TrainSettings(steps=77, rank=4, learning_rate=3e-4)
    chosen = choose_train_settings(12, base, chosen=("rank",))
    assert chosen.steps == 77
    assert chosen.learning_rate == 3e-4
    assert chosen.rank == 16
    assert chosen.holdout_images == 2
    nothing = choose_train_settings(12, base, chosen=())
    assert dataclasses.replace(nothing, holdout_images=0, repeats=1) == base


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        choose_train_settings(0, TrainSettings())
    with pytest.raises(ValueError, match="resolution"):
        choose_train_settings(3, TrainSettings(), chosen=("resolution",))


def test_config_leaves_unset_values_to_the_images_and_passes_the_rest() -> None:
    settings = load_settings(environ={"STYLEBOT_TRAIN_STEPS": "500"})
    assert settings.train_chosen_from_images == ("rank", "learning_rate")
    assert settings.train_settings().steps == 500
    settings = load_settings(
        environ={
            "STYLEBOT_LORA_RANK": "32",
            "STYLEBOT_LEARNING_RATE": "5e-5",
            "STYLEBOT_TRAIN_FLIP": "true",
            "STYLEBOT_TRAIN_NOISE_OFFSET": "0.05",
            "STYLEBOT_TRAIN_MIN_SNR_GAMMA": "0",
            "STYLEBOT_TRAIN_GRADIENT_CHECKPOINTING": "yes",
            "STYLEBOT_TRAIN_OPTIMIZER": "adamw",
            "STYLEBOT_TRAIN_MIXED_PRECISION": "no",
            "STYLEBOT_TRAIN_LORA_VARIANT": "dora",
            "STYLEBOT_TRAIN_LR_SCHEDULE": "constant",
            "STYLEBOT_TRAIN_LR_WARMUP": "0.1",
            "STYLEBOT_TRAIN_EMA_DECAY": "0.99",
        }
    )
    assert settings.train_chosen_from_images == ("steps",)
    train = settings.train_settings()
    assert (train.rank, train.learning_rate) == (32, 5e-5)
    assert train.flip
    assert train.gradient_checkpointing
    assert (train.noise_offset, train.min_snr_gamma) == (0.05, 0.0)
    assert (train.optimizer, train.mixed_precision) == ("adamw", "no")
    assert (train.lora_variant, train.lr_schedule, train.lr_warmup) == ("dora", "constant", 0.1)
    assert train.ema_decay == 0.99


@pytest.mark.parametrize(
    ("variable", "value"),
    [("STYLEBOT_TRAIN_OPTIMIZER", "sgd"), ("STYLEBOT_TRAIN_MIXED_PRECISION", "fp8")],
)
def test_config_refuses_an_unknown_optimiser_or_precision(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(environ={variable: value})
