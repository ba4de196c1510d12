-- Queue-side work an erasure or a style deletion still owes (stylebot.bot.core.queue_cleanup):
-- recorded in the transaction that deletes the records, carried out after it (and again at
-- start and when the queue is back, if the queue was unreachable), deleted once done.
-- `work` is JSON of ids only: job ids to cancel and forget, the owner's fair-order key,
-- blob keys workers must drop, and whether the queue's files are to be rewritten.
CREATE TABLE pending_queue_cleanups (
    id          INTEGER PRIMARY KEY,
    work        TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
