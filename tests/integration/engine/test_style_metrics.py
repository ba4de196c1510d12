"""A finished style measured on the worker with a tiny random CLIPModel: the wiring
from training to the metrics (the numbers' meaning is tests/unit/trainer/test_clip_metrics)."""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import pytest
from tests.support.tiny_clip import write_tiny_clip
from tests.support.tiny_styles import STRONG, TRIGGER, reference_images

from stylebot.engine.runtime import StyleEngine
from stylebot.queue.payloads import StyleMetrics

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SETTINGS = dataclasses.replace(STRONG, steps=3, preview_every_steps=0)


def _pngs() -> list[bytes]:
    out = []
    for image in reference_images():
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> StyleEngine:
    clip = write_tiny_clip(tmp_path_factory.mktemp("clip"), tiny_model_dir / "tokenizer")
    return StyleEngine(
        str(tiny_model_dir), tmp_path_factory.mktemp("metrics"), device="cpu", clip_model=str(clip)
    )


def test_a_trained_style_comes_back_with_its_metrics_and_leaves_no_adapter(
    engine: StyleEngine,
) -> None:
    weights = engine.train(_pngs(), TRIGGER, SETTINGS)
    metrics = weights.metrics
    assert isinstance(metrics, StyleMetrics)
    assert metrics.samples == 4
    assert metrics.clip_model == engine.measurer.clip_model
    assert metrics.kid is not None  # two references
    values = [
        metrics.style_fidelity,
        metrics.styled_similarity,
        metrics.base_similarity,
        metrics.clip_score,
        metrics.base_clip_score,
        metrics.kid,
    ]
    assert all(math.isfinite(v) for v in values)
    assert metrics.style_fidelity == pytest.approx(
        metrics.styled_similarity - metrics.base_similarity
    )
    assert 0 <= metrics.clip_score <= 100
    # The style drew differently from the base model (the LoRA was on).
    assert metrics.styled_similarity != metrics.base_similarity
    # Measuring loaded the style for a moment only.
    assert engine.generator.adapters.loaded_adapters == ()
    # And the metrics travel through JSON to the front end.
    assert StyleMetrics.from_json(metrics.to_json()) == metrics


def test_a_style_with_a_trained_token_or_without_clip_gets_no_metrics(
    engine: StyleEngine, tiny_model_dir: Path, tmp_path: Path
) -> None:
    token = dataclasses.replace(SETTINGS, method="both")
    assert engine.train(_pngs(), TRIGGER, token).metrics is None
    plain = StyleEngine(str(tiny_model_dir), tmp_path, device="cpu")
    assert plain.train(_pngs(), TRIGGER, SETTINGS).metrics is None
