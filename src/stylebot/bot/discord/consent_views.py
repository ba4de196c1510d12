"""The consent question on Discord: licence and people selects, Confirm, Cancel, and the
naming modal. Their state lives in the custom_ids (see views.py for the scheme):

- ``sb:licence:<user_id>:<people>:<name>[:<variant>]``  the licence select of a consent request
- ``sb:people:<user_id>:<licence>:<name>[:<variant>]``  whether recognisable people appear
- ``sb:confirm:<user_id>:<licence>:<people>:<name>[:<variant>]`` confirm rights, then train
  ``name`` (an empty name opens the naming modal first)
- ``sb:discard:<user_id>``                 cancel: forget the waiting images
- ``sb:rename:<user_id>:<licence>:<people>[:<variant>]`` pick another name after a refused one

``<variant>`` is the adapter `/train variant:` chose (absent: the operator's), carried to
the training Confirm starts.

``<people>`` is the one-letter code of the core's :class:`PeopleAnswer`, empty until
answered. Each consent component carries the other select's answer, so choosing one
keeps the other. Messages sent before the people question existed lack it (their
custom_ids match with ``people`` unset); pressing them shows the question.

Over 400 lines on purpose: the items share the custom_id scheme above, written and read
back here only; split, the scheme would be spelled in several modules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Self

import discord

from stylebot.bot.core.commands import ConfirmConsent, DiscardUploads
from stylebot.bot.core.consent import PeopleAnswer, people_answer
from stylebot.bot.core.replies import ErrorReply, TrainingRefused
from stylebot.bot.discord.components import AdmittedItem, OwnedItem, adapter_of
from stylebot.bot.discord.render import render
from stylebot.queue.payloads import LORA_VARIANTS

if TYPE_CHECKING:
    from stylebot.bot.discord.adapter import DiscordAdapter

# Longest user id (20 digits), licence id and variant leave this much room for a name
# (style names are at most 32); a longer one (or one with ':') is asked for again in
# the modal instead.
_MAX_CARRIED_NAME = 43
_NAME_INPUT_ID = "name"
_VARIANT_INPUT_ID = "variant"
# Optional in templates: custom_ids sent before the people question lack it.
_PEOPLE = r"(?:(?P<people>[nyx]?):)?"
# The style name, then the variant when one was chosen (older custom_ids lack it).
_TRAINING = r"(?P<name>[^:]*)(?::(?P<variant>[a-z]+))?"


def _training(name: str, variant: str | None) -> str:
    """A custom_id's last part: the name, and the variant if chosen."""
    return f"{name}:{variant}" if variant else name


def carried_variant(variant: str | None) -> str | None:
    """The variant to keep in a custom_id: only one the bot trains (the core says why
    another is refused, and Confirm then goes on without it)."""
    return variant if variant in LORA_VARIANTS else None


def carried_name(name: str) -> str:
    """The style name to keep in a custom_id, or "" to ask for it in the modal."""
    name = name.strip()
    if ":" in name or len(name) > _MAX_CARRIED_NAME or not name.isprintable():
        return ""
    return name


class LicenceSelect(
    OwnedItem,
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=r"sb:licence:(?P<user_id>[0-9]+):" + _PEOPLE + _TRAINING,
):
    """The licence the user grants for their images; Confirm needs it (and PeopleSelect)."""

    def __init__(
        self,
        user_id: int,
        name: str,
        options: Sequence[discord.SelectOption],
        chosen: str | None,
        people: PeopleAnswer | None = None,
        variant: str | None = None,
    ) -> None:
        self.user_id = user_id
        self.name = name
        self.people = people
        self.variant = variant
        self.options = [
            discord.SelectOption(label=o.label, value=o.value, default=o.value == chosen)
            for o in options
        ]
        super().__init__(
            discord.ui.Select(
                custom_id=f"sb:licence:{user_id}:{people or ''}:{_training(name, variant)}",
                placeholder="Choose a licence for these images",
                options=self.options,
                min_values=1,
                max_values=1,
                row=0,
            )
        )

    @classmethod
    def from_match(cls, match: re.Match[str], item: discord.ui.Item[Any]) -> Self:
        options = item.options if isinstance(item, discord.ui.Select) else []
        people = people_answer(match["people"])
        return cls(int(match["user_id"]), match["name"], options, None, people, match["variant"])

    async def pressed(self, adapter: DiscordAdapter, interaction: discord.Interaction[Any]) -> None:
        chosen = self.item.values[0] if self.item.values else None
        view = consent_view(
            self.user_id, self.name, self.options, chosen, self.people, self.variant
        )
        await interaction.response.edit_message(view=view)


