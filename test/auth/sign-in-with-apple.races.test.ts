import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordObject } from '../../src/db/queries/storage.js';
import { useAppStoreFakes } from '../fakes/app-store.js';
import { deviceToken } from '../fakes/device-check.js';
import { FakeAppleId, appleSub } from '../fakes/apple-id.js';
import * as iap from '../../src/db/queries/app-store.js';
import * as ledger from '../../src/ledger/ledger.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import { createTestApp, useTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * Adversarial review (payments mindset) of the money-integrity fixes: each test here failed when
 * it was written and names the behaviour a fix must give. Real HTTP, real PostgreSQL, the fakes.
 */

const SIM = 'simulator-text-to-video'; // 1 credit
const STARTER = 'com.rendioai.credits.starter.25';

const { fakes: appStore, txId } = useAppStoreFakes();
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

describe('review: deletion vs Sign in with Apple', () => {
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

describe('review: who can act for an Apple account', () => {
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

describe('review: idempotency keys vs a merge', () => {
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

describe('review: refunds vs a purchase reported twice at once', () => {
  const t = useTestApp(() => ({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true' }));
  const notify = (body: unknown) => t().post('/functions/v1/apple-server-notifications', { body });

  it("a duplicate first report of a purchase that records Apple's newer 'not refunded' word also gives back the clawback (or records nothing): the state, revoked_at and the balance agree, and the late REFUND_REVERSED is not lost", async () => {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: STARTER });
    const t0 = Date.now() - 600_000;
    const jws = await appStore().production.signTransaction(tx, undefined, t0);

    // The app reports the purchase twice (a retry): one asks Apple (held back), one sends StoreKit's JWS.
    const gate = appStore().production.server.gate(new RegExp(`/inApps/v1/transactions/${tx.transactionId}$`));
    const slow = t().post('/functions/v1/update-credits', { token: g.accessToken, body: { transaction_id: tx.transactionId } });
    await gate.reached;
    let slowRes: Response;
    try {
      await t().json(t().post('/functions/v1/update-credits', { token: g.accessToken, body: { transaction_id: tx.transactionId, signed_transaction: jws } }));
      expect(await account(t(), g.userId)).toEqual({ balance: 35, held: 0 });
      // Apple refunds it (t0 + 60 s) ...
      const refund = await appStore().production.notification('REFUND', { ...tx, revocationDate: t0 + 60_000, revocationReason: 0 }, { signedDate: t0 + 60_000 });
      expect(await t().json(notify(refund))).toEqual({ received: true, outcome: 'refund_clawed_back' });
      expect(await account(t(), g.userId)).toEqual({ balance: 10, held: 0 });
      // ... and reverses the refund (t0 + 120 s): Apple's record is no longer revoked.
    } finally {
      gate.release(); // Apple now answers the held request: signed now, not revoked
    }
    slowRes = await slow;
    expect(slowRes.status, await slowRes.text()).toBe(200);
    const reversal = await appStore().production.notification('REFUND_REVERSED', tx, { signedDate: t0 + 120_000 });
    await t().json(notify(reversal));
    // Apple's final word: bought, refunded, refund reversed: the 25 credits are the user's again.
    const { rows } = await t().db.query(
      `SELECT s.refunded, t.revoked_at IS NOT NULL AS revoked FROM app_store_refund_states s JOIN iap_transactions t USING (transaction_id) WHERE transaction_id = $1`,
      [tx.transactionId],
    );
    expect({ account: await account(t(), g.userId), state: rows[0] }).toEqual({
      account: { balance: 35, held: 0 },
      state: { refunded: false, revoked: false },
    });
  });
});

describe('review: verify-ledger misses money on the wrong user or of the wrong size', () => {
  // Its own app, without the after-each invariant check: these tests break the ledger on purpose.
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t?.close();
  });

  /** A guest (10 free credits) who bought a 25-credit pack recorded as worth `recorded` credits. */
  async function bought(credited = 25): Promise<{ userId: string; transactionId: string }> {
    const g = await t.createGuest();
    const transactionId = `review-${randomUUID()}`;
    await iap.insertIapTransaction(t.db, {
      transactionId,
      originalTransactionId: transactionId,
      userId: g.userId,
      productId: STARTER,
      quantity: 1,
      credits: 25,
      environment: 'Production',
      purchasedAt: new Date(),
      signedTransaction: 'test',
    });
    await ledger.purchase(t.db, { userId: g.userId, amount: credited, transactionId });
    return { userId: g.userId, transactionId };
  }

  /** Apple refunded it: the refund state and revoked_at say so, and a clawback of `amount` from `from`. */
  async function refunded(transactionId: string, from: string, amount = 25): Promise<void> {
    await iap.lockRefundState(t.db, transactionId);
    await iap.updateRefundState(t.db, { transactionId, refunded: true, signedAt: new Date(), notificationUuid: null, revocationDate: new Date(), revocationReason: 0 });
    await ledger.clawback(t.db, { userId: from, transactionId, amount });
    await iap.setRevoked(t.db, transactionId, new Date(), 0);
  }

  /** The checks whose offending rows name the transaction (or the users involved). */
  const flagged = async (...ids: string[]) =>
    (await verifyLedger(t.db)).filter((v) => ids.some((id) => JSON.stringify(v.rows).includes(id))).map((v) => v.check);

  it('a refund clawed back from a bystander (not the buyer or the account it merged into) is reported', async () => {
    const buyer = await bought();
    const bystander = await t.createGuest();
    await refunded(buyer.transactionId, bystander.userId);
    expect(await flagged(buyer.transactionId, bystander.userId)).not.toEqual([]);
  });

  it('a clawback larger than the purchase it refunds is reported', async () => {
    const buyer = await bought();
    await refunded(buyer.transactionId, buyer.userId, 35); // the pack was 25; the free 10 went too
    expect(await flagged(buyer.transactionId)).not.toEqual([]);
  });

  it('a purchase credited with more than Apple sold (iap_transactions.credits) is reported', async () => {
    const buyer = await bought(2500);
    expect(await flagged(buyer.transactionId)).not.toEqual([]);
  });
});
