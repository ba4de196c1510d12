-- The key of the one-way code under which an erased user's recent usage keeps
-- counting towards their limits until it ages out (stylebot.storage.usage). One row,
-- made on first use; without it the code could be recomputed from a user id alone.

CREATE TABLE usage_pseudonym_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key BLOB NOT NULL
);
