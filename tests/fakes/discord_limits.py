"""Discord's limits on what a bot sends, as the fake Discord enforces them.

From https://discord.com/developers/docs/resources/message (content, embeds, files),
/interactions/message-components (components) and /interactions/receiving-and-responding
(autocomplete choices, modals). Each check raises :class:`LimitExceeded` with the path and
rule Discord names in its 400 / 50035 "Invalid Form Body" answer, so a bot that cuts or
overflows one shows up in tests as it would in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CONTENT_CHARS = 2000
EMBEDS = 10
EMBED_TITLE_CHARS = 256
EMBED_DESCRIPTION_CHARS = 4096
EMBED_FIELDS = 25
EMBED_FIELD_NAME_CHARS = 256
EMBED_FIELD_VALUE_CHARS = 1024
EMBED_FOOTER_CHARS = 2048
EMBED_AUTHOR_CHARS = 256
EMBEDS_TOTAL_CHARS = 6000
ACTION_ROWS = 5
BUTTONS_PER_ROW = 5
CUSTOM_ID_CHARS = 100
BUTTON_LABEL_CHARS = 80
SELECT_OPTIONS = 25
SELECT_OPTION_CHARS = 100  # label, value and description each
SELECT_PLACEHOLDER_CHARS = 150
MODAL_TITLE_CHARS = 45
TEXT_INPUT_LABEL_CHARS = 45
#: Files a bot uploads with one message, together: 10 MiB without server boosts
#: (https://discord.com/developers/docs/reference#uploading-files; boosted servers take
#: more, which the fake does not model). Over it Discord answers 413 / 40005.
ATTACHMENTS_TOTAL_BYTES = 10 * 1024 * 1024
#: Files one message may carry.
ATTACHMENTS = 10
AUTOCOMPLETE_CHOICES = 25
CHOICE_CHARS = 100  # a choice's name, and a string value

_ACTION_ROW, _BUTTON, _TEXT_INPUT = 1, 2, 4
_SELECTS = (3, 5, 6, 7, 8)


class PayloadTooLarge(ValueError):
    """Discord's 413 / 40005 for uploads over the size a message may carry."""

    def __init__(self, size: int) -> None:
        super().__init__("Request entity too large")
        self.size = size


class LimitExceeded(ValueError):
    """What Discord would refuse, worded as its error: ``path: rule``."""

    def __init__(self, path: str, rule: str) -> None:
        super().__init__(f"Invalid Form Body ({path}: {rule})")


def _at_most(value: Any, limit: int, path: str) -> None:
    if value is not None and len(str(value)) > limit:
        raise LimitExceeded(path, f"Must be {limit} or fewer in length.")


def _length_between(value: str, limit: int, path: str) -> None:
    if not 1 <= len(value) <= limit:
        raise LimitExceeded(path, f"Must be between 1 and {limit} in length.")


def _count_at_most(items: Sequence[Any], limit: int, path: str) -> None:
    if len(items) > limit:
        raise LimitExceeded(path, f"Must be {limit} or fewer in length.")


def check_message(body: Mapping[str, Any]) -> None:
    """A message body being created or edited: content, embeds and components."""
    _at_most(body.get("content"), CONTENT_CHARS, "content")
    check_embeds(body.get("embeds") or [])
    check_components(body.get("components") or [])


def check_uploads(sizes: Sequence[int]) -> None:
    """The files uploaded with one request: how many, and their bytes together."""
    _count_at_most(sizes, ATTACHMENTS, "attachments")
    if sum(sizes) > ATTACHMENTS_TOTAL_BYTES:
        raise PayloadTooLarge(sum(sizes))


