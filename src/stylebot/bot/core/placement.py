"""Where a picture sits on a stored output (found by :mod:`.picture_alignment`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from stylebot.bot.core.picture_match import WORK_SIDE

#: Long side of the output where a placement is made exact: twice the comparison's
#: working size, where its finest check looks (a misplacement of a pixel there would
#: read as an edit).
FINE_SIDE = 2 * WORK_SIDE
#: Gaussian blur (pixels at FINE_SIDE) before matching there: it evens out JPEG's and
#: resampling's noise, which the picture and the output do not share.
FINE_BLUR = 1.0
#: Scales along x and y this far apart mean the picture was stretched: resizing to whole
#: pixels moves each by well under 0.5%.
STRETCH_TOLERANCE = 0.01


@dataclass(frozen=True)
class Alignment:
    """Output pixel ``(left + u / scale_x, top + v / scale_y)`` shows at picture pixel
    ``(u, v)`` (continuous coordinates: pixel ``i`` spans ``[i, i + 1]``)."""

    scale_x: float  # picture pixels per output pixel
    scale_y: float
    left: float  # where the picture's left edge falls on the output, in output pixels
    top: float

    @property
    def scale(self) -> float:
        return math.sqrt(self.scale_x * self.scale_y)

    @property
    def stretched(self) -> bool:
        return abs(self.scale_x / self.scale_y - 1) > STRETCH_TOLERANCE
