import type pg from 'pg';

/**
 * Seeds a migrated database with `users` users and `jobs` video jobs, set-based (generate_series,
 * one INSERT … SELECT per table), consistent with every money invariant (verify-ledger passes):
 *
 * - users: 70 % guests (device id, its hash), 30 % Apple accounts (sub, email); created over 30 days
 *   a year ago; one session each with a chain of three refresh tokens (parent_id), some revoked.
 * - jobs over the last 365 days, in time order; user 1 has min(20k, jobs/10) of them (the heavy
 *   user of the admin page), the rest spread evenly; 90 % completed, 10 % failed, the last few
 *   minutes' still processing (hold open). Jobs finished more than 31 days ago are already
 *   expired: the video retention backlog is one day, as after a nightly run.
 * - ledger per user in time order (ids ascend with time across users, as in production): the
 *   initial grant, a purchase of exactly what its jobs cost (an iap_transactions row), an admin
 *   grant of 5 for every 50th user (with its audit row), then each job's hold and its capture or
 *   release, every entry with its running totals; accounts equal to the sums.
 *
 * Deterministic ids (md5 of a label and a number) tie the tables together without lookups.
 * Triggers are off while loading (session_replication_role = replica: the rows are right by
 * construction, and verify-ledger --full checks them afterwards), and the big tables' indexes and
 * keys are dropped and rebuilt after the load (a sort per index instead of millions of random
 * inserts; foreign keys are validated when added back). Needs a superuser (replica role).
 */
export interface SeedSize {
  users: number;
  jobs: number;
}

export interface SeedResult {
  ledgerEntries: number;
  heavyUserJobs: number;
  seconds: number;
}

const BIG_TABLES = ['users', 'video_jobs', 'credit_holds', 'ledger_entries', 'credit_accounts', 'auth_sessions', 'refresh_tokens', 'iap_transactions', 'admin_actions'];

export const userId = (n: number) => `md5('u' || ${n})::uuid`;

