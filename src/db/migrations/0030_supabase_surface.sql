-- GoTrue's user_metadata (supabase-js auth.updateUser({ data })): the client's own key/value
-- pairs, an object of bounded size. Nothing reads it but the user's own GET /auth/v1/user.
-- A constant default adds the column without rewriting users; the check is NOT VALID so adding it
-- does not scan a million rows that all hold '{}' (every write from now on is checked).
ALTER TABLE users ADD COLUMN user_metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE users ADD CONSTRAINT user_metadata_is_small_object
  CHECK (jsonb_typeof(user_metadata) = 'object' AND octet_length(user_metadata::text) <= 16384) NOT VALID;

-- Storage list() within the caller's own folder, by name (its default order) with limit/offset:
-- the owner's live objects of one bucket in key order, straight from the index.
CREATE INDEX storage_objects_owner_bucket_key ON storage_objects (owner_id, bucket, key) WHERE deleted_at IS NULL;
