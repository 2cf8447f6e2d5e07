import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { resolveLogFormat } from '../../src/config/observability.js';
import { adminQuery, dropTestDatabase, runPrefix, withDatabase } from '../support/db.js';
import { deviceToken } from '../fakes/device-check.js';
import { fakeOtlpReceiver } from '../fakes/otlp.js';
import { MAIN, freePort, portIsFree, startProcess, startServer, waitFor, waitForReady, type ServerProcess } from '../support/process.js';
import { strictLogLines } from '../support/strict-json.js';
import { temporaryFolder } from '../support/temp.js';

/**
 * What the server writes from start to stop, as an operator's log shipper reads it: an API process
 * and a ROLE=worker process on a database they migrate themselves, a video made end to end. Every
 * line of both must be one JSON object with no key twice; each request one access line; the
 * migrations one line. Both serve /metrics on METRICS_PORT (the worker has no other port), and the
 * job's life is on them. Both send OpenTelemetry traces to a local OTLP receiver: the video's is one
 * trace across the two processes, request → queue → provider → ingest. At a terminal the same
 * server writes human-readable lines.
 */

const JWT_SECRET = 'logs-test-secret-that-is-long-enough-0123456789';
const MODEL = 'simulator-text-to-video';
let adminUrl: string;
let dbName: string;
const processes: ServerProcess[] = [];

beforeAll(async () => {
  adminUrl = inject('adminUrl');
  // Empty, not the migrated template: the API process applies every migration itself.
  dbName = `${runPrefix(inject('runId'))}logs_${randomBytes(4).toString('hex')}`;
  await adminQuery(adminUrl, `CREATE DATABASE ${dbName}`);
});
afterAll(async () => {
  for (const p of processes) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  await dropTestDatabase(adminUrl, dbName);
});

const metricValue = (text: string, series: string) => Number(text.split('\n').find((l) => l.startsWith(`${series} `))?.split(' ')[1] ?? NaN);

async function stop(p: ServerProcess): Promise<void> {
  p.proc.kill('SIGTERM');
  const { code } = await p.exited;
  expect(code, p.output()).toBe(0);
}

