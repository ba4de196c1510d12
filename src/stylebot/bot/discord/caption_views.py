"""/captions on Discord: the listing's Edit buttons and the modal that changes captions.

A modal holds at most five text inputs, so the listing of the waiting images carries one
button per five images; its custom_id ``sb:captions:<user_id>:<first>`` says whose images
and from which number. A press reads the captions as they are now (the core's
``ShowCaptions``) into the modal; on submit each changed field becomes the core's
``SetCaption`` (an emptied field clears the caption).

With a captioner configured the listing also has *Suggest captions* (the core's
``SuggestCaptions``: a worker's job, whose suggestions come back as a listing), and once
suggestions wait, *Accept suggestions* (``AcceptCaptions``). The modal opens with an image's
suggestion in place of its caption, so submitting it accepts the suggestion, as edited.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Self

import discord

from stylebot.bot.core.captions import CLEAR, MAX_CAPTION_CHARS
from stylebot.bot.core.commands import (
    AcceptCaptions,
    Command,
    IncomingFile,
    SetCaption,
    ShowCaptions,
    SuggestCaptions,
)
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import CaptionList, ImageCaption
from stylebot.bot.discord.components import AdmittedItem, OwnedItem, adapter_of
from stylebot.bot.discord.render import render

if TYPE_CHECKING:
    from stylebot.bot.discord.adapter import DiscordAdapter

#: Text inputs a Discord modal holds.
PER_MODAL = 5
# Five rows of five buttons: the most a message carries; two are Suggest and Accept.
_MAX_BUTTONS = 25
_MAX_EDIT_BUTTONS = _MAX_BUTTONS - 2
# Discord's limits on a modal's title and a text input's label.
_TITLE_CHARS = 45
_LABEL_CHARS = 45


class EditCaptionsButton(
    OwnedItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:captions:(?P<user_id>[0-9]+):(?P<first>[0-9]+)",
):
    """Opens the modal for images ``first`` to ``first + 4`` of the listing."""

    hint = "To caption your own images, use /captions."

    def __init__(self, user_id: int, first: int, count: int = PER_MODAL) -> None:
        self.user_id = user_id
        self.first = first
        last = first + count - 1
        super().__init__(
            discord.ui.Button(
                label=f"Edit captions {first}-{last}" if last > first else f"Edit caption {first}",
                style=discord.ButtonStyle.primary,
                custom_id=f"sb:captions:{user_id}:{first}",
            )
        )

    @classmethod
    def from_match(cls, match: re.Match[str], item: discord.ui.Item[Any]) -> Self:
        return cls(int(match["user_id"]), int(match["first"]))

    async def pressed(self, adapter: DiscordAdapter, interaction: discord.Interaction[Any]) -> None:
        # A modal must be the press's first answer: the captions are read (from SQLite,
        # quickly) before it, so the modal shows them as they are now.
        reply = await adapter.bot.handle(ShowCaptions(adapter.requester(interaction)))
        if not isinstance(reply, CaptionList):
            await interaction.response.send_message(render(reply).short, ephemeral=True)
            return
        page = [c for c in reply.captions if self.first <= c.number < self.first + PER_MODAL]
        if not page:
            await interaction.response.send_message(
                "Those images are no longer waiting: /captions lists the ones that are.",
                ephemeral=True,
            )
            return
        await interaction.response.send_modal(CaptionsModal(self.user_id, page))


# What each button under the listing sends: its label, its look and the core command.
_CAPTION_ACTIONS: dict[str, tuple[str, discord.ButtonStyle, Callable[[Requester], Command]]] = {
    "auto": ("Suggest captions", discord.ButtonStyle.secondary, SuggestCaptions),
    "accept": ("Accept suggestions", discord.ButtonStyle.success, AcceptCaptions),
}


class CaptionsActionButton(
    OwnedItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:captions-(?P<action>auto|accept):(?P<user_id>[0-9]+)",
):
    """*Suggest captions* (the core's ``SuggestCaptions``: a worker's job, whose
    suggestions come back as a listing) or *Accept suggestions* (``AcceptCaptions``:
    every waiting suggestion becomes its image's caption)."""

    hint = "To caption your own images, use /captions."

    def __init__(self, user_id: int, action: str) -> None:
        self.user_id = user_id
        self.action = action
        label, style, _command = _CAPTION_ACTIONS[action]
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"sb:captions-{action}:{user_id}")
        )

    @classmethod
    def from_match(cls, match: re.Match[str], item: discord.ui.Item[Any]) -> Self:
        return cls(int(match["user_id"]), match["action"])

    async def pressed(self, adapter: DiscordAdapter, interaction: discord.Interaction[Any]) -> None:
        command = _CAPTION_ACTIONS[self.action][2](adapter.requester(interaction))
        await adapter.answer(interaction, command, ephemeral=True)


