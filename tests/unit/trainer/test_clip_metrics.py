"""The metric code on constructed embeddings whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch

from stylebot.engine.clip_metrics import (
    clip_score,
    kernel_inception_distance,
    mean_cosine,
    style_fidelity,
)


def _unit_rows(count: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    rows = torch.randn(count, 64, generator=torch.Generator().manual_seed(seed)) + shift
    return torch.nn.functional.normalize(rows, dim=-1)  # as CLIP embeddings are compared


def test_kid_of_alike_sets_is_about_zero_and_of_different_sets_is_not() -> None:
    rows = _unit_rows(200, 0)
    # The unbiased estimate of identical sets is -O(1/n): about zero, not exactly.
    assert abs(kernel_inception_distance(rows, rows.clone())) < 1e-3
    assert abs(kernel_inception_distance(rows, _unit_rows(200, 1))) < 1e-3
    assert kernel_inception_distance(rows, _unit_rows(200, 2, shift=1.0)) > 0.02


def test_kid_matches_the_formula_worked_by_hand() -> None:
    # d = 1: k(a, b) = (a·b + 1)³. x = {0, 1}, y = {1, 2}.
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]])
    k_xx = (1 * 2) / 2  # off-diagonal pairs (0,1), (1,0): (0+1)³ = 1 each
    k_yy = (27 * 2) / 2  # (2+1)³ = 27 each
    k_xy = (1 + 1 + 8 + 27) / 4  # (0+1)³, (0+1)³, (1+1)³, (2+1)³
    assert kernel_inception_distance(x, y) == pytest.approx(k_xx + k_yy - 2 * k_xy)


def test_kid_needs_two_samples_on_each_side() -> None:
    with pytest.raises(ValueError, match="two samples"):
        kernel_inception_distance(torch.ones(1, 4), torch.ones(3, 4))


def test_style_fidelity_is_the_gain_in_similarity_to_the_references() -> None:
    references = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    styled = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # cosine 1 with the references
    base = torch.tensor([[0.0, 1.0], [0.0, 2.0]])  # cosine 0
    assert style_fidelity(styled, base, references) == pytest.approx(1.0)
    halfway = torch.tensor([[1.0, 1.0], [2.0, 2.0]])  # cosine 1/√2
    assert style_fidelity(halfway, base, references) == pytest.approx(1 / math.sqrt(2))
    assert style_fidelity(base, styled, references) == pytest.approx(-1.0)
    assert mean_cosine(styled, references) == pytest.approx(1.0)


def test_clip_score_is_a_hundred_times_the_matched_cosine_floored_at_zero() -> None:
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    texts = torch.tensor([[2.0, 0.0], [0.0, -1.0], [1.0, 0.0]])
    # cosines 1, -1 (floored to 0), 1/√2
    assert clip_score(images, texts) == pytest.approx(100 * (1 + 0 + 1 / math.sqrt(2)) / 3)
    with pytest.raises(ValueError, match="prompts"):
        clip_score(images, texts[:2])
