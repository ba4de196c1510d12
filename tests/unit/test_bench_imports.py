"""Every bench script still imports: a name a bench takes from `src/` that was renamed or
removed there stops it before it measures anything, and no other test runs the benches
(bench/resemblance_lookup.py imported a removed `fingerprint_bands` unnoticed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def test_every_bench_script_imports() -> None:
    names = sorted(path.stem for path in BENCH.glob("*.py"))
    assert "resemblance_lookup" in names
    # One process for all of them (each imports the heavy libraries once), importing as
    # the scripts are run: with bench/ on the path, their `__main__` blocks not run.
    program = (
        "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", program, *names],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