def check_embeds(embeds: Sequence[Mapping[str, Any]]) -> None:
    _count_at_most(embeds, EMBEDS, "embeds")
    total = 0
    for n, embed in enumerate(embeds):
        path = f"embeds.{n}"
        texts = [
            (embed.get("title"), EMBED_TITLE_CHARS, f"{path}.title"),
            (embed.get("description"), EMBED_DESCRIPTION_CHARS, f"{path}.description"),
            ((embed.get("footer") or {}).get("text"), EMBED_FOOTER_CHARS, f"{path}.footer.text"),
            ((embed.get("author") or {}).get("name"), EMBED_AUTHOR_CHARS, f"{path}.author.name"),
        ]
        fields = embed.get("fields") or []
        _count_at_most(fields, EMBED_FIELDS, f"{path}.fields")
        for i, embed_field in enumerate(fields):
            texts.append(
                (embed_field.get("name"), EMBED_FIELD_NAME_CHARS, f"{path}.fields.{i}.name")
            )
            texts.append(
                (embed_field.get("value"), EMBED_FIELD_VALUE_CHARS, f"{path}.fields.{i}.value")
            )
        for text, limit, text_path in texts:
            _at_most(text, limit, text_path)
            total += len(str(text or ""))
    if total > EMBEDS_TOTAL_CHARS:
        raise LimitExceeded("embeds", f"Embed size exceeds maximum size of {EMBEDS_TOTAL_CHARS}")


def check_components(rows: Sequence[Mapping[str, Any]], path: str = "components") -> None:
    _count_at_most(rows, ACTION_ROWS, path)
    for r, row in enumerate(rows):
        row_path = f"{path}.{r}.components"
        children = row.get("components") or []
        if row.get("type") != _ACTION_ROW:
            raise LimitExceeded(f"{path}.{r}.type", "Value must be an action row (1).")
        if any(child.get("type") in _SELECTS for child in children) and len(children) > 1:
            raise LimitExceeded(row_path, "A select menu takes a whole action row.")
        _count_at_most(children, BUTTONS_PER_ROW, row_path)
        for c, child in enumerate(children):
            check_component(child, f"{row_path}.{c}")


def check_component(component: Mapping[str, Any], path: str) -> None:
    kind = component.get("type")
    custom_id = component.get("custom_id")
    if custom_id is not None and not 1 <= len(str(custom_id)) <= CUSTOM_ID_CHARS:
        raise LimitExceeded(
            f"{path}.custom_id", f"Must be between 1 and {CUSTOM_ID_CHARS} in length."
        )
    if kind == _BUTTON:
        _at_most(component.get("label"), BUTTON_LABEL_CHARS, f"{path}.label")
    elif kind in _SELECTS:
        _at_most(component.get("placeholder"), SELECT_PLACEHOLDER_CHARS, f"{path}.placeholder")
        options = component.get("options") or []
        _count_at_most(options, SELECT_OPTIONS, f"{path}.options")
        for o, option in enumerate(options):
            for key in ("label", "value", "description"):
                _at_most(option.get(key), SELECT_OPTION_CHARS, f"{path}.options.{o}.{key}")
    elif kind == _TEXT_INPUT:
        _at_most(component.get("label"), TEXT_INPUT_LABEL_CHARS, f"{path}.label")


def check_modal(modal: Mapping[str, Any]) -> None:
    _at_most(modal.get("title"), MODAL_TITLE_CHARS, "data.title")
    custom_id = str(modal.get("custom_id") or "")
    if not 1 <= len(custom_id) <= CUSTOM_ID_CHARS:
        raise LimitExceeded("data.custom_id", f"Must be between 1 and {CUSTOM_ID_CHARS} in length.")
    check_components(modal.get("components") or [], "data.components")


def check_choices(choices: Sequence[Mapping[str, Any]]) -> None:
    _count_at_most(choices, AUTOCOMPLETE_CHOICES, "data.choices")
    for n, choice in enumerate(choices):
        name = str(choice.get("name") or "")
        if not 1 <= len(name) <= CHOICE_CHARS:
            raise LimitExceeded(
                f"data.choices.{n}.name", f"Must be between 1 and {CHOICE_CHARS} in length."
            )
        if isinstance(choice.get("value"), str):
            _at_most(choice["value"], CHOICE_CHARS, f"data.choices.{n}.value")
