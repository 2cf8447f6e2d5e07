import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { useAppStoreFakes } from '../fakes/app-store.js';
import { deviceToken } from '../fakes/device-check.js';
import { adminQuery, dropTestDatabase, runPrefix, withDatabase } from '../support/db.js';
import { TEST_JWT_SECRET, useTestApp } from '../support/harness.js';
import { ledgerBreaking } from '../support/ledger-breaking.js';
import { npmRun, ROOT, startProcess } from '../support/process.js';

/**
 * `npm run import:supabase`, through npm as docs/DEPLOY.md "Moving from Supabase" names it: the
 * former backend's database is built from test/fixtures/supabase-legacy/schema.sql and filled the
 * way its edge functions filled it (add_credits, generate_video_atomic), plus every kind of bad data
 * the import has a rule for. After the import the shipped app's legacy-mode requests
 * (docs/reference/ios-app.md §2) with the old ids get the old balances and histories; a second run
 * changes nothing; Apple's REFUND of a migrated purchase is clawed back.
 */

const ANON = 'anon-key-for-the-shipped-app-0123456789';
const legacy = { token: ANON, headers: { apikey: ANON } };
const { fakes: appStore } = useAppStoreFakes();

const ids = { a: randomUUID(), b: randomUUID(), c: randomUUID(), d: randomUUID(), e: randomUUID(), sora: randomUUID(), pika: randomUUID() };
const VIDEO = randomBytes(4096);
const THUMB = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(256)]);
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const PUBLIC = 'https://abcdefgh.supabase.co/storage/v1/object/public';

let sourceName: string;
let sourceUrl: string;
let exportDir: string;
const jobs: Record<string, string> = {};

