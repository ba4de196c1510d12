"""A perceptual hash of an image's pixels, to recognise the same picture re-encoded.

The algorithm is the common "pHash" (as in the ``imagehash`` package's ``phash``): grey,
32x32, 2-D DCT-II, the 8x8 lowest frequencies, each bit "above the median". JPEG
re-compression, resizing and small colour changes move only a few of the 64 bits; unrelated
pictures differ in about half of them. Written on numpy alone (the DCT is a 32x32 matrix
product) so the core pulls in no SciPy.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

_SIDE = 32
_KEEP = 8
#: At most this many of the 64 bits may differ for two images to count as the same
#: picture. JPEG q60, halving and small crops move < 6 bits on textured images, while
#: unrelated images differ in ~32 +- 6.
NEAR_DUPLICATE_BITS = 10
# A grey 32x32 thumbnail with less spread than this is (nearly) one flat colour: its DCT
# is all rounding noise and its hash means nothing, so such images never match by hash.
_MIN_STD = 2.0


@dataclass(frozen=True)
class PerceptualHash:
    value: int  # 64 bits
    informative: bool  # False for flat images, whose hash must not be compared

    @property
    def hex(self) -> str:
        return f"{self.value:016x}" if self.informative else f"flat:{self.value:016x}"

    @classmethod
    def from_hex(cls, text: str) -> PerceptualHash:
        flat = text.startswith("flat:")
        return cls(int(text.removeprefix("flat:"), 16), not flat)

    def near(self, other: PerceptualHash, max_bits: int = NEAR_DUPLICATE_BITS) -> bool:
        return self.informative and other.informative and hamming(self, other) <= max_bits


def hamming(a: PerceptualHash, b: PerceptualHash) -> int:
    return (a.value ^ b.value).bit_count()


@cache
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: ``M @ x`` is the DCT of the column vector ``x``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix: np.ndarray = np.sqrt(2 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    matrix[0] /= np.sqrt(2)
    return matrix


def perceptual_hash(image: Image.Image) -> PerceptualHash:
    grey = image.convert("L").resize((_SIDE, _SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    dct = _dct_matrix(_SIDE)
    low = (dct @ pixels @ dct.T)[:_KEEP, :_KEEP]
    bits = (low > np.median(low)).flatten()
    value = int("".join("1" if b else "0" for b in bits), 2)
    return PerceptualHash(value, informative=float(pixels.std()) >= _MIN_STD)


def perceptual_hash_of_png(data: bytes) -> PerceptualHash:
    """The hash of an already-checked image (e.g. a normalised upload from the blob store)."""
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        return perceptual_hash(image)
