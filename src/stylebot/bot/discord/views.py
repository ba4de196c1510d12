"""Buttons, selects and the naming modal, with their state in the custom_id.

Every component is a :class:`discord.ui.DynamicItem`: the custom_id carries
what the press needs (who may press it, the licence chosen, the style name,
the output id), and the client registers the classes at start. So a button
keeps working after the bot restarts, with no view or database lookup to
restore (discord.py's "persistent views" with state in the custom_id).

The callbacks only parse the custom_id, check that the presser is the user
the component belongs to, and hand over to the adapter; no rules live here.

custom_ids (Discord allows 100 characters):

- ``sb:licence:<user_id>:<people>:<name>``  the licence select of a consent request
- ``sb:people:<user_id>:<licence>:<name>``  whether recognisable people appear
- ``sb:confirm:<user_id>:<licence>:<people>:<name>`` confirm rights, then train
  ``name`` (an empty name opens the naming modal first)
- ``sb:discard:<user_id>``                 cancel: forget the waiting images
- ``sb:rename:<user_id>:<licence>:<people>`` pick another name after a refused one
- ``sb:<reroll|vary|info|delete>:<output_id>``  the buttons under a result image
- ``sb:erase:<user_id>`` / ``sb:keep:<user_id>``  confirm or cancel /forget-me

``<people>`` is one letter of :class:`PeopleAnswer`, empty until answered. Each
consent component carries the other select's answer, so choosing one keeps the
other. Messages sent before the people question existed lack it (their
custom_ids match with ``people`` unset); pressing them shows the question.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import discord

if TYPE_CHECKING:
    from stylebot.bot.discord.adapter import DiscordAdapter

CUSTOM_ID_LIMIT = 100
# Longest user id (20 digits) and licence id leave this much room for a name;
# a longer name (or one with ':') is asked for again in the modal instead.
_MAX_CARRIED_NAME = 48
_NAME_INPUT_ID = "name"


def adapter_of(interaction: discord.Interaction[Any]) -> DiscordAdapter:
    """The adapter behind the client that received this interaction."""
    # Imported here: the adapter module imports this one.
    from stylebot.bot.discord.adapter import DiscordAdapter

    adapter = getattr(interaction.client, "adapter", None)
    if not isinstance(adapter, DiscordAdapter):
        raise RuntimeError("interaction reached a client without a stylebot adapter")
    return adapter


class AdmittedItem:
    """Mixed into every component and modal: its interaction is admitted by the adapter,
    which tracks the handler so that stop() waits for it (and turns it away while stopping).
    discord.py calls interaction_check in the task that then runs the callback."""

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return await adapter_of(interaction).admit(interaction)


def carried_name(name: str) -> str:
    """The style name to keep in a custom_id, or "" to ask for it in the modal."""
    name = name.strip()
    if ":" in name or len(name) > _MAX_CARRIED_NAME or not name.isprintable():
        return ""
    return name


async def refuse_other_user(
    interaction: discord.Interaction[Any],
    owner_id: int,
    hint: str = "To train your own style, use /train.",
) -> bool:
    """True (after telling the presser) when the component belongs to someone else."""
    if interaction.user.id == owner_id:
        return False
    await interaction.response.send_message(
        f"This is for <@{owner_id}> only. {hint}",
        ephemeral=True,
        allowed_mentions=discord.AllowedMentions.none(),
    )
    return True


# -- consent ------------------------------------------------------------------


class PeopleAnswer(StrEnum):
    """Whether recognisable people appear in the images (one letter, for custom_ids)."""

    NONE = "n"
    AGREED = "y"
    NOT_AGREED = "x"

    @property
    def label(self) -> str:
        return _PEOPLE_LABELS[self]

    def consent_fields(self) -> tuple[bool, bool | None]:
        """`identifiable_people` and `people_agreed` of the core's ConfirmConsent."""
        if self is PeopleAnswer.NONE:
            return False, None
        return True, self is PeopleAnswer.AGREED


_PEOPLE_LABELS = {
    PeopleAnswer.NONE: "No recognisable people",
    PeopleAnswer.AGREED: "Recognisable people, and each of them agreed",
    PeopleAnswer.NOT_AGREED: "Recognisable people who did not agree",
}
# Optional in templates: custom_ids sent before the people question lack it.
_PEOPLE = r"(?:(?P<people>[nyx]?):)?"


def people_answer(text: str | None) -> PeopleAnswer | None:
    """The answer a custom_id carries; None when not (yet) given."""
    return PeopleAnswer(text) if text else None


