"""A visitor: someone who asks without an account anywhere (the public verify page).

A visitor is never anyone's maker, so /verify tells them what it tells a stranger: who
made an output and when, and the prompt and style only of outputs made in public. They
are known only by a key the adapter derives from where the request came from, which the
rate limit counts like a user id.
"""

from __future__ import annotations

from stylebot.bot.core.model import Requester

#: No chat platform has this name, and no user is ever recorded under it.
VISITOR_PLATFORM = "visitor"


def visitor(client_key: str) -> Requester:
    """The requester for a visitor known by `client_key`: no server (nothing is shared
    with them) and no chat (nothing is delivered to them later)."""
    return Requester(VISITOR_PLATFORM, client_key, "a visitor", chat_id="", server_id=None)


def is_visitor(requester: Requester) -> bool:
    return requester.platform == VISITOR_PLATFORM
