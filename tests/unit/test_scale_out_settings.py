"""The two settings scale-out added: the checkpoint interval and the Bot API server URL.

Both are exercised end to end in tests/integration/ops/test_scale_out.py; here, how
they are read and what a bad value does.
"""

from __future__ import annotations

import pytest

from stylebot.config import load_settings
from stylebot.setting_rules import SettingsError


def test_the_checkpoint_interval_goes_into_every_training_job() -> None:
    settings = load_settings(environ={"STYLEBOT_CHECKPOINT_EVERY_STEPS": "25"})
    assert settings.train_settings().checkpoint_every_steps == 25
    assert load_settings(environ={}).train_settings().checkpoint_every_steps == 50


def test_a_checkpoint_interval_below_one_means_every_step() -> None:
    # A worker divides by it: 0 must not reach one.
    settings = load_settings(environ={"STYLEBOT_CHECKPOINT_EVERY_STEPS": "0"})
    assert settings.train_settings().checkpoint_every_steps == 1


def test_a_checkpoint_interval_that_is_not_a_number_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="STYLEBOT_CHECKPOINT_EVERY_STEPS"):
        load_settings(environ={"STYLEBOT_CHECKPOINT_EVERY_STEPS": "often"})


def test_the_telegram_api_url_is_unset_unless_configured() -> None:
    assert load_settings(environ={}).telegram_api_url is None
    settings = load_settings(environ={"STYLEBOT_TELEGRAM_API_URL": "http://localhost:8081"})
    assert settings.telegram_api_url == "http://localhost:8081"
