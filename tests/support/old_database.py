"""A database file as an older stylebot left it: the schema up to a migration, with one
user, their consent and one ready style, for tests of upgrading over real data."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from stylebot.storage.database import load_migrations, open_database


async def database_before(path: Path, version: int, *, lora_key: str, at: datetime) -> None:
    """Write `path` migrated up to (not including) `version`, holding style 1 ('ink',
    ready, weights `lora_key`) of user 1 with consent 1."""
    old = await open_database(path, [m for m in load_migrations() if m.version < version])
    try:
        await old.execute(
            "INSERT INTO users (id, platform, platform_user_id, display_name, created_at)"
            " VALUES (1, 'discord', 'alice', 'Alice', ?)",
            (at.isoformat(),),
        )
        await old.execute(
            "INSERT INTO consents (id, user_id, licence, terms_version, rights_confirmed,"
            " image_hashes, created_at) VALUES (1, 1, 'CC0-1.0', 'v1', 1, '[]', ?)",
            (at.isoformat(),),
        )
        await old.execute(
            "INSERT INTO styles (id, owner_id, name, trigger, status, consent_id, base_model,"
            " lora_key, created_at) VALUES (1, 1, 'ink', 'sbt ink', 'ready', 1, 'tiny', ?, ?)",
            (lora_key, at.isoformat()),
        )
        await old.commit()
    finally:
        await old.close()
