"""Who may use which style: owner, same server, other server, direct message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stylebot.bot.core.model import Style, StyleStatus, Visibility
from stylebot.bot.core.names import InvalidStyleName, normalise_style_name, trigger_phrase
from stylebot.bot.core.permissions import can_use, pick_style

OWNER, OTHER = 1, 2
HERE, ELSEWHERE = "discord:1", "discord:2"


def style(
    visibility: Visibility, scope: str | None = None, owner: int = OWNER, style_id: int = 1
) -> Style:
    return Style(
        id=style_id,
        owner_id=owner,
        name="ink",
        trigger="sbt ink style",
        visibility=visibility,
        status=StyleStatus.READY,
        consent_id=1,
        base_model="tiny",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        shared_scope=scope,
        lora_key="0" * 64,
    )


@pytest.mark.parametrize(
    ("visibility", "user", "where", "allowed"),
    [
        (Visibility.PRIVATE, OWNER, HERE, True),
        (Visibility.PRIVATE, OWNER, None, True),
        (Visibility.PRIVATE, OTHER, HERE, False),
        (Visibility.PRIVATE, OTHER, None, False),
        (Visibility.SERVER, OTHER, HERE, True),
        (Visibility.SERVER, OTHER, ELSEWHERE, False),
        (Visibility.SERVER, OTHER, None, False),
        (Visibility.SERVER, OWNER, ELSEWHERE, True),
        (Visibility.PUBLIC, OTHER, ELSEWHERE, True),
        (Visibility.PUBLIC, OTHER, None, True),
    ],
)
def test_can_use(visibility: Visibility, user: int, where: str | None, allowed: bool) -> None:
    assert can_use(style(visibility, HERE), user, where) is allowed


def test_a_users_own_style_wins_over_a_shared_one_of_the_same_name() -> None:
    shared = style(Visibility.SERVER, HERE, owner=OTHER, style_id=1)
    public = style(Visibility.PUBLIC, owner=3, style_id=2)
    mine = style(Visibility.PRIVATE, owner=OWNER, style_id=3)
    assert pick_style([shared, public, mine], "ink", OWNER, HERE) is mine
    assert pick_style([public, shared], "ink", OWNER, HERE) is shared
    assert pick_style([public, shared], "ink", OWNER, ELSEWHERE) is public
    assert pick_style([shared], "ink", OWNER, ELSEWHERE) is None


def test_a_style_shared_to_this_server_wins_over_an_older_public_one() -> None:
    public = style(Visibility.PUBLIC, owner=3, style_id=1)
    shared = style(Visibility.SERVER, HERE, owner=OTHER, style_id=2)
    assert pick_style([public, shared], "ink", OWNER, HERE) is shared
    assert pick_style([shared, public], "ink", OWNER, ELSEWHERE) is public


def test_style_names_are_normalised_and_checked() -> None:
    assert normalise_style_name("  Ink-Wash ") == "ink-wash"
    with pytest.raises(InvalidStyleName, match="lowercase letters"):
        normalise_style_name("ink/../../x")
    assert trigger_phrase("ink-wash_2") == "sbt ink wash 2 style"
