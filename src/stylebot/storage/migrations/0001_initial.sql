-- The first schema of stylebot.
--
-- Conventions: times are ISO-8601 UTC text with microseconds
-- ('2024-05-01T12:00:00.000000+00:00'), which sorts in time order; JSON
-- columns hold compact JSON text; enum columns carry a CHECK so a hand edit
-- cannot store a value the code cannot read back. No STRICT tables or
-- RETURNING, so the schema also works with the older SQLite that some
-- distributions still ship.
--
-- Migration files must not contain BEGIN/COMMIT: the runner wraps each file
-- in its own transaction.

CREATE TABLE users (
    id               INTEGER PRIMARY KEY,
    platform         TEXT    NOT NULL,
    platform_user_id TEXT    NOT NULL,
    display_name     TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    UNIQUE (platform, platform_user_id)
);

-- AUTOINCREMENT because pending uploads get deleted: an id a user saw once
-- must never come back as a different image.
CREATE TABLE uploads (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    blob_key     TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    created_at   TEXT    NOT NULL,
    style_id     INTEGER REFERENCES styles (id)
);

-- "Pending" = not yet used by a style; the bot lists these per user.
CREATE INDEX uploads_pending ON uploads (user_id, id) WHERE style_id IS NULL;
CREATE INDEX uploads_by_style ON uploads (style_id) WHERE style_id IS NOT NULL;
-- Blobs are shared by content (the same image uploaded twice, by anyone), so
-- deleting one needs "does anything else still use this key?": see the
-- *_by_blob / styles_by_lora indexes.
CREATE INDEX uploads_by_blob ON uploads (blob_key);

CREATE TABLE consents (
    id               INTEGER PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users (id),
    licence          TEXT    NOT NULL,
    terms_version    TEXT    NOT NULL,
    rights_confirmed INTEGER NOT NULL CHECK (rights_confirmed IN (0, 1)),
    image_hashes     TEXT    NOT NULL,  -- JSON array of sha256 hex strings
    created_at       TEXT    NOT NULL,
    style_id         INTEGER REFERENCES styles (id)
);

CREATE INDEX consents_unused ON consents (user_id, created_at) WHERE style_id IS NULL;

CREATE TABLE styles (
    id             INTEGER PRIMARY KEY,
    owner_id       INTEGER NOT NULL REFERENCES users (id),
    name           TEXT    NOT NULL,
    trigger        TEXT    NOT NULL,
    visibility     TEXT    NOT NULL DEFAULT 'private'
                   CHECK (visibility IN ('private', 'server', 'public')),
    shared_scope   TEXT,
    status         TEXT    NOT NULL CHECK (status IN ('training', 'ready', 'failed')),
    consent_id     INTEGER NOT NULL UNIQUE REFERENCES consents (id),
    base_model     TEXT    NOT NULL,
    lora_key       TEXT,
    train_settings TEXT    NOT NULL DEFAULT '{}',  -- JSON object
    created_at     TEXT    NOT NULL,
    UNIQUE (owner_id, name),
    -- A scope only means something for server-shared styles, and they need one.
    CHECK ((visibility = 'server') = (shared_scope IS NOT NULL))
);

CREATE INDEX styles_by_name ON styles (name);
CREATE INDEX styles_by_scope ON styles (shared_scope) WHERE visibility = 'server';
CREATE INDEX styles_public ON styles (id) WHERE visibility = 'public';
CREATE INDEX styles_by_lora ON styles (lora_key) WHERE lora_key IS NOT NULL;

CREATE TABLE jobs (
    id         TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    style_id   INTEGER REFERENCES styles (id),
    status     TEXT    NOT NULL
               CHECK (status IN ('queued', 'running', 'finished', 'failed', 'cancelled')),
    origin     TEXT    NOT NULL,  -- JSON object with the Requester fields
    step       INTEGER NOT NULL DEFAULT 0,
    total      INTEGER NOT NULL DEFAULT 0,
    error      TEXT,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);

-- Partial indexes: the predicate must match the queries in repository.py.
CREATE INDEX jobs_active ON jobs (created_at) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_active_by_user ON jobs (user_id, created_at)
    WHERE status IN ('queued', 'running');

-- One row per generated image; the id is what the invisible watermark carries.
CREATE TABLE outputs (
    id              TEXT    PRIMARY KEY,
    job_id          TEXT    NOT NULL REFERENCES jobs (id),
    user_id         INTEGER NOT NULL REFERENCES users (id),
    style_id        INTEGER REFERENCES styles (id),
    prompt          TEXT    NOT NULL,
    negative_prompt TEXT    NOT NULL,
    seed            INTEGER NOT NULL,
    steps           INTEGER NOT NULL,
    guidance        REAL    NOT NULL,
    width           INTEGER NOT NULL,
    height          INTEGER NOT NULL,
    blob_key        TEXT,  -- NULL until the worker has stored the image
    created_at      TEXT    NOT NULL
);

CREATE INDEX outputs_by_job ON outputs (job_id);
CREATE INDEX outputs_by_blob ON outputs (blob_key) WHERE blob_key IS NOT NULL;
