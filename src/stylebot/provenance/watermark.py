"""Invisible watermark that carries an output id, with error correction and a check.

The mark builds on the ``dwtDctSvd`` method of ``invisible-watermark`` (``imwatermark``):
the U (blue-difference) chroma plane is split by a Haar DWT, and in every 4x4 block of the
low band the largest singular value of the block's DCT is quantised so that its remainder
modulo ``_SCALE`` encodes one bit (a quarter of the step for 0, three quarters for 1).

Three versions, read in this order, with the same blocks and quantiser:

* version 2 (this module), every output until issue 14: the code bits repeat over all
  blocks in imwatermark's block order, so a crop or a rescale loses them;
* version 3 (``tiled_watermark.py``), outputs of 2026-12: bits and dithers tile the
  picture every 32x32 blocks, and the reader searches for crops and rescales;
* version 4, what :func:`embed_watermark` writes now: version 3's layout carrying a
  binary BCH codeword (``bch_code.py``) instead of the Reed-Solomon one below, which
  repairs 10 scattered wrong bits where Reed-Solomon repairs 4 wrong bytes (the tiled
  layout scatters a damaged copy's wrong bits; see ``bch_code.py``).

Each version has its own CRC prefix and whitening, so that none reads as another.

One change from imwatermark: each block's quantiser is shifted by a fixed pseudo-random
offset (subtractive dither). Without it, JPEG pulls flat regions (plain backgrounds,
illustrations) to the same few values, so their blocks all vote alike whatever bit they
carry, and on a mostly flat image that bias outvotes the textured blocks (at JPEG q60,
flat illustrations were read back 0 times in 12 at 512x512). With the dither such blocks
vote at random instead, which averages out, and the same images are read 12 times in 12.
The price is that the stock ``imwatermark`` decoder no longer reads the bits.

What is carried (128 bits):

1. the 48-bit output id and a CRC-16 (CRC-16/CCITT-FALSE over a stylebot-specific prefix
   and the id): 8 bytes;
2. versions 2 and 3: Reed-Solomon over GF(256) with 8 parity bytes (``reedsolo``): 16
   bytes, which corrects any 4 wrong bytes, or up to 8 bytes the reader marks as
   unreliable (erasures); version 4: the extended BCH(128, 64) code of ``bch_code.py``;
3. XOR with a fixed pseudo-random mask, so that a flat image (every block voting alike)
   reads as a random word, not as the all-zero codeword.

Reading is soft: each block gives ``sin(2*pi*remainder/scale)`` (+1 for a clean 0, -1 for
a clean 1, about 0 for a block the attack moved half a step), each code bit averages its
blocks, and the bytes with the weakest averages are the first offered to the Reed-Solomon
decoder as erasures (the BCH decoder takes the averages' signs). An id is returned only
if (for version 2, read where it was put) the votes are clearly not noise, the decoder
finds a codeword within its radius (RS:
at most 2 erasures + 3 errors, or 4 erasures + 2 errors, so at least 4 parity bytes
always remain as a check; BCH: 10 wrong bits of 128) *and* the CRC matches. For an
unmarked image each of those is a separate long shot, which is why false positives are
not seen in the benchmarks (``bench/watermark_false_claims.py``).

Why this module does not simply call ``imwatermark.WatermarkEncoder``:

* ``import imwatermark`` imports torch (its ``rivaGan`` module does so at import time), and
  the front end imports this module for ``verify``.
* ``EmbedDwtDctSvd.encode`` writes the float result back into a uint8 array without
  rounding or clipping, so values past 0 or 255 wrap around, and it passes the detail bands
  to ``idwt2`` as ``(v, h, d)`` instead of ``(h, v, d)``, which scrambles chroma detail.
* It runs one SVD per block in a Python loop (seconds for a 1024x1024 image). Here the
  blocks are stacked and decomposed in one batched ``numpy.linalg.svd`` call. The DCT
  step is left out on purpose: the 4x4 DCT is orthonormal, so ``dct(B)`` and ``B`` have
  the same singular values, and changing the largest one before or after the transform
  gives the same block.

Only the change of U is applied to the RGB pixels. Pixels that would clip get a
luminance shift (equal on R, G and B, which leaves U and V unchanged), so white and black
backgrounds carry the mark too.
"""

from __future__ import annotations

import binascii
import hashlib
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
import pywt
from PIL import Image
from reedsolo import ReedSolomonError, RSCodec

from stylebot.provenance import bch_code

