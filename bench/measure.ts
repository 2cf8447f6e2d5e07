/**
 * The bench's instruments: autocannon rounds with a warm-up, the median round, the CPU a process
 * (or a whole PostgreSQL cluster) spent, a process's peak RSS, and time-to-first-answer of a start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import autocannon from 'autocannon';

export interface Load {
  connections: number;
  durationS: number;
  rounds: number;
  warmupS: number;
}

export interface Measured {
  req_per_s: number;
  p50_ms: number;
  p99_ms: number;
  requests: number;
  non_2xx: number;
  errors: number;
  /** Milliseconds of CPU per request: the server process, and the PostgreSQL cluster (all its processes). */
  server_cpu_ms_per_req: number | null;
  pg_cpu_ms_per_req: number | null;
  rounds_req_per_s: number[];
}

export interface Watched {
  serverPid?: number;
  postmasterPid?: number;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** utime + stime of one process, in ms; with children, also its reaped children's (cutime, cstime). */
function processCpuMs(pid: number, withReapedChildren = false): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [utime, stime, cutime, cstime] = [fields[11], fields[12], fields[13], fields[14]].map(Number) as [number, number, number, number];
  return ((utime + stime + (withReapedChildren ? cutime + cstime : 0)) * 1000) / CLOCK_TICKS;
}

/** CPU of a PostgreSQL cluster: the postmaster, its live children, and the children it has reaped. */
export function clusterCpuMs(postmasterPid: number): number {
  let total = processCpuMs(postmasterPid, true);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === postmasterPid) total += processCpuMs(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return total;
}

function cpuSnapshot(w: Watched): { server?: number; pg?: number } {
  const safe = (f: () => number) => {
    try {
      return f();
    } catch {
      return undefined;
    }
  };
  return {
    server: w.serverPid ? safe(() => processCpuMs(w.serverPid!)) : undefined,
    pg: w.postmasterPid ? safe(() => clusterCpuMs(w.postmasterPid!)) : undefined,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A warm-up, then `rounds` runs; reports the median round (by req/s) and CPU over all rounds. */
export async function measure(load: Load, opts: autocannon.Options, watched: Watched = {}): Promise<Measured> {
  if (load.warmupS > 0) await autocannon({ ...opts, connections: load.connections, duration: load.warmupS, timeout: 10 });
  const rounds: autocannon.Result[] = [];
  const before = cpuSnapshot(watched);
  for (let i = 0; i < load.rounds; i++) rounds.push(await autocannon({ ...opts, connections: load.connections, duration: load.durationS, timeout: 10 }));
  const after = cpuSnapshot(watched);
  const requests = rounds.reduce((n, r) => n + r.requests.total, 0);
  const mid = rounds.find((r) => r.requests.average === median(rounds.map((x) => x.requests.average)))!;
  const perReq = (a?: number, b?: number) => (a !== undefined && b !== undefined && requests > 0 ? Math.round(((b - a) / requests) * 1000) / 1000 : null);
  return {
    req_per_s: Math.round(mid.requests.average),
    p50_ms: mid.latency.p50,
    p99_ms: mid.latency.p99,
    requests,
    non_2xx: rounds.reduce((n, r) => n + r.non2xx, 0),
    errors: rounds.reduce((n, r) => n + r.errors + r.timeouts, 0),
    server_cpu_ms_per_req: perReq(before.server, after.server),
    pg_cpu_ms_per_req: perReq(before.pg, after.pg),
    rounds_req_per_s: rounds.map((r) => Math.round(r.requests.average)),
  };
}

/** The most memory the process has ever had resident (VmHWM), in MiB. */
export function peakRssMib(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Waits until url answers 2xx (or 304), failing early if the process exits. */
export async function waitForAnswer(url: string, child: ChildProcess, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited with ${child.exitCode} before answering`);
    const ok = await fetch(url).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${url} did not answer within ${timeoutMs / 1000} s`);
}

export async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

/** Milliseconds from spawn to the first good answer at url, median of `runs` starts. */
export async function coldStartMs(start: () => ChildProcess, url: string, runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const child = start();
    try {
      await waitForAnswer(url, child);
      times.push(Math.round(performance.now() - t0));
    } finally {
      await stop(child);
    }
  }
  return median(times);
}

export function spawnNode(args: string[], cwd: string, env: Record<string, string | undefined>): ChildProcess {
  return spawn(process.execPath, args, { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
}
