import type { Queryable } from '../db/pool.js';
import type { Logger } from '../logger.js';
import { storableText } from './storable-text.js';

export interface ErrorRecord {
  requestId: string;
  code: string;
  status: number;
  method: string;
  path: string;
  userId?: string;
  message: string;
  details?: Record<string, unknown>;
}

/** An anonymous 401/404: counted, not stored one by one. */
export interface NoiseRecord {
  code: string;
  status: number;
  method: string;
  /** The matched route pattern, never the raw path (scanners would make every count a new row). */
  route: string;
}

const NOISE_FLUSH_MS = 10_000;

/**
 * Stores API errors in error_log without holding up the response. Bounded: under an error storm
 * (or with the database down) records beyond the limit are dropped and counted, never queued
 * without end. drain() lets shutdown and tests wait for what is in flight.
 */
export class ErrorLogWriter {
  private inFlight = new Set<Promise<void>>();
  dropped = 0;
  private noise = new Map<string, NoiseRecord & { count: number }>();
  private noiseTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Queryable,
    private readonly log: Logger,
    private readonly maxInFlight = 50,
  ) {}

  record(r: ErrorRecord): void {
    if (r.code === 'ERR_6001' || this.inFlight.size >= this.maxInFlight) {
      // ERR_6001: the database is the thing that failed; the structured log line is the record.
      this.dropped++;
      return;
    }
    const p = this.db
      .query(
        `INSERT INTO error_log (request_id, code, status, method, path, user_id, message, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        // The path, message and details may quote what the client sent: a U+0000 would lose the row.
        [
          r.requestId,
          r.code,
          r.status,
          r.method,
          storableText(r.path),
          r.userId ?? null,
          storableText(r.message),
          r.details ? JSON.stringify(r.details, (_key, v: unknown) => (typeof v === 'string' ? storableText(v) : v)) : null,
        ],
      )
      .then(
        () => undefined,
        (err) => {
          this.dropped++;
          this.log.warn({ err, requestId: r.requestId }, 'could not store error_log row');
        },
      )
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  /**
   * Anonymous 401/404 noise (scanners, stale keys): one counter per hour, code and route in
   * error_log_aggregates, written every few seconds, instead of a row per request.
   */
  countNoise(r: NoiseRecord): void {
    const key = `${r.code} ${r.method} ${r.route}`;
    const entry = this.noise.get(key);
    if (entry) entry.count++;
    else if (this.noise.size < 1000) this.noise.set(key, { ...r, count: 1 });
    else this.dropped++;
    this.noiseTimer ??= setTimeout(() => this.flushNoise(), NOISE_FLUSH_MS).unref();
  }

  private flushNoise(): void {
    clearTimeout(this.noiseTimer);
    this.noiseTimer = undefined;
    if (this.noise.size === 0) return;
    const entries = [...this.noise.values()];
    this.noise = new Map();
    const p = this.db
      .query(
        `INSERT INTO error_log_aggregates (hour, code, status, method, route, count)
         SELECT date_trunc('hour', now()), e.code, e.status, e.method, e.route, e.count
           FROM jsonb_to_recordset($1::jsonb) AS e(code text, status int, method text, route text, count bigint)
         ON CONFLICT (hour, code, method, route) DO UPDATE SET count = error_log_aggregates.count + EXCLUDED.count`,
        [JSON.stringify(entries.map((e) => ({ ...e, route: storableText(e.route) })))],
      )
      .then(
        () => undefined,
        (err) => {
          this.dropped += entries.length;
          this.log.warn({ err }, 'could not store error_log_aggregates');
        },
      )
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  async drain(): Promise<void> {
    this.flushNoise();
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }
}
