"""Few-step (turbo) models are distilled without classifier-free guidance: a
request's guidance is clamped to 0 (with a log line, as its steps are capped),
and training previews on such a model use guidance 0."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.runtime import StyleEngine
from stylebot.engine.training_previews import PREVIEW_GUIDANCE
from stylebot.queue.payloads import TrainSettings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

REQUEST = GenerationRequest(prompt="a red house", seed=3, steps=2, width=64, height=64)


@pytest.fixture(scope="module")
def turbo(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> StyleEngine:
    return StyleEngine(
        str(tiny_model_dir), tmp_path_factory.mktemp("turbo"), device="cpu", few_step=True
    )


def test_a_turbo_model_samples_without_guidance_whatever_was_asked(
    turbo: StyleEngine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="stylebot.engine.generator"):
        asked = np.asarray(turbo.generator.generate(REQUEST)[0])  # guidance 7.5
    assert "guidance 7.5 requested, sampling with 0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stylebot.engine.generator"):
        unguided = np.asarray(turbo.generator.generate(replace(REQUEST, guidance=0.0))[0])
    assert "guidance" not in caplog.text
    assert np.array_equal(asked, unguided)
    assert turbo.generator.sampled_guidance(7.5) == 0.0
    # Requests clamped alike still share a call.
    batched = turbo.generator.generate_batch([REQUEST, REQUEST])
    assert len(batched) == 2


def test_a_standard_model_keeps_the_guidance_asked_for(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    standard = StyleEngine(str(tiny_model_dir), tmp_path / "standard", device="cpu")
    assert standard.generator.sampled_guidance(7.5) == 7.5


def test_training_previews_on_a_turbo_model_use_no_guidance(
    turbo: StyleEngine, tiny_model_dir: Path, tmp_path: Path
) -> None:
    settings = TrainSettings(steps=4, resolution=64, rank=4, seed=1)
    preview, image = turbo._render_preview("job-1", "sks", settings, step=2)
    assert preview.guidance == 0.0
    assert preview.steps <= 4
    assert image.png
    standard = StyleEngine(str(tiny_model_dir), tmp_path / "standard", device="cpu")
    preview, _ = standard._render_preview("job-2", "sks", settings, step=2)
    assert preview.guidance == PREVIEW_GUIDANCE
