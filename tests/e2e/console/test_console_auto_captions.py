"""Auto-captioning in the console as a person types it, on a tiny random Florence-2
captioner: /captions auto queues a job the local worker runs, the suggestions are listed,
/captions accept makes them captions, and the style trains on them (its consent covers
them). A separate process with the embedded Redis, SQLite and a local worker."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.e2e.console.test_console import env, run_stylebot
from tests.support.tiny_captioners import write_tiny_florence2

from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.captions import captions_digest
from stylebot.bot.core.model import Upload

pytestmark = pytest.mark.slow
__all__ = ["env"]  # the fixture, shared with the console's other tests

_SUGGESTED = re.compile(r"^(\d+)\. (\S+): .* · suggested: “(.*)”$", re.MULTILINE)


def test_suggested_captions_are_accepted_and_trained_on(
    tmp_path: Path, env: dict[str, str]
) -> None:
    samples = make_sample_images(tmp_path / "refs", 2)
    captioner = write_tiny_florence2(tmp_path / "florence2")
    script = "\n".join(
        [
            f"/upload {samples[0]} {samples[1]}",
            "/consent own-work",
            "/captions auto",
            "/captions accept",
            "/train ink",
            "/consent own-work",
            "/train ink",
            "/captions ink",
            "/quit",
        ]
    )
    result = run_stylebot(["console"], {**env, "STYLEBOT_CAPTIONER": str(captioner)}, script)
    out = result.stdout
    # The first /train is refused (the accepted captions changed what was consented to).
    assert result.returncode == 1, out + result.stderr
    assert "Writing captions for your 2 waiting image(s)" in out
    suggested = {number: text for number, _, text in _SUGGESTED.findall(out)}
    assert set(suggested) == {"1", "2"}, out
    assert "Suggested captions for 2 of your waiting image(s): /captions shows them" in out, out
    assert "Suggestions are not used until you accept them: /captions accept" in out
    assert "\u27e6" not in out  # every command named is spelled as the console types it
    assert "2 suggestion(s) accepted" in out
    assert "! The captions changed since you confirmed" in out
    assert "Style ink is ready" in out
    trained_on = out[out.index("Captions ink trained on:") :]
    for number, text in suggested.items():
        assert f"{number}. sample-{number}.png: {text}" in trained_on

    # The consent the style trained under covers exactly the accepted captions.
    with sqlite3.connect(Path(env["STYLEBOT_DATA_DIR"]) / "stylebot.sqlite3") as db:
        rows = db.execute(
            "SELECT u.blob_key, u.caption, c.captions_sha256 FROM uploads u"
            " JOIN styles s ON u.style_id = s.id JOIN consents c ON s.consent_id = c.id"
        ).fetchall()
    uploads = [
        Upload(i, 1, key, f"{i}.png", 64, 64, datetime.now(UTC), caption=caption)
        for i, (key, caption, _) in enumerate(rows)
    ]
    assert sorted(caption for _, caption, _ in rows) == sorted(suggested.values())
    assert {digest for *_, digest in rows} == {captions_digest(uploads)}
