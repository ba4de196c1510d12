"""Records put straight into the front end's real SQLite and blob store, for tests about
what the bot does with them (how they got there is tested elsewhere)."""

from __future__ import annotations

from datetime import UTC, datetime

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.consent import TERMS_VERSION
from stylebot.bot.core.model import NewConsent, NewStyle, StyleStatus


async def add_ready_style(
    frontend: FrontEnd, platform: str, user_id: str, display_name: str, name: str, weights: bytes
) -> None:
    """A style of the user that finished training, with ``weights`` as its LoRA file."""
    repo, blobs = frontend.uow, frontend.blobs
    owner = await repo.users.get_or_create_user(platform, user_id, display_name)
    image = await blobs.put(f"reference image of {name}".encode())
    upload = await repo.uploads.add_upload(owner.id, image, "ref.png", 64, 64)
    now = datetime.now(UTC)
    consent = await repo.consents.add_consent(
        NewConsent(owner.id, "own-work", TERMS_VERSION, True, [image], now)
    )
    style = await repo.styles.add_style(
        NewStyle(owner.id, name, f"sbt {name}", consent.id, "tiny", {}, [upload.id], now)
    )
    await repo.styles.set_style_status(style.id, StyleStatus.READY, await blobs.put(weights))
