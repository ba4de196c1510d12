-- Per-image captions (issue 17): what each training image shows, in the member's words
-- (or an auto-captioner's, accepted by them). NULL: none; the image trains on the
-- style's trigger alone, as every image did before this migration.
ALTER TABLE uploads ADD COLUMN caption TEXT;
-- The consent covers the captions too: SHA-256 of the waiting images' captions as they
-- were confirmed (stylebot.bot.core.captions.captions_digest); NULL when none had one.
ALTER TABLE consents ADD COLUMN captions_sha256 TEXT;
