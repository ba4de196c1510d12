"""deploy/.env.example documents every setting, and only real ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from stylebot.config import ENV_PREFIX, UNPREFIXED_ENV, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / ".env.example"


def example_variables() -> dict[str, str]:
    pairs = {}
    for line in EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def test_every_setting_is_in_the_example_and_it_loads() -> None:
    names = example_variables()
    for field in dataclasses.fields(Settings):
        if field.name == "extra":
            continue
        plain = field.name.upper()
        assert ENV_PREFIX + plain in names or (field.name in UNPREFIXED_ENV and plain in names), (
            f"{field.name} is missing from {EXAMPLE}"
        )
    settings = load_settings(environ=names)
    assert settings.train_steps == Settings().train_steps
    assert settings.max_upload_bytes == Settings().max_upload_bytes
