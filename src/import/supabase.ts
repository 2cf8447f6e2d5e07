import { withTransaction, type Queryable, type Tx } from '../db/pool.js';
import * as source from '../db/queries/supabase-source.js';
import * as target from '../db/queries/supabase-import.js';
import * as ledger from '../ledger/ledger.js';
import { saveObject } from '../storage/objects.js';
import { sniffImageType } from '../storage/image-types.js';
import { RESULTS_BUCKET, type ObjectStore } from '../storage/types.js';
import { storageRef, type FileSource } from './files.js';
import type { Progress } from './progress.js';

/**
 * Moves a deployment of the app's former Supabase backend onto this server, ids kept
 * (docs/DEPLOY.md "Moving from Supabase"). Phases: models, users with their balances, purchases,
 * jobs with their files; each read in keyset pages from the source and written page by page, each
 * page one transaction. Every row is idempotent by its own id (a user, a job, an Apple
 * transaction, the ledger's unique import entries): a second run inserts nothing, an interrupted
 * one continues. Bad source data is never a crash: each case has a rule (RULES), applied and
 * counted in the report.
 */

export const RULES = {
  negative_balance: 'negative balance: opened at 0 (the former backend let a refund take a balance below zero)',
  duplicate_device_id: 'device_id also held by an older user: the older user keeps it; this one is imported without (reachable by its id)',
  duplicate_apple_sub: 'apple_sub also held by an older user: the older user keeps it; this one is imported without',
  bad_device_id: 'device_id empty or longer than 200 characters: imported without',
  apple_user_device_released: "Apple user's device_id released (as signing in with Apple does here); its device keeps its free grant",
  no_auth_row: 'no auth.users row: imported (the app names users by users.id), without supabase_auth_id',
  user_conflict: 'device_id or apple_sub already belongs to another user on this server: user refused',
  unknown_user: 'names a user that is not in users: refused',
  refund_row: 'a refund row of the former backend (already off its balance): not a purchase',
  refunded_there: 'a purchase the former backend refunded (its _refund row): not recorded; Apple reports it revoked, so it is never credited here and a repeated REFUND finds nothing to take',
  transaction_elsewhere: 'Apple transaction already recorded here for another user: refused',
  transaction_recorded: 'Apple transaction already credited by this server to the same user: kept as it is',
  unknown_model: "names a model the former backend's models table lacks: refused",
  negative_price: 'credits_used below 0: imported as 0',
  ended_by_import: 'still running in the former backend: imported as failed (ERR_5002) and its credits refunded',
  no_storage: 'no --storage given: the job is imported without its files',
  video_not_in_storage: 'video_url is not a file of the Supabase project (none, or another host): imported without a video',
  video_unfetchable: 'video file could not be copied: imported without a video',
  thumbnail_unfetchable: 'thumbnail could not be copied: imported without one',
} as const;
export type Rule = keyof typeof RULES;

export interface ImportOptions {
  from: Queryable;
  to: Queryable;
  store: ObjectStore;
  files?: FileSource;
  dryRun: boolean;
  batchSize: number;
  /** Credits → our product id (IAP_PRODUCTS): the former backend recorded no product. */
  products: Record<string, number>;
  progress?: Progress;
}

interface Tally {
  count: number;
  examples: string[];
}

export interface ImportReport {
  dryRun: boolean;
  source: source.SourceTotals;
  imported: target.ImportedTotals;
  thisRun: { users: number; purchases: number; jobs: number; files: number; bytes: number };
  /** Source rows read and the time taken, per phase (the bench's numbers). */
  phases: { phase: string; rows: number; seconds: number }[];
  /** Rows handled by a rule, by rule: counts and a few source ids. */
  rules: Partial<Record<Rule, Tally>>;
  /** Each side of every total, and whether they agree. */
  checks: { name: string; source: number; imported: number; ok: boolean }[];
}

const EXAMPLES = 5;
const FAILED_BY_IMPORT = 'ended by the move to the new server; its credits were refunded';
const LANGUAGES = new Set(['en', 'tr', 'es']);
const THEMES = new Set(['system', 'light', 'dark']);

/** What a run (or one page of it) did: rows imported, rows handled by each rule, what was refused. */
class Counts {
  readonly rules: Partial<Record<Rule, Tally>> = {};
  readonly thisRun = { users: 0, purchases: 0, jobs: 0, files: 0, bytes: 0 };
  readonly refused = { users: 0, userCredits: 0, purchases: 0, purchaseCredits: 0, jobs: 0, runningCredits: 0 };