describe('the logs and metrics of a running server', () => {
  it('API and worker processes: strict JSON lines, one access line per request, one migrations line, metrics on both', { timeout: 240_000 }, async () => {
    // The collector listens first: a port freePort() hands out is free only until something else binds one.
    const collector = await fakeOtlpReceiver().start();
    const [port, apiMetricsPort, workerMetricsPort] = [await freePort(), await freePort(), await freePort()];
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      DATABASE_URL: withDatabase(adminUrl, dbName),
      JWT_SECRET,
      HOST: '127.0.0.1',
      NODE_ENV: 'development',
      DATA_DIR: temporaryFolder('rendio-logs-'),
      // debug: the lines a request writes beyond its access line are checked as well.
      LOG_LEVEL: 'debug',
      SIMULATOR_DELAY_MS: '200',
      WORKER_POLL_INTERVAL_MS: '200',
    };
    const api = startServer({ ...env, ROLE: 'api', PORT: String(port), METRICS_PORT: String(apiMetricsPort) }, { cwd: env.DATA_DIR });
    processes.push(api);
    await waitForReady(port, api);
    const worker = startServer({ ...env, ROLE: 'worker', METRICS_PORT: String(workerMetricsPort) }, { cwd: env.DATA_DIR });
    processes.push(worker);
    // Listening, not scraped: a scrape now would cache the ledger's totals from before the video (a minute).
    await waitFor('the worker\'s METRICS_PORT', async () => !(await portIsFree(workerMetricsPort)), 120_000, worker.output);

    const base = `http://127.0.0.1:${port}`;
    const sent: string[] = [];
    const call = async (path: string, init: RequestInit = {}) => {
      const requestId = `logs-${randomUUID()}`;
      sent.push(requestId);
      const res = await fetch(base + path, { ...init, headers: { 'content-type': 'application/json', 'x-request-id': requestId, ...(init.headers as Record<string, string>) } });
      return { requestId, status: res.status, body: (await res.json()) as any };
    };
    const onboard = await call('/functions/v1/device-check', { method: 'POST', body: JSON.stringify({ device_id: randomUUID(), device_token: deviceToken('logs-phone') }) });
    expect(onboard.status, JSON.stringify(onboard.body)).toBe(200);
    const auth = { authorization: `Bearer ${onboard.body.access_token}` };
    const generate = await call('/functions/v1/generate-video', { method: 'POST', headers: { ...auth, 'idempotency-key': randomUUID() }, body: JSON.stringify({ model_id: MODEL, prompt: 'a red fox in the snow' }) });
    expect(generate.status, JSON.stringify(generate.body)).toBe(200);
    let status = '';
    await waitFor('the video to complete', async () => {
      status = (await call(`/functions/v1/get-video-status?job_id=${generate.body.job_id}`, { headers: auth })).body.status;
      return status === 'completed' || status === 'failed';
    }, 120_000, worker.output);
    expect(status).toBe('completed');
    const refused = await call('/functions/v1/get-user-credits', { headers: { authorization: 'Bearer not-a-token' } });
    expect(refused.status).toBe(401);

    const apiMetrics = await (await fetch(`http://127.0.0.1:${apiMetricsPort}/metrics`)).text();
    const workerMetrics = await (await fetch(`http://127.0.0.1:${workerMetricsPort}/metrics`)).text();
    const labels = `{provider="simulator",model="${MODEL}"}`;
    expect(metricValue(apiMetrics, `rendio_video_jobs_started_total${labels}`)).toBe(1);
    expect(metricValue(workerMetrics, `rendio_video_jobs_completed_total${labels}`)).toBe(1);
    expect(metricValue(workerMetrics, `rendio_video_job_duration_seconds_count{provider="simulator",model="${MODEL}",outcome="completed"}`)).toBe(1);
    expect(metricValue(workerMetrics, 'rendio_provider_requests_total{provider="simulator",operation="submit",outcome="ok"}')).toBe(1);
    expect(metricValue(workerMetrics, 'rendio_provider_request_duration_seconds_count{provider="simulator",operation="download"}')).toBeGreaterThanOrEqual(1);
    // The job's credit was captured: balance 9 of the 10 granted, nothing held.
    expect(metricValue(workerMetrics, 'rendio_ledger_credits{state="balance"}')).toBe(9);
    expect(metricValue(workerMetrics, 'rendio_ledger_credits{state="held"}')).toBe(0);
    expect(workerMetrics).toMatch(/^# TYPE rendio_queue_oldest_ready_age_seconds gauge$/m);
    expect(workerMetrics).toMatch(/^rendio_queue_jobs\{task="[a-z_]+",state="scheduled"\} \d+$/m);

    await stop(worker);
    await stop(api);
    const apiLines = strictLogLines(api.output());
    const workerLines = strictLogLines(worker.output());
    for (const requestId of sent) {
      expect(apiLines.filter((r) => r.msg === 'request' && r.requestId === requestId), requestId).toHaveLength(1);
    }
    expect(apiLines.find((r) => r.requestId === generate.requestId && r.msg === 'request')).toMatchObject({ level: 30, method: 'POST', route: '/functions/v1/generate-video', status: 200, userId: onboard.body.user_id });
    expect(apiLines.find((r) => r.requestId === refused.requestId && r.msg === 'request')).toMatchObject({ status: 401, code: 'ERR_4005' });
    const migrationLines = (lines: Record<string, unknown>[]) => lines.filter((r) => (r.level as number) >= 30 && /migration/i.test(String(r.msg)));
    expect(migrationLines(apiLines)).toEqual([expect.objectContaining({ msg: expect.stringMatching(/^migrations: \d+ applied; schema at \d{4}_/) })]);
    expect(migrationLines(workerLines)).toEqual([expect.objectContaining({ msg: expect.stringMatching(/^migrations: schema up to date at \d{4}_/) })]);
    // One trace for the video, across both processes: the request, the tasks it led to, their provider calls.
    const spans = collector.spans();
    await collector.stop();
    const requestSpan = spans.find((s) => s.attributes['rendio.request_id'] === generate.requestId);
    expect(requestSpan, JSON.stringify(spans.map((s) => s.name))).toMatchObject({ name: 'POST /functions/v1/generate-video', service: 'rendio', attributes: { 'http.route': '/functions/v1/generate-video', 'http.response.status_code': 200 } });
    const trace = spans.filter((s) => s.traceId === requestSpan!.traceId);
    const task = (name: string) => trace.find((s) => s.name === `task ${name}` && s.attributes['rendio.job_id'] === generate.body.job_id);
    const submit = task('submit_video_job');
    const ingest = task('ingest_video_job');
    expect(submit?.parentSpanId).toBe(requestSpan!.spanId);
    expect(ingest, JSON.stringify(trace.map((s) => s.name))).toBeDefined();
    expect(trace.find((s) => s.name === 'provider submit')?.parentSpanId).toBe(submit!.spanId);
    expect(trace.find((s) => s.name === 'provider download')?.parentSpanId).toBe(ingest!.spanId);

    // Every message is one line (the DeviceCheck warning used to be a banner of literal \n).
    expect([...apiLines, ...workerLines].filter((r) => String(r.msg).includes('\n'))).toEqual([]);
    expect(apiLines.some((r) => /DeviceCheck is NOT configured/.test(String(r.msg)))).toBe(true);
  });

  it('LOG_FORMAT=auto is pretty only at a terminal outside production; json and pretty are taken as said', () => {
    expect(resolveLogFormat('auto', 'development', true)).toBe('pretty');
    expect(resolveLogFormat('auto', 'production', true)).toBe('json');
    expect(resolveLogFormat('auto', 'development', false)).toBe('json');
    expect(resolveLogFormat('json', 'development', true)).toBe('json');
    expect(resolveLogFormat('pretty', 'production', false)).toBe('pretty');
    expect(() => loadConfig({ LOG_FORMAT: 'colour' })).toThrow(/LOG_FORMAT/);
    expect(() => loadConfig({ ACCESS_LOG: 'warn' })).toThrow(/ACCESS_LOG/);
  });

  it('at a terminal (and not in production) the lines are for people: no JSON', { timeout: 120_000 }, async () => {
    const env = { DATABASE_URL: withDatabase(adminUrl, dbName), JWT_SECRET, NODE_ENV: 'development', ROLE: 'worker', LOG_LEVEL: 'info' };
    // script(1) gives the server a pseudo-terminal as stdout, as a developer's shell would.
    const tty = startProcess('script', ['-qfec', `${process.execPath} ${MAIN}`, '/dev/null'], { env });
    processes.push(tty);
    await waitFor('the worker to start', () => /worker started/.test(tty.output()), 60_000, tty.output);
    // script(1) runs the command through $SHELL -c, or /bin/sh when SHELL is unset (as in CI): dash
    // forks the server rather than exec it, so the server is a grandchild there and a child under bash.
    const serverPid = descendants(tty.proc.pid!).find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[1] === MAIN);
    expect(serverPid, 'the server process under script(1)').toBeDefined();
    process.kill(serverPid!, 'SIGTERM');
    await tty.exited;
    const lines = tty.output().split(/\r?\n/).filter((l) => l.trim() !== '');
    expect(lines.length).toBeGreaterThan(3);
    expect(lines.filter((l) => l.trimStart().startsWith('{'))).toEqual([]);
    expect(tty.output()).toMatch(/INFO.*migrations: (schema up to date|\d+ applied)/);
    expect(tty.output()).toMatch(/INFO.*stopped/);
  });
});

/** Every process below `pid`, nearest first (Linux /proc). */
function descendants(pid: number): number[] {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
  return [...children, ...children.flatMap(descendants)];
}
