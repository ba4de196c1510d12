"""What the engine is asked for: a generation request and the style (LoRA) it is drawn in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stylebot.trainer.embeddings import StyleEmbedding


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 20
    guidance: float = 7.5
    width: int = 512
    height: int = 512
    count: int = 1
    # A variation (AUTOMATIC1111's "variation seed"): each image's starting
    # noise moves from its seed's towards `variation_seed`'s by this much.
    variation_seed: int | None = None
    variation_strength: float = 0.0
    # The style's textual-inversion token, loaded before the call (its prompt names it):
    # the only added token the request's text reaches (stylebot.engine.own_tokens).
    embedding: StyleEmbedding | None = None

    @property
    def own_tokens(self) -> frozenset[str]:
        return frozenset({self.embedding.token}) if self.embedding is not None else frozenset()


@dataclass(frozen=True)
class LoraWeights:
    """A style's LoRA: `path` is a .safetensors file written by `train_lora`."""

    adapter_name: str
    path: Path


# A request and the style it is drawn in (None: the base model), for `generate_mixed`.
StyledRequest = tuple[GenerationRequest, "LoraWeights | None"]


def batch_key(request: GenerationRequest) -> tuple[int, float, int, int]:
    """Requests with equal keys (and the same LoRA) can share one pipeline call."""
    return (request.steps, request.guidance, request.width, request.height)