  note(rule: Rule, id: string): void {
    const t = (this.rules[rule] ??= { count: 0, examples: [] });
    t.count++;
    if (t.examples.length < EXAMPLES) t.examples.push(id);
  }

  add(page: Counts): void {
    for (const [rule, t] of Object.entries(page.rules) as [Rule, Tally][]) {
      const mine = (this.rules[rule] ??= { count: 0, examples: [] });
      mine.count += t.count;
      mine.examples.push(...t.examples.slice(0, EXAMPLES - mine.examples.length));
    }
    for (const k of Object.keys(this.thisRun) as (keyof Counts['thisRun'])[]) this.thisRun[k] += page.thisRun[k];
    for (const k of Object.keys(this.refused) as (keyof Counts['refused'])[]) this.refused[k] += page.refused[k];
  }
}

class Run {
  /** Where counts go now: the run's, or the page transaction's while one runs (see inPage). */
  private c = new Counts();
  readonly phases: { phase: string; rows: number; seconds: number }[] = [];
  private modelMap = new Map<string, { id: string; provider: string }>();

  constructor(
    private readonly o: ImportOptions,
    private readonly db: Queryable,
  ) {}

  get counts(): Counts {
    return this.c;
  }

  note(rule: Rule, id: string): void {
    this.c.note(rule, id);
  }

