"""Style names: what users may type, and the trigger phrase a style trains on."""

from __future__ import annotations

import re

NAME_RULE = "2 to 32 characters: lowercase letters, digits, '-' or '_', starting with a letter"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")


class InvalidStyleName(ValueError):
    pass


def normalise_style_name(raw: str) -> str:
    """Return the canonical style name or raise InvalidStyleName with the rule.

    Names never reach a file path (blobs are content-addressed), but they do
    reach prompts and chat messages, so they stay in a small, safe alphabet.
    """
    name = raw.strip().lower()
    if not _NAME.fullmatch(name):
        shown = raw if len(raw) <= 40 and raw.isprintable() else "that name"
        raise InvalidStyleName(f"{shown!r} is not a valid style name. Use {NAME_RULE}.")
    return name


def trigger_phrase(name: str) -> str:
    """A phrase unlikely to mean anything to the base model, so the LoRA owns it."""
    return f"sbt {name.replace('-', ' ').replace('_', ' ')} style"


def printable(text: str, limit: int = 60) -> str:
    """User text (a file or style name) safe to echo into chat: printable, no
    path separators, at most `limit` characters from its end."""
    cleaned = "".join(ch for ch in text if ch.isprintable() and ch not in "/\\")
    return cleaned[-limit:] or "file"