async function buildSource(): Promise<void> {
  const adminUrl = inject('adminUrl');
  sourceName = `${runPrefix(inject('runId'))}supabase_${randomBytes(4).toString('hex')}`;
  await adminQuery(adminUrl, `CREATE DATABASE ${sourceName}`);
  sourceUrl = withDatabase(adminUrl, sourceName);
  const db = new pg.Client({ connectionString: sourceUrl });
  await db.connect();
  try {
    await db.query(readFileSync(path.join(ROOT, 'test/fixtures/supabase-legacy/schema.sql'), 'utf8'));
    const q = (sql: string, values: unknown[] = []) => db.query(sql, values);
    await q(
      `INSERT INTO models (id, name, category, cost_per_generation, provider, provider_model_id, pricing_type, is_active) VALUES
         ($1, 'Sora 2 Image-to-Video', 'image-to-video', 4, 'fal', 'fal-ai/sora-2/image-to-video', 'per_second', true),
         ($2, 'Pika 2.1', 'text-to-video', 3, 'pika', 'fal-ai/pika/v2.1/text-to-video', 'per_video', false)`,
      [ids.sora, ids.pika],
    );
    // A: a guest who bought 50, made a video (file and thumbnail in storage) and had one fail (refunded).
    // B: an Apple user who bought 100; one video whose file is lost, one job still running.
    // C: a guest with a negative balance. D: a later guest on A's device, with no auth.users row.
    // E: a guest whose video stayed on the provider's CDN.
    for (const [id, device, sub, auth] of [
      [ids.a, 'DEVICE-A', null, true],
      [ids.b, 'DEVICE-B', '001234.apple.b', true],
      [ids.c, 'DEVICE-C', null, true],
      [ids.e, 'DEVICE-E', null, true],
    ] as const) {
      if (auth) await q('INSERT INTO auth.users (id, is_anonymous) VALUES ($1, $2)', [id, sub === null]);
      await q(`INSERT INTO users (id, device_id, apple_sub, is_guest, email, auth_user_id, created_at) VALUES ($1, $2, $3, $4, $5, $1, now() - interval '30 days')`, [
        id,
        device,
        sub,
        sub === null,
        sub ? 'b@example.com' : null,
      ]);
      await q("SELECT add_credits($1, 10, 'initial_grant')", [id]);
    }
    await q("DROP INDEX idx_users_device_id_unique"); // a deployment where that migration never ran
    await q("INSERT INTO users (id, device_id, is_guest) VALUES ($1, 'DEVICE-A', true)", [ids.d]);
    await q("SELECT add_credits($1, 10, 'initial_grant')", [ids.d]);
    await q("SELECT add_credits($1, 50, 'iap_purchase', '2000000812345671')", [ids.a]);
    await q("SELECT add_credits($1, 100, 'iap_purchase', '2000000812345672')", [ids.b]);
    await q('UPDATE users SET credits_remaining = -5 WHERE id = $1', [ids.c]);
    // E bought 10 and Apple refunded them: the former refund handler took them off and logged it.
    await q("SELECT add_credits($1, 10, 'iap_purchase', '2000000812345673')", [ids.e]);
    await q('UPDATE users SET credits_remaining = credits_remaining - 10 WHERE id = $1', [ids.e]);
    await q("INSERT INTO quota_log (user_id, change, reason, transaction_id, balance_after) VALUES ($1, -10, 'apple_refund', '2000000812345673_refund', 6)", [ids.e]);
    await q('ALTER TABLE quota_log DROP CONSTRAINT quota_log_user_id_fkey');
    await q("INSERT INTO quota_log (user_id, change, reason, transaction_id, balance_after) VALUES ($1, 25, 'iap_purchase', '2000000812345679', 25)", [randomUUID()]);

    const generate = async (user: string, model: string, prompt: string) =>
      (await q('SELECT generate_video_atomic($1, $2, $3, $4, $5) AS r', [user, model, prompt, { duration: 4 }, randomUUID()])).rows[0].r.job_id as string;
    jobs.aDone = await generate(ids.a, ids.sora, 'a cat surfing at sunset');
    jobs.aFailed = await generate(ids.a, ids.sora, 'a prompt the provider refused');
    jobs.bLost = await generate(ids.b, ids.sora, 'a lighthouse in a storm');
    jobs.bRunning = await generate(ids.b, ids.pika, 'a dog on a skateboard');
    jobs.eExternal = await generate(ids.e, ids.sora, 'fireworks over a lake');
    const video = (user: string, job: string) => `${user}/2025-11/${job}.mp4`;
    await q(`UPDATE video_jobs SET status = 'completed', completed_at = now(), video_url = $2, thumbnail_url = $3 WHERE job_id = $1`, [
      jobs.aDone,
      `${PUBLIC}/videos/${video(ids.a, jobs.aDone!)}`,
      `${PUBLIC}/thumbnails/${ids.a}/${jobs.aDone}.jpg`,
    ]);
    await q(`UPDATE video_jobs SET status = 'failed', error_message = 'content policy' WHERE job_id = $1`, [jobs.aFailed]);
    await q("SELECT add_credits($1, 4, 'generation_failed_refund')", [ids.a]);
    await q(`UPDATE video_jobs SET status = 'completed', completed_at = now(), video_url = $2 WHERE job_id = $1`, [jobs.bLost, `${PUBLIC}/videos/${video(ids.b, jobs.bLost!)}`]);
    await q(`UPDATE video_jobs SET status = 'processing' WHERE job_id = $1`, [jobs.bRunning]);
    await q(`UPDATE video_jobs SET status = 'completed', completed_at = now(), video_url = 'https://v3.fal.media/files/x/out.mp4' WHERE job_id = $1`, [jobs.eExternal]);
    await q(
      `INSERT INTO storage.objects (bucket_id, name, owner, metadata) VALUES
         ('videos', $1, $3, $4), ('thumbnails', $2, $3, $5), ('videos', $6, $7, '{"size": 10}')`,
      [video(ids.a, jobs.aDone!), `${ids.a}/${jobs.aDone}.jpg`, ids.a, { size: VIDEO.length, eTag: `"${md5(VIDEO)}"`, mimetype: 'video/mp4' }, { size: THUMB.length, mimetype: 'image/jpeg' }, video(ids.b, jobs.bLost!), ids.b],
    );
  } finally {
    await db.end();
  }
  exportDir = path.join(process.env.TMPDIR ?? '/tmp', `rendio-supabase-export-${randomBytes(4).toString('hex')}`);
  mkdirSync(path.join(exportDir, 'videos', ids.a, '2025-11'), { recursive: true });
  mkdirSync(path.join(exportDir, 'thumbnails', ids.a), { recursive: true });
  writeFileSync(path.join(exportDir, 'videos', ids.a, '2025-11', `${jobs.aDone}.mp4`), VIDEO);
  writeFileSync(path.join(exportDir, 'thumbnails', ids.a, `${jobs.aDone}.jpg`), THUMB);
}

