"""What the bot's Discord messages say: long lists whole, private answers ephemeral, user
text shown as typed, never as markdown or a link, and custom_ids within Discord's limit.

The real discord.py client and adapter against the fake Discord (which refuses content
over 2000 characters, as Discord does), over the real core, SQLite and Redis. Styles are
put in the records directly (tests/support/records.py); no worker runs, so queued jobs
stay queued.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from tests.e2e.discord.test_discord_bot import CB_DEFERRED, EPHEMERAL, original_when
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeGuild, FakeUser, SentInteraction
from tests.support.records import add_ready_style

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.consent import LICENCES, PeopleAnswer
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import JobFinished, Notification
from stylebot.bot.discord.adapter import DiscordAdapter
from stylebot.bot.discord.consent_views import consent_view, licence_options, rename_view
from stylebot.bot.discord.views import erasure_view
from stylebot.config import Settings
from stylebot.queue.payloads import LORA_VARIANTS

pytestmark = pytest.mark.slow

# A masked link Discord would render: "[text](url)" whose "[" no backslash escapes.
LIVE_MASKED_LINK = re.compile(r"(?<!\\)\[[^\]]*\]\(")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Room for many queued jobs of one member, none run (no worker)."""
    return settings.replace(max_queued_per_user=0, requests_per_window=0)


def answer_messages(fake: FakeDiscord, sent: SentInteraction) -> list[dict[str, Any]]:
    """The interaction's original response, then its follow-ups, in order."""
    return sorted(
        (
            m
            for m in fake.messages.values()
            if (m.get("interaction_metadata") or {}).get("id") == str(sent.id)
        ),
        key=lambda m: int(m["id"]),
    )


async def whole_answer(
    fake: FakeDiscord, sent: SentInteraction, expected: list[str]
) -> list[dict[str, Any]]:
    """The answer's messages once every one of ``expected`` is in them."""

    def complete() -> bool:
        text = "\n".join(m["content"] for m in answer_messages(fake, sent))
        return all(item in text for item in expected)

    await fake.wait_until(complete, timeout=20, what=f"{len(expected)} items in the answer")
    return answer_messages(fake, sent)


def unescaped(content: str) -> str:
    """What a reader sees of escaped markdown (backslash escapes removed)."""
    return re.sub(r"\\(.)", r"\1", content)


async def test_forty_styles_are_listed_whole_and_privately(
    fake: FakeDiscord,
    discord_bot: DiscordAdapter,
    frontend: FrontEnd,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
) -> None:
    names = [f"style_{n:02d}_with_a_long_name_xyz" for n in range(40)]
    for name in names:
        await add_ready_style(frontend, "discord", str(alice.id), "Alice", name, b"weights")

    sent = await fake.send_slash_command(guild.id, general.id, alice, "styles")
    await sent.callback()

    messages = await whole_answer(fake, sent, [name.replace("_", "\\_") for name in names])
    assert len(messages) > 1, "longer than one message, so several"
    assert all(m["flags"] & EPHEMERAL for m in messages), "the rest as private as the start"
    assert "(shortened)" not in "".join(m["content"] for m in messages)
    seen = unescaped("\n".join(m["content"] for m in messages))
    assert all(f"- {name} (ready, yours)" in seen for name in names)
    assert all(m["flags"] & EPHEMERAL for m in fake.channel_messages(general.id))


async def test_status_shows_all_45_jobs(
    fake: FakeDiscord,
    discord_bot: DiscordAdapter,
    frontend: FrontEnd,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
) -> None:
    for n in range(45):
        queued = await fake.send_slash_command(
            guild.id, general.id, alice, "imagine", {"prompt": f"boat {n}", "seed": n}
        )
        await original_when(fake, queued, lambda m: m["content"], "queued", 10)
    jobs = await frontend.uow.jobs.active_jobs()
    assert len(jobs) == 45

    sent = await fake.send_slash_command(guild.id, general.id, alice, "status")
    await sent.callback()

    messages = await whole_answer(fake, sent, [job.id for job in jobs])
    assert all(m["flags"] & EPHEMERAL for m in messages)
    assert "position 45 in the generation queue" in "".join(m["content"] for m in messages)


