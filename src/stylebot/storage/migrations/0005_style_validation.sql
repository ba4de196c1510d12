-- The validation curve of a style's training (stylebot.trainer.validation): at
-- each checkpoint, the loss on held-out images with the LoRA and with the base
-- model, as a JSON list of {"step", "loss", "base_loss"}. NULL: no curve (a
-- single image, or trained before there were curves).

ALTER TABLE styles ADD COLUMN validation TEXT;
