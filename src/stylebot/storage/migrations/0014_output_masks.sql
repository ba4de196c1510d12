-- Repaint by a mask image: the blob of the black-and-white mask the output was drawn with
-- (white: drawn anew), so a re-roll repaints the same part. NULL for every other output.
-- Named by its outputs like source_key, so it stays while one does.
ALTER TABLE outputs ADD COLUMN mask_key TEXT;
CREATE INDEX outputs_mask_key ON outputs (mask_key) WHERE mask_key IS NOT NULL;
