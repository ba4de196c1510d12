"""Only a job's own style tokens reach the text encoders, whatever its prompt says.

A worker keeps other styles' textual-inversion tokens loaded between jobs, and a
training run's `<sb-training>` while it trains, so the text alone would decide whose
embedding a prompt reaches. The core refuses prompts that name a token, but this
does not rely on any text rule: for the length of one pipeline call a forward
pre-hook on each text encoder takes every added (not special) token that the
job does not own out of the token ids, for the prompt and the negative prompt,
on every encoder (SDXL has two). The ids after it move up and the row ends in
the tokenizer's padding, which is exactly how the prompt without that token
tokenizes; only a prompt at the tokenizer's length limit differs (its tail was
cut before the hook sees it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from stylebot.engine.models import AnyPipeline
from stylebot.trainer.embeddings import TextEncoderSlot, text_encoder_slots

log = logging.getLogger(__name__)


@dataclass
class ForeignTokens:
    """How many ids of tokens a job does not own the hooks took out, over all encoders."""

    removed: int = 0


def _added_ids(slot: TextEncoderSlot) -> dict[str, int]:
    """Tokens added to the tokenizer (style embeddings), not its special tokens."""
    special = set(slot.tokenizer.all_special_ids)
    return {
        token: token_id
        for token, token_id in slot.tokenizer.get_added_vocab().items()
        if token_id not in special
    }


def _row_masks(
    input_ids: torch.Tensor, added: dict[str, int], owned: Sequence[frozenset[str]]
) -> torch.Tensor:
    """True where a row holds an added token its job does not own.

    Rows are the prompts in order (the pipeline encodes prompts and negative
    prompts in two calls, one row per image); rows that do not line up with
    `owned` get only the tokens every job owns.
    """
    if len(owned) != input_ids.shape[0]:
        shared = frozenset.intersection(*owned) if owned else frozenset()
        owned = [shared] * input_ids.shape[0]
    masks = []
    for row, tokens in zip(input_ids, owned, strict=True):
        foreign = [token_id for token, token_id in added.items() if token not in tokens]
        masks.append(torch.isin(row, torch.tensor(foreign, dtype=row.dtype, device=row.device)))
    return torch.stack(masks)


def _without(ids: torch.Tensor, mask: torch.Tensor, fill: int) -> torch.Tensor:
    """Each row of `ids` with the masked ids taken out and `fill` appended instead."""
    rows = []
    for row, drop in zip(ids, mask, strict=True):
        kept = row[~drop]
        rows.append(torch.cat([kept, kept.new_full((int(drop.sum()),), fill)]))
    return torch.stack(rows)


def _hook(slot: TextEncoderSlot, owned: Sequence[frozenset[str]], seen: ForeignTokens) -> Any:
    pad_id = slot.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = slot.tokenizer.eos_token_id

    def only_owned(
        module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        positional = bool(args)
        input_ids = args[0] if positional else kwargs.get("input_ids")
        added = _added_ids(slot)
        if input_ids is None or not added:
            return args, kwargs
        mask = _row_masks(input_ids, added, owned)
        if not bool(mask.any()):
            return args, kwargs
        seen.removed += int(mask.sum())
        cleaned = _without(input_ids, mask, pad_id)
        if positional:
            args = (cleaned, *args[1:])
        else:
            kwargs["input_ids"] = cleaned
        attention = kwargs.get("attention_mask")
        if attention is not None:
            # The appended ids are padding: masked out, as padding is.
            kwargs["attention_mask"] = _without(attention, mask, 0)
        return args, kwargs

    return only_owned


@contextmanager
def only_own_style_tokens(
    pipeline: AnyPipeline, owned: Sequence[frozenset[str]]
) -> Iterator[ForeignTokens]:
    """Within the block, row i of every text-encoder call keeps of the added tokens
    only those in `owned[i]` (one set per image of the call, in order)."""
    seen = ForeignTokens()
    handles = [
        slot.text_encoder.register_forward_pre_hook(_hook(slot, owned, seen), with_kwargs=True)
        for slot in text_encoder_slots(pipeline)
    ]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()
    if seen.removed:
        # The front end refuses such prompts: one that arrives here came around it.
        log.warning("took %d id(s) of tokens the job does not own out of its prompts", seen.removed)
