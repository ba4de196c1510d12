-- A restyle (image-to-image) starts from a picture: the blob it is stored as (a checked,
-- metadata-free upload, or the stylebot output it was, as stored), that output's id when
-- it was one, and the denoising strength (0-1). NULL for text-to-image outputs.
-- The source blob is named by its outputs, so it stays while one does.
ALTER TABLE outputs ADD COLUMN source_key TEXT;
ALTER TABLE outputs ADD COLUMN source_output_id TEXT;
ALTER TABLE outputs ADD COLUMN denoising_strength REAL;
-- Extend and repaint: where the picture went on the canvas, or the region drawn anew, as
-- "left,top,width,height" in pixels (re-rolls of them do the same again).
ALTER TABLE outputs ADD COLUMN keep_box TEXT;
ALTER TABLE outputs ADD COLUMN repaint_box TEXT;
CREATE INDEX outputs_source_key ON outputs (source_key) WHERE source_key IS NOT NULL;
