import { createHash } from 'node:crypto';
import { listAvailableModels, publicModel, type ModelRow } from '../db/queries/catalogue.js';
import type { Queryable } from '../db/pool.js';
import type { DatabaseListener } from '../db/listener.js';

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
 * drops the copy; so does a lost LISTEN connection (db/listener.ts), and without a live one nothing
 * is cached at all: staleness is bounded by NOTIFY delivery (milliseconds), never by a TTL. The generation
 * counter keeps a refill that raced an invalidation from storing what it read before the change.
 */
export class CatalogueCache {
  private snapshot: CatalogueSnapshot | undefined;
  private generation = 0;
  private listening: Promise<unknown> | undefined;
  private stopListening: (() => void) | undefined;

  constructor(
    private readonly db: Queryable,
    /** The process's LISTEN connection; without one (tests of the bare app) nothing is cached. */
    private readonly listener: DatabaseListener | undefined,
  ) {}

  private get live(): boolean {
    return this.listener?.live ?? false;
  }

  async models(): Promise<CatalogueSnapshot> {
    if (this.snapshot && this.live) return this.snapshot;
    this.listening ??= this.listener?.listen(CATALOGUE_CHANNEL, {
      onNotify: () => this.invalidate(),
      // Lost: changes go unheard, so nothing is served from memory until it listens again.
      onReset: () => this.invalidate(),
    }).then((stop) => (this.stopListening = stop));
    await this.listening;
    const generation = this.generation;
    const rows = await listAvailableModels(this.db);
    const body = JSON.stringify({ models: rows.map(publicModel) });
    const snapshot = { rows, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
    if (this.live && generation === this.generation) this.snapshot = snapshot;
    return snapshot;
  }

  /** For writers in this process that answer before their own NOTIFY arrives (admin tools). */
  invalidate(): void {
    this.generation++;
    this.snapshot = undefined;
  }

  close(): void {
    this.stopListening?.();
  }
}
