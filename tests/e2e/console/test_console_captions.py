"""Captions in the console as a person types them: `caption:` on /upload, /captions to
read and change them, consent asked again after a change, and the trained style's export
saying what each image was captioned (the captions reached the trainer). A separate
process with the embedded Redis, SQLite and a local worker on the tiny model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.e2e.console.test_console import env, run_stylebot

from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.names import trigger_phrase
from stylebot.engine.lora_files import read_safetensors_metadata

pytestmark = pytest.mark.slow
__all__ = ["env"]  # the fixture, shared with the console's other tests


def test_captions_are_typed_listed_changed_consented_and_trained_on(
    tmp_path: Path, env: dict[str, str]
) -> None:
    samples = make_sample_images(tmp_path / "refs", 3)
    script = "\n".join(
        [
            f"/upload {samples[0]} {samples[1]} caption:neon city,  night",
            f"/upload {samples[2]}",
            "/captions",
            "/consent own-work",
            "/captions 3 a quiet harbour, fog",
            "/captions 1 -",
            "/train ink",
            "/consent own-work",
            "/train ink",
            "/captions ink",
            "/style export ink",
            "/quit",
        ]
    )
    result = run_stylebot(["console"], {**env, "STYLEBOT_TRAIN_SHUFFLE_TAGS": "true"}, script)
    out = result.stdout
    # The first /train is refused (captions changed after consent): exit status 1.
    assert result.returncode == 1, out + result.stderr
    listed = out[out.index("Captions of your 3 waiting image(s):") :]
    assert "1. sample-1.png: neon city, night" in listed
    assert "3. sample-3.png: (none: the trigger alone)" in listed
    assert "Change one with /captions NUMBER CAPTION" in listed
    assert "! The captions changed since you confirmed" in out
    assert "Style ink is ready" in out
    trained_on = out[out.index("Captions ink trained on:") :]
    assert "1. sample-1.png: (none: the trigger alone)" in trained_on
    assert "3. sample-3.png: a quiet harbour, fog" in trained_on

    [export] = re.findall(r"saved (\S+\.safetensors)", out)
    meta = read_safetensors_metadata(Path(export).read_bytes())
    [(folder, tags)] = json.loads(meta["ss_tag_frequency"]).items()
    trigger = trigger_phrase("ink")
    assert folder.endswith(f"_{trigger}")
    assert tags == {trigger: 3, "neon city": 1, "night": 1, "a quiet harbour": 1, "fog": 1}
    assert meta["ss_shuffle_caption"] == "True"
