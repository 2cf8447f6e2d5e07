import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordObject } from '../../src/db/queries/storage.js';
import { useAppStoreFakes } from '../fakes/app-store.js';
import { deviceToken } from '../fakes/device-check.js';
import { FakeAppleId, appleSub } from '../fakes/apple-id.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * Signing in with Apple racing the account's deletion, the device's onboarding and the guest's
 * retried generate-video: credits, jobs and keys end on a live account, never twice. Each test
 * failed when it was written and names the behaviour a fix must give. Real HTTP, real PostgreSQL,
 * the fakes.
 */

const SIM = 'simulator-text-to-video'; // 1 credit

const { fakes: appStore } = useAppStoreFakes();
let apple: FakeAppleId;
beforeAll(async () => {
  apple = await new FakeAppleId('com.rendioai.app').start();
});
afterAll(async () => {
  await apple.server.stop();
});

const signIn = (t: TestApp, idToken: string, guest?: Guest) =>
  t.post('/auth/v1/token?grant_type=id_token', { token: guest?.accessToken, body: { provider: 'apple', id_token: idToken } });

async function account(t: TestApp, userId: string): Promise<{ balance: number; held: number }> {
  const { rows } = await t.db.query('SELECT balance, held FROM credit_accounts WHERE user_id = $1', [userId]);
  return rows[0];
}

async function ownerOf(t: TestApp, userId: string): Promise<{ id: string; deleted: boolean }> {
  const { rows } = await t.db.query('SELECT id, deleted_at IS NOT NULL AS deleted FROM users WHERE id = user_current_owner($1)', [userId]);
  return rows[0];
}

/** An existing Apple account that owns 10 credits of its own (a guest that became it). */
/** An Apple account that began as the guest of deviceId on this phone. */
async function appleAccount(t: TestApp): Promise<{ sub: string; userId: string; accessToken: string; deviceId: string }> {
  const sub = appleSub();
  const g0 = await t.createGuest();
  const res = await t.json(signIn(t, await apple.identityToken({ sub }), g0));
  expect(res.user.id).toBe(g0.userId);
  return { sub, userId: res.user.id, accessToken: res.access_token, deviceId: g0.deviceId };
}

/**
 * Waits until at least n backends of this test's database wait on a lock, or until the request
 * settles on its own (a fixed server may no longer queue there): conditions, not sleeps.
 */
async function queued(t: TestApp, n: number, request?: Promise<unknown>, timeoutMs = 10_000): Promise<void> {
  let settled = false;
  void request?.then(
    () => (settled = true),
    () => (settled = true),
  );
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (settled) return;
    const { rows } = await t.db.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    );
    if (rows[0].n >= n) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`fewer than ${n} backends waiting on a lock`);
}

/** Holds the app's object store's delete() until released: storage slow or down during a purge. */
function gateStoreDeletes(t: TestApp) {
  const store = t.services.store;
  const original = store.delete;
  let reached!: () => void;
  let release!: () => void;
  const reachedP = new Promise<void>((r) => (reached = r));
  const gate = new Promise<void>((r) => (release = r));
  store.delete = async (bucket, key) => {
    reached();
    await gate;
    return original.call(store, bucket, key);
  };
  return {
    reached: reachedP,
    release: () => {
      store.delete = original;
      release();
    },
  };
}

