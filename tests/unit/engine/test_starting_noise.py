"""Variation noise: strength 0 is exactly the seed's noise, bit for bit."""

from __future__ import annotations

import torch

from stylebot.engine.starting_noise import slerp


def test_strength_zero_is_exactly_the_seeds_noise() -> None:
    # Shapes and seeds where sin(ω)·a/sin(ω) rounds off by an ulp somewhere.
    for seed in range(20):
        a = torch.randn((1, 16, 8, 8), generator=torch.Generator().manual_seed(seed))
        b = torch.randn((1, 16, 8, 8), generator=torch.Generator().manual_seed(seed + 100))
        assert torch.equal(slerp(0.0, a, b), a)


def test_a_stronger_variation_keeps_the_noises_norm() -> None:
    a = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    b = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(2))
    mixed = slerp(0.5, a, b)
    assert not torch.equal(mixed, a)
    assert abs(float(mixed.norm()) - float(a.norm())) / float(a.norm()) < 0.05
