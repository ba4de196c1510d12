"""The captioner engine on tiny random Florence-2 and BLIP checkpoints built offline:
which family a folder holds, a caption per image, the same captions every time. The
words are noise; what is checked is the wiring."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from tests.support.tiny_captioners import write_tiny_blip, write_tiny_florence2
from tests.support.tiny_clip import write_tiny_clip

from stylebot.engine.captioner import (
    CAPTION_BATCH,
    Captioner,
    CaptionerSlot,
    CaptioningStopped,
    NoCaptioner,
    UnknownCaptioner,
    captioner_family,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WRITERS: dict[str, Callable[[Path], Path]] = {
    "florence2": write_tiny_florence2,
    "blip": write_tiny_blip,
}


def _images(count: int) -> list[Image.Image]:
    """Of different sizes, greyscale and colour: the processor resizes, the engine
    converts to RGB."""
    return [
        Image.new("L" if i % 2 else "RGB", (20 + 7 * i, 30 + 3 * i), (40 * i) % 256)
        if i % 2
        else Image.new("RGB", (20 + 7 * i, 30 + 3 * i), (200, (30 * i) % 256, 10))
        for i in range(count)
    ]


@pytest.mark.parametrize("family", sorted(WRITERS))
def test_a_caption_per_image_in_order_and_the_same_every_time(family: str, tmp_path: Path) -> None:
    folder = WRITERS[family](tmp_path / family)
    assert captioner_family(str(folder)) == family
    captioner = Captioner(str(folder))
    # More images than one batch: the batches join in order.
    images = _images(CAPTION_BATCH + 2)
    captions = captioner.caption(images)
    assert len(captions) == len(images)
    assert all(isinstance(caption, str) for caption in captions)
    assert captions[-2:] == captioner.caption(images[-2:])
    # A second load of the same folder writes the same words.
    assert Captioner(str(folder)).caption(images) == captions


def test_captioning_stops_between_batches_when_asked(tmp_path: Path) -> None:
    captioner = Captioner(str(write_tiny_blip(tmp_path / "blip")))
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 1  # the second batch does not start

    with pytest.raises(CaptioningStopped):
        captioner.caption(_images(CAPTION_BATCH + 1), should_stop=stop)
    assert len(asked) == 2


def test_a_model_that_is_no_captioner_is_refused_by_name(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    clip = write_tiny_clip(tmp_path / "clip", tiny_model_dir / "tokenizer")
    with pytest.raises(UnknownCaptioner, match="'clip'"):
        captioner_family(str(clip))


def test_the_slot_loads_once_and_says_when_none_is_configured(tmp_path: Path) -> None:
    with pytest.raises(NoCaptioner):
        CaptionerSlot("").get(torch.device("cpu"), torch.float32)
    slot = CaptionerSlot(str(write_tiny_florence2(tmp_path / "florence2")))
    first = slot.get(torch.device("cpu"), torch.float32)
    assert slot.get(torch.device("cpu"), torch.float32) is first
    assert first.family == "florence2"
