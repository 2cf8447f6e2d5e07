-- Provider accounting that says what happened to each request we made.
--
-- outcome 'cancelled' said only that we had asked the provider to cancel a request we did not need
-- (a second request for a job that had one), whatever the provider answered: such rows become
-- 'redundant', and what the provider answered is kept beside them. 'not_created': the provider
-- answered the submit with an error (or was not called: an open circuit), so no request exists;
-- 'sent' now means only that the answer never came (the request may exist).
ALTER TABLE provider_submissions DROP CONSTRAINT provider_submissions_outcome_check;
UPDATE provider_submissions SET outcome = 'redundant' WHERE outcome = 'cancelled';
ALTER TABLE provider_submissions ADD CONSTRAINT provider_submissions_outcome_check
  CHECK (outcome IN ('sent', 'accepted', 'adopted', 'not_created', 'redundant'));

-- The provider's answer to our cancel: cancelled (it accepted the cancel), refused (it declined),
-- already_finished (it had finished the request), unknown (no usable answer: timeout, 5xx, not found).
-- billed: the provider finished the request, so it bills it (true), it did not (false), or we cannot
-- tell (NULL: refused, unknown, or rows from before this migration).
ALTER TABLE provider_submissions
  ADD COLUMN cancel_answer text CHECK (cancel_answer IN ('cancelled', 'refused', 'already_finished', 'unknown')),
  ADD COLUMN cancel_answered_at timestamptz,
  ADD COLUMN billed boolean;

-- The admin failures page counts, per provider over a window, redundant requests (and the billed
-- ones) and attempts never answered (their request may exist and be billed: nothing tells us).
CREATE INDEX provider_submissions_duplicates ON provider_submissions (created_at) WHERE outcome IN ('redundant', 'sent');