async def test_prompts_show_as_typed_and_never_as_links_or_markdown(
    fake: FakeDiscord,
    discord_bot: DiscordAdapter,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
) -> None:
    prompt = "[Free Nitro](https://discord.gift/x) and [more](https://e.x) ||boo|| **big**"
    negative = "# shout\n`code`"

    sent = await fake.send_slash_command(
        guild.id, general.id, alice, "imagine", {"prompt": prompt, "negative": negative}
    )
    await sent.callback()
    queued = await original_when(fake, sent, lambda m: m["content"], "queued", 10)

    content = queued["content"]
    assert not queued["flags"] & EPHEMERAL, "an image request is answered in the channel"
    assert LIVE_MASKED_LINK.search(content) is None, content
    for markup in ("||boo||", "**big**"):
        assert markup not in content
    assert prompt in unescaped(content), "the reader sees exactly what was typed"


def test_the_longest_custom_ids_the_bot_makes_fit_discords_100_characters() -> None:
    longest_user_id = 2**64 - 1  # snowflakes are 64-bit: 20 digits
    longest_licence = max((licence.id for licence in LICENCES), key=len)
    longest_variant = max(LORA_VARIANTS, key=len)
    options = licence_options((licence.id, licence.label) for licence in LICENCES)
    views = [
        # The longest name carried, with every other field at its longest too.
        consent_view(
            longest_user_id,
            "n" * 43,
            options,
            longest_licence,
            PeopleAnswer.NOT_AGREED,
            longest_variant,
        ),
        consent_view(longest_user_id, "m" * 44, options, longest_licence, PeopleAnswer.AGREED),
        consent_view(longest_user_id, "a:b", options),  # a name with the separator in it
        rename_view(longest_user_id, longest_licence, PeopleAnswer.AGREED, longest_variant),
        erasure_view(longest_user_id),
    ]
    custom_ids = [
        str(item.custom_id)  # type: ignore[attr-defined]
        for view in views
        for item in view.children
    ]
    assert len(custom_ids) == 16
    assert max(len(custom_id) for custom_id in custom_ids) <= 100
    assert any(custom_id.endswith(f":{'n' * 43}:{longest_variant}") for custom_id in custom_ids)
    # Too long (or holding ':') to carry, a name is asked for again instead of being cut.
    assert all("mm" not in c and not c.endswith("a:b") for c in custom_ids)


async def test_a_long_result_posted_in_the_channel_comes_whole_in_several_messages(
    fake: FakeDiscord,
    discord_bot: DiscordAdapter,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
) -> None:
    # A result whose interaction this process never saw (say, after a restart) is posted
    # in the channel; a 1000-character prompt of markup doubles when escaped.
    prompt = "*_" * 500
    text = f"Failed to make {prompt!r}: the worker gave up. " + "Details follow. " * 60
    to = Requester("discord", str(alice.id), "Alice", str(general.id), str(guild.id))

    await discord_bot.notify(Notification(to, JobFinished(text, "generate-1", "generate", False)))

    posted = fake.channel_messages(general.id)
    assert len(posted) > 1
    assert posted[0]["content"].startswith(f"<@{alice.id}> ")
    assert all(len(m["content"]) <= 2000 for m in posted)
    assert all(not m["content"].endswith("\\") for m in posted), "no escape cut in two"
    shown = unescaped("".join(m["content"] for m in posted))  # cut within the prompt
    assert prompt in shown
    assert shown.rstrip().endswith("Details follow.")


async def test_every_command_whose_answer_the_core_marks_private_answers_ephemerally(
    fake: FakeDiscord,
    discord_bot: DiscordAdapter,
    frontend: FrontEnd,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
) -> None:
    await add_ready_style(frontend, "discord", str(alice.id), "Alice", "secret-ink", b"weights")
    private_commands: list[tuple[str, dict[str, Any] | None]] = [
        ("styles", None),
        ("status", None),
        ("style info", {"name": "secret-ink"}),
        ("style export", {"name": "secret-ink"}),
        ("forget-me", None),
        ("admin queue", None),
    ]
    for command, options in private_commands:
        sent = await fake.send_slash_command(guild.id, general.id, alice, command, options)
        assert (await sent.callback()).json == {"type": CB_DEFERRED, "data": {"flags": EPHEMERAL}}
        answer = await original_when(fake, sent, lambda m: m["content"], f"/{command}", 10)
        assert answer["flags"] & EPHEMERAL, command
    visible = [m for m in fake.channel_messages(general.id) if not m["flags"] & EPHEMERAL]
    assert visible == []
