-- The SHA-256 of each stored answer's content, so that a save of the stored revision with other
-- content is refused as a conflict without reading the stored text back. NULL for answers stored
-- before this migration: their content is digested when a save needs it.
ALTER TABLE answers ADD COLUMN content_sha256 BLOB;
