"""`base_model_config`: the component configs a single-file base model loads with.

Without it diffusers maps every single-file SD 2.x checkpoint to the 768 px
v-prediction model; a 512 px epsilon SD 2.x file needs the base model's configs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.support.single_file import write_sd_single_file

from stylebot.config import load_settings
from stylebot.engine.runtime import StyleEngine

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _epsilon_copy(model_dir: Path, target: Path) -> Path:
    """The tiny SD 2.x folder with an epsilon scheduler, as SD 2.x base (512 px) has."""
    shutil.copytree(model_dir, target)
    config_file = target / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config["prediction_type"] = "epsilon"
    config_file.write_text(json.dumps(config))
    return target


def test_the_setting_is_read_from_the_environment_and_empty_by_default() -> None:
    assert load_settings(environ={}).base_model_config == ""
    environ = {"STYLEBOT_BASE_MODEL_CONFIG": "stabilityai/stable-diffusion-2-base"}
    assert load_settings(environ=environ).base_model_config == (
        "stabilityai/stable-diffusion-2-base"
    )


def test_a_single_file_sd2_model_takes_the_prediction_type_of_its_config(
    tiny_sd2_model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = write_sd_single_file(tiny_sd2_model_dir, tmp_path / "sd2-base.safetensors")
    epsilon = _epsilon_copy(tiny_sd2_model_dir, tmp_path / "sd2-base-configs")

    # As the worker builds its engine from the settings.
    settings = load_settings(
        environ={
            "STYLEBOT_BASE_MODEL": str(checkpoint),
            "STYLEBOT_BASE_MODEL_CONFIG": str(epsilon),
        }
    )
    engine = StyleEngine(
        settings.model,
        tmp_path / "cache",
        device="cpu",
        family=settings.base_model_family,
        config=settings.base_model_config or None,
    )
    assert engine.pipeline.scheduler.config.prediction_type == "epsilon"

    v_prediction = StyleEngine(
        str(checkpoint), tmp_path / "cache-v", device="cpu", config=str(tiny_sd2_model_dir)
    )
    assert v_prediction.pipeline.scheduler.config.prediction_type == "v_prediction"
