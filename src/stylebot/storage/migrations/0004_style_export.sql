-- A style's LoRA in kohya's key layout with its metadata (stylebot.engine.lora_files),
-- the file /style export hands out. NULL for styles trained before it existed:
-- those export the diffusers-layout weights the generator loads.

ALTER TABLE styles ADD COLUMN export_key TEXT;

-- Deleting a blob asks "does anything else still use this key?" (see 0001).
CREATE INDEX styles_by_export ON styles (export_key) WHERE export_key IS NOT NULL;
