"""How well a style learned, from CLIP embeddings: plain functions of tensors.

- style fidelity: the mean cosine similarity of images drawn with the style to the
  member's references, minus that of the same prompts and seeds drawn without it
  (how much closer the style moves images to the references);
- CLIP score (Hessel et al. 2021, as torchmetrics computes it): 100 × the cosine
  of an image's and its prompt's embeddings, floored at 0, averaged;
- KID (Bińkowski et al. 2018): the unbiased squared MMD between two sets of
  features with the polynomial kernel (x·y / d + 1)³. Here the features are CLIP
  image embeddings, not Inception's, so the numbers compare styles with each other,
  not with published FID/KID tables.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """The mean cosine similarity over every pair of a row of `a` and a row of `b`."""
    return float((F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T).mean())


def style_fidelity(styled: torch.Tensor, base: torch.Tensor, references: torch.Tensor) -> float:
    """How much closer (in mean cosine similarity) the styled images are to the
    references than the base model's images of the same prompts and seeds."""
    return mean_cosine(styled, references) - mean_cosine(base, references)


def clip_score(images: torch.Tensor, texts: torch.Tensor) -> float:
    """Mean of 100 × max(cos(image_i, text_i), 0) over matched rows."""
    if images.shape[0] != texts.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {texts.shape[0]} prompts")
    cosines = (F.normalize(images.float(), dim=-1) * F.normalize(texts.float(), dim=-1)).sum(-1)
    return float((100 * cosines.clamp(min=0)).mean())


def kernel_inception_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD² of the rows of `x` and `y` under k(a, b) = (a·b / d + 1)³ (each
    set needs two rows at least). Identical sets give 0 (up to rounding); it can
    dip below 0 for sets alike, as an unbiased estimate does."""
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"KID needs two samples in each set, got {m} and {n}")
    if x.shape[1] != y.shape[1]:
        raise ValueError("the two sets have features of different sizes")
    x, y = x.double(), y.double()
    dim = x.shape[1]

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a @ b.T / dim + 1) ** 3

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())
