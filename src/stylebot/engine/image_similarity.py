"""Near-duplicate training images by CLIP image embedding: pairs whose embeddings' cosine
similarity is above `NEAR_DUPLICATE_COSINE` (the same picture re-cropped, re-coloured or
re-drawn closely, which a perceptual hash misses). Computed on a worker with the
operator's `clip_model` (stylebot.queue.compare_job)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Above this, two pictures show the same thing the same way (issue 17).
NEAR_DUPLICATE_COSINE = 0.95


def similar_pairs(
    embeddings: torch.Tensor, first_new: int, threshold: float = NEAR_DUPLICATE_COSINE
) -> list[tuple[int, int, float]]:
    """(i, j, cosine) for rows i < j whose cosine exceeds `threshold`, each pair with at
    least one row from `first_new` on (the earlier rows were compared when they came)."""
    unit = F.normalize(embeddings.float(), dim=-1)
    cosines = unit @ unit.T
    return [
        (i, j, float(cosines[i, j]))
        for j in range(max(first_new, 0), unit.shape[0])
        for i in range(j)
        if float(cosines[i, j]) > threshold
    ]
