-- A restyle (image-to-image) starts from a picture: the blob it is stored as (a checked,
-- metadata-free upload, or the stylebot output it was, as stored), that output's id when
-- it was one, and the denoising strength (0-1). NULL for text-to-image outputs.
-- The source blob is named by its outputs, so it stays while one does.
ALTER TABLE outputs ADD COLUMN source_key TEXT;
ALTER TABLE outputs ADD COLUMN source_output_id TEXT;
ALTER TABLE outputs ADD COLUMN denoising_strength REAL;
CREATE INDEX outputs_source_key ON outputs (source_key) WHERE source_key IS NOT NULL;
