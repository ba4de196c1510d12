-- Admin state: bans, quotas, and a log of what admins did.

-- A ban holds on one platform for one platform user id, for the whole bot.
CREATE TABLE bans (
    platform         TEXT NOT NULL,
    platform_user_id TEXT NOT NULL,
    reason           TEXT NOT NULL DEFAULT '',
    banned_by        TEXT NOT NULL,  -- "platform:user_id" of the operator
    created_at       TEXT NOT NULL,
    PRIMARY KEY (platform, platform_user_id)
) WITHOUT ROWID;

-- At most per_day images ('generate') or trainings ('train') per member per
-- day, in a scope: '*' for everyone, else a server ("discord:1234", ...).
CREATE TABLE quotas (
    scope      TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('train', 'generate')),
    per_day    INTEGER NOT NULL CHECK (per_day >= 1),
    set_by     TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (scope, kind)
) WITHOUT ROWID;

-- Who did what, for the operator and the community to look back on.
CREATE TABLE admin_log (
    id     INTEGER PRIMARY KEY,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
