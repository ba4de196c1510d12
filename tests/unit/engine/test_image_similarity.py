"""Near-duplicates by embedding, on constructed embeddings whose cosines are known."""

from __future__ import annotations

import math

import pytest
import torch

from stylebot.engine.image_similarity import NEAR_DUPLICATE_COSINE, similar_pairs


def _at_angle(degrees: float, length: float = 1.0) -> list[float]:
    """A 3-d vector in the x-y plane at `degrees` from the x axis: cos(angle) to it."""
    radians = math.radians(degrees)
    return [length * math.cos(radians), length * math.sin(radians), 0.0]


def test_pairs_above_the_threshold_with_a_new_image_are_found() -> None:
    embeddings = torch.tensor(
        [
            _at_angle(0),  # waiting
            _at_angle(10, length=3.0),  # waiting: cos 0.985 to the first, compared before
            _at_angle(90),  # new: far from both
            _at_angle(5),  # new: cos 0.996 to the first, 0.996 to the second
            _at_angle(30),  # new: cos 0.866 to the first: not alike
        ]
    )

    pairs = similar_pairs(embeddings, first_new=2)

    assert [(i, j) for i, j, _ in pairs] == [(0, 3), (1, 3)]
    assert pairs[0][2] == pytest.approx(math.cos(math.radians(5)), abs=1e-6)
    assert pairs[1][2] == pytest.approx(math.cos(math.radians(5)), abs=1e-6)


def test_the_threshold_is_strict_and_new_images_are_compared_with_each_other() -> None:
    just_below = math.degrees(math.acos(NEAR_DUPLICATE_COSINE)) + 0.01
    embeddings = torch.tensor([_at_angle(0), _at_angle(just_below), _at_angle(0.5)])

    assert similar_pairs(embeddings, first_new=0) == [
        (0, 2, pytest.approx(math.cos(math.radians(0.5)), abs=1e-6)),
        (1, 2, pytest.approx(math.cos(math.radians(just_below - 0.5)), abs=1e-6)),
    ]
    assert similar_pairs(embeddings, first_new=3) == []
