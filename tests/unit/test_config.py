"""Settings come from defaults, a TOML file, then the environment, in that order."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stylebot.bootstrap import policy_from
from stylebot.bot.core.policy import PolicySettings
from stylebot.config import ENV_PREFIX, POLICY_RULES, load_settings
from stylebot.setting_rules import SettingsError, Whole


def test_defaults_use_the_data_directory_and_the_tiny_model() -> None:
    settings = load_settings(environ={})
    assert settings.data_dir == Path("data")
    assert settings.redis_url is None
    assert settings.model == str(Path("data/models/tiny-sd"))
    assert settings.database_path == Path("data/stylebot.sqlite3")


def test_toml_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "stylebot.toml"
    config.write_text('data_dir = "/srv/sb"\ntrain_steps = 300\nmax_steps = 40\n')
    env = {"STYLEBOT_TRAIN_STEPS": "500", "REDIS_URL": "redis://h:6379/0"}
    settings = load_settings(config, environ=env, max_steps=None, default_steps=10)
    assert settings.data_dir == Path("/srv/sb")
    assert settings.train_steps == 500  # the environment beats the file
    assert settings.max_steps == 40
    assert settings.default_steps == 10
    assert settings.redis_url == "redis://h:6379/0"
    assert settings.train_settings().steps == 500


def test_the_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text('base_model = "org/model"\n')
    settings = load_settings(environ={"STYLEBOT_CONFIG": str(config)})
    assert settings.model == "org/model"


def test_a_bad_value_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="STYLEBOT_TRAIN_STEPS"):
        load_settings(environ={"STYLEBOT_TRAIN_STEPS": "many"})


def test_a_malformed_operators_list_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match=r"STYLEBOT_OPERATORS.*platform:user_id"):
        load_settings(environ={"STYLEBOT_OPERATORS": "discord:1, 123456789"})
    loaded = load_settings(environ={"STYLEBOT_OPERATORS": "discord:1; telegram:22"})
    assert loaded.operators == "discord:1; telegram:22"


def test_run_with_malformed_operators_exits_2_at_once(tmp_path: Path) -> None:
    """It used to print the error and then hang on an open database connection."""
    result = subprocess.run(
        [sys.executable, "-m", "stylebot", "--data-dir", str(tmp_path / "data"), "run"],
        env={**os.environ, "TELEGRAM_TOKEN": "123:abc", "STYLEBOT_OPERATORS": "123456789"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "STYLEBOT_OPERATORS" in result.stderr


def test_a_missing_or_broken_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("data_dir = [")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(broken, environ={})


def test_every_policy_knob_set_in_the_environment_reaches_the_core() -> None:
    """Each PolicySettings field is a setting, and policy_from hands its value to the core."""
    changed: dict[str, object] = {}
    for knob in dataclasses.fields(PolicySettings):
        default = getattr(PolicySettings(), knob.name)
        rule = POLICY_RULES[knob.name]
        if isinstance(default, tuple):
            changed[knob.name] = ("gore", "spam")
        elif isinstance(default, float):
            changed[knob.name] = default + 1.0
        else:  # a whole number: one step up keeps it within its rule
            changed[knob.name] = default + (rule.multiple_of if isinstance(rule, Whole) else 1)
    environ = {
        ENV_PREFIX + name.upper(): ",".join(value) if isinstance(value, tuple) else str(value)
        for name, value in changed.items()
    }
    policy = policy_from(load_settings(environ=environ))
    assert {name: getattr(policy, name) for name in changed} == changed
