"""Restyle, repaint and extend on each other base-model family the worker supports (SD 1.5
is tests/integration/engine/test_restyle.py): SD 2.x (v-prediction) and SDXL (two text
encoders, size conditioning) run their image pipelines from the loaded one's parts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tests.integration.engine.test_restyle import _stripes
from tests.support.tiny_styles import REQUEST, pixels

from stylebot.engine.generator import Generator
from stylebot.engine.image_modes import box_mask, extended_canvas
from stylebot.engine.models import load_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.mark.parametrize("model_dir", ["tiny_sd2_model_dir", "tiny_sdxl_model_dir"])
def test_each_family_restyles_repaints_and_extends(
    model_dir: str, request: pytest.FixtureRequest
) -> None:
    pipeline = load_pipeline(str(request.getfixturevalue(model_dir)), device="cpu")
    generator = Generator(pipeline)
    stripes = _stripes()
    base = replace(REQUEST, steps=2)

    [restyled] = generator.generate(replace(base, init_image=stripes, strength=0.5))
    assert restyled.size == stripes.size

    region = np.zeros((64, 64), dtype=bool)
    region[16:40, 16:48] = True
    repaint = replace(
        base, init_image=stripes, mask_image=box_mask(64, 64, (16, 16, 32, 24)), strength=1.0
    )
    [repainted] = generator.generate(repaint)
    assert np.array_equal(pixels(repainted)[~region], pixels(stripes)[~region])

    canvas, mask = extended_canvas(stripes, 128, 128, (32, 32, 64, 64))
    extend = replace(base, width=128, height=128, init_image=canvas, mask_image=mask, strength=1.0)
    [extended] = generator.generate(extend)
    assert extended.size == (128, 128)
    assert np.array_equal(pixels(extended)[32:96, 32:96], pixels(stripes))
    # Text-to-image still works on the same pipeline afterwards.
    [text] = generator.generate(base)
    assert text.size == (64, 64)