class LicenceSelect(
    AdmittedItem,
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=r"sb:licence:(?P<user_id>[0-9]+):" + _PEOPLE + r"(?P<name>[^:]*)",
):
    """The licence the user grants for their images; Confirm needs it (and PeopleSelect)."""

    def __init__(
        self,
        user_id: int,
        name: str,
        options: Sequence[discord.SelectOption],
        chosen: str | None,
        people: PeopleAnswer | None = None,
    ) -> None:
        self.user_id = user_id
        self.name = name
        self.people = people
        self.options = [
            discord.SelectOption(label=o.label, value=o.value, default=o.value == chosen)
            for o in options
        ]
        super().__init__(
            discord.ui.Select(
                custom_id=f"sb:licence:{user_id}:{people or ''}:{name}",
                placeholder="Choose a licence for these images",
                options=self.options,
                min_values=1,
                max_values=1,
                row=0,
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> LicenceSelect:
        options = item.options if isinstance(item, discord.ui.Select) else []
        return cls(
            int(match["user_id"]), match["name"], options, None, people_answer(match["people"])
        )

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            if await refuse_other_user(interaction, self.user_id):
                return
            chosen = self.item.values[0] if self.item.values else None
            view = consent_view(self.user_id, self.name, self.options, chosen, self.people)
            await interaction.response.edit_message(view=view)


class PeopleSelect(
    AdmittedItem,
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=r"sb:people:(?P<user_id>[0-9]+):(?P<licence>[^:]*):(?P<name>[^:]*)",
):
    """Whether recognisable people appear, and agreed; Confirm needs it (and a licence).

    "Did not agree" enables Confirm too: the core then refuses and says why, rather
    than the choice quietly doing nothing.
    """

    def __init__(self, user_id: int, licence: str, name: str, chosen: PeopleAnswer | None) -> None:
        self.user_id = user_id
        self.licence = licence
        self.name = name
        super().__init__(
            discord.ui.Select(
                custom_id=f"sb:people:{user_id}:{licence}:{name}",
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
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> PeopleSelect:
        return cls(int(match["user_id"]), match["licence"], match["name"], None)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            if await refuse_other_user(interaction, self.user_id):
                return
            chosen = people_answer(self.item.values[0] if self.item.values else None)
            licences = licence_options_on(interaction.message)
            view = consent_view(self.user_id, self.name, licences, self.licence or None, chosen)
            await interaction.response.edit_message(view=view)


class ConfirmButton(
    AdmittedItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:confirm:(?P<user_id>[0-9]+):(?P<licence>[^:]*):" + _PEOPLE + r"(?P<name>[^:]*)",
):
    """ "I have the rights": records consent for the chosen licence, then trains."""

    def __init__(self, user_id: int, licence: str, people: PeopleAnswer | None, name: str) -> None:
        self.user_id = user_id
        self.licence = licence
        self.people = people
        self.name = name
        super().__init__(
            discord.ui.Button(
                label="I have the rights: train" if name else "I have the rights: name it",
                style=discord.ButtonStyle.success,
                custom_id=f"sb:confirm:{user_id}:{licence}:{people or ''}:{name}",
                disabled=not licence or people is None,
                row=2,
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ConfirmButton:
        return cls(
            int(match["user_id"]), match["licence"], people_answer(match["people"]), match["name"]
        )

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            if await refuse_other_user(interaction, self.user_id):
                return
            if self.people is None:
                # A consent message from before the people question: ask it now.
                licences = licence_options_on(interaction.message)
                view = consent_view(self.user_id, self.name, licences, self.licence or None)
                await interaction.response.edit_message(view=view)
                return
            if not self.name:
                await interaction.response.send_modal(
                    NameModal(self.user_id, self.licence, self.people)
                )
                return
            await adapter.confirm_and_train(interaction, self.licence, self.people, self.name)


class DiscardButton(
    AdmittedItem,
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
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> DiscardButton:
        return cls(int(match["user_id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            if await refuse_other_user(interaction, self.user_id):
                return
            await adapter.discard_uploads(interaction)


class RenameButton(
    AdmittedItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:rename:(?P<user_id>[0-9]+):(?P<licence>[^:]+)(?::(?P<people>[nyx]?))?",
):
    """After the name was refused (taken, invalid): ask for another one."""

    def __init__(self, user_id: int, licence: str, people: PeopleAnswer | None) -> None:
        self.user_id = user_id
        self.licence = licence
        self.people = people
        super().__init__(
            discord.ui.Button(
                label="Choose another name",
                style=discord.ButtonStyle.primary,
                custom_id=f"sb:rename:{user_id}:{licence}:{people or ''}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> RenameButton:
        return cls(int(match["user_id"]), match["licence"], people_answer(match["people"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            if await refuse_other_user(interaction, self.user_id):
                return
            await interaction.response.send_modal(
                NameModal(self.user_id, self.licence, self.people)
            )


class NameModal(AdmittedItem, discord.ui.Modal):
    """Asks for the style name when the images came without one (context menu)."""

    style_name: discord.ui.TextInput[NameModal] = discord.ui.TextInput(
        label="Style name",
        custom_id=_NAME_INPUT_ID,
        placeholder="e.g. watercolor (lowercase letters, digits, - and _)",
        min_length=1,
        max_length=64,
    )

    def __init__(self, user_id: int, licence: str, people: PeopleAnswer | None) -> None:
        super().__init__(
            title="Name your style", custom_id=f"sb:name:{user_id}:{licence}:{people or ''}"
        )
        self.user_id = user_id
        self.licence = licence
        self.people = people

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            await adapter.confirm_and_train(
                interaction, self.licence, self.people, self.style_name.value, from_modal=True
            )

    # This is Modal.on_error's signature (no `item`); mypy checks it against
    # BaseView.on_error, which Modal itself narrows the same way.
    async def on_error(  # type: ignore[override]  # Modal's signature: see above
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        await adapter_of(interaction).report_error(interaction, error)


def consent_view(
    user_id: int,
    name: str,
    licences: Iterable[discord.SelectOption],
    chosen: str | None = None,
    people: PeopleAnswer | None = None,
) -> discord.ui.View:
    """Licence select, people select, Confirm (enabled once both are answered), Cancel."""
    name = carried_name(name)
    licence = chosen or ""
    view = discord.ui.View(timeout=None)
    view.add_item(LicenceSelect(user_id, name, list(licences), chosen, people))
    view.add_item(PeopleSelect(user_id, licence, name, people))
    view.add_item(ConfirmButton(user_id, licence, people, name))
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


def rename_view(user_id: int, licence: str, people: PeopleAnswer | None) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RenameButton(user_id, licence, people))
    view.add_item(DiscardButton(user_id))
    return view


# -- erasure ------------------------------------------------------------------

_ERASE_HINT = "To erase your own data, use /forget-me."


class EraseButton(
    AdmittedItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:erase:(?P<user_id>[0-9]+)",
):
    """Confirms /forget-me: the core erases everything of the user's."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        super().__init__(
            discord.ui.Button(
                label="Confirm: erase everything",
                style=discord.ButtonStyle.danger,
                custom_id=f"sb:erase:{user_id}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> EraseButton:
        return cls(int(match["user_id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            if await refuse_other_user(interaction, self.user_id, _ERASE_HINT):
                return
            await adapter.erase_my_data(interaction)


class KeepButton(
    AdmittedItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:keep:(?P<user_id>[0-9]+)",
):
    """Cancels /forget-me; nothing reaches the core."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.secondary,
                custom_id=f"sb:keep:{user_id}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> KeepButton:
        return cls(int(match["user_id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            if await refuse_other_user(interaction, self.user_id, _ERASE_HINT):
                return
            await interaction.response.edit_message(
                content="Nothing was erased.", embed=None, view=None
            )


def erasure_view(user_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(EraseButton(user_id))
    view.add_item(KeepButton(user_id))
    return view


# -- results ------------------------------------------------------------------


class OutputAction(StrEnum):
    REROLL = "reroll"
    VARY = "vary"
    INFO = "info"
    DELETE = "delete"


_ACTION_LOOK: dict[OutputAction, tuple[str, str, discord.ButtonStyle]] = {
    OutputAction.REROLL: ("Re-roll", "\N{GAME DIE}", discord.ButtonStyle.primary),
    OutputAction.VARY: ("Variations", "\N{TWISTED RIGHTWARDS ARROWS}", discord.ButtonStyle.primary),
    OutputAction.INFO: ("Info", "\N{INFORMATION SOURCE}", discord.ButtonStyle.secondary),
    OutputAction.DELETE: ("Delete", "\N{WASTEBASKET}", discord.ButtonStyle.danger),
}


class OutputButton(
    AdmittedItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:(?P<action>reroll|vary|info|delete):(?P<output_id>[0-9a-zA-Z_-]+)",
):
    """One action on one generated image; who may do what is the core's decision."""

    def __init__(
        self,
        action: OutputAction,
        output_id: str,
        number: int | None = None,
        row: int | None = None,
    ) -> None:
        self.action = action
        self.output_id = output_id
        label, emoji, style = _ACTION_LOOK[action]
        super().__init__(
            discord.ui.Button(
                label=f"{label} {number}" if number else label,
                emoji=emoji,
                style=style,
                custom_id=f"sb:{action}:{output_id}",
                row=row,
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> OutputButton:
        return cls(OutputAction(match["action"]), match["output_id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            await adapter.output_action(interaction, self.action, self.output_id)


def result_view(output_ids: Sequence[str], *, first_number: int = 1) -> discord.ui.View | None:
    """One row of buttons per image (Discord allows five rows), numbered when several;
    a result in several messages numbers on from ``first_number``."""
    if not output_ids:
        return None
    view = discord.ui.View(timeout=None)
    numbered = len(output_ids) > 1 or first_number > 1
    for row, output_id in enumerate(output_ids[:5]):
        number = first_number + row if numbered else None
        for action in OutputAction:
            view.add_item(OutputButton(action, output_id, number, row=row))
    return view


def output_ids_on(message: discord.Message | None) -> list[str]:
    """The output ids whose buttons a result message carries, in order."""
    found: list[str] = []
    for row in message.components if message else []:
        for child in getattr(row, "children", []):
            match = OutputButton.__discord_ui_compiled_template__.fullmatch(
                getattr(child, "custom_id", None) or ""
            )
            if match and match["output_id"] not in found:
                found.append(match["output_id"])
    return found


#: Registered with the client at start, so presses on old messages still work.
DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    LicenceSelect,
    PeopleSelect,
    ConfirmButton,
    DiscardButton,
    RenameButton,
    EraseButton,
    KeepButton,
    OutputButton,
)
