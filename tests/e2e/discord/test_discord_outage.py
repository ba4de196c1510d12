"""Discord failing on its side (5xx) for longer than the retries for refusals: the
result waits, uncounted and unacknowledged, and arrives once Discord answers again.
The real discord.py client against the fake Discord, which answers 503."""

from __future__ import annotations

import pytest
from tests.e2e.discord.test_discord_limits import TIMEOUT_S, attachment_bytes, queue_imagine
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeGuild, FakeUser
from tests.support.large_results import finish_with_images, noise_png, unacknowledged_events

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.delivery import DELIVERY_ATTEMPTS
from stylebot.bot.discord.adapter import DiscordAdapter

pytestmark = pytest.mark.slow


async def test_a_result_waits_out_discord_failing_and_arrives_once(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    frontend.retry_delays_s = (0.01,)  # refusals would use up their tries at once
    frontend.unreachable_backoff_s = (0.1, 0.4)
    sent, job_id = await queue_imagine(fake, guild, general, alice, frontend, 1)
    fake.expire_token(sent.token)  # the result goes to the channel
    failures = DELIVERY_ATTEMPTS + 3  # more than a refusal is tried, the notice included
    outage = fake.inject_error("POST", "/channels/", 503, 0, "Service Unavailable", failures)
    images = [noise_png(64, 64)]
    await finish_with_images(frontend, job_id, images)

    def posted() -> list[dict[str, object]]:
        return [m for m in fake.channel_messages(general.id) if "webhook_id" not in m]

    await fake.wait_until(
        lambda: bool(attachment_bytes(fake, posted())), timeout=TIMEOUT_S, what="the image"
    )
    assert outage.times == 0
    assert await unacknowledged_events(frontend) == 0
    assert attachment_bytes(fake, posted()) == images
    assert not [m for m in posted() if "could not be delivered" in str(m["content"])]
