"""The picture a member gets when their style is ready: how the loss went, and the
previews over the run, drawn with Pillow (no plotting library on the worker).

Top: the training loss at every step (faint) and its running mean (dark), the
held-out images' loss with the style (blue dots) and with the base model (grey
dots). Below: the previews in step order, each labelled with its step.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from stylebot.engine.training_previews import TrainingPreviews
from stylebot.queue.payloads import TrainingPreview, ValidationPoint

if TYPE_CHECKING:
    from stylebot.engine.runtime import FinishedImage

log = logging.getLogger(__name__)

WIDTH = 512
CHART_HEIGHT = 200
MARGIN = 36
THUMB = 120
LABEL = 14
BACKGROUND = (255, 255, 255)
AXES = (90, 90, 90)
RAW_LOSS = (225, 190, 170)
MEAN_LOSS = (200, 80, 30)
WITH_STYLE = (30, 90, 200)
BASE_MODEL = (150, 150, 150)
# Steps in the running mean of the training loss: noisy per step, a trend over ~20.
MEAN_OVER = 20


def running_mean(values: Sequence[float], window: int = MEAN_OVER) -> list[float]:
    """The mean of each value with up to `window - 1` before it."""
    means, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        means.append(total / min(index + 1, window))
    return means


def training_report_png(
    losses: Sequence[tuple[int, float]],
    validation: Sequence[ValidationPoint],
    previews: Sequence[tuple[int, bytes]],
) -> bytes:
    """The report as PNG bytes: `losses` (step, loss) of the steps run, the
    validation curve, and (step, PNG) previews; any of them may be empty."""
    columns = max(1, (WIDTH - MARGIN) // (THUMB + 8))
    rows = math.ceil(len(previews) / columns)
    height = CHART_HEIGHT + MARGIN + rows * (THUMB + LABEL + 8)
    picture = Image.new("RGB", (WIDTH, height), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    _draw_chart(draw, font, losses, validation)
    for index, (step, png) in enumerate(sorted(previews)):
        column, row = index % columns, index // columns
        left = MARGIN // 2 + column * (THUMB + 8)
        top = CHART_HEIGHT + MARGIN + row * (THUMB + LABEL + 8)
        with Image.open(io.BytesIO(png)) as preview:
            thumb = preview.convert("RGB")
            thumb.thumbnail((THUMB, THUMB))
        picture.paste(thumb, (left, top))
        draw.text((left, top + THUMB + 1), f"step {step}", fill=AXES, font=font)
    out = io.BytesIO()
    picture.save(out, "PNG", optimize=True)
    return out.getvalue()


def _draw_chart(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    losses: Sequence[tuple[int, float]],
    validation: Sequence[ValidationPoint],
) -> None:
    left, top, right, bottom = MARGIN, 16, WIDTH - 12, CHART_HEIGHT
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=AXES)
    values = [loss for _, loss in losses] + [v for p in validation for v in (p.loss, p.base_loss)]
    steps = [step for step, _ in losses] + [p.step for p in validation]
    finite = [v for v in values if math.isfinite(v)]
    if not finite or not steps:
        draw.text((left + 8, top + 8), "no loss recorded", fill=AXES, font=font)
        return
    low, high = min(finite), max(finite)
    span = high - low or 1.0
    first, last = min(steps), max(steps)
    step_span = last - first or 1

    def point(step: int, value: float) -> tuple[float, float]:
        x = left + (step - first) / step_span * (right - left)
        y = bottom - (value - low) / span * (bottom - top)
        return x, y

    draw.text((2, top - 12), f"{high:.3f}", fill=AXES, font=font)
    draw.text((2, bottom - 10), f"{low:.3f}", fill=AXES, font=font)
    draw.text((left, bottom + 4), f"step {first}", fill=AXES, font=font)
    draw.text((right - 60, bottom + 4), f"step {last}", fill=AXES, font=font)
    legend = "loss, its mean; held out: with style (blue), base model (grey)"
    draw.text((left + 6, 2), legend, fill=AXES, font=font)
    if len(losses) > 1:
        draw.line([point(s, v) for s, v in losses], fill=RAW_LOSS, width=1)
        means = running_mean([v for _, v in losses])
        draw.line(
            [point(s, m) for (s, _), m in zip(losses, means, strict=True)], fill=MEAN_LOSS, width=2
        )
    for p in validation:
        for value, colour in ((p.base_loss, BASE_MODEL), (p.loss, WITH_STYLE)):
            x, y = point(p.step, value)
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)


class RunRecorder:
    """What a run showed as it went (each step's loss, the previews), for its report."""

    def __init__(self) -> None:
        self.losses: list[tuple[int, float]] = []
        self.previews: list[tuple[int, bytes]] = []

    def on_progress(
        self, passed_on: Callable[[int, int, float], None] | None
    ) -> Callable[[int, int, float], None]:
        def progress(step: int, total: int, loss: float) -> None:
            self.losses.append((step, loss))
            if passed_on is not None:
                passed_on(step, total, loss)

        return progress

    def previews_to(self, previews: TrainingPreviews | None) -> TrainingPreviews | None:
        if previews is None:
            return None
        deliver = previews.deliver

        def kept(step: int, preview: TrainingPreview, image: FinishedImage) -> None:
            self.previews.append((step, image.png))
            deliver(step, preview, image)

        return TrainingPreviews(previews.job_id, kept)

    def report_png(self, validation: Sequence[ValidationPoint]) -> bytes | None:
        """The picture, or None (logged) if it could not be drawn: it is a courtesy."""
        try:
            return training_report_png(self.losses, validation, self.previews)
        except Exception:
            log.exception("the training report picture could not be drawn")
            return None
