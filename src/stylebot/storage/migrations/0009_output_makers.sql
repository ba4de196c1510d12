-- What /verify may say about an output (stylebot.bot.core.verify_report): who made it as
-- they were then, whether in private, and a fingerprint to find it by when its
-- watermark is gone. NULL in rows from before this migration: /verify falls back on the
-- job's record and says so.

-- The maker's display name and @name (Telegram) when the output was asked for.
ALTER TABLE outputs ADD COLUMN maker_name TEXT;
ALTER TABLE outputs ADD COLUMN maker_username TEXT;
-- 1: made in a direct message or with a private style (its prompt and style are shown
-- only to its maker); 0: made in a server with a style shared there or none.
ALTER TABLE outputs ADD COLUMN made_in_private INTEGER;
-- PerceptualHash.hex of the delivered image ('flat:...' for a flat one, never matched).
ALTER TABLE outputs ADD COLUMN fingerprint TEXT;

-- The fingerprint cut into 4 bands of 16 bits (4 hex digits), as
-- stylebot.bot.core.hash_bands.hash_bands does, so that a lookup reads only the
-- outputs sharing a band value with the picture, never the whole table.
CREATE TABLE output_fingerprint_bands (
    band      INTEGER NOT NULL,
    value     TEXT    NOT NULL,
    output_id TEXT    NOT NULL REFERENCES outputs (id) ON DELETE CASCADE,
    PRIMARY KEY (band, value, output_id)
) WITHOUT ROWID;

CREATE INDEX output_fingerprint_bands_by_output ON output_fingerprint_bands (output_id);

-- Every writer of outputs.fingerprint gets the bands, from the same rule.
CREATE TRIGGER output_fingerprint_bands_on_insert AFTER INSERT ON outputs
WHEN NEW.fingerprint IS NOT NULL AND NEW.fingerprint NOT LIKE 'flat:%'
BEGIN
    INSERT INTO output_fingerprint_bands (band, value, output_id) VALUES
        (0, substr(NEW.fingerprint, 1, 4), NEW.id),
        (1, substr(NEW.fingerprint, 5, 4), NEW.id),
        (2, substr(NEW.fingerprint, 9, 4), NEW.id),
        (3, substr(NEW.fingerprint, 13, 4), NEW.id);
END;

CREATE TRIGGER output_fingerprint_bands_on_update AFTER UPDATE OF fingerprint ON outputs
BEGIN
    DELETE FROM output_fingerprint_bands WHERE output_id = NEW.id;
    INSERT INTO output_fingerprint_bands (band, value, output_id)
    SELECT bands.band, substr(NEW.fingerprint, 1 + 4 * bands.band, 4), NEW.id
    FROM (SELECT 0 AS band UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3) AS bands
    WHERE NEW.fingerprint IS NOT NULL AND NEW.fingerprint NOT LIKE 'flat:%';
END;
