"""A handful of the hostile corpus through the real console, in a separate process.

The console reads the files from disk and goes through the real SQLite repository and
blob directory; each bad input is answered, the process carries on to the end of the
script, and only the one good image is stored.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.unit.safety.hostile_corpus import HOSTILE_FILES, PNG
from tests.unit.safety.reservations import DMI, jpeg_with_xmp, xmp_with_data_mining

pytestmark = pytest.mark.slow

CHOSEN = [
    "png-header-only",
    "zlib-bomb-8000x8000",
    "animated-webp-named-jpg",
    "svg-with-xxe-named-png",
    "pdf-named-jpg",
    "png-named-html",
]


def test_the_console_answers_hostile_files_and_commands_and_stores_nothing_of_them(
    tmp_path: Path,
) -> None:
    corpus = {case.id: case for case in HOSTILE_FILES}
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    lines: list[str] = []
    expected: list[str] = []
    for case_id in CHOSEN:
        case = corpus[case_id]
        folder = inputs / case_id  # one folder each: several cases share a file name
        folder.mkdir()
        path = folder / case.filename
        path.write_bytes(case.make())
        lines.append(f"/upload '{path}'")
        expected.extend(case.words)
    reserved = inputs / "reserved.jpg"
    reserved.write_bytes(jpeg_with_xmp(xmp_with_data_mining(DMI + "DMI-PROHIBITED")))
    lines.append(f"/upload '{reserved}'")
    expected.append("can't be used to train a style")
    lines.append("/train ../../etc/passwd")
    expected.append("not a valid style name")
    lines.append("/imagine " + "a" * 5000)
    expected.append("limited to")
    good = inputs / "good.png"
    good.write_bytes(PNG)
    lines += [f"/upload '{good}'", "/quit"]

    env = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    env.pop("REDIS_URL", None)
    env["STYLEBOT_DATA_DIR"] = str(tmp_path / "data")
    run = subprocess.run(
        [sys.executable, "-m", "stylebot", "console", "--no-worker"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    # A script in which some line failed exits 1, after running every line.
    assert run.returncode == 1, run.stdout + run.stderr
    for words in expected:
        assert words in run.stdout, words
    assert "Received 1 image(s)" in run.stdout  # the good one, after all the bad ones
    blobs = [p for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1
    assert "Traceback" not in run.stdout + run.stderr
