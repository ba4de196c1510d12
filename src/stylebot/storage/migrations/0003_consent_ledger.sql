-- The consent ledger (stylebot.bot.core.ledger): append-only, hash-chained.
--
-- seq is the chain position (1, 2, 3, ...); each row's prev_hash is the
-- entry_hash of the row before it. The rows are the evidence, so the
-- database refuses to change or remove them: the triggers below make an
-- UPDATE or DELETE fail. Someone with the file can still drop the triggers;
-- that is what the hash chain (`stylebot consent verify`) catches.

CREATE TABLE consent_ledger (
    seq         INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,  -- ISO-8601 UTC with microseconds
    payload     TEXT    NOT NULL,  -- canonical JSON (sorted keys, no spaces)
    prev_hash   TEXT    NOT NULL,
    entry_hash  TEXT    NOT NULL UNIQUE
);

CREATE TRIGGER consent_ledger_no_update BEFORE UPDATE ON consent_ledger
BEGIN
    SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;

CREATE TRIGGER consent_ledger_no_delete BEFORE DELETE ON consent_ledger
BEGIN
    SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;

-- Opt-out registry (/optout): perceptual hashes of images whose author does
-- not want anyone else to train on them. Also append-only for the same reason.
CREATE TABLE optout_images (
    id          INTEGER PRIMARY KEY,
    platform    TEXT    NOT NULL,
    platform_user_id TEXT NOT NULL,
    sha256      TEXT    NOT NULL,
    phash       TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    UNIQUE (platform, platform_user_id, sha256)
);

-- What each user (and each server) asked for, for quotas and rate limits
-- (stylebot.bot.core.quotas). amount: images for "generate", 1 for "train".
CREATE TABLE usage_events (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL,
    user_key   TEXT    NOT NULL,  -- 'platform:user id'
    scope      TEXT,              -- 'platform:server id', NULL in DMs and the console
    amount     INTEGER NOT NULL,
    at         TEXT    NOT NULL   -- ISO-8601 UTC with microseconds
);

CREATE INDEX usage_by_user ON usage_events (kind, user_key, at);
CREATE INDEX usage_by_scope ON usage_events (kind, scope, at) WHERE scope IS NOT NULL;
