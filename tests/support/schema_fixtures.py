"""Writes the database files under tests/data/schemas/: one per released schema.

A release of the schema is a commit on main that changed the migrations. For each, the
migration files exactly as that commit had them (read from git, so a later edit of an old
migration cannot leak in) build a database, and every table that schema has gets rows
(users, uploads, consents, styles, jobs, outputs, ledger entries, ...). The files are
committed; tests/integration/storage/test_schema_upgrades.py upgrades each to today's
schema. After a release that adds a migration, add its commit to RELEASES and run
`python -m tests.support.schema_fixtures` from the repository root.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stylebot.bot.core.ledger import LedgerEntry, LedgerKind, canonical_json, chain_entry
from stylebot.storage.database import split_statements

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "schemas"
MIGRATIONS = "src/stylebot/storage/migrations"
# (schema name, commit): each commit on main that changed the migrations, oldest first.
RELEASES = (
    ("v1", "2d35bb4"),
    ("v1+3", "38aa342"),  # 0003 landed before 0002
    ("v3", "7358bc6"),
    ("v6", "d6b23a1"),
    ("v7", "113a946"),
    ("v10", "5c2f43a"),  # this session's: opt-out index, output makers, pending clean-ups
)
AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SHA_A, SHA_B, LORA, EXPORT, EMBEDDING, IMAGE = (c * 64 for c in "abcdef")


def _at(minutes: int) -> str:
    return AT.replace(minute=minutes).isoformat(timespec="microseconds")


# Every row of every table any released schema had; each schema gets the columns it has.
ROWS: dict[str, list[dict[str, Any]]] = {
    "users": [
        {"id": 1, "platform": "discord", "platform_user_id": "1001", "display_name": "Alice"},
        {"id": 2, "platform": "telegram", "platform_user_id": "2002", "display_name": "Bob"},
    ],
    "consents": [
        {"id": 1, "user_id": 1, "licence": "CC-BY-4.0", "image_hashes": [SHA_A, SHA_B]},
        {"id": 2, "user_id": 2, "licence": "own-work", "image_hashes": [SHA_A]},
    ],
    "styles": [
        {
            "id": 1,
            "owner_id": 1,
            "name": "ink",
            "trigger": "sbt ink",
            "status": "ready",
            "consent_id": 1,
            "lora_key": LORA,
            "export_key": EXPORT,
            "visibility": "server",
            "shared_scope": "discord:77",
            "validation": [{"step": 10, "loss": 0.2, "base_loss": 0.3}],
            "train_settings": {"steps": 10, "rank": 4},
        },
        {
            "id": 2,
            "owner_id": 2,
            "name": "glow",
            "trigger": "sbt glow",
            "status": "ready",
            "consent_id": 2,
            "embedding_key": EMBEDDING,
            "lora_key": LORA,
        },
    ],
    "uploads": [
        {"user_id": 1, "blob_key": SHA_A, "display_name": "one.png", "style_id": 1},
        {"user_id": 1, "blob_key": SHA_B, "display_name": "two.jpg", "style_id": 1},
        {"user_id": 2, "blob_key": SHA_A, "display_name": "mine.png", "style_id": None},
    ],
    "jobs": [
        {
            "id": "train-1",
            "kind": "train",
            "user_id": 1,
            "style_id": 1,
            "status": "finished",
            "step": 10,
            "total": 10,
        },
        {
            "id": "generate-1",
            "kind": "generate",
            "user_id": 1,
            "style_id": 1,
            "status": "finished",
            "step": 4,
            "total": 4,
        },
        {
            "id": "generate-2",
            "kind": "generate",
            "user_id": 2,
            "style_id": None,
            "status": "failed",
            "error": "the worker stopped",
        },
    ],
    "outputs": [
        {
            "id": "0123456789ab",
            "job_id": "generate-1",
            "user_id": 1,
            "style_id": 1,
            "prompt": "a lighthouse sbt ink",
            "negative_prompt": "",
            "seed": 42,
            "blob_key": IMAGE,
        },
        {
            "id": "ba9876543210",
            "job_id": "generate-2",
            "user_id": 2,
            "style_id": None,
            "prompt": "a cat",
            "negative_prompt": "blurry",
            "seed": 7,
            "blob_key": None,
        },
    ],
    "bans": [
        {
            "platform": "discord",
            "platform_user_id": "666",
            "reason": "spam",
            "banned_by": "discord:1",
        }
    ],
    "quotas": [{"scope": "*", "kind": "generate", "per_day": 20, "set_by": "discord:1"}],
    "admin_log": [{"actor": "discord:1", "action": "ban", "detail": "discord:666"}],
    "optout_images": [
        {
            "platform": "discord",
            "platform_user_id": "1001",
            "sha256": SHA_B,
            "phash": "f0f0f0f0f0f0f0f0",
        }
    ],
    "usage_events": [
        {"kind": "generate", "user_key": "discord:1001", "scope": "discord:77", "amount": 1},
        {"kind": "train", "user_key": "telegram:2002", "scope": None, "amount": 1},
    ],
    "usage_pseudonym_key": [{"id": 1, "key": b"k" * 32}],
}
# Filled in for whichever of them a table has.
DEFAULTS: dict[str, Any] = {
    "created_at": _at(1),
    "updated_at": _at(2),
    "at": _at(3),
    "width": 64,
    "height": 64,
    "terms_version": "v1",
    "rights_confirmed": 1,
    "base_model": "tiny",
    "origin": {
        "platform": "discord",
        "user_id": "1001",
        "display_name": "Alice",
        "chat_id": "55",
        "server_id": "77",
    },
    "steps": 4,
    "guidance": 7.5,
    "set_by": "discord:1",
    "updated_by": "discord:1",
}


def _ledger_entries() -> list[LedgerEntry]:
    head: LedgerEntry | None = None
    entries = []
    payloads = [
        (LedgerKind.CONSENT, {"consent_id": 1, "images": [SHA_A, SHA_B]}),
        (LedgerKind.TRAINING, {"consent_id": 1, "style_id": 1}),
        (LedgerKind.CONSENT, {"consent_id": 2, "images": [SHA_A]}),
    ]
    for minutes, (kind, payload) in enumerate(payloads, start=10):
        head = chain_entry(head, kind, payload, AT.replace(minute=minutes))
        entries.append(head)
    return entries


def _migration_files(commit: str) -> list[tuple[str, str]]:
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{commit}:{MIGRATIONS}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return [
        (
            name,
            subprocess.run(
                ["git", "show", f"{commit}:{MIGRATIONS}/{name}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout,
        )
        for name in sorted(names)
        if name.endswith(".sql")
    ]


def _stored(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, list | dict) else value


def build(path: Path, commit: str) -> None:
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA page_size=512")  # small files to keep in git
        db.execute("PRAGMA foreign_keys=ON")
        # The runner's own bookkeeping, as database.py has always created it.
        db.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        for name, sql in _migration_files(commit):
            for statement in split_statements(sql):
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                (int(name[:4]), name[5:].removesuffix(".sql"), _at(0)),
            )
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, rows in ROWS.items():
            if table not in tables:
                continue
            columns = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
            for row in rows:
                values = {k: v for k, v in {**DEFAULTS, **row}.items() if k in columns}
                db.execute(
                    f"INSERT INTO {table} ({', '.join(values)})"
                    f" VALUES ({', '.join('?' for _ in values)})",
                    [_stored(v) for v in values.values()],
                )
        if "consent_ledger" in tables:
            for e in _ledger_entries():
                db.execute(
                    "INSERT INTO consent_ledger VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        e.seq,
                        e.kind,
                        e.recorded_at.isoformat(timespec="microseconds"),
                        canonical_json(e.payload),
                        e.prev_hash,
                        e.entry_hash,
                    ),
                )
        db.execute("VACUUM")
    finally:
        db.close()


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, commit in RELEASES:
        build(FIXTURES / f"{name}-{commit}.sqlite", commit)
        print(f"wrote {name}-{commit}.sqlite")


if __name__ == "__main__":
    main()
