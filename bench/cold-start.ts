/**
 * `npm run bench:cold-start`: time from spawning `node dist/main.js` to the first 200 from /health,
 * on a PostgreSQL that is already migrated (the everyday restart: a deploy, a crash, a scale-out).
 * The first start migrates and is not counted. Prints each run and the median.
 *
 *   npm run bench:cold-start -- [--runs 7] [--database-url postgres://postgres@127.0.0.1:5432/postgres]
 *
 * The URL names an admin connection; the bench creates and drops its own database there.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { adminQuery, withDatabase } from '../test/support/db.js';
import { build, isStale } from '../scripts/build.mjs';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    'database-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
  },
});
const ROOT = path.resolve(import.meta.dirname, '..');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * CPU seconds (user + system) the process has used so far, from /proc (Linux; undefined elsewhere).
 * On a busy machine the wall time mostly measures the other processes; the CPU time is what the
 * start itself costs, and what the wall time comes down to on an idle machine.
 */
async function cpuMs(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return undefined;
  }
}

async function startOnce(databaseUrl: string): Promise<{ wallMs: number; cpuMs: number | undefined }> {
  const port = await freePort();
  const started = performance.now();
  const proc = spawn(process.execPath, [path.join(ROOT, 'dist', 'main.js')], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', JWT_SECRET: 'cold-start-bench-secret-0123456789abcdef' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise((r) => proc.once('exit', r));
  try {
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false);
      if (ok) return { wallMs: performance.now() - started, cpuMs: await cpuMs(proc.pid!) };
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    proc.kill('SIGTERM');
    await exited;
  }
}

if (await isStale()) await build();
const admin = args['database-url']!;
const db = `rendio_cold_${randomBytes(4).toString('hex')}`;
await adminQuery(admin, `CREATE DATABASE ${db}`);
try {
  const url = withDatabase(admin, db);
  const first = await startOnce(url);
  console.log(`first start (migrates): ${first.wallMs.toFixed(0)} ms`);
  const runs: { wallMs: number; cpuMs: number | undefined }[] = [];
  for (let i = 0; i < Number(args.runs); i++) {
    const r = await startOnce(url);
    runs.push(r);
    console.log(`cold start ${i + 1}: ${r.wallMs.toFixed(0)} ms wall, ${r.cpuMs ?? '?'} ms CPU`);
  }
  const summary = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return `median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ms, min ${sorted[0]!.toFixed(0)} ms, max ${sorted.at(-1)!.toFixed(0)} ms`;
  };
  console.log(`wall: ${summary(runs.map((r) => r.wallMs))} over ${runs.length} runs`);
  const cpu = runs.flatMap((r) => (r.cpuMs === undefined ? [] : [r.cpuMs]));
  if (cpu.length) console.log(`CPU:  ${summary(cpu)}`);
  console.log(`load average: ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')} on ${(await import('node:os')).cpus().length} cores`);
} finally {
  await adminQuery(admin, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
}
