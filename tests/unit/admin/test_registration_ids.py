"""/optout registration ids, read the same on every platform (issue 15, point 4): the
typed `/admin removeoptout` and Discord's ids option both take them as listings and
removal replies show them (`#12, #15`). And numbers typed to /admin never crash it."""

from __future__ import annotations

import pytest
from tests.fakes.core import person

from stylebot.bot.core.admin_commands import RemoveOptOuts
from stylebot.bot.core.admin_grammar import AdminUsageError, parse_admin, registration_ids

ADA = person("ada", server="group-1", platform="telegram")


def test_ids_are_read_as_listings_show_them() -> None:
    assert registration_ids("#12, #15") == (12, 15)
    assert registration_ids("12 15,16") == (12, 15, 16)
    assert registration_ids("") == ()
    assert registration_ids("twelve") is None
    # A digit int() cannot read is no id (it would have crashed the command).
    assert registration_ids("²") is None


def test_typed_removal_takes_ids_with_commas_as_a_removal_reply_shows_them() -> None:
    command = parse_admin(ADA, "removeoptout #12, #15 not theirs")
    assert command == RemoveOptOuts(ADA, (12, 15), None, "not theirs")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ("removeoptout ² squatting", "ids"),
        ("quota generate ²", "whole number"),
        ("ban ² spam", "user id"),
        ("unban ²", "user id"),
    ],
)
def test_a_digit_int_cannot_read_is_a_usage_error_not_a_crash(args: str, says: str) -> None:
    """`'²'.isdigit()` is true, but `int('²')` raises: the grammar says how to write it."""
    with pytest.raises(AdminUsageError, match=says):
        parse_admin(ADA, args)