class PeopleSelect(
    OwnedItem,
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=r"sb:people:(?P<user_id>[0-9]+):(?P<licence>[^:]*):" + _TRAINING,
):
    """Whether recognisable people appear, and agreed; Confirm needs it (and a licence).

    "Did not agree" enables Confirm too: the core then refuses and says why, rather
    than the choice quietly doing nothing.
    """

    def __init__(
        self,
        user_id: int,
        licence: str,
        name: str,
        chosen: PeopleAnswer | None,
        variant: str | None = None,
    ) -> None:
        self.user_id = user_id
        self.licence = licence
        self.name = name
        self.variant = variant
        super().__init__(
            discord.ui.Select(
                custom_id=f"sb:people:{user_id}:{licence}:{_training(name, variant)}",
                placeholder="Are there recognisable people in these images?",
                options=[
                    discord.SelectOption(
                        label=answer.label, value=answer.value, default=answer is chosen
                    )
                    for answer in PeopleAnswer
                ],
                min_values=1,
                max_values=1,
                row=1,
            )
        )

    @classmethod
    def from_match(cls, match: re.Match[str], item: discord.ui.Item[Any]) -> Self:
        return cls(int(match["user_id"]), match["licence"], match["name"], None, match["variant"])

    async def pressed(self, adapter: DiscordAdapter, interaction: discord.Interaction[Any]) -> None:
        chosen = people_answer(self.item.values[0] if self.item.values else None)
        licences = licence_options_on(interaction.message)
        view = consent_view(
            self.user_id, self.name, licences, self.licence or None, chosen, self.variant
        )
        await interaction.response.edit_message(view=view)


class ConfirmButton(
    OwnedItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:confirm:(?P<user_id>[0-9]+):(?P<licence>[^:]*):" + _PEOPLE + _TRAINING,
):
    """ "I have the rights": records consent for the chosen licence, then trains."""

    def __init__(
        self,
        user_id: int,
        licence: str,
        people: PeopleAnswer | None,
        name: str,
        variant: str | None = None,
    ) -> None:
        self.user_id = user_id
        self.licence = licence
        self.people = people
        self.name = name
        self.variant = variant
        super().__init__(
            discord.ui.Button(
                label="I have the rights: train" if name else "I have the rights: name it",
                style=discord.ButtonStyle.success,
                custom_id=(
                    f"sb:confirm:{user_id}:{licence}:{people or ''}:{_training(name, variant)}"
                ),
                disabled=not licence or people is None,
                row=2,
            )
        )

    @classmethod
    def from_match(cls, match: re.Match[str], item: discord.ui.Item[Any]) -> Self:
        people = people_answer(match["people"])
        return cls(int(match["user_id"]), match["licence"], people, match["name"], match["variant"])

    async def pressed(self, adapter: DiscordAdapter, interaction: discord.Interaction[Any]) -> None:
        if self.people is None:
            # A consent message from before the people question: ask it now.
            licences = licence_options_on(interaction.message)
            view = consent_view(
                self.user_id, self.name, licences, self.licence or None, None, self.variant
            )
            await interaction.response.edit_message(view=view)
        elif not self.name:
            modal = NameModal(self.user_id, self.licence, self.people, self.variant)
            await interaction.response.send_modal(modal)
        else:
            await confirm_and_train(
                adapter, interaction, self.licence, self.people, self.name, self.variant
            )


class DiscardButton(
    OwnedItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:discard:(?P<user_id>[0-9]+)",
):
    """Cancel: nothing is trained and the waiting images are forgotten."""

    def __init__(self, user_id: int, row: int | None = None) -> None:
        self.user_id = user_id
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.secondary,
                custom_id=f"sb:discard:{user_id}",
                row=row,
            )
        )

    @classmethod
    def from_match(cls, match: re.Match[str], item: discord.ui.Item[Any]) -> Self:
        return cls(int(match["user_id"]))

    async def pressed(self, adapter: DiscordAdapter, interaction: discord.Interaction[Any]) -> None:
        await discard_uploads(adapter, interaction)


class RenameButton(
    OwnedItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=(
        r"sb:rename:(?P<user_id>[0-9]+):(?P<licence>[^:]+)"
        r"(?::(?P<people>[nyx]?))?(?::(?P<variant>[a-z]+))?"
    ),
):
    """After the name was refused (taken, invalid): ask for another one."""

    def __init__(
        self, user_id: int, licence: str, people: PeopleAnswer | None, variant: str | None = None
    ) -> None:
        self.user_id = user_id
        self.licence = licence
        self.people = people
        self.variant = variant
        carried = f":{variant}" if variant else ""
        super().__init__(
            discord.ui.Button(
                label="Choose another name",
                style=discord.ButtonStyle.primary,
                custom_id=f"sb:rename:{user_id}:{licence}:{people or ''}{carried}",
            )
        )

    @classmethod
    def from_match(cls, match: re.Match[str], item: discord.ui.Item[Any]) -> Self:
        people = people_answer(match["people"])
        return cls(int(match["user_id"]), match["licence"], people, match["variant"])

    async def pressed(self, adapter: DiscordAdapter, interaction: discord.Interaction[Any]) -> None:
        modal = NameModal(self.user_id, self.licence, self.people, self.variant)
        await interaction.response.send_modal(modal)