  /**
   * One page's transaction. What it counts is added to the run's counts once it commits: a
   * transaction retried (a deadlock, a serialization failure) counts its rows once, not per attempt.
   */
  private async inPage<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    const run = this.c;
    let page = new Counts();
    try {
      const result = await withTransaction(this.db, async (tx) => {
        page = this.c = new Counts();
        return work(tx);
      });
      run.add(page);
      return result;
    } finally {
      this.c = run;
    }
  }

  async models(): Promise<void> {
    const ours = await target.ourModels(this.db);
    const byProviderModel = new Map(ours.map((m) => [`${m.provider}|${m.provider_model_id}`, m]));
    for (const m of await source.models(this.o.from)) {
      // Pika ran on fal (fal-ai/pika/…): the same model here is fal's.
      const provider = m.provider === 'runway' ? 'runway' : 'fal';
      const same = byProviderModel.get(`${provider}|${m.provider_model_id}`);
      if (same) {
        this.modelMap.set(m.id, { id: same.id, provider: same.provider });
        continue;
      }
      await target.insertRetiredModel(this.db, {
        id: m.id,
        name: m.name,
        category: m.category === 'image-to-video' ? 'image-to-video' : 'text-to-video',
        description: m.description,
        provider,
        providerModelId: m.provider_model_id,
        cost: Math.max(1, m.cost_per_generation),
      });
      this.modelMap.set(m.id, { id: m.id, provider });
    }
  }

  async users(total: number): Promise<void> {
    await this.eachPage('users', total, source.usersAfter, (u) => u.id, (page) => this.inPage((tx) => this.userPage(tx, page)));
  }

  private async userPage(tx: Tx, page: source.SourceUser[]): Promise<void> {
    const rows: target.ImportedUser[] = [];
    const opening = new Map<string, number>();
    const grantDevices = new Map<string, string>();
    for (const u of page) {
      let deviceId = u.device_id;
      if (deviceId !== null && (deviceId.length === 0 || deviceId.length > 200)) {
        this.note('bad_device_id', u.id);
        deviceId = null;
      } else if (u.device_id_taken) {
        this.note('duplicate_device_id', u.id);
        deviceId = null;
      }
      let appleSub = u.apple_sub;
      if (u.apple_sub_taken) {
        this.note('duplicate_apple_sub', u.id);
        appleSub = null;
      }
      if (deviceId !== null) grantDevices.set(u.id, deviceId);
      if (deviceId !== null && appleSub !== null) {
        this.note('apple_user_device_released', u.id);
        deviceId = null;
      }
      if (u.auth_id === null) this.note('no_auth_row', u.id);
      const credits = u.credits_remaining ?? 0;
      if (credits < 0) this.note('negative_balance', u.id);
      opening.set(u.id, Math.max(credits, 0));
      rows.push({
        id: u.id,
        email: u.email,
        deviceId,
        appleSub,
        isGuest: appleSub === null ? (u.is_guest ?? true) : false,
        tier: u.tier === 'premium' ? 'premium' : 'free',
        language: LANGUAGES.has(u.language ?? '') ? u.language! : 'en',
        themePreference: THEMES.has(u.theme_preference ?? '') ? u.theme_preference! : 'system',
        createdAt: u.created_at ?? new Date().toISOString(),
        supabaseAuthId: u.auth_id,
      });
    }
    const inserted = await target.insertUsers(tx, rows);
    const notInserted = rows.filter((r) => !inserted.has(r.id)).map((r) => r.id);
    const already = notInserted.length ? await target.existingUsers(tx, notInserted) : new Set<string>();
    for (const id of notInserted) {
      if (already.has(id)) continue;
      this.note('user_conflict', id);
      this.c.refused.users++;
      this.c.refused.userCredits += opening.get(id)!;
    }
    const fresh = rows.filter((r) => inserted.has(r.id));
    await ledger.openImportedAccounts(
      tx,
      fresh.map((r) => ({ userId: r.id, amount: opening.get(r.id)!, reason: `former backend: users.id ${r.id}` })),
    );
    await target.markDevicesGranted(
      tx,
      fresh.filter((r) => grantDevices.has(r.id)).map((r) => ({ id: r.id, deviceId: grantDevices.get(r.id)! })),
    );
    this.c.thisRun.users += fresh.length;
  }

  async purchases(total: number): Promise<void> {
    const productFor = new Map<number, string>();
    for (const [id, credits] of Object.entries(this.o.products)) if (!productFor.has(credits)) productFor.set(credits, id);
    await this.eachPage('purchases', total, source.purchasesAfter, (p) => p.id, (page) =>
      this.inPage((tx) => this.purchasePage(tx, page, (credits) => productFor.get(credits) ?? `com.rendio.credits.${credits}`)),
    );
  }

  private async purchasePage(tx: Tx, page: source.SourcePurchase[], productFor: (credits: number) => string): Promise<void> {
    const users = await target.existingUsers(tx, page.map((p) => p.user_id));
    const wanted: source.SourcePurchase[] = [];
    for (const p of page) {
      if (p.change <= 0 || p.reason === 'apple_refund') this.note('refund_row', p.id);
      else if (p.refunded) this.refusePurchase('refunded_there', p);
      else if (!users.has(p.user_id)) this.refusePurchase('unknown_user', p);
      else wanted.push(p);
    }
    const recorded = await target.insertPurchases(
      tx,
      wanted.map((p) => ({ transactionId: p.transaction_id, userId: p.user_id, productId: productFor(p.change), credits: p.change, purchasedAt: p.created_at ?? new Date().toISOString() })),
    );
    const reason = new Map(wanted.map((p) => [p.transaction_id, `former backend: quota_log.id ${p.id}`]));
    const marked = await ledger.recordImportedPurchases(
      tx,
      [...recorded].map(([transactionId, ownerId]) => ({ transactionId, ownerId, reason: reason.get(transactionId)! })),
    );
    this.c.thisRun.purchases += marked.size;
    // Not recorded now: imported before (marked), or already here from elsewhere.
    const earlier = wanted.filter((p) => !recorded.has(p.transaction_id));
    const known = await target.knownPurchases(tx, earlier.map((p) => p.transaction_id));
    for (const p of earlier) {
      const k = known.get(p.transaction_id);
      if (k?.imported) continue;
      this.refusePurchase(k && k.userId !== p.user_id ? 'transaction_elsewhere' : 'transaction_recorded', p);
    }
  }

  private refusePurchase(rule: Rule, p: source.SourcePurchase): void {
    this.note(rule, `quota_log ${p.id}`);
    this.c.refused.purchases++;
    this.c.refused.purchaseCredits += p.change;
  }

  async jobs(total: number): Promise<void> {
    await this.eachPage('jobs', total, source.jobsAfter, (j) => j.job_id, (page) => this.jobPage(page));
  }

  /** Reads the source in keyset pages (ordered by a uuid key) and hands each to `handle`, in order, with progress. */
  private async eachPage<T>(
    phase: string,
    total: number,
    read: (db: Queryable, after: string, limit: number) => Promise<T[]>,
    key: (row: T) => string,
    handle: (page: T[]) => Promise<unknown>,
  ): Promise<void> {
    this.o.progress?.start(phase, total);
    const started = performance.now();
    let rows = 0;
    // The next page is read from the source while this one is written here.
    const readAfter = (after: string) => {
      const reading = read(this.o.from, after, this.o.batchSize);
      reading.catch(() => undefined); // awaited below; a failure while a page is written must not be "unhandled"
      return reading;
    };
    for (let next = readAfter(source.FIRST_KEY); ; ) {
      const page = await next;
      if (page.length === 0) break;
      next = readAfter(key(page.at(-1)!));
      await handle(page);
      rows += page.length;
      this.o.progress?.add(page.length);
    }
    this.phases.push({ phase, rows, seconds: (performance.now() - started) / 1000 });
    this.o.progress?.finish();
  }

  private async jobPage(page: source.SourceJob[]): Promise<void> {
    const users = await target.existingUsers(this.db, page.map((j) => j.user_id));
    const done = await target.existingJobs(this.db, page.map((j) => j.job_id));
    const todo: target.ImportedJob[] = [];
    const refunds: { userId: string; jobId: string; amount: number }[] = [];
    const fresh = page.filter((j) => !done.has(j.job_id));
    const objects = await this.objectRows(fresh.filter((j) => j.status === 'completed'));
    for (const j of fresh) {
      const running = j.status !== 'completed' && j.status !== 'failed';
      const model = this.modelMap.get(j.model_id);
      if (!users.has(j.user_id) || !model) {
        this.note(model ? 'unknown_user' : 'unknown_model', `video_jobs ${j.job_id}`);
        this.c.refused.jobs++;
        if (running) this.c.refused.runningCredits += Math.max(j.credits_used, 0);
        continue;
      }
      if (j.credits_used < 0) this.note('negative_price', j.job_id);
      const credits = Math.max(j.credits_used, 0);
      const createdAt = j.created_at ?? new Date().toISOString();
      const files = j.status === 'completed' ? await this.copyFiles(j, createdAt, objects) : { videoKey: null, thumbnailKey: null };
      if (running) {
        this.note('ended_by_import', j.job_id);
        if (credits > 0) refunds.push({ userId: j.user_id, jobId: j.job_id, amount: credits });
      }
      todo.push({
        jobId: j.job_id,
        userId: j.user_id,
        modelId: model.id,
        provider: model.provider,
        prompt: j.prompt,
        settings: j.settings ?? {},
        status: j.status === 'completed' ? 'completed' : 'failed',
        creditsUsed: credits,
        ...files,
        errorCode: j.status === 'completed' ? null : 'ERR_5002',
        errorMessage: j.status === 'completed' ? null : running ? FAILED_BY_IMPORT : (j.error_message ?? 'failed in the former backend'),
        createdAt,
        completedAt: running ? new Date().toISOString() : (j.completed_at ?? createdAt),
        source: { status: j.status, provider_job_id: j.provider_job_id, video_url: j.video_url, thumbnail_url: j.thumbnail_url },
      });
    }
    await this.inPage(async (tx) => {
      const inserted = await target.insertJobs(tx, todo);
      for (const r of refunds.sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0))) {
        if (inserted.has(r.jobId)) await ledger.refundImportedJob(tx, { ...r, reason: `former backend: video_jobs.job_id ${r.jobId} was still running` });
      }
      this.c.thisRun.jobs += inserted.size;
    });
  }

  private async objectRows(jobs: source.SourceJob[]): Promise<Map<string, source.SourceObject>> {
    if (!this.o.files) return new Map();
    const refs = jobs.flatMap((j) => [j.video_url, j.thumbnail_url]).flatMap((u) => (u ? [storageRef(u)] : [])).filter((r) => r !== undefined);
    const rows = await source.storageObjects(this.o.from, refs);
    return new Map(rows.map((r) => [`${r.bucket_id}/${r.name}`, r]));
  }

  /** Bytes first, then the row (saveObject); the job row, written after, names only files that are there. */
  private async copyFiles(j: source.SourceJob, createdAt: string, objects: Map<string, source.SourceObject>) {
    if (!this.o.files) {
      this.note('no_storage', j.job_id);
      return { videoKey: null, thumbnailKey: null };
    }
    const base = `${j.user_id}/${createdAt.slice(0, 7)}/${j.job_id}`;
    const videoRef = j.video_url ? storageRef(j.video_url) : undefined;
    let videoKey: string | null = null;
    if (!videoRef) this.note('video_not_in_storage', j.job_id);
    else {
      const got = await this.o.files.fetch(videoRef, objects.get(`${videoRef.bucket}/${videoRef.name}`));
      if (!got.ok) this.note('video_unfetchable', `${j.job_id}: ${got.reason}`);
      else {
        videoKey = `${base}.mp4`;
        const type = got.contentType && /^video\/(mp4|quicktime|webm)$/.test(got.contentType) ? got.contentType : 'video/mp4';
        await this.save(videoKey, j.user_id, got.bytes, type);
      }
    }
    let thumbnailKey: string | null = null;
    const thumbRef = j.thumbnail_url ? storageRef(j.thumbnail_url) : undefined;
    if (thumbRef) {
      const got = await this.o.files.fetch(thumbRef, objects.get(`${thumbRef.bucket}/${thumbRef.name}`));
      if (!got.ok) this.note('thumbnail_unfetchable', `${j.job_id}: ${got.reason}`);
      else {
        thumbnailKey = `${base}.jpg`;
        await this.save(thumbnailKey, j.user_id, got.bytes, sniffImageType(got.bytes) ?? 'image/jpeg');
      }
    }
    return { videoKey, thumbnailKey };
  }

  private async save(key: string, ownerId: string, bytes: Buffer, contentType: string): Promise<void> {
    this.c.thisRun.files++;
    this.c.thisRun.bytes += bytes.length;
    // A dry run reads and checks every file and writes none (its rows roll back with it).
    if (this.o.dryRun) return;
    await saveObject(this.o.store, this.db, { bucket: RESULTS_BUCKET, key, ownerId, bytes, contentType });
  }

}

