"""Who may use which style. The one place this rule lives."""

from __future__ import annotations

from stylebot.bot.core.model import Style, Visibility


def can_use(style: Style, user_id: int, scope: str | None) -> bool:
    """Owners use their styles anywhere; a shared style only in the server it was
    shared to; a public style everywhere."""
    if style.owner_id == user_id:
        return True
    if style.visibility is Visibility.PUBLIC:
        return True
    return (
        style.visibility is Visibility.SERVER and scope is not None and style.shared_scope == scope
    )


def pick_style(candidates: list[Style], name: str, user_id: int, scope: str | None) -> Style | None:
    """The style a name means to this user here: their own first, then one shared
    to this server, then a public one (oldest first, so a name cannot be hijacked
    by a newer public style)."""
    usable = [s for s in candidates if s.name == name and can_use(s, user_id, scope)]

    def rank(style: Style) -> tuple[int, int]:
        if style.owner_id == user_id:
            return (0, style.id)
        if style.visibility is Visibility.SERVER:
            return (1, style.id)
        return (2, style.id)

    return min(usable, key=rank, default=None)