#: imwatermark refuses images with fewer pixels than 256x256; so do we.
MIN_WATERMARK_PIXELS = 256 * 256
#: A larger picture is reduced by a whole factor before reading: the reader's float planes
#: cost ~40 bytes a pixel, and no output is this big unless someone enlarged it (by a
#: whole factor, the reduction gives the marked pixels back).
MAX_READ_SIDE = 2048

_ID_BYTES = 6  # 48 bits, 12 lowercase hex characters
_CRC_BYTES = 2
_PARITY_BYTES = 8
_MESSAGE_BYTES = _ID_BYTES + _CRC_BYTES
CODE_BITS = (_MESSAGE_BYTES + _PARITY_BYTES) * 8  # 128
_OUTPUT_ID_RE = re.compile(r"[0-9a-f]{12}")
# Mixed into the CRC so that another system's "48 bits + CRC-16" mark never reads as ours.
# Each version of the mark has its own prefix and whitening, so that a word read with one
# version's layout never decodes as the other's.
_CRC_PREFIX = {2: b"stylebot-wm2", 3: b"stylebot-wm3", 4: b"stylebot-wm4"}
_WHITENING = {
    version: np.frombuffer(hashlib.sha256(prefix + b" whitening").digest()[:16], np.uint8)
    for version, prefix in _CRC_PREFIX.items()
}
_RS = RSCodec(_PARITY_BYTES)
# Erasure counts tried after a plain decode fails, with the errors each still allows
# (2 * errors + erasures <= 8): never all 8 parity bytes, so a check always remains.
_ERASURE_TRIES = (2, 4)
# Quantisation step of the largest singular value. imwatermark's default is 36; 48 costs
# about 2 dB of PSNR (still >= 37 dB, changes on the blue-difference channel only) and is
# what lets 256x256 images (8 blocks per code bit) survive JPEG q60: 4 of 20 at 36, 20 of
# 20 at 48, in the benchmark's image mix.
_SCALE = 48
_BLOCK = 4
_U_CHANNEL = 1
# OpenCV's BGR2YUV: U = 0.492 (B - Y) + 128 with Y unchanged, so a change dU of U is
# dB = dU / 0.492 on blue and dG = -dB * 0.114 / 0.587 on green (red is untouched).
_DB_PER_DU = 1 / 0.492
_DG_PER_DU = -_DB_PER_DU * 0.114 / 0.587
# Mean |soft vote| over the 128 code bits: 1.0 for a pristine mark. Unmarked textured
# images measure about 0.56/sqrt(blocks per bit): 0.2 at 256x256, 0.1 at 512x512. Marked
# images measure well above this after JPEG q60 or a resize to half and back (see the
# benchmark). Below it the reader does not even try to decode.
_MIN_STRENGTH = 0.12


@dataclass(frozen=True)
class WatermarkReading:
    """What the reader found: the id, how clear the votes were, how much RS repaired."""

    output_id: str
    strength: float  # mean |soft vote|, 0 (noise) to 1 (pristine)
    # what the code repaired: bytes the Reed-Solomon decoder changed or filled in
    # (versions 2 and 3), or wrong bits (version 4)
    corrected: int
    version: int = 2  # 2: the block-order mark; 3 and 4: the tiled mark (tiled_watermark)
    scale: float = 1.0  # how much the picture was enlarged since it was marked (3 and 4)


def new_output_id() -> str:
    """A fresh output id: 48 random bits as 12 lowercase hex characters."""
    return secrets.token_hex(_ID_BYTES)


def embed_watermark(image: Image.Image, output_id: str) -> Image.Image:
    """Return a copy of ``image`` with ``output_id`` hidden in it.

    The result is RGB (RGBA if the input had alpha, which is carried over unchanged).
    Raises ``ValueError`` for a malformed id or an image smaller than 256x256 pixels.
    A region of one fully saturated colour (e.g. pure blue) cannot carry the mark; an
    image made only of such regions reads back as ``None``.
    """
    from stylebot.provenance.tiled_watermark import quantise_tiled  # builds on this module

    return _embed(image, output_id, 4, quantise_tiled)


def is_output_id(value: str) -> bool:
    """Whether ``value`` is an id a mark can carry: 12 lowercase hex characters."""
    return _OUTPUT_ID_RE.fullmatch(value) is not None


