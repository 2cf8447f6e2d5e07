import { describe, expect, it } from 'vitest';
import { useTestApp } from '../support/harness.js';
import { forEachSseEvent } from '../support/sse.js';

/** Reads server-sent events from a streaming response until the stream ends. */
async function readEvents(res: Response, timeoutMs = 15_000): Promise<{ event: string; data: any }[]> {
  const events: { event: string; data: any }[] = [];
  await forEachSseEvent(res, (e) => events.push(e), Date.now() + timeoutMs);
  return events;
}

describe('video-events (SSE)', () => {
  const t = useTestApp({ SIMULATOR_DELAY_MS: '600' });

  it('streams each public state change until the job completes, then ends', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'watch me render' }));
    const res = await t().get(`/functions/v1/video-events?job_id=${job_id}`, { token: g.accessToken });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const events = await readEvents(res);
    const statuses = events.map((e) => e.data.status);
    expect(statuses.at(0)).toBe('pending');
    expect(statuses).toContain('processing');
    expect(statuses.at(-1)).toBe('completed');
    expect(new Set(statuses).size).toBe(statuses.length); // one event per change, no repeats
    expect(events.at(-1)!.data.video_url).toMatch(/\/storage\/v1\/object\/sign\//);
  });

  it('a finished job yields its final state at once; others’ jobs are 404', async () => {
    const [g, other] = [await t().createGuest(), await t().createGuest()];
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'rejected [sim:reject]' }));
    await t().services.jobs.fail(job_id, 'ERR_5003', 'rejected');
    const events = await readEvents(await t().get(`/functions/v1/video-events?job_id=${job_id}`, { token: g.accessToken }));
    expect(events.map((e) => e.data.status)).toEqual(['failed']);
    expect((await t().get(`/functions/v1/video-events?job_id=${job_id}`, { token: other.accessToken })).status).toBe(404);
  });
});

describe('video-events after the session ends', () => {
  const t = useTestApp(); // no worker: the job stays pending until the test moves it

  it('a logout while the stream is open ends it with an error event instead of the next state', async () => {
    const g = await t().createGuest();
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'log out mid-stream' }));
    const res = await t().get(`/functions/v1/video-events?job_id=${job_id}`, { token: g.accessToken });
    expect(res.status).toBe(200);
    // Once the first event has arrived, end the session, then move the job on. (Waiting only for a
    // LISTEN to show in pg_stat_activity was not enough: the app's other channels satisfied it, and
    // on a loaded machine the stream's first read then already saw the failed job.)
    const got: { event: string; data: any }[] = [];
    let firstArrived!: () => void;
    const first = new Promise<void>((resolve) => (firstArrived = resolve));
    const reading = forEachSseEvent(res, (e) => (got.push(e), firstArrived()), Date.now() + 30_000);
    await first;
    expect((await t().post('/auth/v1/logout', { token: g.accessToken })).status).toBe(204);
    await t().services.jobs.fail(job_id, 'ERR_5003', 'rejected after the logout');
    await reading;
    expect(got.map((e) => e.event)).toEqual(['status', 'error']);
    expect(got[0]!.data.status).toBe('pending');
    expect(got[1]!.data).toEqual({ code: 'ERR_4005' });
  });
});
