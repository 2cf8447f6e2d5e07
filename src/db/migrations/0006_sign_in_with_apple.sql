-- Sign in with Apple and guest merge (issue: Apple). A guest merged into an existing Apple account
-- is kept as a tombstone pointing at it (its ledger history stays; it can no longer sign in) and
-- gives up its device_id, so the device can onboard again (the DeviceCheck bit still blocks a
-- second free grant on the same physical device).
ALTER TABLE users ADD COLUMN merged_into uuid REFERENCES users (id);
ALTER TABLE users ADD CONSTRAINT merged_users_are_deleted CHECK (merged_into IS NULL OR deleted_at IS NOT NULL);
CREATE INDEX users_merged_into ON users (merged_into) WHERE merged_into IS NOT NULL;
