-- Auto-captioning (issue 17): the caption a worker's captioner proposed for a waiting
-- image (/captions auto). Only a proposal: an image trains on `caption` alone, which
-- the member sets by accepting or editing it. NULL: none proposed (or decided since).
ALTER TABLE uploads ADD COLUMN suggested_caption TEXT;
