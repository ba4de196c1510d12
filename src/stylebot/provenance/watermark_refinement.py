"""Refining a candidate rescale for the mark's reader (``tiled_watermark.py``).

A candidate scale from the spectral estimate (``watermark_scale.py``) is often 0.2-1.5%
off after JPEG, and the mark needs about 0.1% over the read window. Both steps here only
ask how clearly a fixed placement of the mark votes at a given scale and sub-pixel phase
(``strength``); the error-correcting code and CRC, not these votes, decide what is a mark.
"""

from __future__ import annotations

from collections.abc import Callable

Phase = tuple[float, float]
Strength = Callable[[float, Phase], float]

# Relative scale steps tried around a candidate before the candidates are ranked: one
# 0.4-0.6% off votes at noise level where it was found, so ranking by its own votes put
# the right one 4th or 5th of 15 (only the first three are refined and decoded).
_RANKING_STEPS = (-0.005, 0.0, 0.005)


def best_nearby(strength: Strength, estimate: float, phase: Phase) -> tuple[float, float]:
    """The clearest vote (and its scale) at ``estimate`` and 0.5% either side: a cheap
    look at whether a candidate is near a mark, for ranking the candidates."""
    tried = {
        estimate * (1 + step): strength(estimate * (1 + step), phase) for step in _RANKING_STEPS
    }
    scale = max(tried, key=tried.__getitem__)
    return tried[scale], scale


def coarse_steps(estimate: float, phase: Phase) -> list[tuple[float, Phase]]:
    """Where every refinement of ``estimate`` starts: scale steps of 0.2% over +-1.6%."""
    return [(estimate * (1 + step * 0.002), phase) for step in range(-8, 9)]


def refine(strength: Strength, coarse: dict[tuple[float, Phase], float]) -> tuple[float, Phase]:
    """The scale and sub-pixel phase at which the votes are clearest, from ``coarse`` (the
    votes' ``strength`` at each of :func:`coarse_steps`): then 0.1% and 0.05% either side
    of the best, then the phase in quarter pixels."""
    tried = dict(coarse)
    for step in (0.001, 0.0005):
        best, at = max(tried, key=tried.__getitem__)
        for scale in (best * (1 - step), best * (1 + step)):
            tried[scale, at] = strength(scale, at)
    best, at = max(tried, key=tried.__getitem__)
    for dy, dx in ((-0.25, 0.0), (0.25, 0.0), (0.0, -0.25), (0.0, 0.25)):
        moved = (at[0] + dy, at[1] + dx)
        tried[best, moved] = strength(best, moved)
    return max(tried, key=tried.__getitem__)