def _embed(
    image: Image.Image,
    output_id: str,
    version: int,
    quantise: Callable[[np.ndarray, np.ndarray], None],
) -> Image.Image:
    """Embed ``output_id``'s code bits of ``version`` by ``quantise(low band, bits)``."""
    if not isinstance(output_id, str) or not is_output_id(output_id):
        raise ValueError(f"output id must be 12 lowercase hex characters, got {output_id!r}")
    width, height = image.size
    if width * height < MIN_WATERMARK_PIXELS:
        raise ValueError(
            f"cannot watermark a {width}x{height} image: the watermark needs at least "
            f"{MIN_WATERMARK_PIXELS} pixels (256x256); generate larger images"
        )
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA", "PA") else None
    rgb = np.asarray(image.convert("RGB"))
    rows, cols = height // _BLOCK * _BLOCK, width // _BLOCK * _BLOCK

    u = _u_plane(rgb, rows, cols)
    low, details = pywt.dwt2(u, "haar")
    quantise(low, np.array(code_bits(output_id, version), dtype=np.float64))
    du = pywt.idwt2((low, details), "haar") - u
    marked = Image.fromarray(with_u_changed(rgb, du), "RGB")
    if alpha is not None:
        marked.putalpha(alpha)
    return marked


def with_u_changed(rgb: np.ndarray, du: np.ndarray) -> np.ndarray:
    """``rgb`` (uint8) with its U plane changed by ``du`` over ``du``'s area from the top
    left corner, as uint8."""
    rows, cols = du.shape
    out = rgb.astype(np.float64)
    out[:rows, :cols, 2] += _DB_PER_DU * du
    out[:rows, :cols, 1] += _DG_PER_DU * du
    # Where a channel now leaves [0, 255], shift all three channels by the smallest amount
    # that brings it back: that changes brightness a little but leaves U (the mark) and V
    # untouched. If the pixel's channel spread exceeds 255 no shift fits; clip instead.
    low_shift = -out.min(axis=2)
    high_shift = 255.0 - out.max(axis=2)
    shift = np.where(low_shift > high_shift, 0.0, np.clip(0.0, low_shift, high_shift))
    out += shift[..., None]
    changed: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return changed


def read_watermark(image: Image.Image) -> str | None:
    """The output id hidden in ``image``, or ``None`` if there is no readable stylebot mark.

    ``None`` covers unmarked images, marks destroyed by editing (rotating, cropping most
    of the picture away, very heavy compression, a rescale outside about 0.5x to 2x),
    pictures under 128x128 pixels, and version 2 marks that were cropped or rescaled.
    """
    reading = inspect_watermark(image)
    return reading.output_id if reading is not None else None


def inspect_watermark(image: Image.Image) -> WatermarkReading | None:
    """Like :func:`read_watermark`, with how clearly the mark was read.

    Tries the version 2 mark where it was put (cheap), then searches for the tiled
    marks (versions 4 and 3) over rescales and crops (:mod:`stylebot.provenance.tiled_watermark`).
    """
    from stylebot.provenance.tiled_watermark import MIN_READ_PIXELS, search_tiled

    width, height = image.size
    if width * height < MIN_READ_PIXELS:
        return None
    if max(width, height) > MAX_READ_SIDE:
        image = image.convert("RGB").reduce(math.ceil(max(width, height) / MAX_READ_SIDE))
    rgb = np.asarray(image.convert("RGB"))
    return _read_block_order(rgb) or search_tiled(rgb)


def _read_block_order(rgb: np.ndarray) -> WatermarkReading | None:
    """The version 2 mark: code bits in block order from the top left corner."""
    height, width = rgb.shape[:2]
    if width * height < MIN_WATERMARK_PIXELS:
        return None
    rows, cols = height // _BLOCK * _BLOCK, width // _BLOCK * _BLOCK
    low, _details = pywt.dwt2(_u_plane(rgb, rows, cols), "haar")
    soft = _soft_bits(low, CODE_BITS)
    strength = float(np.mean(np.abs(soft)))
    if strength < _MIN_STRENGTH:
        return None  # votes close to a coin toss: noise, not a mark
    return _decode(soft, strength)


def code_bits(output_id: str, version: int = 2) -> list[int]:
    """The 128 bits embedded for ``output_id``: id, CRC, the code's parity, whitened."""
    id_bytes = bytes.fromhex(output_id)
    message = id_bytes + _crc(id_bytes, version)
    if version == 4:
        codeword = np.packbits(bch_code.encode(message))
    else:
        codeword = np.frombuffer(bytes(_RS.encode(message)), np.uint8)
    return [int(bit) for bit in np.unpackbits(codeword ^ _WHITENING[version])]


