-- A member's tier (by spend over the programme's window) and since when.
ALTER TABLE members ADD COLUMN tier TEXT;
ALTER TABLE members ADD COLUMN tier_since BIGINT;