class NameModal(AdmittedItem, discord.ui.Modal):
    """Asks for the style name when the images came without one (context menu), and
    the adapter variant when none was chosen (a context menu has no options)."""

    style_name: discord.ui.TextInput[NameModal] = discord.ui.TextInput(
        label="Style name",
        custom_id=_NAME_INPUT_ID,
        placeholder="e.g. watercolor (lowercase letters, digits, - and _)",
        min_length=1,
        max_length=64,
    )

    def __init__(
        self, user_id: int, licence: str, people: PeopleAnswer | None, variant: str | None
    ) -> None:
        super().__init__(
            title="Name your style", custom_id=f"sb:name:{user_id}:{licence}:{people or ''}"
        )
        self.user_id = user_id
        self.licence = licence
        self.people = people
        self.variant = variant
        self.variant_input: discord.ui.TextInput[NameModal] | None = None
        if variant is None:
            self.variant_input = discord.ui.TextInput(
                label="Adapter (optional): lora, dora or lokr",
                custom_id=_VARIANT_INPUT_ID,
                placeholder="empty: the bot's default",
                required=False,
                max_length=16,
            )
            self.add_item(self.variant_input)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            await confirm_and_train(
                adapter,
                interaction,
                self.licence,
                self.people,
                self.style_name.value,
                self._chosen_variant(),
                from_modal=True,
            )

    def _chosen_variant(self) -> str | None:
        if self.variant_input is None:
            return self.variant
        return self.variant_input.value.strip().lower() or None

    # This is Modal.on_error's signature (no `item`), which Modal itself narrows the same way.
    async def on_error(  # type: ignore[override]  # mypy checks it against BaseView.on_error
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        await adapter_of(interaction).report_error(interaction, error)


def consent_view(
    user_id: int,
    name: str,
    licences: Iterable[discord.SelectOption],
    chosen: str | None = None,
    people: PeopleAnswer | None = None,
    variant: str | None = None,
) -> discord.ui.View:
    """Licence select, people select, Confirm (enabled once both are answered), Cancel;
    each carries the style's name and adapter variant to the training Confirm starts."""
    name = carried_name(name)
    variant = carried_variant(variant)
    licence = chosen or ""
    view = discord.ui.View(timeout=None)
    view.add_item(LicenceSelect(user_id, name, list(licences), chosen, people, variant))
    view.add_item(PeopleSelect(user_id, licence, name, people, variant))
    view.add_item(ConfirmButton(user_id, licence, people, name, variant))
    view.add_item(DiscardButton(user_id, row=2))
    return view


def licence_options(licences: Iterable[tuple[str, str]]) -> list[discord.SelectOption]:
    """Select options from (id, label) pairs, as the core lists its licences."""
    return [discord.SelectOption(label=label[:100], value=lid) for lid, label in licences]


def licence_options_on(message: discord.Message | None) -> list[discord.SelectOption]:
    """The licence select's options on a consent message (its state lives there)."""
    template = LicenceSelect.__discord_ui_compiled_template__
    for row in message.components if message else []:
        for child in getattr(row, "children", []):
            if isinstance(child, discord.SelectMenu) and template.fullmatch(child.custom_id or ""):
                return list(child.options)
    return []


def rename_view(
    user_id: int, licence: str, people: PeopleAnswer | None, variant: str | None = None
) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RenameButton(user_id, licence, people, carried_variant(variant)))
    view.add_item(DiscardButton(user_id))
    return view


#: Registered with the client at start, so presses on old messages still work.
CONSENT_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    LicenceSelect,
    PeopleSelect,
    ConfirmButton,
    DiscardButton,
    RenameButton,
)


# -- what Confirm and Cancel do ---------------------------------------------------


async def confirm_and_train(
    adapter: DiscordAdapter,
    interaction: discord.Interaction[Any],
    licence: str,
    people: PeopleAnswer | None,
    name: str,
    variant: str | None,
    *,
    from_modal: bool = False,
) -> None:
    """Record consent for the waiting images under `licence`, with the answer about
    recognisable people, then train `name` as `variant` (one core command). The core
    refuses people who did not agree.

    `people` is None only for buttons sent before the question existed."""
    if from_modal:
        await adapter.defer(interaction, ephemeral=True)
    else:
        await interaction.response.defer()  # update the consent message in place
    requester = adapter.requester(interaction)
    command = ConfirmConsent.answered(requester, licence, people, name, variant)
    reply = await adapter.bot.handle(command)
    if isinstance(reply, TrainingRefused):
        # Consent is recorded; only the name (or timing) was refused.
        await interaction.edit_original_response(
            content=render(reply).short,
            embed=None,
            view=rename_view(interaction.user.id, licence, people, variant),
        )
    elif isinstance(reply, ErrorReply):
        await interaction.followup.send(render(reply).short, ephemeral=True)
    else:
        await adapter.respond(interaction, reply, ephemeral=True)


async def discard_uploads(adapter: DiscordAdapter, interaction: discord.Interaction[Any]) -> None:
    await interaction.response.defer()
    reply = await adapter.bot.handle(DiscardUploads(adapter.requester(interaction)))
    await interaction.edit_original_response(content=render(reply).short, embed=None, view=None)
