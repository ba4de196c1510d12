-- The base model a style trained on, as the worker that trained it loaded it
-- (queue.payloads.TrainedBase): its family variant (sd15, sd2, sdxl, flux-dev,
-- flux-schnell, sd3-medium, sd3-large), a single-file checkpoint's SHA-256 ("" for
-- a folder or hub id) and its licence. base_model (0001) stays the operator's
-- setting when the style was asked for. NULL: trained before this was recorded.

ALTER TABLE styles ADD COLUMN base_model_variant TEXT;
ALTER TABLE styles ADD COLUMN base_model_sha256 TEXT;
ALTER TABLE styles ADD COLUMN base_model_licence TEXT;
ALTER TABLE styles ADD COLUMN base_model_licence_url TEXT;
