"""Per-image captions: what each training image shows, in the member's words.

A caption comes with the image (the Discord message's text, the Telegram caption, the
console's ``caption:``) and can be read and changed before training (``/captions``).
The trainer puts the style's trigger first and the caption after it, so the style is
learned as the trigger and the contents as the caption's words; an image without one
trains on the trigger alone, as every image did before captions existed.

What is agreed to at consent includes the captions (:func:`captions_digest`): changing
one after ``/consent`` asks for the confirmation again, because the consent record says
exactly what the style was to be trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from stylebot.bot.core.commands import SetCaption, ShowCaptions
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import Upload
from stylebot.bot.core.names import InvalidStyleName, normalise_style_name
from stylebot.bot.core.replies import CaptionList, ErrorReply, ImageCaption, Reply, TextReply

# CLIP reads 77 tokens; a few hundred characters is about that, and more would be cut.
MAX_CAPTION_CHARS = 300
#: Typed instead of a caption, it clears one (``/captions 2 -``).
CLEAR = "-"
#: How the listing of the waiting images begins: platforms that take edits as a reply to
#: it (Telegram) know it by this.
WAITING_LISTING = "Captions of your "


def clean_caption(text: str | None) -> str | None:
    """A caption as stored: printable, one line, single spaces; None when nothing is left."""
    if text is None:
        return None
    words = "".join(ch if ch.isprintable() else " " for ch in text).split()
    return " ".join(words) or None


def fitted_caption(text: str | None) -> str | None:
    """A caption that came with an image (a message's whole text): cleaned and cut at a
    word to `MAX_CAPTION_CHARS`, since the member did not write it to our limit."""
    caption = clean_caption(text)
    if caption is None or len(caption) <= MAX_CAPTION_CHARS:
        return caption
    return caption[: MAX_CAPTION_CHARS + 1].rsplit(" ", 1)[0].rstrip(" ,;") or None


def captions_digest(uploads: Sequence[Upload]) -> str | None:
    """SHA-256 of the images' captions (by image SHA-256, order-free); None when no image
    has one, which is also what a consent from before captions recorded."""
    pairs = sorted((u.blob_key, u.caption) for u in uploads if u.caption)
    if not pairs:
        return None
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()


def listing(
    uploads: Sequence[Upload], heading: str, style: str | None, *, can_suggest: bool = False
) -> CaptionList:
    """The images' captions; for the waiting images (`style` None) with the suggestions
    waiting to be accepted, and whether a captioner may be asked for some."""
    entries = tuple(
        ImageCaption(
            number,
            upload.display_name,
            upload.caption or "",
            (upload.suggested_caption or "") if style is None else "",
        )
        for number, upload in enumerate(uploads, start=1)
    )
    lines = [heading]
    for entry in entries:
        line = (
            f"{entry.number}. {entry.display_name}: {entry.caption or '(none: the trigger alone)'}"
        )
        if entry.suggestion:
            line += f" · suggested: “{entry.suggestion}”"
        lines.append(line)
    if style is None:
        if any(entry.suggestion for entry in entries):
            lines.append(
                "Suggestions are not used until you accept them: "
                f"{mention(CommandName.CAPTIONS, 'accept')} takes them all, "
                f"{mention(CommandName.CAPTIONS, 'accept', 'NUMBER')} one; or write your own."
            )
        lines.append(
            f"Change one with {mention(CommandName.CAPTIONS, 'NUMBER', 'CAPTION')} "
            f"({CLEAR} or an empty caption clears it). The style's trigger goes first when "
            "it trains."
        )
        if can_suggest:
            lines.append(
                f"{mention(CommandName.CAPTIONS, 'auto')} has a captioner suggest captions."
            )
    text = "\n".join(lines)
    return CaptionList(
        text, private=True, captions=entries, style=style, can_suggest=can_suggest and not style
    )


async def show_captions(deps: Deps, command: ShowCaptions) -> Reply:
    """The waiting images' captions, or those a style of the asker's trained on."""
    user = await deps.user(command.requester)
    if command.style is None:
        pending = await deps.uow.uploads.pending_uploads(user.id)
        if not pending:
            return ErrorReply("There are no images waiting. Upload images first.")
        heading = f"{WAITING_LISTING}{len(pending)} waiting image(s):"
        return listing(pending, heading, None, can_suggest=deps.policy.captioner_configured)
    try:
        name = normalise_style_name(command.style)
    except InvalidStyleName as exc:
        return ErrorReply(str(exc))
    style = await deps.uow.styles.find_style(user.id, name)
    if style is None:
        # Captions are the owner's words: only their own styles show them.
        return ErrorReply(f"You have no style named {name}.")
    images = await deps.uow.uploads.style_uploads(style.id)
    return listing(images, f"Captions {name} trained on:", name)


async def set_caption(deps: Deps, command: SetCaption) -> Reply:
    """Change (or clear) the caption of one waiting image, by its number in the listing."""
    caption = None if command.caption.strip() == CLEAR else clean_caption(command.caption)
    if caption is not None and len(caption) > MAX_CAPTION_CHARS:
        return ErrorReply(
            f"A caption is at most {MAX_CAPTION_CHARS} characters (this one has "
            f"{len(caption)}); the text encoder would not read the rest. Nothing was changed."
        )
    user = await deps.user(command.requester)
    pending = await deps.uow.uploads.pending_uploads(user.id)
    if not 1 <= command.number <= len(pending):
        return ErrorReply(
            f"There is no waiting image {command.number}: "
            f"{mention(CommandName.CAPTIONS)} lists them with their numbers."
        )
    upload = pending[command.number - 1]
    async with deps.uow:
        changed = await deps.uow.uploads.set_pending_caption(user.id, upload.id, caption)
    if changed is None:  # trained or discarded meanwhile
        return ErrorReply("That image is no longer waiting. Nothing was changed.")
    said = f"“{caption}”" if caption else "none (the trigger alone)"
    return TextReply(f"Caption of image {command.number} ({upload.display_name}): {said}.")