/** The former project's Storage S3 endpoint (s3rver, its default keys), holding the same two files. */
async function startStorageS3(): Promise<{ endpoint: string; close: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rendio-supabase-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: [{ name: 'videos', configs: [] }, { name: 'thumbnails', configs: [] }] });
  const endpoint = `http://127.0.0.1:${((await server.run()) as AddressInfo).port}`;
  const client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  await client.send(new PutObjectCommand({ Bucket: 'videos', Key: `${ids.a}/2025-11/${jobs.aDone}.mp4`, Body: VIDEO }));
  await client.send(new PutObjectCommand({ Bucket: 'thumbnails', Key: `${ids.a}/${jobs.aDone}.jpg`, Body: THUMB }));
  client.destroy();
  return { endpoint, close: async () => (await server.close(), rmSync(dir, { recursive: true, force: true })) };
}

describe('npm run import:supabase', () => {
  const t = useTestApp(() => ({ ANON_KEY: ANON, LEGACY_ANON_CLIENTS: 'true', ...appStore().env() }));
  const env = (dataDir = t().services.config.dataDir) => ({ DATABASE_URL: t().dbUrl, DATA_DIR: dataDir, JWT_SECRET: TEST_JWT_SECRET, LOG_LEVEL: 'warn' });
  const importSupabase = (...extra: string[]) => npmRun(['import:supabase', '--', '--from', sourceUrl, '--storage', exportDir, ...extra], { env: env() });
  const { whenBroken, expectOnly } = ledgerBreaking(t);
  const counts = async () =>
    (
      await t().db.query(
        `SELECT (SELECT count(*) FROM users)::int AS users, (SELECT count(*) FROM ledger_entries)::int AS entries,
                (SELECT count(*) FROM video_jobs)::int AS jobs, (SELECT count(*) FROM iap_transactions)::int AS purchases,
                (SELECT count(*) FROM storage_objects)::int AS files, (SELECT coalesce(sum(balance), 0)::int FROM credit_accounts) AS credits`,
      )
    ).rows[0];

  beforeAll(buildSource, 60_000);
  afterAll(async () => {
    if (sourceName) await dropTestDatabase(inject('adminUrl'), sourceName);
    if (exportDir) rmSync(exportDir, { recursive: true, force: true });
  });

  it('--dry-run reports what a run would do and writes nothing (files read and checked from the Storage S3 endpoint)', async () => {
    const before = await counts();
    const s3 = await startStorageS3();
    try {
      const s3Env = { SUPABASE_S3_ENDPOINT: s3.endpoint, SUPABASE_S3_ACCESS_KEY_ID: 'S3RVER', SUPABASE_S3_SECRET_ACCESS_KEY: 'S3RVER' };
      const out = await npmRun(['import:supabase', '--', '--from', sourceUrl, '--storage', 's3', '--dry-run'], { env: { ...env(), ...s3Env } });
      expect(out).toContain('DRY RUN');
      expect(out).toMatch(/this run: 5 users, 2 purchases, 5 jobs, 2 files \(4,356 bytes\)/);
      expect(out).toContain('video_unfetchable (1)');
    } finally {
      await s3.close();
    }
    expect(await counts()).toEqual(before);
  }, 120_000);

  it('an interrupted run leaves whole pages behind, and the next run continues from them', async () => {
    // Our object store cannot be written (its directory is a file): the jobs' page fails after the
    // users and purchases committed.
    const broken = startProcess('npm', ['run', 'import:supabase', '--', '--from', sourceUrl, '--storage', exportDir], {
      env: env(path.join(exportDir, 'thumbnails', ids.a, `${jobs.aDone}.jpg`)),
    });
    expect((await broken.exited).code, broken.output()).toBe(2);
    expect(broken.output()).toContain('could not import');
    const { rows } = await t().db.query("SELECT (SELECT count(*) FROM users)::int AS users, (SELECT count(*) FROM video_jobs)::int AS jobs");
    expect(rows[0]).toEqual({ users: 5, jobs: 0 });
  }, 120_000);

  it('imports ids, balances, purchases, history and files; the shipped app sees them unchanged; totals agree', async () => {
    // Pages of two rows: the keyset reads and per-page transactions are exercised across pages.
    const out = await importSupabase('--batch-size', '2');
    expect(out).toMatch(/this run: 0 users, 0 purchases, 5 jobs, 2 files/);
    expect(out).not.toContain('✗');
    expect(out).toContain('ledger OK');
    // Bad data is reported by rule, never a crash.
    for (const rule of ['refunded_there (1)', 'refund_row (1)', 'negative_balance (1)', 'duplicate_device_id (1)', 'no_auth_row (1)', 'unknown_user (1)', 'ended_by_import (1)', 'video_unfetchable (1)', 'video_not_in_storage (1)']) {
      expect(out).toContain(rule);
    }
    expect(out).toMatch(/balances \(source without negative balances = opening entries \+ refused users\): 175 = 175/);

    const credits = async (id: string) => (await t().json(t().get(`/functions/v1/get-user-credits?user_id=${id}`, legacy))).credits_remaining;
    // A: 10 + 50 − 4 − 4 + 4; B: 10 + 100 − 4 − 3, plus the running job's 3 given back; C opened at 0.
    expect(await credits(ids.a)).toBe(56);
    expect(await credits(ids.b)).toBe(106);
    expect(await credits(ids.c)).toBe(0);
    expect(await credits(ids.d)).toBe(10);
    expect(await credits(ids.e)).toBe(6);

    const history = async (id: string) => (await t().json(t().get(`/functions/v1/get-video-jobs?user_id=${id}&limit=20&offset=0`, legacy))).jobs;
    const a = await history(ids.a);
    expect(a.map((j: { job_id: string }) => j.job_id).sort()).toEqual([jobs.aDone, jobs.aFailed].sort());
    const done = a.find((j: { job_id: string }) => j.job_id === jobs.aDone);
    expect(done).toMatchObject({ status: 'completed', prompt: 'a cat surfing at sunset', model_name: 'Sora 2 Image-to-Video', credits_used: 4 });
    // The copied video is served from our store, byte for byte.
    const served = await t().get(new URL(done.video_url).pathname + new URL(done.video_url).search);
    expect(served.status).toBe(200);
    expect(Buffer.from(await served.arrayBuffer()).equals(VIDEO)).toBe(true);
    expect(done.thumbnail_url).toEqual(expect.any(String));
    const b = await history(ids.b);
    expect(b.find((j: { job_id: string }) => j.job_id === jobs.bLost)).toMatchObject({ status: 'completed', video_url: null });
    expect(b.find((j: { job_id: string }) => j.job_id === jobs.bRunning)).toMatchObject({ status: 'failed', model_name: 'Pika 2.1', credits_used: 3 });
    expect((await history(ids.e))[0]).toMatchObject({ status: 'completed', video_url: null });
    const status = await t().json(t().get(`/functions/v1/get-video-status?job_id=${jobs.aDone}`, legacy));
    expect(status).toMatchObject({ job_id: jobs.aDone, status: 'completed' });

    // The guest's device opens the same guest, with no second free grant; D lost the device to A.
    const onboarded = await t().json(t().post('/functions/v1/device-check', { ...legacy, body: { device_id: 'DEVICE-A', device_token: deviceToken('phone-a') } }));
    expect(onboarded).toMatchObject({ user_id: ids.a, is_new: false, credits_remaining: 56 });
    const { rows } = await t().db.query('SELECT id::text, device_id, apple_sub, supabase_auth_id::text FROM users WHERE id = ANY($1::uuid[]) ORDER BY id', [[ids.b, ids.d]]);
    expect(rows).toEqual(
      expect.arrayContaining([
        { id: ids.b, device_id: null, apple_sub: '001234.apple.b', supabase_auth_id: ids.b },
        { id: ids.d, device_id: null, apple_sub: null, supabase_auth_id: null },
      ]),
    );
  }, 180_000);

  it("verify-ledger holds an imported job's refund to that job's price, and a migrated purchase to no second credit", async () => {
    const broken = await whenBroken(async (c) => {
      await c.query('UPDATE video_jobs SET credits_used = 5 WHERE job_id = $1', [jobs.bRunning]);
    });
    expectOnly(broken, "an import entry naming a job gives back exactly that imported job's price, on its owner, once", jobs.bRunning!);

    // A migrated purchase (marked by its import entry) credited again as a purchase.
    const twice = await whenBroken(async (c) => {
      await c.query(
        `INSERT INTO ledger_entries (user_id, kind, amount, transaction_id, balance_after, held_after, debt_after)
         SELECT user_id, 'purchase', 50, '2000000812345671', balance + 50, held, debt FROM credit_accounts WHERE user_id = $1`,
        [ids.a],
      );
      await c.query('UPDATE credit_accounts SET balance = balance + 50 WHERE user_id = $1', [ids.a]);
    });
    expectOnly(twice, 'an Apple transaction credits one user at most once', '2000000812345671');
  });

  it('a second run changes nothing', async () => {
    const before = await counts();
    const out = await importSupabase();
    expect(out).toMatch(/this run: 0 users, 0 purchases, 0 jobs, 0 files/);
    expect(out).not.toContain('✗');
    expect(await counts()).toEqual(before);
  }, 120_000);

  it('bad arguments exit 2 with what is wrong, before touching a database', async () => {
    for (const [args, says] of [
      [['--from', 'postgres://x/y', '--nope'], /Unknown option '--nope'[\s\S]*usage: npm run import:supabase/],
      [['--storage', exportDir], /usage: npm run import:supabase/],
      [['--from', 'postgres://x/y', '--storage', 's3'], /set SUPABASE_S3_ENDPOINT, SUPABASE_S3_ACCESS_KEY_ID, SUPABASE_S3_SECRET_ACCESS_KEY/],
      [['--from', 'postgres://x/y', '--storage', path.join(exportDir, 'missing')], /not a directory/],
    ] as const) {
      const p = startProcess('npm', ['run', 'import:supabase', '--', ...args], { env: env() });
      expect((await p.exited).code, p.output()).toBe(2);
      expect(p.output()).toMatch(says);
    }
  }, 120_000);

  it("Apple's REFUND of a migrated purchase is clawed back, and the app cannot credit it again", async () => {
    const tx = { transactionId: '2000000812345672', productId: 'com.rendioai.credits.best.150' };
    const refund = await appStore().production.notification('REFUND', { ...tx, revocationDate: Date.now(), revocationReason: 1 });
    expect(await t().json(t().post('/functions/v1/apple-server-notifications', { body: refund }))).toEqual({ received: true, outcome: 'refund_clawed_back' });
    const { rows } = await t().db.query("SELECT amount, shortfall FROM ledger_entries WHERE transaction_id = '2000000812345672' AND kind = 'refund_clawback'");
    expect(rows).toEqual([{ amount: -100, shortfall: 0 }]);
    expect((await t().json(t().get(`/functions/v1/get-user-credits?user_id=${ids.b}`, legacy))).credits_remaining).toBe(6);

    // The app re-sending the migrated transaction (update-credits, legacy mode) credits nothing.
    appStore().production.add(tx);
    const again = await t().json(t().post('/functions/v1/update-credits', { ...legacy, body: { user_id: ids.b, transaction_id: '2000000812345672' } }));
    expect(again.already_processed).toBe(true);
    expect((await t().json(t().get(`/functions/v1/get-user-credits?user_id=${ids.b}`, legacy))).credits_remaining).toBe(6);
  }, 60_000);
});