def _decode(soft: np.ndarray, strength: float, version: int = 2) -> WatermarkReading | None:
    if version == 4:
        return _decode_bch(soft, strength)
    received = np.packbits(soft < 0) ^ _WHITENING[version]  # soft > 0 votes for 0
    # A byte is as reliable as its least certain bit.
    reliability = np.abs(soft).reshape(-1, 8).min(axis=1)
    weakest = [int(i) for i in np.argsort(reliability, kind="stable")]
    for erasures in (0, *_ERASURE_TRIES):
        try:
            message, codeword, _errata = _RS.decode(
                bytearray(received.tobytes()), erase_pos=weakest[:erasures] or None
            )
        except ReedSolomonError:
            continue
        id_bytes, crc = bytes(message[:_ID_BYTES]), bytes(message[_ID_BYTES:])
        if _crc(id_bytes, version) != crc:
            continue
        changed = int(np.count_nonzero(np.frombuffer(bytes(codeword), np.uint8) != received))
        return WatermarkReading(id_bytes.hex(), strength, changed, version)
    return None


def _decode_bch(soft: np.ndarray, strength: float) -> WatermarkReading | None:
    received = (soft < 0).astype(np.uint8) ^ np.unpackbits(_WHITENING[4])
    decoded = bch_code.decode(received)
    if decoded is None:
        return None
    message, wrong_bits = decoded
    id_bytes, crc = message[:_ID_BYTES], message[_ID_BYTES:]
    if _crc(id_bytes, 4) != crc:
        return None
    return WatermarkReading(id_bytes.hex(), strength, wrong_bits, 4)


def _crc(id_bytes: bytes, version: int) -> bytes:
    prefixed = _CRC_PREFIX[version] + id_bytes
    return binascii.crc_hqx(prefixed, 0xFFFF).to_bytes(_CRC_BYTES, "big")


def _blocks(low: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The low band's 4x4 blocks as an (N, 4, 4) copy, in imwatermark's order
    (row by row of blocks), and the size of the area they cover."""
    rows, cols = low.shape[0] // _BLOCK * _BLOCK, low.shape[1] // _BLOCK * _BLOCK
    grid = low[:rows, :cols].reshape(rows // _BLOCK, _BLOCK, cols // _BLOCK, _BLOCK)
    return grid.swapaxes(1, 2).reshape(-1, _BLOCK, _BLOCK).copy(), (rows, cols)


def _quantise(low: np.ndarray, bits: np.ndarray) -> None:
    """Embed: move each block's largest singular value to the middle of its bit's half
    of the quantisation step (imwatermark's ``diffuse_dct_svd``), in place."""
    count = (low.shape[0] // _BLOCK) * (low.shape[1] // _BLOCK)
    _quantise_blocks(low, bits[np.arange(count) % len(bits)], _dither(count))


def _quantise_blocks(
    low: np.ndarray, block_bits: np.ndarray, dither: np.ndarray, step: float = _SCALE
) -> None:
    """Put each block's largest singular value at its bit's quarter of the step above its
    dither, in place; ``block_bits`` and ``dither`` are in :func:`_blocks` order. Another
    ``step`` than the mark's is for ``bench/mark_variants.py``."""
    blocks, (rows, cols) = _blocks(low)
    left, singular, right = np.linalg.svd(blocks)
    steps = (singular[:, 0] - dither) // step
    singular[:, 0] = (steps + 0.25 + 0.5 * block_bits) * step + dither
    rebuilt = left @ (singular[:, :, None] * right)
    grid = rebuilt.reshape(rows // _BLOCK, cols // _BLOCK, _BLOCK, _BLOCK).swapaxes(1, 2)
    low[:rows, :cols] = grid.reshape(rows, cols)


def _soft_bits(low: np.ndarray, length: int) -> np.ndarray:
    """Per code bit, the mean over its blocks of sin(2 pi remainder / scale)."""
    blocks, _area = _blocks(low)
    largest = np.linalg.svd(blocks, compute_uv=False)[:, 0]
    votes = np.sin(2 * np.pi * ((largest - _dither(len(blocks))) % _SCALE) / _SCALE)
    which = np.arange(len(blocks)) % length
    return np.bincount(which, weights=votes, minlength=length) / np.maximum(
        np.bincount(which, minlength=length), 1
    )


@cache
def _dither(count: int) -> np.ndarray:
    """A fixed pseudo-random offset per block, in [0, scale) (see the module doc)."""
    seed = int.from_bytes(hashlib.sha256(b"stylebot-wm2 dither").digest()[:8], "big")
    table = np.random.default_rng(seed).uniform(0, _SCALE, count)
    table.flags.writeable = False  # cached and shared: nobody may change it
    return table


def _u_plane(rgb: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The U plane exactly as imwatermark's decoder computes it (OpenCV uint8 BGR2YUV)."""
    yuv = cv2.cvtColor(np.ascontiguousarray(rgb[:rows, :cols, ::-1]), cv2.COLOR_BGR2YUV)
    return yuv[:, :, _U_CHANNEL].astype(np.float64)
