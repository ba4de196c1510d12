-- A style's textual-inversion embedding (stylebot.trainer.embeddings): the new
-- token's vector(s) in the A1111/diffusers safetensors layout, loaded under the
-- style's token at generation. NULL: the style trained a LoRA only.

ALTER TABLE styles ADD COLUMN embedding_key TEXT;

-- Deleting a blob asks "does anything else still use this key?" (see 0001).
CREATE INDEX styles_by_embedding ON styles (embedding_key) WHERE embedding_key IS NOT NULL;
