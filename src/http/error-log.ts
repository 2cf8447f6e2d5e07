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

/**
 * Stores API errors in error_log without holding up the response. Bounded: under an error storm
 * (or with the database down) records beyond the limit are dropped and counted, never queued
 * without end. drain() lets shutdown and tests wait for what is in flight.
 */
export class ErrorLogWriter {
  private inFlight = new Set<Promise<void>>();
  dropped = 0;

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

  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }
}
