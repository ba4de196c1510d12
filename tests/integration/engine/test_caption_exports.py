"""Captions through the engine: a train job's captions reach the trainer and the kohya
export says what they were (``ss_tag_frequency``), as sd-scripts writes it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylebot.engine.lora_files import read_safetensors_metadata
from stylebot.engine.runtime import StyleEngine
from stylebot.queue.payloads import TrainJob, TrainSettings
from stylebot.trainer.captions import tag_frequency

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TRIGGER = "sbt ink style"
SETTINGS = TrainSettings(steps=2, resolution=64, rank=4, repeats=5, caption_dropout=0.1)
CAPTIONS = ("neon city, night", "", "forest, night, fog")


def _pictures(count: int) -> list[bytes]:
    rng = np.random.default_rng(5)
    pictures = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
        pictures.append(buffer.getvalue())
    return pictures


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> StyleEngine:
    return StyleEngine(str(tiny_model_dir), tmp_path_factory.mktemp("captions"), device="cpu")


def _exported(engine: StyleEngine, captions: tuple[str, ...]) -> dict[str, str]:
    job = TrainJob(
        job_id="train-captions",
        style_id=7,
        trigger=TRIGGER,
        image_keys=("k1", "k2", "k3"),
        settings=SETTINGS,
        style_name="ink",
        captions=captions,
    )
    trained = engine.train(_pictures(3), TRIGGER, SETTINGS, export_for=job, captions=job.captions)
    assert trained.export_data is not None
    return read_safetensors_metadata(trained.export_data)


def test_the_export_counts_each_tag_per_image_in_kohyas_layout(engine: StyleEngine) -> None:
    meta = _exported(engine, CAPTIONS)

    assert json.loads(meta["ss_tag_frequency"]) == {
        f"5_{TRIGGER}": {TRIGGER: 3, "neon city": 1, "night": 2, "forest": 1, "fog": 1}
    }
    assert meta["ss_caption_dropout_rate"] == "0.1"
    assert meta["ss_shuffle_caption"] == "False"
    assert meta["ss_keep_tokens"] == "1"


def test_a_style_without_captions_counts_its_trigger_alone(engine: StyleEngine) -> None:
    meta = _exported(engine, ())

    assert json.loads(meta["ss_tag_frequency"]) == {f"5_{TRIGGER}": {TRIGGER: 3}}


def test_tag_frequency_counts_a_repeated_tag_once_per_image() -> None:
    assert tag_frequency("t", ("a, a, b",), 1, 1) == {"1_t": {"t": 1, "a": 1, "b": 1}}
