"""The database's key for one-way codes of user ids (table `usage_pseudonym_key`).

One random key per database, made on first use: a code can only be recomputed by
whoever holds the database, never from a user id alone. Each use mixes in its own
purpose, so a usage code and an opt-out registrant code of one person differ.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from stylebot.storage.session import SqliteSession


async def load_pseudonym_key(session: SqliteSession) -> bytes:
    # INSERT OR IGNORE: two processes making the key at once agree on one.
    async with session.transaction():
        await session.write(
            "INSERT OR IGNORE INTO usage_pseudonym_key (id, key) VALUES (1, ?)",
            (secrets.token_bytes(32),),
        )
    rows = await session.fetch_rows("SELECT key FROM usage_pseudonym_key")
    return bytes(rows[0][0])


def pseudonym(key: bytes, purpose: str, user_key: str) -> str:
    """32 hex digits; `purpose` "" is the usage log's (codes made before purposes existed)."""
    message = f"{purpose}:{user_key}" if purpose else user_key
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:32]
