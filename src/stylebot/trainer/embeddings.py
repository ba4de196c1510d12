"""Textual inversion: a new token per style whose embedding is trained.

The third common way to train a style (besides a LoRA, or with one, as in
kohya's pivotal tuning): a placeholder token is added to the tokenizer(s),
its embedding starts from a word's, and only that one vector is optimised.

While a run trains, the token is added to the shared pipeline (diffusers'
`load_textual_inversion`) and a forward hook on each text encoder's embedding
layer swaps the token's row for the trainable vector, so gradients reach that
vector alone and the encoder's weights never change. The hook sits on the
embeddings module, not on the token-embedding table: a Generator that loads or
unloads other tokens between steps replaces the table, and renumbers tokens, so
the hook looks the token up on every call.

The file is the AUTOMATIC1111/diffusers layout: `emb_params` for SD 1.x/2.x,
`clip_l`/`clip_g` for SDXL, each (1, dim), loadable with
`pipeline.load_textual_inversion`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from stylebot.engine.diffusers_classes import StableDiffusionPipeline, StableDiffusionXLPipeline
from stylebot.engine.models import AnyPipeline, BasePipeline
from stylebot.style_tokens import TRAINING_TOKEN

# The word whose embedding a new token starts from (diffusers' textual
# inversion example: `--initializer_token`).
INITIALIZER_WORD = "style"
EMBEDDING_NAME = "learned_embeds.safetensors"


def style_caption(trigger: str, token: str | None) -> str:
    """The caption a style trains on and the prefix its prompts get: the token first."""
    if not token:
        return trigger
    return f"{token} {trigger}" if trigger else token


@dataclass(frozen=True)
class TextEncoderSlot:
    """One tokenizer and text encoder, with the key its vector has in the file."""

    key: str
    tokenizer: Any
    text_encoder: Any


def text_encoder_slots(pipeline: AnyPipeline) -> list[TextEncoderSlot]:
    """SD 1.x/2.x: one encoder (`emb_params`); SDXL: CLIP-L and CLIP-G; the flow
    families (FLUX.1, SD 3.5): none, their styles are LoRAs only."""
    if not isinstance(pipeline, StableDiffusionPipeline | StableDiffusionXLPipeline):
        return []
    if isinstance(pipeline, StableDiffusionXLPipeline):
        return [
            TextEncoderSlot("clip_l", pipeline.tokenizer, pipeline.text_encoder),
            TextEncoderSlot("clip_g", pipeline.tokenizer_2, pipeline.text_encoder_2),
        ]
    return [TextEncoderSlot("emb_params", pipeline.tokenizer, pipeline.text_encoder)]


def _token_table(slot: TextEncoderSlot) -> torch.nn.Embedding:
    table: torch.nn.Embedding = slot.text_encoder.get_input_embeddings()
    return table


@torch.no_grad()
def initial_vector(slot: TextEncoderSlot, word: str = INITIALIZER_WORD) -> torch.Tensor:
    """The mean embedding of `word`'s tokens (one token for a real CLIP vocabulary)."""
    ids = slot.tokenizer(word, add_special_tokens=False).input_ids
    if not ids:
        raise ValueError(f"initializer word {word!r} has no tokens")
    table = _token_table(slot).weight
    return table[torch.tensor(ids, device=table.device)].float().mean(dim=0).cpu()


def add_token(pipeline: BasePipeline, slot: TextEncoderSlot, token: str, vector: Any) -> None:
    """Add `token` with embedding `vector` to one tokenizer and text encoder."""
    pipeline.load_textual_inversion(
        vector, token=token, tokenizer=slot.tokenizer, text_encoder=slot.text_encoder
    )


def remove_token(pipeline: AnyPipeline, slot: TextEncoderSlot, token: str) -> None:
    if token in slot.tokenizer.get_vocab():
        pipeline.unload_textual_inversion(
            token, tokenizer=slot.tokenizer, text_encoder=slot.text_encoder
        )