export async function seedScale(db: pg.ClientBase, size: SeedSize, log: (msg: string) => void = () => undefined): Promise<SeedResult> {
  const started = Date.now();
  const U = size.users;
  const J = size.jobs;
  if (U < 2 || J < 1) throw new Error('seed needs at least 2 users and 1 job');
  const heavy = Math.min(20_000, Math.floor(J / 10));
  const step = async (what: string, sql: string, values: unknown[] = []) => {
    const t0 = Date.now();
    await db.query(sql, values);
    log(`  ${what} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  };

  await db.query("SET session_replication_role = replica; SET synchronous_commit = off; SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'");
  // Every index of the big tables is built after the load, by one sort each: inserting 10M random
  // uuids into a btree larger than the cache was most of the load time. Primary keys, unique and
  // foreign-key constraints (including those of other tables that reference the big ones) are
  // dropped with their indexes and added back, validated, afterwards.
  const { rows: constraints } = await db.query<{ tbl: string; name: string; def: string; type: string }>(
    `SELECT conrelid::regclass::text AS tbl, conname AS name, pg_get_constraintdef(oid) AS def, contype AS type
       FROM pg_constraint
      WHERE contype IN ('p', 'u', 'f') AND connamespace = 'public'::regnamespace
        AND (conrelid::regclass::text = ANY($1::text[]) OR confrelid::regclass::text = ANY($1::text[]))
      ORDER BY contype = 'f' DESC`,
    [BIG_TABLES],
  );
  for (const c of constraints) await db.query(`ALTER TABLE ${c.tbl} DROP CONSTRAINT ${c.name}`);
  const { rows: indexes } = await db.query<{ name: string; def: string }>(
    `SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY($1::text[])`,
    [BIG_TABLES],
  );
  for (const ix of indexes) await db.query(`DROP INDEX ${ix.name}`);

  await db.query('CREATE TEMP TABLE seed_params AS SELECT now() AS t0, $1::int AS users, $2::bigint AS jobs, $3::int AS heavy', [U, J, heavy]);

  await step(
    `users: ${U}`,
    `INSERT INTO users (id, device_id, apple_sub, email, is_guest, onboarded_device_hash, created_at, updated_at)
     SELECT md5('u' || n)::uuid,
            CASE WHEN n % 10 < 7 THEN 'device-' || n END,
            CASE WHEN n % 10 >= 7 THEN 'apple-' || n END,
            CASE WHEN n % 10 >= 7 THEN 'user' || n || '@example.com' END,
            n % 10 < 7,
            encode(sha256(convert_to('device-' || n, 'UTF8')), 'hex'),
            p.t0 - interval '400 days' + (n::float8 / p.users) * interval '30 days',
            p.t0 - interval '400 days' + (n::float8 / p.users) * interval '30 days'
       FROM seed_params p, generate_series(1, p.users) n`,
  );

  // Jobs: job i belongs to user 1 (the heavy user) or is spread evenly over the others; its time
  // grows with i over the last year.
  await step(
    `jobs: ${J}`,
    `CREATE TEMP TABLE seed_jobs AS
     SELECT i, CASE WHEN i <= p.heavy THEN 1 ELSE 2 + ((i * 48271) % (p.users - 1)) END AS n,
            p.t0 - interval '365 days' + ((i - 1)::float8 / p.jobs) * (interval '365 days' - interval '1 minute') AS created_at,
            1 + (i % 4)::int AS price,
            CASE WHEN i > p.jobs - greatest(3, p.jobs / 52560) THEN 'processing' WHEN i % 10 = 0 THEN 'failed' ELSE 'completed' END AS status
       FROM seed_params p, generate_series(1, p.jobs) i;
     INSERT INTO credit_holds (id, user_id, job_id, amount, status, captured_amount, created_at, resolved_at)
     SELECT md5('h' || i)::uuid, md5('u' || n)::uuid, md5('j' || i)::uuid, price,
            CASE status WHEN 'completed' THEN 'captured' WHEN 'failed' THEN 'released' ELSE 'open' END,
            CASE WHEN status = 'completed' THEN price END,
            created_at, CASE WHEN status <> 'processing' THEN created_at + interval '90 seconds' END
       FROM seed_jobs;
     INSERT INTO video_jobs (job_id, user_id, model_id, prompt, settings, status, provider, provider_job_id, credits_used, hold_id,
                             video_key, thumbnail_key, error_code, error_message, attempts, deadline_at, created_at, submitted_at,
                             completed_at, updated_at, expired_at)
     SELECT md5('j' || i)::uuid, md5('u' || n)::uuid, m.model_id, 'a seeded prompt, number ' || i, '{"duration": 4}'::jsonb, status,
            m.provider, 'seed-' || i, price, md5('h' || i)::uuid,
            CASE WHEN status = 'completed' THEN 'videos/' || md5('j' || i) || '.mp4' END,
            CASE WHEN status = 'completed' THEN 'videos/' || md5('j' || i) || '.jpg' END,
            CASE WHEN status = 'failed' THEN (ARRAY['ERR_5001', 'ERR_5002', 'ERR_5003'])[(1 + i / 10 % 3)::int] END,
            CASE WHEN status = 'failed' THEN 'seeded failure' END,
            1, created_at + interval '15 minutes', created_at, created_at + interval '2 seconds',
            CASE WHEN status <> 'processing' THEN created_at + interval '90 seconds' END,
            created_at + interval '90 seconds',
            CASE WHEN status <> 'processing' AND created_at + interval '90 seconds' < p.t0 - interval '31 days'
                 THEN created_at + interval '90 seconds' + interval '30 days' END
       FROM seed_jobs
       CROSS JOIN seed_params p
       JOIN (VALUES (0, 'simulator-text-to-video', 'simulator'), (1, 'veo-3.1-text-to-video', 'fal'), (2, 'runway-gen4.5', 'runway'))
            AS m (k, model_id, provider) ON m.k = i % 3`,
  );

  // What each user's jobs cost (bought up front) and captured.
  await step(
    'purchases and audit rows',
    `CREATE TEMP TABLE seed_costs AS
     SELECT n, sum(price)::int AS cost, coalesce(sum(price) FILTER (WHERE status = 'completed'), 0)::int AS captured,
            coalesce(sum(price) FILTER (WHERE status = 'processing'), 0)::int AS held
       FROM seed_jobs GROUP BY n;
     INSERT INTO iap_transactions (transaction_id, original_transaction_id, user_id, product_id, quantity, credits, environment, purchased_at, signed_transaction, created_at, updated_at)
     SELECT (2000000000000 + c.n)::text, (2000000000000 + c.n)::text, md5('u' || c.n)::uuid, 'com.rendioai.credits.starter.25', 1, c.cost,
            'Production', u.created_at + interval '1 minute', 'seeded', u.created_at + interval '1 minute', u.created_at + interval '1 minute'
       FROM seed_costs c JOIN users u ON u.id = md5('u' || c.n)::uuid;
     INSERT INTO admins (id, email, password_hash) VALUES (md5('admin')::uuid, 'seed-admin@example.com', 'seeded');
     INSERT INTO admin_actions (admin_id, action, target_type, target_id, amount, reason, request_id, before, after, created_at)
     SELECT md5('admin')::uuid, 'grant_credits', 'user', md5('u' || n)::uuid::text, 5, 'seeded goodwill', 'seed-' || n, '{}'::jsonb, '{}'::jsonb,
            p.t0 - interval '400 days' + (n::float8 / p.users) * interval '30 days' + interval '2 minutes'
       FROM seed_params p, generate_series(1, p.users) n WHERE n % 50 = 0 OR n = 1
      ORDER BY n`,
  );

  // Every entry of every user, with running totals per user in time order, inserted in time order.
  await step(
    'ledger entries',
    `INSERT INTO ledger_entries (user_id, kind, amount, held_delta, hold_id, job_id, transaction_id, admin_action_id, reason, balance_after, held_after, created_at)
     SELECT user_id, kind, amount, held_delta, hold_id, job_id, transaction_id, admin_action_id, reason,
            sum(amount) OVER w, sum(held_delta) OVER w, at
       FROM (
         SELECT md5('u' || n)::uuid AS user_id, 'grant' AS kind, 10 AS amount, 0 AS held_delta, NULL::uuid AS hold_id, NULL::uuid AS job_id,
                NULL AS transaction_id, NULL::bigint AS admin_action_id, 'initial grant' AS reason,
                p.t0 - interval '400 days' + (n::float8 / p.users) * interval '30 days' AS at, 0 AS ord, 0::bigint AS i
           FROM seed_params p, generate_series(1, p.users) n
         UNION ALL
         SELECT md5('u' || c.n)::uuid, 'purchase', c.cost, 0, NULL, NULL, (2000000000000 + c.n)::text, NULL, NULL,
                p.t0 - interval '400 days' + (c.n::float8 / p.users) * interval '30 days' + interval '1 minute', 1, 0
           FROM seed_costs c, seed_params p
         UNION ALL
         SELECT a.target_id::uuid, 'admin_grant', 5, 0, NULL, NULL, NULL, a.id, 'seeded goodwill', a.created_at, 2, 0
           FROM admin_actions a
         UNION ALL
         SELECT md5('u' || n)::uuid, 'hold', 0, price, md5('h' || i)::uuid, md5('j' || i)::uuid, NULL, NULL, NULL, created_at, 3, i
           FROM seed_jobs
         UNION ALL
         SELECT md5('u' || n)::uuid, CASE status WHEN 'completed' THEN 'capture' ELSE 'release' END,
                CASE status WHEN 'completed' THEN -price ELSE 0 END, -price, md5('h' || i)::uuid, md5('j' || i)::uuid, NULL, NULL, NULL,
                created_at + interval '90 seconds', 4, i
           FROM seed_jobs WHERE status <> 'processing'
       ) e
     WINDOW w AS (PARTITION BY user_id ORDER BY at, ord, i)
     ORDER BY at, ord, i, user_id`,
  );

  await step(
    'accounts',
    `INSERT INTO credit_accounts (user_id, balance, held, updated_at)
     SELECT md5('u' || n)::uuid,
            10 + coalesce(c.cost, 0) - coalesce(c.captured, 0) + CASE WHEN n % 50 = 0 OR n = 1 THEN 5 ELSE 0 END,
            coalesce(c.held, 0), p.t0
       FROM seed_params p CROSS JOIN generate_series(1, p.users) n LEFT JOIN seed_costs c USING (n)`,
  );

  // Sessions: last used up to 91 days ago (those idle for more than 90 — refresh token lifetime 60
  // days plus retention 30 — are the session retention's backlog, about a day's worth), every
  // 7th revoked up to 31 days ago (those past 30 likewise). Three rotated tokens each.
  await step(
    'sessions',
    `INSERT INTO auth_sessions (id, user_id, created_at, last_refreshed_at, revoked_at, revoked_reason)
     SELECT md5('s' || n)::uuid, md5('u' || n)::uuid, p.t0 - interval '400 days' + (n::float8 / p.users) * interval '30 days',
            p.t0 - (n % 91) * interval '1 day' - interval '1 hour',
            CASE WHEN n % 7 = 0 THEN p.t0 - (n % 31) * interval '1 day' - interval '1 hour' END,
            CASE WHEN n % 7 = 0 THEN 'logout' END
       FROM seed_params p, generate_series(1, p.users) n;
     INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, created_at, expires_at, rotated_at)
     OVERRIDING SYSTEM VALUE
     SELECT (n - 1) * 3 + k, md5('s' || n)::uuid, sha256(convert_to('token-' || n || '-' || k, 'UTF8')),
            CASE WHEN k > 1 THEN (n - 1) * 3 + k - 1 END,
            p.t0 - (n % 91) * interval '1 day' - interval '1 hour' - (3 - k) * interval '1 day',
            p.t0 - (n % 91) * interval '1 day' - interval '1 hour' - (3 - k) * interval '1 day' + interval '60 days',
            CASE WHEN k < 3 THEN p.t0 - (n % 91) * interval '1 day' - interval '1 hour' - (2 - k) * interval '1 day' END
       FROM seed_params p, generate_series(1, p.users) n, generate_series(1, 3) k;
     SELECT setval(pg_get_serial_sequence('refresh_tokens', 'id'), (SELECT max(id) FROM refresh_tokens))`,
  );

  const timedStep = async (what: string, sql: string) => {
    const t0 = Date.now();
    await db.query(sql);
    if (Date.now() - t0 >= 1000) log(`  ${what} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  };
  for (const c of constraints.filter((c) => c.type !== 'f')) await timedStep(c.name, `ALTER TABLE ${c.tbl} ADD CONSTRAINT ${c.name} ${c.def}`);
  for (const ix of indexes) await timedStep(ix.name, ix.def);
  for (const c of constraints.filter((c) => c.type === 'f')) await timedStep(c.name, `ALTER TABLE ${c.tbl} ADD CONSTRAINT ${c.name} ${c.def}`);
  await db.query('SET session_replication_role = origin');
  await step('vacuum analyze', 'VACUUM (ANALYZE)');
  const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM ledger_entries');
  await db.query('DROP TABLE seed_jobs, seed_costs, seed_params');
  return { ledgerEntries: Number(rows[0]!.n), heavyUserJobs: heavy, seconds: (Date.now() - started) / 1000 };
}