class DryRunRollback extends Error {}

export async function importFromSupabase(o: ImportOptions): Promise<ImportReport> {
  const totals = await source.totals(o.from);
  const work = async (db: Queryable): Promise<ImportReport> => {
    const run = new Run(o, db);
    await run.models();
    await run.users(totals.users);
    await run.purchases(totals.purchases);
    await run.jobs(totals.jobs);
    const imported = await target.importedTotals(db);
    const r = run.counts.refused;
    const check = (name: string, src: number, got: number) => ({ name, source: src, imported: got, ok: src === got });
    return {
      dryRun: o.dryRun,
      source: totals,
      imported,
      thisRun: run.counts.thisRun,
      phases: run.phases,
      rules: run.counts.rules,
      checks: [
        check('users (source = imported + refused)', totals.users, imported.users + r.users),
        // A negative balance opens at 0: the positive balances are what arrives.
        check('balances (source without negative balances = opening entries + refused users)', totals.credits - totals.negative_credits, imported.opening_credits + r.userCredits),
        check('purchases (source = imported + refused)', totals.purchases, imported.purchases + r.purchases),
        check('purchase credits (source = imported + refused)', totals.purchase_credits, imported.purchase_credits + r.purchaseCredits),
        check('jobs (source = imported + refused)', totals.jobs, imported.jobs + r.jobs),
        check('credits of running jobs (source = refunded + refused)', totals.running_credits, imported.refunded_credits + r.runningCredits),
      ],
    };
  };
  if (!o.dryRun) return work(o.to);
  // A dry run does all of it in one transaction and rolls it back: later phases see the users
  // earlier ones would have written, so the report is what a real run would say.
  let report: ImportReport | undefined;
  await withTransaction(o.to, async (tx) => {
    report = await work(tx);
    throw new DryRunRollback();
  }).catch((err) => {
    if (!(err instanceof DryRunRollback)) throw err;
  });
  return report!;
}