class CaptionsModal(AdmittedItem, discord.ui.Modal):
    """A text input per image, holding its caption (or the suggestion waiting for it);
    changed ones are saved on submit."""

    def __init__(self, user_id: int, page: Sequence[ImageCaption]) -> None:
        first, last = page[0].number, page[-1].number
        title = (
            f"Captions of images {first}-{last}" if last > first else f"Caption of image {first}"
        )
        super().__init__(title=title[:_TITLE_CHARS], custom_id=f"sb:caption-edit:{user_id}:{first}")
        self.user_id = user_id
        self.before = {entry.number: entry.caption for entry in page}
        self.inputs: dict[int, discord.ui.TextInput[CaptionsModal]] = {}
        for entry in page:
            field: discord.ui.TextInput[CaptionsModal] = discord.ui.TextInput(
                label=f"{entry.number}. {entry.display_name}"[:_LABEL_CHARS],
                custom_id=f"caption-{entry.number}",
                # A suggestion is offered in place of the caption: submitted, it is taken.
                default=entry.suggestion or entry.caption,
                placeholder="What the image shows, e.g. a lighthouse at dusk, fog",
                required=False,
                max_length=MAX_CAPTION_CHARS,
            )
            self.inputs[entry.number] = field
            self.add_item(field)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            await interaction.response.defer(ephemeral=True, thinking=True)
            requester = adapter.requester(interaction)
            answers = [
                await adapter.bot.handle(
                    SetCaption(requester, number, field.value.strip() or CLEAR)
                )
                for number, field in self.inputs.items()
                if field.value.strip() != self.before[number]
            ]
            if not answers:
                await interaction.followup.send("No caption changed.", ephemeral=True)
                return
            text = "\n".join(render(answer).short for answer in answers)
            await interaction.followup.send(text, ephemeral=True)

    # This is Modal.on_error's signature (no `item`), which Modal itself narrows the same way.
    async def on_error(  # type: ignore[override]  # mypy checks it against BaseView.on_error
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        await adapter_of(interaction).report_error(interaction, error)


def captioned(files: tuple[IncomingFile, ...], caption: str | None) -> tuple[IncomingFile, ...]:
    """The files, each with ``caption`` (None or blank: none): the /train option's, or
    the text of the message the context menu took the images from."""
    if not caption or not caption.strip():
        return files
    return tuple(dataclasses.replace(file, caption=caption) for file in files)


def captions_view(user_id: int, reply: CaptionList) -> discord.ui.View | None:
    """Edit buttons under the listing of the waiting images (none for a style's: those
    trained already and stay as they were), and Suggest and Accept where they apply."""
    if reply.style is not None or not reply.captions:
        return None
    view = discord.ui.View(timeout=None)
    count = len(reply.captions)
    for first in range(1, count + 1, PER_MODAL)[:_MAX_EDIT_BUTTONS]:
        view.add_item(EditCaptionsButton(user_id, first, min(PER_MODAL, count - first + 1)))
    if any(entry.suggestion for entry in reply.captions):
        view.add_item(CaptionsActionButton(user_id, "accept"))
    if reply.can_suggest:
        view.add_item(CaptionsActionButton(user_id, "auto"))
    return view