class TrainableToken:
    """The training token's vector(s), one per text encoder, as float32 parameters.

    `enabled = False` makes the encoders see the token's initial embedding
    again (the base model, for validation).
    """

    def __init__(self, pipeline: BasePipeline, token: str = TRAINING_TOKEN) -> None:
        self.pipeline = pipeline
        self.token = token
        self.slots = text_encoder_slots(pipeline)
        self.vectors: dict[str, torch.nn.Parameter] = {}
        self.enabled = True

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return list(self.vectors.values())

    def state(self) -> dict[str, torch.Tensor]:
        """The vectors by file key, detached on the CPU, each (1, dim)."""
        return {key: v.detach().float().cpu().clone()[None] for key, v in self.vectors.items()}

    def load_state(self, saved: dict[str, torch.Tensor]) -> None:
        if sorted(saved) != sorted(self.vectors):
            raise ValueError("checkpoint does not hold this model's token embedding")
        with torch.no_grad():
            for key, vector in self.vectors.items():
                vector.copy_(saved[key].reshape(vector.shape).to(vector.device, vector.dtype))

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state().items()}, str(path))
        return path

    def _hook(self, slot: TextEncoderSlot, vector: torch.nn.Parameter) -> Any:
        def swap_in(
            module: torch.nn.Module,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            output: torch.Tensor,
        ) -> torch.Tensor:
            input_ids: torch.Tensor | None = kwargs.get("input_ids", args[0] if args else None)
            if not self.enabled or input_ids is None:
                return output
            token_id: int = slot.tokenizer.convert_tokens_to_ids(self.token)
            mask = input_ids == token_id
            if not bool(mask.any()):
                return output
            row = _token_table(slot).weight[token_id].detach()
            delta = (vector.to(output.device) - row.float()).to(output.dtype)
            return output + mask.unsqueeze(-1).to(output.dtype) * delta

        return swap_in

    @contextmanager
    def attached(self) -> Iterator[TrainableToken]:
        """Token added, encoders frozen and hooked; all undone on exit."""
        requires_grad = {
            p: p.requires_grad for slot in self.slots for p in slot.text_encoder.parameters()
        }
        handles = []
        try:
            for slot in self.slots:
                remove_token(self.pipeline, slot, self.token)  # a run that failed to undo it
                vector = initial_vector(slot)
                add_token(self.pipeline, slot, self.token, vector.to(_token_table(slot).weight))
                slot.text_encoder.requires_grad_(False)
                param = torch.nn.Parameter(vector.to(slot.text_encoder.device))
                self.vectors[slot.key] = param
                embeddings = slot.text_encoder.get_input_embeddings()
                # The module that owns the table (CLIPTextEmbeddings) outlives the table.
                owner = _embedding_owner(slot.text_encoder, embeddings)
                handles.append(
                    owner.register_forward_hook(self._hook(slot, param), with_kwargs=True)
                )
            yield self
        finally:
            for handle in handles:
                handle.remove()
            for slot in self.slots:
                remove_token(self.pipeline, slot, self.token)
            for param, flag in requires_grad.items():
                param.requires_grad_(flag)


def _embedding_owner(text_encoder: torch.nn.Module, table: torch.nn.Module) -> torch.nn.Module:
    for module in text_encoder.modules():
        if any(child is table for child in module.children()):
            return module
    raise ValueError(f"{type(text_encoder).__name__} has no module holding its token embeddings")


def encode_caption(
    pipeline: BasePipeline, caption: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The caption's hidden states (and SDXL's pooled embedding), with gradients,
    encoded as the pipeline encodes a prompt at sampling."""
    device = pipeline.unet.device
    if isinstance(pipeline, StableDiffusionXLPipeline):
        hidden_states, _, pooled, _ = pipeline.encode_prompt(
            caption, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        return hidden_states, pooled
    tokenizer = pipeline.tokenizer
    ids = tokenizer(
        caption,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    text_encoder = pipeline.text_encoder
    return text_encoder(ids.to(text_encoder.device))[0], None


def load_embedding(pipeline: AnyPipeline, path: Path, token: str) -> None:
    """Add a style's embedding file to the pipeline under `token` (both encoders on SDXL)."""
    if not isinstance(pipeline, StableDiffusionPipeline | StableDiffusionXLPipeline):
        raise ValueError(f"embedding file {path.name}: this model's styles are LoRAs only")
    saved = load_file(str(path))
    slots = text_encoder_slots(pipeline)
    missing = [slot.key for slot in slots if slot.key not in saved]
    if missing:
        raise ValueError(f"embedding file {path.name} has no {', '.join(missing)} for this model")
    if not isinstance(pipeline, StableDiffusionXLPipeline):
        pipeline.load_textual_inversion(str(path), token=token)
        return
    for slot in slots:
        add_token(pipeline, slot, token, saved[slot.key])


def unload_embedding(pipeline: AnyPipeline, token: str) -> None:
    for slot in text_encoder_slots(pipeline):
        remove_token(pipeline, slot, token)


@dataclass(frozen=True)
class StyleEmbedding:
    """A style's embedding file (written by the trainer) and the token it loads under."""

    token: str
    path: Path


class LoadedEmbeddings:
    """The style tokens a Generator's pipeline holds, least recently used first.

    Loading a token resizes the text encoders' embedding tables, so tokens
    stay loaded (at most `limit`); a token whose file changed (a retrained
    style) is loaded again. A loaded token only matters to prompts that name it,
    and the Generator lets only a job's own token reach the text encoders
    (stylebot.engine.own_tokens), whatever its prompt says.
    """

    def __init__(self, pipeline: AnyPipeline, limit: int) -> None:
        self.pipeline = pipeline
        self.limit = max(1, limit)
        self._loaded: dict[str, Path] = {}

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(self._loaded)

    def ensure(self, wanted: Sequence[StyleEmbedding | None]) -> None:
        """Load every embedding in `wanted` (evicting others if the cache is full)."""
        needed = {e.token: Path(e.path) for e in wanted if e is not None}
        for token, path in needed.items():
            if self._loaded.get(token) == path:
                self._loaded[token] = self._loaded.pop(token)  # most recently used
                continue
            if token in self._loaded:
                self._unload(token)
            while len(self._loaded) >= self.limit:
                idle = next((t for t in self._loaded if t not in needed), None)
                if idle is None:
                    break
                self._unload(idle)
            try:
                load_embedding(self.pipeline, path, token)
            except Exception:
                unload_embedding(self.pipeline, token)  # SDXL: one encoder may have it
                raise
            self._loaded[token] = path

    def unload_files(self, stems: Collection[str]) -> int:
        """Unload the tokens loaded from files named `<stem>.*`; returns how many."""
        gone = [token for token, path in self._loaded.items() if path.stem in stems]
        for token in gone:
            self._unload(token)
        return len(gone)

    def _unload(self, token: str) -> None:
        unload_embedding(self.pipeline, token)
        del self._loaded[token]