/**
 * "A day of traffic" between two verify-ledger passes, written like the app writes it (triggers
 * on, so each touched account is marked): `jobs` new completed 1-credit jobs, each of a different
 * user other than the heavy one, with their holds, hold and capture entries and account updates.
 */
export async function applyTraffic(db: pg.Pool | pg.ClientBase, t: { users: number; jobs: number; round: number }): Promise<void> {
  await db.query(
    `WITH picked AS (
       SELECT DISTINCT 2 + ((($3::bigint * $1 + k) * 7919) % ($2::bigint - 1)) AS n FROM generate_series(1, $1::int) k
     ), jobs AS (
       SELECT n, md5('u' || n)::uuid AS uid, gen_random_uuid() AS job_id, gen_random_uuid() AS hold_id FROM picked
     ), holds AS (
       INSERT INTO credit_holds (id, user_id, job_id, amount, status, captured_amount, resolved_at)
       SELECT hold_id, uid, job_id, 1, 'captured', 1, now() FROM jobs
     ), video AS (
       INSERT INTO video_jobs (job_id, user_id, model_id, prompt, settings, status, provider, provider_job_id, credits_used, hold_id,
                               video_key, attempts, deadline_at, submitted_at, completed_at)
       SELECT job_id, uid, 'simulator-text-to-video', 'a day of traffic', '{}'::jsonb, 'completed', 'simulator', 'traffic-' || job_id, 1, hold_id,
              'videos/' || job_id || '.mp4', 1, now() + interval '15 minutes', now(), now()
         FROM jobs
     ), entries AS (
       INSERT INTO ledger_entries (user_id, kind, amount, held_delta, hold_id, job_id, balance_after, held_after)
       SELECT j.uid, e.kind, e.amount, e.held_delta, j.hold_id, j.job_id, a.balance + e.balance, a.held + e.held
         FROM jobs j JOIN credit_accounts a ON a.user_id = j.uid
        CROSS JOIN (VALUES ('hold', 0, 1, 0, 1, 0), ('capture', -1, -1, -1, 0, 1)) AS e (kind, amount, held_delta, balance, held, ord)
        ORDER BY j.uid, e.ord
     )
     UPDATE credit_accounts a SET balance = a.balance - 1, updated_at = now() FROM jobs j WHERE a.user_id = j.uid`,
    [t.jobs, t.users, t.round],
  );
}
