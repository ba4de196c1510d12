"""Reading the deploy files the way their tools read them (shared by the deploy tests)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from stylebot.config import ENV_PREFIX, UNPREFIXED_ENV, Settings
from stylebot.metrics import METRICS_HOST_SETTING, METRICS_PORT_SETTING

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_CPU = DEPLOY / "compose.cpu.yaml"
COMPOSE_S3 = DEPLOY / "compose.s3.yaml"


class ResetTag:
    """Compose's `!reset` tag: the override removes the value instead of merging."""


class ComposeLoader(yaml.SafeLoader):
    pass


ComposeLoader.add_constructor("!reset", lambda loader, node: ResetTag())


def load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as file:
        return yaml.load(file, Loader=ComposeLoader)


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of a second -f file: mappings merge key by key, `!reset` deletes,
    scalars and sequences from the override win (enough for the keys used here)."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            if isinstance(value, ResetTag):
                merged.pop(key, None)
            else:
                merged[key] = merge(base.get(key), value)
        return merged
    return override


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def setting_names() -> set[str]:
    """Every environment variable stylebot reads as a setting."""
    fields = {f.name for f in dataclasses.fields(Settings)} - {"extra"}
    # Read by stylebot.metrics until they become Settings fields.
    fields |= {METRICS_PORT_SETTING, METRICS_HOST_SETTING}
    names = {ENV_PREFIX + name.upper() for name in fields}
    names |= {name.upper() for name in UNPREFIXED_ENV}
    return names
