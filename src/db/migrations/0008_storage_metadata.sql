-- Object metadata lives in storage_objects only (Security issue, item 5). The local backend kept
-- each object's content type in a sidecar file "<key>.type", which was itself an uploadable key:
-- HTML uploaded as p.jpg plus "text/html" uploaded as p.jpg.type served a script from the API's
-- origin. The server now serves every object with the type, size, checksum and date of its row.

-- SHA-256 of the stored bytes (hex): the strong ETag of downloads. NULL only for rows written
-- before this migration (their ETag falls back to size and modification time).
ALTER TABLE storage_objects ADD COLUMN sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$');

-- When the bytes were last written (an upsert replaces them): Last-Modified, If-Range by date.
ALTER TABLE storage_objects ADD COLUMN updated_at timestamptz;
UPDATE storage_objects SET updated_at = created_at;
ALTER TABLE storage_objects ALTER COLUMN updated_at SET NOT NULL, ALTER COLUMN updated_at SET DEFAULT now();

-- The content type is sent as a header: a bare type/subtype token, never a CR/LF or parameters.
-- NOT VALID: rows written before this migration are not rechecked (the server sends
-- application/octet-stream for any value that is not such a token).
ALTER TABLE storage_objects ADD CONSTRAINT storage_objects_content_type_safe
  CHECK (content_type ~ '^[a-z]+/[a-z0-9.+-]+$') NOT VALID;
