"""What a style's CLIP metrics (queue.payloads.StyleMetrics) say, in a member's words."""

from __future__ import annotations

from stylebot.queue.payloads import StyleMetrics

# A change in similarity smaller than this is no change at all (CLIP's noise).
_NO_CHANGE = 0.01


def metrics_lines(metrics: StyleMetrics | None) -> str:
    """`/style info`'s lines about the metrics, each ending in a newline ("" without)."""
    if metrics is None:
        return ""
    gain = metrics.style_fidelity
    if gain >= _NO_CHANGE:
        fidelity = (
            f"the style moves images {gain:.2f} closer to your references than the base model does"
        )
    elif gain <= -_NO_CHANGE:
        fidelity = (
            f"images with the style are {-gain:.2f} further from your references than the "
            "base model's: it did not learn your look; try more or more alike images"
        )
    else:
        fidelity = "images with the style are no closer to your references than the base model's"
    lines = (
        f"likeness: {fidelity} (similarity {metrics.styled_similarity:.2f} vs "
        f"{metrics.base_similarity:.2f}, {metrics.samples} test prompts)\n"
        f"prompts still followed: CLIP score {metrics.clip_score:.1f} with the style, "
        f"{metrics.base_clip_score:.1f} without (higher: the picture shows its prompt)\n"
    )
    if metrics.kid is not None:
        lines += (
            f"distance to your references (KID): {metrics.kid:.3f} (0 would be indistinguishable)\n"
        )
    return lines