describe('deletion vs Sign in with Apple', () => {
  const t = useTestApp(() => ({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true', ...apple.env() }));

  it('a guest signing in with the Apple ID of an account deleted moments ago (its purge not finished) is not merged into the deleted account: its credits and running job stay on a live account', async () => {
    const a = await appleAccount(t());
    // The account has a file, so its purge talks to storage after the deletion committed.
    await recordObject(t().db, { bucket: 'thumbnails', key: `${a.userId}/in.jpg`, ownerId: a.userId, size: 1, contentType: 'image/jpeg', sha256: '0'.repeat(64) });
    const gate = gateStoreDeletes(t());
    const deletion = t().post('/functions/v1/delete-account', { token: a.accessToken });
    let signedIn: Response;
    let g: Guest;
    try {
      await gate.reached; // deleted and committed; the purge is removing files (apple_sub not scrubbed yet)
      g = await t().createGuest();
      await t().json(t().generate(g, { model_id: SIM, prompt: 'a running job of the guest [sim:hang]' }));
      expect(await account(t(), g.userId)).toEqual({ balance: 10, held: 1 });
      signedIn = await signIn(t(), await apple.identityToken({ sub: a.sub }), g);
    } finally {
      gate.release();
    }
    expect((await deletion).status).toBe(200);
    const text = await signedIn.text();
    const owner = await ownerOf(t(), g.userId);
    expect({ signInStatus: signedIn.status < 500 ? 'not 5xx' : `HTTP ${signedIn.status}: ${text}`, ownerDeleted: owner.deleted }).toEqual({
      signInStatus: 'not 5xx',
      ownerDeleted: false,
    });
    expect(await account(t(), owner.id)).toEqual({ balance: 10, held: 1 });
  });
  it('a guest whose Sign in with Apple queues behind the deletion of that Apple account is not merged into the deleted account (plain race, no slow storage)', async () => {
    const a = await appleAccount(t());
    const g = await t().createGuest();
    // A reader holds the account's row for a moment, so both requests queue on it: deletion first.
    let deletion: Promise<Response>;
    let signedIn: Promise<Response>;
    const blocker = await t().holdLocks('SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE', [a.userId]);
    try {
      deletion = t().post('/functions/v1/delete-account', { token: a.accessToken });
      await queued(t(), 1);
      signedIn = signIn(t(), await apple.identityToken({ sub: a.sub }), g);
      await queued(t(), 2, signedIn);
    } finally {
      await blocker.release();
    }
    expect((await deletion).status).toBe(200);
    const res = await signedIn;
    const owner = await ownerOf(t(), g.userId);
    expect({ signIn: res.status < 500 ? 'not 5xx' : `HTTP ${res.status}`, ownerDeleted: owner.deleted, credits: await account(t(), owner.id) }).toEqual({
      signIn: 'not 5xx',
      ownerDeleted: false,
      credits: { balance: 10, held: 0 },
    });
  });

  it('while a deleted account is still being purged, its device and its Apple ID get a working session of a live account, not a session of the deleted one', async () => {
    const a = await appleAccount(t());
    const deviceId = a.deviceId;
    await recordObject(t().db, { bucket: 'thumbnails', key: `${a.userId}/in.jpg`, ownerId: a.userId, size: 1, contentType: 'image/jpeg', sha256: '0'.repeat(64) });
    const gate = gateStoreDeletes(t());
    const deletion = t().post('/functions/v1/delete-account', { token: a.accessToken });
    const seen: Record<string, unknown> = {};
    try {
      await gate.reached;
      // The app starts over on the same phone: a guest for its device id, or Sign in with Apple again.
      const guest = await t().createGuest(deviceId);
      const credits = await t().get('/functions/v1/get-user-credits', { token: guest.accessToken });
      seen.deviceCheck = { deletedUser: guest.userId === a.userId, creditsStatus: credits.status };
      const si = await t().json(signIn(t(), await apple.identityToken({ sub: a.sub })));
      const credits2 = await t().get('/functions/v1/get-user-credits', { token: si.access_token });
      seen.signIn = { deletedUser: si.user.id === a.userId, creditsStatus: credits2.status };
    } finally {
      gate.release();
    }
    expect((await deletion).status).toBe(200);
    expect(seen).toEqual({
      deviceCheck: { deletedUser: false, creditsStatus: 200 },
      signIn: { deletedUser: false, creditsStatus: 200 },
    });
  });
});

describe('who can act for an Apple account', () => {
  const t = useTestApp(() => apple.env());

  it("after a guest became an Apple account, its device id alone (device-check) no longer opens a session on the account's credits: only Apple's identity signs in", async () => {
    const a = await appleAccount(t()); // the guest on this device became the Apple account
    const res = await t().post('/functions/v1/device-check', { body: { device_id: a.deviceId, device_token: deviceToken(a.deviceId) } });
    const body = (await res.json()) as any;
    expect({ status: res.status, sessionForTheAppleAccount: body.user_id === a.userId && typeof body.access_token === 'string' }).not.toMatchObject({
      status: 200,
      sessionForTheAppleAccount: true,
    });
  });
});

describe('idempotency keys vs a merge', () => {
  const t = useTestApp(() => apple.env());

  it("the guest's retry of an answered generate-video, sent while its merge is committing, replays the first job (no second charge, no 5xx)", async () => {
    const a = await appleAccount(t());
    const g = await t().createGuest();
    const key = randomUUID().toUpperCase();
    const body = { model_id: SIM, prompt: 'answered, but the answer was lost [sim:hang]' };
    const first = await t().json(t().generate(g, body, key));

    // Something else holds the guest's session row for a moment: the merge stops after moving the
    // keys (revoking the guest's sessions), with its transaction still open.
    let retry: Promise<Response>;
    let merged: Promise<Response>;
    const blocker = await t().holdLocks('SELECT 1 FROM auth_sessions WHERE user_id = $1 FOR UPDATE', [g.userId]);
    try {
      merged = signIn(t(), await apple.identityToken({ sub: a.sub }), g);
      await queued(t(), 1); // the merge, stopped at revoking the guest's sessions
      // The app retries the lost answer with the same key (its guest session still authenticates).
      retry = t().generate(g, body, key);
      await queued(t(), 2, retry); // today: its key claim waits for the merge's key move
    } finally {
      await blocker.release();
    }
    expect((await merged).status).toBe(200);
    const r = await retry;
    const text = await r.text();
    const jobs = await t().db.query('SELECT job_id FROM video_jobs WHERE user_id = $1 AND prompt = $2', [a.userId, body.prompt]);
    expect({ status: r.status, body: r.status === 200 ? JSON.parse(text).job_id : text, jobs: jobs.rows.map((j) => j.job_id) }).toEqual({
      status: 200,
      body: first.job_id,
      jobs: [first.job_id],
    });
  });
});
