import os from 'node:os';
import type { Queryable } from '../db/pool.js';
import type { Logger } from '../logger.js';

/**
 * graphile-worker 0.17 keeps a job locked by a worker that died (kill -9, lost host) for 4 hours.
 * Each worker process beats here; a live one releases, at once, the queue rows of any pool whose
 * beat stopped (graphile's own force_unlock_workers), so they run again elsewhere. Tasks are
 * idempotent, so a worker that was merely cut off from the database and is unlocked by mistake
 * costs a repeated task, never a wrong result.
 */
export const HEARTBEAT_INTERVAL_MS = 5000;
/** Six missed beats: longer than a database restart takes, far shorter than 4 hours. */
export const DEAD_AFTER_SECONDS = 30;

/** One beat: records this pool as alive and unlocks the dead ones. Returns the pools unlocked. */
export async function beat(db: Queryable, poolId: string, deadAfterSeconds = DEAD_AFTER_SECONDS): Promise<string[]> {
  await db.query(
    `INSERT INTO worker_heartbeats (pool_id, host, pid) VALUES ($1, $2, $3)
     ON CONFLICT (pool_id) DO UPDATE SET beat_at = now()`,
    [poolId, os.hostname(), process.pid],
  );
  const { rows } = await db.query<{ pool_ids: string[] }>(
    `WITH dead AS (
       DELETE FROM worker_heartbeats WHERE beat_at < now() - make_interval(secs => $1) AND pool_id <> $2 RETURNING pool_id
     ), ids AS (SELECT coalesce(array_agg(pool_id), '{}') AS pool_ids FROM dead)
     SELECT pool_ids, graphile_worker.force_unlock_workers(pool_ids) FROM ids`,
    [deadAfterSeconds, poolId],
  );
  return rows[0]?.pool_ids ?? [];
}

/** Beats until stopped; the returned function stops it and forgets this pool (a clean exit releases its own locks). */
export function startHeartbeat(db: Queryable, poolId: string, log: Logger): () => Promise<void> {
  let running: Promise<unknown> = Promise.resolve();
  const tick = () => {
    running = beat(db, poolId).then(
      (unlocked) => {
        if (unlocked.length) log.warn({ unlocked }, 'released the queue locks of workers whose heartbeat stopped');
      },
      (err) => log.warn({ err }, 'worker heartbeat failed'),
    );
  };
  tick();
  const timer = setInterval(tick, HEARTBEAT_INTERVAL_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
    await db.query('DELETE FROM worker_heartbeats WHERE pool_id = $1', [poolId]).catch(() => undefined);
  };
}
