import { describe, expect, it } from 'vitest';
import type { JobReads } from '../../src/jobs/job-reads.js';
import { until } from '../support/fal-submissions.js';
import { useTestApp } from '../support/harness.js';

/**
 * One change of a job, many watchers (Realtime sockets, SSE streams): the watchers woken by one
 * NOTIFY share one set of reads — the job, its view, each session's standing — so the database
 * work per change does not grow with the number of watchers. No worker runs: the test changes the
 * job itself, and the NOTIFY of that commit (migration 0004's trigger) is what must deliver.
 */
describe('the fan-out of one job change', () => {
  const t = useTestApp({ EVENTS_REREAD_MS: '0' });

  it('wakes every watcher with the same reads, each read once, made after the change', async () => {
    const g = await t().createGuest();
    const { job_id: jobId } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a fan-out of one change' }));
    const woken: JobReads[][] = [[], [], []];
    const stops = await Promise.all(woken.map((list) => t().services.events.subscribe(jobId, (reads) => list.push(reads))));
    try {
      await t().db.query("UPDATE video_jobs SET status = 'submitted', provider_job_id = 'fan-out-1' WHERE job_id = $1", [jobId]);
      expect(await until(async () => woken.every((list) => list.length > 0), 20_000)).toBe(true);

      const [reads] = woken[0]!;
      for (const list of woken) expect(list[0]).toBe(reads);
      // Each read is made once for all of them, and sees the committed change.
      expect(reads!.read()).toBe(reads!.read());
      expect(await reads!.read()).toMatchObject({ job_id: jobId, status: 'submitted' });
      expect(reads!.view()).toBe(reads!.view());
      expect(await reads!.view()).toMatchObject({ job_id: jobId, status: 'pending' });
      // A session's standing is read once for the watchers that come together, anew for one that comes late.
      const { rows } = await t().db.query('SELECT id FROM auth_sessions WHERE user_id = $1', [g.userId]);
      const sessionId = rows[0].id as string;
      const fresh = t().services.events.reads(jobId);
      expect(fresh.standing(g.userId, sessionId)).toBe(fresh.standing(g.userId, sessionId));
      expect(await fresh.standing(g.userId, sessionId)).toMatchObject({ id: g.userId, session_revoked: false });
      await t().db.query("UPDATE auth_sessions SET revoked_at = now(), revoked_reason = 'fan-out test' WHERE id = $1", [sessionId]);
      await new Promise((r) => setTimeout(r, 1100));
      expect(await fresh.standing(g.userId, sessionId)).toMatchObject({ session_revoked: true });

      // The next change gets reads of its own: nothing read for the first is served for it.
      await t().db.query("UPDATE video_jobs SET status = 'processing' WHERE job_id = $1", [jobId]);
      expect(await until(async () => woken.every((list) => list.length > 1), 20_000)).toBe(true);
      expect(woken[1]![1]).toBe(woken[0]![1]);
      expect(woken[0]![1]).not.toBe(reads);
      expect(await woken[0]![1]!.read()).toMatchObject({ status: 'processing' });
    } finally {
      for (const stop of stops) stop();
    }
  });
});
