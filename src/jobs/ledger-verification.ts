import type pg from 'pg';
import type { Counter } from 'prom-client';
import type { Metrics } from '../metrics.js';
import { runLedgerVerification, type LedgerVerification } from '../ledger/verify.js';
import type { Logger } from '../logger.js';

/**
 * The nightly `verify_ledger` task (src/jobs/worker.ts): an incremental verify-ledger pass (what
 * changed since the last checkpoint; the first one is full). A broken invariant is an error log
 * line naming the checks and rows, and `rendio_ledger_violations` > 0 until a pass finds them all
 * holding again (a failed pass records no checkpoint, so the next one looks at the same changes).
 * A pass that could not run is logged, counted, and thrown for graphile-worker to retry.
 */
export class LedgerVerificationTask {
  private violations = 0;
  private lastVerifiedAt = 0;
  private readonly passes: Counter<'mode' | 'outcome'>;

  constructor(
    private readonly pool: pg.Pool,
    private readonly log: Logger,
    metrics: Metrics,
  ) {
    this.passes = metrics.counter('rendio_ledger_verifications_total', 'verify-ledger passes by mode (full, incremental) and outcome (ok, violations, error)', ['mode', 'outcome']);
    metrics.gauge('rendio_ledger_violations', 'Money invariants the last verify-ledger pass of this process found broken (alert when > 0)', () => this.violations);
    metrics.gauge('rendio_ledger_last_verified_timestamp_seconds', 'When a verify-ledger pass of this process last found every invariant holding (Unix time; 0 = not yet)', () => this.lastVerifiedAt);
  }

  async run(opts: { full?: boolean } = {}): Promise<LedgerVerification> {
    const started = Date.now();
    let r: LedgerVerification;
    try {
      r = await runLedgerVerification(this.pool, opts);
    } catch (err) {
      this.passes.inc({ mode: opts.full ? 'full' : 'incremental', outcome: 'error' });
      this.log.error({ err }, 'verify-ledger could not run');
      throw err;
    }
    const summary = { mode: r.mode, accounts_checked: r.accountsChecked, ms: Date.now() - started };
    this.violations = r.violations.length;
    if (r.violations.length > 0) {
      this.passes.inc({ mode: r.mode, outcome: 'violations' });
      this.log.error({ ...summary, violations: r.violations }, `verify-ledger: ${r.violations.length} money invariant(s) broken: ${r.violations.map((v) => v.check).join('; ')}`);
    } else {
      this.passes.inc({ mode: r.mode, outcome: 'ok' });
      this.lastVerifiedAt = Math.floor(Date.now() / 1000);
      this.log.info(summary, 'verify-ledger: every invariant holds');
    }
    return r;
  }
}
