-- Follow a sketch (ControlNet): what the output followed of its source picture ("edges"),
-- so a re-roll follows it again; denoising_strength then holds the ControlNet's weight.
-- NULL for every other output.
ALTER TABLE outputs ADD COLUMN follow TEXT;
