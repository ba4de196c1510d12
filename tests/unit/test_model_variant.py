"""Few-step (turbo) base models: their generation defaults come from the settings."""

from __future__ import annotations

import pytest

from stylebot.bootstrap import policy_from
from stylebot.config import is_few_step_model, load_settings
from stylebot.setting_rules import SettingsError


def test_a_model_named_turbo_gets_guidance_zero_and_one_to_four_steps() -> None:
    settings = load_settings(environ={"STYLEBOT_BASE_MODEL": "stabilityai/sdxl-turbo"})
    assert settings.few_step_model
    assert (settings.default_steps, settings.max_steps, settings.default_guidance) == (1, 4, 0.0)
    # The bot core's limits follow: it refuses more steps than the model can use.
    policy = policy_from(settings)
    assert (policy.default_steps, policy.max_steps, policy.default_guidance) == (1, 4, 0.0)


def test_standard_models_keep_the_configured_defaults() -> None:
    settings = load_settings(
        environ={"STYLEBOT_BASE_MODEL": "/models/sd15", "STYLEBOT_MAX_STEPS": "50"}
    )
    assert not settings.few_step_model
    assert (settings.default_steps, settings.max_steps, settings.default_guidance) == (25, 50, 7.5)


def test_the_variant_setting_overrides_the_name() -> None:
    turbo = load_settings(
        environ={"STYLEBOT_BASE_MODEL": "/models/my-distilled", "STYLEBOT_MODEL_VARIANT": "turbo"}
    )
    assert turbo.few_step_model
    assert turbo.max_steps == 4
    standard = load_settings(
        environ={"STYLEBOT_BASE_MODEL": "/models/sd-turbo", "STYLEBOT_MODEL_VARIANT": "standard"}
    )
    assert not standard.few_step_model
    assert standard.max_steps == 60


def test_configured_steps_are_capped_for_a_turbo_model() -> None:
    # As a copied .env.example sets them: 25 steps, guidance 7.5.
    settings = load_settings(
        environ={
            "STYLEBOT_BASE_MODEL": "/models/sd-turbo/",
            "STYLEBOT_DEFAULT_STEPS": "25",
            "STYLEBOT_MAX_STEPS": "60",
            "STYLEBOT_DEFAULT_GUIDANCE": "7.5",
        }
    )
    assert (settings.default_steps, settings.max_steps, settings.default_guidance) == (4, 4, 0.0)
    two = load_settings(
        environ={"STYLEBOT_BASE_MODEL": "/models/sd-turbo", "STYLEBOT_DEFAULT_STEPS": "2"}
    )
    assert two.default_steps == 2


def test_only_the_models_own_name_counts() -> None:
    assert is_few_step_model("stabilityai/sd-turbo")
    assert is_few_step_model("C:\\models\\SDXL-Turbo.safetensors")
    assert not is_few_step_model("/home/turbo/models/sd15")
    assert not is_few_step_model("stabilityai/sd-turbo", "standard")
    assert is_few_step_model("/models/sd15", "turbo")


def test_an_unknown_variant_is_refused_naming_the_setting() -> None:
    with pytest.raises(SettingsError, match=r"STYLEBOT_MODEL_VARIANT=fast: must be one of auto"):
        load_settings(environ={"STYLEBOT_MODEL_VARIANT": "fast"})


def test_an_unknown_base_model_family_is_refused_naming_the_setting() -> None:
    with pytest.raises(SettingsError, match=r"STYLEBOT_BASE_MODEL_FAMILY=sd4: must be one of auto"):
        load_settings(environ={"STYLEBOT_BASE_MODEL_FAMILY": "sd4"})
    assert load_settings(environ={"STYLEBOT_BASE_MODEL_FAMILY": "sdxl"}).base_model_family == "sdxl"
