"""The training report picture: the loss chart above, the previews in a grid below."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from stylebot.engine.training_report import (
    CHART_HEIGHT,
    MARGIN,
    MEAN_LOSS,
    THUMB,
    WIDTH,
    WITH_STYLE,
    running_mean,
    training_report_png,
)
from stylebot.queue.payloads import ValidationPoint


def _solid(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (256, 256), colour).save(out, "PNG")
    return out.getvalue()


def test_the_running_mean_averages_a_window_behind_each_value() -> None:
    assert running_mean([1.0, 3.0, 5.0, 7.0], window=2) == [1.0, 2.0, 4.0, 6.0]
    assert running_mean([2.0, 4.0], window=20) == [2.0, 3.0]
    assert running_mean([]) == []


def test_the_picture_draws_the_curve_the_points_and_each_preview_in_step_order() -> None:
    losses = [(step, 1.0 / step) for step in range(1, 61)]
    curve = [ValidationPoint(30, 0.2, 0.5), ValidationPoint(60, 0.1, 0.5)]
    previews = [(40, _solid((0, 200, 0))), (20, _solid((200, 0, 0))), (60, _solid((0, 0, 200)))]
    picture = Image.open(io.BytesIO(training_report_png(losses, curve, previews))).convert("RGB")
    assert picture.width == WIDTH
    assert picture.height == CHART_HEIGHT + MARGIN + THUMB + 14 + 8  # one row of three

    chart = picture.crop((0, 0, WIDTH, CHART_HEIGHT + 1))
    colours = {colour for _, colour in chart.getcolors(maxcolors=WIDTH * CHART_HEIGHT)}
    assert MEAN_LOSS in colours
    assert WITH_STYLE in colours
    # Sorted by step: red (step 20), green (40), blue (60), left to right.
    centres = [
        picture.getpixel((MARGIN // 2 + i * (THUMB + 8) + THUMB // 2, CHART_HEIGHT + MARGIN + 40))
        for i in range(3)
    ]
    assert centres == [(200, 0, 0), (0, 200, 0), (0, 0, 200)]


@pytest.mark.parametrize(
    ("losses", "curve"),
    [([], []), ([(1, float("nan"))], []), ([(3, 0.5)], [])],
)
def test_a_run_with_little_to_show_still_gets_a_picture(
    losses: list[tuple[int, float]], curve: list[ValidationPoint]
) -> None:
    picture = Image.open(io.BytesIO(training_report_png(losses, curve, [])))
    assert picture.size == (WIDTH, CHART_HEIGHT + MARGIN)
