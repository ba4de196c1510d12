"""Finding the bot's style tokens in user text, in any spelling a tokenizer could read as one."""

from __future__ import annotations

import pytest

from stylebot.style_tokens import TRAINING_TOKEN, style_embedding_token, style_token_in
from stylebot.style_tokens import TRAINING_TOKEN as TRAINERS_TRAINING_TOKEN


def test_the_tokens_are_named_in_one_place() -> None:
    assert style_embedding_token(12) == "<sb-12>"
    assert TRAINING_TOKEN == "<sb-training>" == TRAINERS_TRAINING_TOKEN


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("<sb-12> a house", "<sb-12>"),
        ("a house by <sb-training> the sea", "<sb-training>"),
        # CLIP's tokenizer lowercases before it looks for added tokens.
        ("<SB-12> a house", "<sb-12>"),
        ("a <Sb-TRAINING>", "<sb-training>"),
        # Glued to other text, the tokenizer still finds it.
        ("a<sb-3>house", "<sb-3>"),
        # One pass of stripping `<sb-x>` would leave `<sb-1>`.
        ("<sb<sb-x>-1> a cat", "<sb-x>"),
        ("<<sb-1>>", "<sb-1>"),
        # Spaces, zero-width and soft-hyphen characters, other dashes, full-width forms.
        ("< sb-1 > a cat", "<sb-1>"),
        ("<sb -\t1>", "<sb-1>"),
        ("<sb-\u200b1>", "<sb-1>"),
        ("<s\u00adb-1>", "<sb-1>"),
        ("<sb\u20131>", "<sb-1>"),
        ("\uff1csb-1\uff1e", "<sb-1>"),
        ("<sb-\uff11>", "<sb-1>"),
        ("<sb-1\u0301>", "<sb-1>"),
        ("a cat", None),
        ("a <b>bold</b> house", None),
        ("<sb1> sb-1 <sb", None),
        ("3 < 4 and sb-1 > 0", None),
    ],
)
def test_a_style_token_is_found_in_any_spelling(text: str, found: str | None) -> None:
    assert style_token_in(text) == found
