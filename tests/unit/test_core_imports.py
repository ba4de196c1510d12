"""The bot core's boundary (docs/architecture.md): no module of `stylebot.bot.core`
imports a platform, queue or database library, or torch. Checked in a fresh process, so
nothing another test imported can hide an import."""

from __future__ import annotations

import json
import subprocess
import sys

# What only adapters may import (and torch, which only workers load).
KEPT_OUT = ("discord", "telegram", "arq", "redis", "aiosqlite", "torch", "diffusers")

PROBE = """
import importlib, json, pkgutil, sys
import stylebot.bot.core as core
names = [m.name for m in pkgutil.walk_packages(core.__path__, core.__name__ + ".")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def test_the_core_imports_no_adapter_library() -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    found = json.loads(run.stdout)
    assert "stylebot.bot.core.service" in found["modules"]  # the walk saw the core
    leaked = sorted(set(KEPT_OUT) & set(found["loaded"]))
    assert not leaked, f"importing stylebot.bot.core loads {', '.join(leaked)}"
