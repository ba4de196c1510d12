"""Invisible watermark that carries an output id, readable after PNG and JPEG re-encoding.

The mark uses the ``dwtDctSvd`` method of ``invisible-watermark`` (``imwatermark``):
the U (blue-difference) chroma plane is split by a Haar DWT, and in every 4x4 block of
the low band the largest singular value of the block's DCT is quantised so that its
remainder modulo ``_SCALE`` encodes one payload bit. The 64 payload bits repeat over all
blocks and the reader takes a majority vote per bit, which is what lets the mark survive
JPEG (plain ``dwtDct`` does not).

Payload: the 48-bit output id followed by a 16-bit CRC (CRC-16/CCITT-FALSE over a
stylebot-specific prefix and the id). The reader returns an id only when the CRC matches
*and* the per-bit votes agree strongly; either check alone would let some unmarked images
read as marked (flat images give unanimous but meaningless votes; textured images give a
1-in-65536 chance of a CRC match).

Why this module does not simply call ``imwatermark.WatermarkEncoder``:

* ``import imwatermark`` imports torch (its ``rivaGan`` module does so at import time), and
  the front end imports this module for ``verify``. So only ``imwatermark/dwtDctSvd.py``
  (numpy, OpenCV, PyWavelets) is loaded, by file path, without running the package
  ``__init__``.
* ``EmbedDwtDctSvd.encode`` writes the float result back into a uint8 array without
  rounding or clipping, so values past 0 or 255 wrap around (salt-and-pepper specks on
  saturated colours, PSNR 15 dB on noise), and it passes the detail bands to ``idwt2``
  as ``(v, h, d)`` instead of ``(h, v, d)``, which scrambles chroma detail (PSNR ~34 dB
  on textured images). Here the library's own per-block quantiser
  (``EmbedDwtDctSvd.encode_frame``) is used on a float plane, the correct band order is
  kept, and only the resulting change of U is applied to the RGB pixels. Pixels that would
  clip get a luminance shift (equal on R, G and B, which leaves U and V unchanged), so
  white and black backgrounds carry the mark too. The result still decodes with the stock
  ``imwatermark.WatermarkDecoder(..., "dwtDctSvd")``; a test checks that.
"""

from __future__ import annotations

import binascii
import importlib.util
import re
import secrets
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pywt
from PIL import Image

__all__ = [
    "MIN_WATERMARK_PIXELS",
    "embed_watermark",
    "new_output_id",
    "read_watermark",
]

#: imwatermark refuses images with fewer pixels than 256x256; so do we.
MIN_WATERMARK_PIXELS = 256 * 256

_ID_BYTES = 6  # 48 bits, 12 lowercase hex characters
_PAYLOAD_BITS = 64  # id + CRC-16
_OUTPUT_ID_RE = re.compile(r"[0-9a-f]{12}")
# Mixed into the CRC so that another system's "48 bits + CRC-16" mark never reads as ours.
_CRC_PREFIX = b"stylebot-wm1"
# imwatermark's default dwtDctSvd scale for the U channel; the stock decoder assumes it.
_SCALE = 36
_BLOCK = 4
_U_CHANNEL = 1
# OpenCV's BGR2YUV: U = 0.492 (B - Y) + 128 with Y unchanged, so a change dU of U is
# dB = dU / 0.492 on blue and dG = -dB * 0.114 / 0.587 on green (red is untouched).
_DB_PER_DU = 1 / 0.492
_DG_PER_DU = -_DB_PER_DU * 0.114 / 0.587
# Mean over the 64 bits of |share of blocks voting 1 - 0.5|: 0.5 means unanimous votes.
# Marked images measure >= 0.34 after JPEG q75; unmarked textured images measure about
# 0.4/sqrt(blocks per bit), i.e. <= 0.1 at 256x256 (16 blocks per bit), falling with size.
_MIN_AGREEMENT = 0.15


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
    if not isinstance(output_id, str) or not _OUTPUT_ID_RE.fullmatch(output_id):
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
    embedder = _embedder_class()(_payload_bits(output_id), wmLen=_PAYLOAD_BITS)
    embedder.encode_frame(low, _SCALE)  # quantises `low` in place, block by block
    du = pywt.idwt2((low, details), "haar") - u

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
    marked = Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")
    if alpha is not None:
        marked.putalpha(alpha)
    return marked


def read_watermark(image: Image.Image) -> str | None:
    """The output id hidden in ``image``, or ``None`` if there is no readable stylebot mark.

    ``None`` covers unmarked images, marks destroyed by editing (resizing, cropping, heavy
    JPEG compression) and images under 256x256 pixels.
    """
    width, height = image.size
    if width * height < MIN_WATERMARK_PIXELS:
        return None
    rgb = np.asarray(image.convert("RGB"))
    rows, cols = height // _BLOCK * _BLOCK, width // _BLOCK * _BLOCK
    low, _details = pywt.dwt2(_u_plane(rgb, rows, cols), "haar")
    decoder = _embedder_class()([], wmLen=_PAYLOAD_BITS)
    votes: list[list[int]] = decoder.decode_frame(low, _SCALE, [[] for _ in range(_PAYLOAD_BITS)])
    share_of_ones = np.array([np.mean(v) for v in votes])
    if float(np.mean(np.abs(share_of_ones - 0.5))) < _MIN_AGREEMENT:
        return None  # votes close to a coin toss: noise, not a mark
    payload = np.packbits(share_of_ones > 0.5).tobytes()
    id_bytes, crc = payload[:_ID_BYTES], payload[_ID_BYTES:]
    if _crc(id_bytes) != crc:
        return None
    return id_bytes.hex()


def _crc(id_bytes: bytes) -> bytes:
    return binascii.crc_hqx(_CRC_PREFIX + id_bytes, 0xFFFF).to_bytes(2, "big")


def _payload_bits(output_id: str) -> list[int]:
    id_bytes = bytes.fromhex(output_id)
    payload = np.frombuffer(id_bytes + _crc(id_bytes), dtype=np.uint8)
    return [int(bit) for bit in np.unpackbits(payload)]


def _u_plane(rgb: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The U plane exactly as imwatermark's decoder computes it (OpenCV uint8 BGR2YUV)."""
    yuv = cv2.cvtColor(np.ascontiguousarray(rgb[:rows, :cols, ::-1]), cv2.COLOR_BGR2YUV)
    return yuv[:, :, _U_CHANNEL].astype(np.float64)


@cache
def _embedder_class() -> Any:
    """``imwatermark.dwtDctSvd.EmbedDwtDctSvd``, without importing torch (see module doc)."""
    loaded = sys.modules.get("imwatermark.dwtDctSvd")
    if loaded is not None:  # imwatermark already imported by someone else: reuse it
        return loaded.EmbedDwtDctSvd
    spec = importlib.util.find_spec("imwatermark")  # locates the package, does not run it
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ImportError("the invisible-watermark package is not installed: pip install it")
    module = _load_file("stylebot.provenance._imwatermark_dwtdctsvd", Path(locations[0]))
    return module.EmbedDwtDctSvd


def _load_file(name: str, package_dir: Path) -> ModuleType:
    path = package_dir / "dwtDctSvd.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(f"invisible-watermark has no {path}; this code expects version 0.2")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