export function formatReport(r: ImportReport): string {
  const n = (x: number) => x.toLocaleString('en');
  const lines = [
    r.dryRun ? 'DRY RUN: nothing was written; a real run would do this.' : 'Import from the former Supabase backend',
    `this run: ${n(r.thisRun.users)} users, ${n(r.thisRun.purchases)} purchases, ${n(r.thisRun.jobs)} jobs, ${n(r.thisRun.files)} files (${n(r.thisRun.bytes)} bytes) ${r.dryRun ? 'would be ' : ''}imported`,
    `source: ${n(r.source.users)} users holding ${n(r.source.credits)} credits (${n(r.source.negative_users)} negative, ${n(r.source.negative_credits)}), ` +
      `${n(r.source.purchases)} purchases (${n(r.source.purchase_credits)} credits), ${n(r.source.jobs)} jobs (${n(r.source.running_jobs)} running, ${n(r.source.running_credits)} credits held)`,
    `imported: ${n(r.imported.users)} users opened with ${n(r.imported.opening_credits)} credits, ${n(r.imported.refunded_jobs)} running jobs refunded (${n(r.imported.refunded_credits)} credits), ` +
      `${n(r.imported.purchases)} purchases (${n(r.imported.purchase_credits)} credits), ${n(r.imported.jobs)} jobs, ${n(r.imported.videos)} videos, ${n(r.imported.thumbnails)} thumbnails`,
    'totals:',
    ...r.checks.map((c) => `  ${c.ok ? '✓' : '✗'} ${c.name}: ${n(c.source)} = ${n(c.imported)}`),
  ];
  const ruled = Object.entries(r.rules) as [Rule, Tally][];
  if (ruled.length) {
    lines.push('rows handled by a rule:');
    for (const [rule, t] of ruled) lines.push(`  ${rule} (${n(t.count)}): ${RULES[rule]}; e.g. ${t.examples.join(', ')}`);
  }
  return lines.join('\n');
}
