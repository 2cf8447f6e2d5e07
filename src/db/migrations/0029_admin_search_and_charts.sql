-- The support console's search and charts, each read from an index that stays small per answer at
-- 1M users and 10M jobs (docs/PERFORMANCE.md; test/admin/search-and-charts.test.ts checks the plans).
--
-- Search by the start of a device id or email, in any case: a LIKE 'prefix%' on lower(...) reads a
-- btree range only with text_pattern_ops (byte order, whatever the database's collation). The email
-- index replaces the exact lower(email) one of 0018: the same index answers equality too. User ids
-- and job ids are searched by a range of their primary keys, Apple subs and App Store transaction
-- ids by their unique keys: no index needed for those.
--
-- Each index reads its table once and holds back writes to it meanwhile. A large deployment can
-- build them beforehand without blocking, under these names (CREATE INDEX CONCURRENTLY ... with
-- the same definitions); IF NOT EXISTS then finds them.
CREATE INDEX IF NOT EXISTS users_device_id_prefix ON users (lower(device_id) text_pattern_ops);
CREATE INDEX IF NOT EXISTS users_email_prefix ON users (lower(email) text_pattern_ops);
DROP INDEX IF EXISTS users_email_lower;
