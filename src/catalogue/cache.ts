import { createHash } from 'node:crypto';
import pg from 'pg';
import { listAvailableModels, publicModel, type ModelRow } from '../db/queries/catalogue.js';
import type { Queryable } from '../db/pool.js';
import type { Logger } from '../logger.js';

export interface CatalogueSnapshot {
  /** The available models, in catalogue order. */
  rows: ModelRow[];
  /** get-models' body, serialised once. */
  body: string;
  etag: string;
}

/** The NOTIFY channel migration 0016's triggers raise on every change to models or themes. */
export const CATALOGUE_CHANNEL = 'catalogue_changed';

/**
 * get-models' answer, kept in memory while this process LISTENs for catalogue changes. Every
 * write to models or themes, from any process (admin, migration, psql), NOTIFYs on commit and
 * drops the copy; so does a lost LISTEN connection, and without a live one nothing is cached at
 * all: staleness is bounded by NOTIFY delivery (milliseconds), never by a TTL. The generation
 * counter keeps a refill that raced an invalidation from storing what it read before the change.
 */
export class CatalogueCache {
  private snapshot: CatalogueSnapshot | undefined;
  private generation = 0;
  private listener: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private retryAt = 0;
  private closed = false;

  constructor(
    private readonly db: Queryable,
    private readonly connectionString: string | undefined,
    private readonly log: Logger,
  ) {}

  async models(): Promise<CatalogueSnapshot> {
    if (this.snapshot && this.listener) return this.snapshot;
    await this.listen();
    const generation = this.generation;
    const rows = await listAvailableModels(this.db);
    const body = JSON.stringify({ models: rows.map(publicModel) });
    const snapshot = { rows, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
    if (this.listener && generation === this.generation) this.snapshot = snapshot;
    return snapshot;
  }

  /** For writers in this process that answer before their own NOTIFY arrives (admin tools). */
  invalidate(): void {
    this.generation++;
    this.snapshot = undefined;
  }

  private async listen(): Promise<void> {
    if (this.listener || this.closed || !this.connectionString || Date.now() < this.retryAt) return;
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    await this.connecting;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.connectionString, application_name: 'rendio-catalogue' });
    client.on('notification', () => this.invalidate());
    client.on('error', (err) => {
      this.log.warn({ err }, 'catalogue LISTEN connection lost; serving from the database until it is back');
      if (this.listener === client) this.listener = undefined;
      this.invalidate();
      void client.end().catch(() => undefined);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CATALOGUE_CHANNEL}`);
      this.invalidate(); // anything cached before this LISTEN may have missed a change
      this.listener = client;
    } catch (err) {
      this.retryAt = Date.now() + 5000;
      this.log.warn({ err }, 'catalogue LISTEN failed; get-models reads the database on every request for now');
      await client.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.connecting?.catch(() => undefined);
    const client = this.listener;
    this.listener = undefined;
    await client?.end().catch(() => undefined);
  }
}
