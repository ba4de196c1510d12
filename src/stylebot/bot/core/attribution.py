"""Who made an output and what of it may be shown to whom, as recorded when it was made.

A maker is named by a handle that does not change (a Discord mention, a Telegram id and
the @name they had) and the display name they had when they asked for the image, never
the one they have now: a later rename must not relabel old pictures. An output made in
private (a direct message, or with a private style) shows its prompt and style to its
maker alone; anyone else learns who made it and when. The operator (`stylebot verify`
on the server) sees everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stylebot.bot.core.model import Output, Requester, Style, User, Visibility
from stylebot.bot.core.stores import UnitOfWork
from stylebot.bot.core.visitors import is_visitor

#: The viewer at the operator's command line: may see every record in full.
OPERATOR: Literal["operator"] = "operator"
Viewer = Requester | Literal["operator"]


def made_in_private(requester: Requester, style: Style | None) -> bool:
    """Whether an image asked for here is private: in a direct message (no server), or
    with a style nobody else may use."""
    return requester.server_id is None or (
        style is not None and style.visibility is Visibility.PRIVATE
    )


def maker_handle(platform: str, platform_user_id: str, username: str | None = None) -> str:
    """A stable way to name a person: Discord shows ``<@id>`` as a mention of them
    (the adapter sends it without pinging anyone). On Telegram the @name they had then, or
    (without one) their id: not both, an id next to a name only helps to track them. The
    Telegram renderer breaks the @ so that nobody is notified."""
    if platform == "discord":
        return f"<@{platform_user_id}>"
    if platform == "telegram":
        return f"@{username}" if username else f"Telegram id {platform_user_id}"
    return f"{platform} user {platform_user_id}"


@dataclass(frozen=True)
class Attribution:
    """What may be said of one output to one viewer."""

    maker: str  # "<handle>, then named 'X'" or how much of that is known
    private: bool  # made in private (or not known to be public)
    full: bool  # the viewer may see the prompt, style and settings
    style: Style | None


async def attribute(records: UnitOfWork, output: Output, viewer: Viewer) -> Attribution:
    owner = await records.users.get_user(output.user_id)
    style = await records.styles.get_style(output.style_id) if output.style_id else None
    maker, private = await _maker_and_privacy(records, output, owner, style)
    is_maker = viewer == OPERATOR or (
        owner is not None
        and isinstance(viewer, Requester)
        and not is_visitor(viewer)  # a visitor's key is no account, whatever it reads
        and (viewer.platform, viewer.user_id) == (owner.platform, owner.platform_user_id)
    )
    return Attribution(maker=maker, private=private, full=is_maker or not private, style=style)


async def _maker_and_privacy(
    records: UnitOfWork, output: Output, owner: User | None, style: Style | None
) -> tuple[str, bool]:
    if owner is None:
        return "a deleted user", True
    if output.maker_name is not None and output.made_in_private is not None:
        handle = maker_handle(owner.platform, owner.platform_user_id, output.maker_username)
        return f"{handle}, named {output.maker_name!r} when it was made", output.made_in_private
    # Recorded before outputs kept their maker: the job that asked for it still holds who
    # asked, as they were named then, and where.
    job = await records.jobs.get_job(output.job_id)
    handle = maker_handle(owner.platform, owner.platform_user_id)
    style_private = style is not None and style.visibility is Visibility.PRIVATE
    if job is None:
        return f"{handle} (their name at the time was not recorded)", True
    private = job.kind != "generate" or job.origin.server_id is None or style_private
    return (
        f"{handle}, named {job.origin.display_name!r} when they asked for it (from the "
        "job's record: this image is older than per-image records)",
        private,
    )


def record_lines(output: Output, attribution: Attribution) -> list[str]:
    """The record's lines this viewer may see, after the line naming the output."""
    made = f"made: {output.created_at.isoformat(timespec='seconds')}"
    if not attribution.full:
        return [
            f"by: {attribution.maker}",
            made,
            "It was made in private (a direct message or a private style): its prompt and "
            "style are shown only to its maker.",
        ]
    style = attribution.style
    return [
        f"by: {attribution.maker}",
        f"style: {style.name if style else 'none (base model)'}",
        *source_lines(output),
        f"prompt: {output.prompt}",
        f"seed: {output.seed}, steps: {output.steps}, size: {output.width}x{output.height}",
        made,
    ]


def source_lines(output: Output) -> list[str]:
    """What a restyled output was made from (none for one made from text alone)."""
    if output.source_key is None:
        return []
    strength = f"denoising strength {output.denoising_strength or 0:g}"
    if output.follow is not None:
        strength = f"its {output.follow} followed, weight {output.denoising_strength or 0:g}"
    if output.source_output_id is not None:
        return [f"made from: stylebot output {output.source_output_id} ({strength})"]
    return [f"made from: a picture its maker sent, SHA-256 {output.source_key[:16]}… ({strength})"]
