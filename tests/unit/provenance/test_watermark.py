"""The invisible watermark: survives PNG and JPEG re-encoding, stays invisible, and
unmarked images never read as marked."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from PIL import Image
from tests.support.watermark_images import (
    illustration,
    psnr,
    reencode,
    scene,
    subject_on_background,
    telegram_photo,
    unmarked_images,
)

from stylebot.provenance.watermark import (
    embed_watermark,
    inspect_watermark,
    new_output_id,
    read_watermark,
)

# --- test images ----------------------------------------------------------------------


# --- embedding and reading ------------------------------------------------------------


@pytest.mark.parametrize("size", [(256, 256), (512, 512), (768, 512), (1024, 1024)])
def test_mark_survives_png_and_jpeg_q90(size: tuple[int, int]) -> None:
    original = scene(*size, seed=size[0] + size[1])
    output_id = new_output_id()
    marked = embed_watermark(original, output_id)
    assert marked.size == original.size
    assert read_watermark(reencode(marked, "PNG")) == output_id
    assert read_watermark(reencode(marked, "JPEG", quality=90)) == output_id
    assert psnr(original, marked) > 35.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mark_survives_jpeg_q75_at_512(seed: int) -> None:
    output_id = new_output_id()
    marked = embed_watermark(scene(512, 512, seed), output_id)
    assert read_watermark(reencode(marked, "JPEG", quality=75)) == output_id


@pytest.mark.parametrize("background", ["white", "black"])
def test_mark_survives_on_plain_backgrounds(background: str) -> None:
    # Saturated pixels cannot move the blue channel past 0/255; the embedder shifts their
    # brightness instead. Without that, most blocks of these images would vote wrongly.
    original = subject_on_background(background, seed=9)
    output_id = new_output_id()
    marked = embed_watermark(original, output_id)
    assert read_watermark(reencode(marked, "JPEG", quality=90)) == output_id
    assert psnr(original, marked) > 35.0


def test_mark_is_invisible() -> None:
    original = scene(512, 512, seed=5)
    marked = embed_watermark(original, new_output_id())
    difference = np.abs(np.asarray(original, dtype=int) - np.asarray(marked, dtype=int))
    assert psnr(original, marked) > 38.0  # measured ~42 dB
    assert difference.max() <= 16  # no wrapped-around specks (imwatermark's raw encoder: 255)


def test_unmarked_images_read_as_none() -> None:
    false_positives = [
        name
        for name, image in unmarked_images()
        for candidate in (image, reencode(image, "JPEG", quality=90))
        if read_watermark(candidate) is not None
    ]
    assert false_positives == []


def test_edited_image_never_reads_as_another_id() -> None:
    output_id = new_output_id()
    marked = embed_watermark(scene(512, 512, seed=11), output_id)
    edits = [
        marked.resize((460, 460)),
        marked.crop((13, 7, 500, 505)),
        reencode(marked, "JPEG", quality=20),
        marked.rotate(3),
    ]
    for edited in edits:
        assert read_watermark(edited) in (None, output_id)


def test_different_ids_read_back_distinctly() -> None:
    base = scene(512, 512, seed=12)
    first, second = new_output_id(), new_output_id()
    assert read_watermark(embed_watermark(base, first)) == first
    assert read_watermark(embed_watermark(base, second)) == second


def test_alpha_is_kept() -> None:
    rgba = scene(300, 300, seed=13).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((300, 300)))
    output_id = new_output_id()
    marked = embed_watermark(rgba, output_id)
    assert marked.mode == "RGBA"
    assert (np.asarray(marked.getchannel("A")) == np.asarray(rgba.getchannel("A"))).all()
    assert read_watermark(marked) == output_id


def test_small_images_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="256x256"):
        embed_watermark(scene(256, 255, seed=1), new_output_id())
    assert read_watermark(scene(200, 200, seed=1)) is None


@pytest.mark.parametrize("bad_id", ["", "abc", "ABCDEF012345", "0123456789abc", "0123456789ag"])
def test_malformed_ids_are_refused(bad_id: str) -> None:
    with pytest.raises(ValueError, match="12 lowercase hex"):
        embed_watermark(scene(256, 256, seed=1), bad_id)


def test_new_output_id_is_48_bit_lowercase_hex() -> None:
    ids = {new_output_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 12 and int(i, 16) >= 0 and i == i.lower() for i in ids)


# --- robustness: the edits the issue names ---------------------------------------------


def half_and_back(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.resize((w // 2, h // 2), Image.Resampling.BICUBIC).resize(
        (w, h), Image.Resampling.BICUBIC
    )


ROBUSTNESS_IMAGES = [
    ("scene", lambda: scene(512, 512, seed=31)),
    ("scene-1024", lambda: scene(1024, 1024, seed=32)),
    ("illustration", lambda: illustration(33)),
    ("subject-on-white", lambda: subject_on_background("white", seed=34)),
    ("subject-on-black", lambda: subject_on_background("black", seed=35)),
]
EDITS = [
    ("jpeg-q60", lambda i: reencode(i, "JPEG", quality=60)),
    ("half-and-back", half_and_back),
    ("telegram", telegram_photo),
]


@pytest.mark.parametrize(("kind", "make"), ROBUSTNESS_IMAGES, ids=[k for k, _ in ROBUSTNESS_IMAGES])
def test_mark_survives_jpeg_q60_half_size_and_back_and_telegram(kind: str, make) -> None:  # type: ignore[no-untyped-def]
    output_id = new_output_id()
    marked = embed_watermark(make(), output_id)
    failed = [name for name, edit in EDITS if read_watermark(edit(marked)) != output_id]
    assert failed == []


def test_reed_solomon_repairs_wrong_bytes_and_the_crc_rejects_the_rest() -> None:
    from stylebot.provenance.watermark import _decode, code_bits

    output_id = "0123456789ab"
    soft = np.where(np.array(code_bits(output_id)) == 1, -0.5, 0.5)
    # Four whole bytes wrong: within the Reed-Solomon radius (8 parity bytes).
    damaged = soft.copy()
    damaged[0:8] *= -1
    damaged[40:48] *= -1
    damaged[80:88] *= -1
    damaged[120:128] *= -1
    reading = _decode(damaged, 0.5)
    assert reading is not None
    assert reading.output_id == output_id
    assert reading.corrected == 4
    # Six wrong bytes, but the weakest votes point at them: repaired as erasures.
    weak = soft.copy()
    for byte in (1, 3, 5, 7, 9, 11):
        weak[byte * 8 : byte * 8 + 8] *= -0.1
    repaired = _decode(weak, 0.4)
    assert repaired is not None
    assert repaired.output_id == output_id
    # Nine wrong bytes with confident votes: beyond repair, and never another id.
    hopeless = soft.copy()
    hopeless[: 9 * 8] *= -1
    assert _decode(hopeless, 0.5) is None


def test_scattered_wrong_bits_of_the_current_mark_are_repaired() -> None:
    # A damaged copy of a tiled mark loses scattered bits (each bit's blocks lie all over
    # the picture): 10 of 128 bits wrong, in 10 different bytes, one byte per 16 bits.
    from stylebot.provenance.watermark import _decode, code_bits

    output_id = "0123456789ab"
    soft = np.where(np.array(code_bits(output_id, 4)) == 1, -0.5, 0.5)
    soft[np.arange(10) * 13 + 3] *= -1
    reading = _decode(soft, 0.5, 4)
    assert reading is not None
    assert (reading.output_id, reading.corrected, reading.version) == (output_id, 10, 4)
    # Eleven wrong bits: refused, never another id.
    soft[127] *= -1
    assert _decode(soft, 0.5, 4) is None


def test_the_current_mark_is_the_bch_one() -> None:
    marked = embed_watermark(Image.effect_noise((256, 256), 40).convert("RGB"), "0123456789ab")
    reading = inspect_watermark(marked)
    assert reading is not None
    assert (reading.output_id, reading.version) == ("0123456789ab", 4)


def test_flat_and_constant_votes_never_decode() -> None:
    from stylebot.provenance.watermark import CODE_BITS, _decode

    for value in (1.0, -1.0):
        for version in (2, 3, 4):
            assert _decode(np.full(CODE_BITS, value), 1.0, version) is None


def test_a_reading_reports_strength_and_repairs() -> None:
    output_id = new_output_id()
    marked = embed_watermark(scene(512, 512, seed=41), output_id)
    pristine = inspect_watermark(marked)
    assert pristine is not None
    assert pristine.corrected == 0
    assert pristine.strength > 0.8
    compressed = inspect_watermark(reencode(marked, "JPEG", quality=60))
    assert compressed is not None
    assert compressed.output_id == output_id
    assert compressed.strength < pristine.strength


# --- imports --------------------------------------------------------------------------


def test_provenance_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from PIL import Image\n"
        "from stylebot.provenance.watermark import embed_watermark, read_watermark\n"
        "img = Image.effect_noise((256, 256), 40).convert('RGB')\n"
        "assert read_watermark(embed_watermark(img, '0123456789ab')) == '0123456789ab'\n"
        "print('torch' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


def test_a_huge_picture_is_reduced_before_the_mark_is_read() -> None:
    # The reader's float planes cost ~40 bytes a pixel: ~1 GB for 24 megapixels read
    # as they are. Python's tracer sees numpy's memory (not Pillow's).
    huge = Image.linear_gradient("L").resize((6000, 4000)).convert("RGB")
    tracemalloc.start()
    try:
        assert read_watermark(huge) is None
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 150 * 1024 * 1024, f"peak {peak / 2**20:.0f} MB"


def test_an_output_enlarged_by_a_whole_factor_reads_after_the_reduction() -> None:
    output_id = new_output_id()
    marked = embed_watermark(scene(1280, 1280, seed=4), output_id)
    enlarged = marked.resize((2560, 2560), Image.Resampling.NEAREST)
    assert read_watermark(enlarged) == output_id
