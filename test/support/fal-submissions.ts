import { expect } from 'vitest';
import type { FakeFal } from '../fakes/fal.js';
import type { TestApp } from './harness.js';

/** Verbs for tests of a job's submissions at the fal fake: lost answers, callbacks, what we recorded. */

export async function until(fn: () => Promise<boolean>, limitMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    if (await fn()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

export async function jobRow(t: TestApp, jobId: string) {
  return (await t.db.query('SELECT * FROM video_jobs WHERE job_id = $1', [jobId])).rows[0];
}

/** Submits once while fal loses the answer after creating the request; returns that request's id. */
export async function submitLosingAnswer(t: TestApp, fal: FakeFal, jobId: string): Promise<string> {
  const before = new Set(fal.requests.keys());
  fal.loseResponses(1, 'reset');
  await t.services.jobs.submit(jobId);
  const [lost] = [...fal.requests.keys()].filter((id) => !before.has(id));
  expect(lost).toBeDefined();
  expect((await jobRow(t, jobId)).status).toBe('queued');
  return lost!;
}

/** fal calls back for this request on the URL it was given; returns our answer. */
export async function callBack(t: TestApp, fal: FakeFal, requestId: string): Promise<unknown> {
  const { path, init } = fal.callback(requestId);
  return (await t.app.request(path, init)).json();
}
