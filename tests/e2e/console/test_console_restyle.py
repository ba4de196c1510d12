"""/restyle on the console, as a person runs it: separate processes, the tiny model, a
real worker. A picture of one's own needs the member's confirmation (recorded in the
ledger); a stylebot output does not, and the restyle's /verify names what it came from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from tests.e2e.console.test_console import env, run_stylebot

from stylebot.bot.console.session import make_sample_images
from stylebot.provenance.metadata import read_png_metadata

__all__ = ["env"]

pytestmark = pytest.mark.slow


def _landscape(path: Path) -> Path:
    """A 320x192 picture of one's own (not made by stylebot)."""
    picture = Image.new("RGB", (320, 192), (20, 140, 90))
    for x in range(0, 320, 40):
        picture.paste((240, 220, 40), (x, 0, x + 20, 192))
    picture.save(path)
    return path


def test_restyle_a_picture_then_a_result_and_verify_names_the_source(
    tmp_path: Path, env: dict[str, str]
) -> None:
    samples = make_sample_images(tmp_path / "refs", 2)
    mine = _landscape(tmp_path / "garden.png")
    script = "\n".join(
        [
            f"/upload {samples[0]} {samples[1]}",
            "/consent own-work",
            "/train ink",
            f"/restyle {mine} style:ink",
            f"/restyle {mine} style:ink strength:0.5 confirm:yes a garden",
            "/quit",
        ]
    )
    first = run_stylebot(["console"], env, script)
    out = first.stdout
    # The unconfirmed line is refused (exit status 1); the rest ran.
    assert first.returncode == 1, out + first.stderr
    assert "“garden.png” is not a stylebot image of yours" in out
    assert "/restyle style:NAME confirm:yes" in out
    assert "Restyling your picture (strength 0.5)" in out
    # The training's report picture, then the restyled image.
    report, restyled_path = re.findall(r"saved (\S+\.png)", out)
    assert Path(report).name == "stylebot-training-ink.png"
    saved = Path(restyled_path)
    data = saved.read_bytes()
    with Image.open(saved) as restyled:
        # The picture's shape at the default size (256): 256x152 stretched to min_size.
        assert restyled.size[0] > restyled.size[1]
    parameters = read_png_metadata(data)["parameters"]
    assert "Denoising strength: 0.5" in parameters

    verified = run_stylebot(["verify", str(saved)], env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "style: ink" in verified.stdout
    assert "made from: a picture its maker sent" in verified.stdout
    assert "denoising strength 0.5" in verified.stdout

    # A stylebot output needs no confirmation, and is named as the source.
    again = run_stylebot(["console"], env, f"/restyle {saved} style:ink\n/quit\n")
    assert again.returncode == 0, again.stdout + again.stderr
    [second] = [Path(p) for p in re.findall(r"saved (\S+\.png)", again.stdout)]
    output_id = re.search(r"stylebot-([0-9a-f]{12})", saved.name)
    verified = run_stylebot(["verify", str(second)], env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert output_id is not None
    assert f"made from: stylebot output {output_id.group(1)}" in verified.stdout

    # consent, training, and the one confirmation of the picture of one's own.
    ledger = run_stylebot(["consent", "verify"], env)
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr
    assert "3 entries, intact" in ledger.stdout
