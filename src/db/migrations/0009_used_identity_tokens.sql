-- Sign in with Apple identity tokens are single-use (Security issue): a token seen once is refused
-- again until it expires, so a leaked or intercepted id_token cannot be replayed. Kept by SHA-256.
CREATE TABLE used_identity_tokens (
  token_hash bytea PRIMARY KEY,
  expires_at timestamptz NOT NULL,
  used_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX used_identity_tokens_expiry ON used_identity_tokens (expires_at);
ALTER TABLE used_identity_tokens ENABLE ROW LEVEL SECURITY;
