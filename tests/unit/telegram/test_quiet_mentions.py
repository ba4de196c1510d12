"""Telegram notifies whoever an "@name" in a message names, and has no allowed_mentions:
the renderer breaks every @ in the bot's texts except before the bot's own name."""

from __future__ import annotations

from stylebot.bot.telegram.render import quiet_mentions

ZWNJ = "\u200c"


def test_every_at_name_is_broken_and_reads_the_same() -> None:
    text = "by: @ada, named 'Ada @eve_admin' when it was made"
    quiet = quiet_mentions(text)
    assert "@ada" not in quiet
    assert "@eve_admin" not in quiet
    assert quiet == text.replace("@", "@" + ZWNJ)
    assert quiet.replace(ZWNJ, "") == text


def test_the_bots_own_name_stays_a_link_and_lookalikes_do_not() -> None:
    text = "Open a chat with @StyleBot (not @StyleBotFake, @stylebot is fine)"
    quiet = quiet_mentions(text, "StyleBot")
    assert "with @StyleBot (" in quiet
    assert "@stylebot is fine" in quiet
    assert f"@{ZWNJ}StyleBotFake" in quiet


def test_an_at_sign_not_before_a_name_is_left_alone() -> None:
    assert quiet_mentions("mail me at a @ b, or @ 5pm") == "mail me at a @ b, or @ 5pm"
