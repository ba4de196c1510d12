"""Textual inversion's plain parts: prompts, captions, settings and payloads."""

from __future__ import annotations

import pytest

from stylebot.config import load_settings
from stylebot.queue.payloads import (
    GenerateJob,
    TrainJob,
    TrainResult,
    TrainSettings,
)
from stylebot.setting_rules import SettingsError
from stylebot.trainer.embeddings import style_caption


def test_the_caption_starts_with_the_token() -> None:
    assert style_caption("sbt ink", "<sb-3>") == "<sb-3> sbt ink"
    assert style_caption("sbt ink", None) == "sbt ink"
    assert style_caption("", "<sb-3>") == "<sb-3>"


def test_the_train_method_setting_reaches_the_training_settings() -> None:
    settings = load_settings(environ={"STYLEBOT_TRAIN_METHOD": "both"})
    assert settings.train_settings().method == "both"
    assert load_settings(environ={}).train_settings().method == "lora"


def test_an_unknown_train_method_is_refused_with_the_choices() -> None:
    with pytest.raises(SettingsError, match="textual_inversion"):
        load_settings(environ={"STYLEBOT_TRAIN_METHOD": "dreambooth"})


def test_payloads_carry_the_method_and_the_embedding_through_json() -> None:
    job = TrainJob(
        "t1", 3, "sbt ink", ("k",), TrainSettings(method="both", embedding_learning_rate=1e-3)
    )
    again = TrainJob.from_json(job.to_json())
    assert again.settings.method == "both"
    assert again.settings.embedding_learning_rate == 1e-3
    result = TrainResult("", 10, 0.1, 1.0, embedding_key="e" * 64)
    assert TrainResult.from_json(result.to_json()) == result
    generate = GenerateJob(
        "g1", "a house", "", 1, 4, 7.5, 64, 64, ("o1",), embedding_key="e", embedding_token="<sb-3>"
    )
    assert GenerateJob.from_json(generate.to_json()) == generate
    # Results from before textual inversion have no embedding.
    old = TrainResult.from_dict({"lora_key": "a", "steps": 1, "final_loss": 0.0, "seconds": 1.0})
    assert old.embedding_key is None
