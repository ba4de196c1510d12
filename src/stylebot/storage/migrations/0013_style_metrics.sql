-- How well a style learned, measured on the worker with the operator's CLIP model
-- (stylebot.engine.style_metrics): a JSON object of StyleMetrics. NULL: not
-- measured (no CLIP model configured, or trained before there were metrics).

ALTER TABLE styles ADD COLUMN metrics TEXT;
