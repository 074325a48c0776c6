-- The SHA-256 of each stored answer's content, so that a save of the stored revision with other
-- content is refused as a conflict without reading the stored text back. The same as SQLite's
-- 0010; answers stored before it are digested here.
ALTER TABLE answers ADD COLUMN content_sha256 BYTEA;
UPDATE answers SET content_sha256 = sha256(convert_to(content, 'UTF8'));
