"""The bot's textual-inversion tokens: how they are named, and finding one in user text.

A style trained with textual inversion adds a token (`<sb-12>`) to the worker's
tokenizers, and a run in progress adds `<sb-training>`. Tokens stay loaded
between jobs, so a prompt that names one would reach someone else's embedding.
The core refuses such prompts (`style_token_in`); the engine, whatever the text,
lets only a job's own tokens reach the text encoder (stylebot.engine.own_tokens).

Plain Python (no torch): the bot core uses it too.
"""

from __future__ import annotations

import re
import unicodedata

STYLE_TOKEN_PREFIX = "<sb-"
# A fixed name for the token while a run trains it: a Generator may hold the
# style's own token (`style_embedding_token`) from an earlier training.
TRAINING_TOKEN = f"{STYLE_TOKEN_PREFIX}training>"

# In folded text (`_folded`): the prefix, then anything up to the next '>' that
# opens no other token, so `<sb<sb-x>-1>` is found by its inner `<sb-x>`.
_FOLDED_TOKEN = re.compile(r"<sb-[^<>]*>")


def style_embedding_token(style_id: int) -> str:
    """The token a style's textual-inversion embedding is loaded under."""
    return f"{STYLE_TOKEN_PREFIX}{style_id}>"


def _folded(text: str) -> str:
    """`text` as the most lenient tokenizer could read it, and then some: CLIP's
    lowercases and collapses whitespace after NFC; others fold compatibility
    forms (＜ to <), drop accents, control and zero-width characters. Here all
    whitespace, separators, control, format and combining characters go, and
    every dash is '-', so any spelling that could become a token is caught."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept: list[str] = []
    for char in folded:
        category = unicodedata.category(char)
        if category == "Pd":
            kept.append("-")
        elif not (char.isspace() or category[0] in "ZC" or category in ("Mn", "Me")):
            kept.append(char)
    return "".join(kept)


def style_token_in(text: str) -> str | None:
    """The first of the bot's style tokens that `text` names in any spelling
    (folded, see `_folded`), or None. A user's prompt may name none."""
    found = _FOLDED_TOKEN.search(_folded(text))
    return found.group(0) if found else None
