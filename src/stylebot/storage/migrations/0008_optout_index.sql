-- /optout lookups by index instead of reading the whole registry, who registered
-- each image (as a one-way code), and where (stylebot.bot.core.optout).

-- The Discord server or Telegram group a registration came from ('platform:id'),
-- NULL in a direct message: its managers review it. Unknown for older rows.
ALTER TABLE optout_images ADD COLUMN scope TEXT;
-- One-way code of 'platform:user id' (stylebot.storage.optout); an erasure leaves it
-- in place. NULL only until the registry codes the rows from before this migration.
ALTER TABLE optout_images ADD COLUMN registrant TEXT;

CREATE INDEX optout_by_sha256 ON optout_images (sha256);
CREATE INDEX optout_by_registrant ON optout_images (registrant, created_at);
CREATE INDEX optout_by_scope ON optout_images (scope, id);

-- The perceptual hash cut into 4 bands of 16 bits (4 hex digits), as
-- stylebot.bot.core.optout.hash_bands does; flat hashes ('flat:...') have none.
CREATE TABLE optout_bands (
    band      INTEGER NOT NULL,
    value     TEXT    NOT NULL,
    optout_id INTEGER NOT NULL REFERENCES optout_images (id) ON DELETE CASCADE,
    PRIMARY KEY (band, value, optout_id)
) WITHOUT ROWID;

CREATE INDEX optout_bands_by_image ON optout_bands (optout_id);

-- Every writer of optout_images gets the bands, from the same rule.
CREATE TRIGGER optout_images_bands AFTER INSERT ON optout_images
WHEN NEW.phash NOT LIKE 'flat:%'
BEGIN
    INSERT INTO optout_bands (band, value, optout_id) VALUES
        (0, substr(NEW.phash, 1, 4), NEW.id),
        (1, substr(NEW.phash, 5, 4), NEW.id),
        (2, substr(NEW.phash, 9, 4), NEW.id),
        (3, substr(NEW.phash, 13, 4), NEW.id);
END;

INSERT INTO optout_bands (band, value, optout_id)
SELECT bands.band, substr(optout_images.phash, 1 + 4 * bands.band, 4), optout_images.id
FROM optout_images, (SELECT 0 AS band UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3) AS bands
WHERE optout_images.phash NOT LIKE 'flat:%';
