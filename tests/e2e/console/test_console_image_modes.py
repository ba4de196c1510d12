"""/extend, /repaint and /sketch on the console, as a person runs it: separate processes,
the tiny model (and tiny ControlNet), a real worker. Measured on the pixels: the extended
picture is kept and the new area drawn; the repainted region is drawn and the rest kept;
a sketch (on SD 1.5, FLUX.1 and SD 3.5) is watermarked, names its ControlNet and /verify
names the picture it followed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.e2e.console.test_console import env, run_stylebot
from tests.support.tiny_styles import difference_from, striped_png

from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.extend import extend_geometry
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.restyle import region_box, restyle_size
from stylebot.provenance.metadata import read_png_metadata

__all__ = ["env"]

pytestmark = pytest.mark.slow

# The console's settings (tests.e2e.console.test_console.env): pictures at 256 px a side.
POLICY = Policy(default_size=256)
TRAIN = "/upload {0} {1}\n/consent own-work\n/train ink\n"


def _saved(out: str) -> list[Path]:
    """The images the session saved, after the training's report picture."""
    report, *made = (Path(found) for found in re.findall(r"saved (\S+\.png)", out))
    assert report.name == "stylebot-training-ink.png"
    return made


def test_extend_keeps_the_picture_and_repaint_keeps_all_but_the_region(
    tmp_path: Path, env: dict[str, str]
) -> None:
    samples = make_sample_images(tmp_path / "refs", 2)
    picture = striped_png(320, 320)
    mine = tmp_path / "garden.png"
    mine.write_bytes(picture)
    script = TRAIN.format(*samples) + "\n".join(
        [
            f"/extend {mine} style:ink zoom:2 confirm:yes a garden",
            f"/repaint {mine} style:ink region:25,25,50,50 confirm:yes a red door",
            "/quit",
        ]
    )
    ran = run_stylebot(["console"], env, script)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    extended_path, repainted_path = _saved(ran.stdout)
    size = restyle_size(320, 320, POLICY)

    geometry = extend_geometry(*size, "zoom2", POLICY)
    assert not isinstance(geometry, str)
    width, height, (left, top, inner_w, inner_h) = geometry
    with Image.open(extended_path) as extended:
        assert extended.size == (width, height)
        made = np.asarray(extended.convert("RGB")).astype(np.int16)
    kept = np.asarray(
        Image.open(mine).convert("RGB").resize((inner_w, inner_h), Image.Resampling.LANCZOS)
    ).astype(np.int16)
    inside = np.zeros((height, width), dtype=bool)
    inside[top : top + inner_h, left : left + inner_w] = True
    # The picture is kept but for the watermark's faint changes; the new area is drawn.
    kept_difference = np.abs(made[inside].reshape(kept.shape) - kept).max(axis=2)
    assert float(kept_difference.mean()) < 6
    stretched = np.asarray(
        Image.open(mine).convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    ).astype(np.int16)
    drawn = np.abs(made - stretched).max(axis=2)[~inside]
    assert float((drawn > 24).mean()) > 0.5

    difference = difference_from(picture, repainted_path.read_bytes())
    assert difference.shape == (size[1], size[0])
    box_left, box_top, box_w, box_h = region_box((25, 25, 50, 50), *size)
    region = np.zeros(difference.shape, dtype=bool)
    region[box_top : box_top + box_h, box_left : box_left + box_w] = True
    assert float(difference[~region].mean()) < 6
    assert float((difference[~region] > 24).mean()) < 0.001
    assert float((difference[region] > 24).mean()) > 0.5


# Each family's tiny model and tiny ControlNet (session fixtures, tests/conftest.py).
SKETCH_FAMILIES = {
    "sd15": ("tiny_model_dir", "tiny_controlnet_dir"),
    "flux": ("tiny_flux_model_dir", "tiny_flux_controlnet_dir"),
    "sd3": ("tiny_sd3_model_dir", "tiny_sd3_controlnet_dir"),
}


@pytest.mark.parametrize("family", sorted(SKETCH_FAMILIES))
def test_sketch_follows_a_pictures_edges_and_verify_names_it(
    tmp_path: Path, env: dict[str, str], family: str, request: pytest.FixtureRequest
) -> None:
    model_fixture, controlnet_fixture = SKETCH_FAMILIES[family]
    env = {**env, "STYLEBOT_BASE_MODEL": str(request.getfixturevalue(model_fixture))}
    tiny_controlnet_dir: Path = request.getfixturevalue(controlnet_fixture)
    samples = make_sample_images(tmp_path / "refs", 2)
    mine = tmp_path / "drawing.png"
    mine.write_bytes(striped_png(320, 192))
    line = f"/sketch {mine} style:ink confirm:yes a castle on a hill"

    off = run_stylebot(["console"], env, TRAIN.format(*samples) + line + "\n/quit\n")
    assert off.returncode == 1, off.stdout + off.stderr  # the refused line
    assert "Following a sketch is not set up on this bot" in off.stdout

    on = {**env, "STYLEBOT_CONTROLNET_EDGES": str(tiny_controlnet_dir)}
    ran = run_stylebot(["console"], on, line + "\n/quit\n")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Sketching a castle on a hill, following the edges of your picture" in ran.stdout
    assert "saved" in ran.stdout, ran.stdout + ran.stderr
    [sketched] = [Path(p) for p in re.findall(r"saved (\S+\.png)", ran.stdout)]
    with Image.open(sketched) as image:
        assert image.size == restyle_size(320, 192, POLICY)
    parameters = read_png_metadata(sketched.read_bytes())["parameters"]
    assert f'ControlNet 0: "Module: canny, Model: {tiny_controlnet_dir.name}, Weight: 1"' in (
        parameters
    )
    assert "Denoising strength" not in parameters

    verified = run_stylebot(["verify", str(sketched)], on)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "style: ink" in verified.stdout  # its watermark leads to its record
    assert "made from: a picture its maker sent" in verified.stdout
    assert "its edges followed, weight 1" in verified.stdout
    # The signed manifest names the ControlNet too.
    assert f"followed by the ControlNet 'Module: canny, Model: {tiny_controlnet_dir.name}" in (
        verified.stdout
    )
