import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

/**
 * The server as a separate process, the way an operator runs it: `node dist/main.js` (built by the
 * global setup) or the real `npm start`. Every wait here is on a condition, with a generous limit
 * for a loaded machine; none asserts how fast anything is.
 */

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const MAIN = path.join(ROOT, 'dist', 'main.js');

/** Ports this test process has handed out: the kernel may offer a closed one again at once. */
const handedOut = new Set<number>();

export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

export interface ServerProcess {
  proc: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  output(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startProcess(
  command: string,
  args: string[],
  opts: { env: Record<string, string>; cwd?: string; detached?: boolean },
): ServerProcess {
  let out = '';
  let err = '';
  const proc = spawn(command, args, {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
  });
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => {
    out += d;
    err += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { proc, output: () => out, stderr: () => err, exited };
}

/** `npm run <args>` as typed in the checkout (or `cwd`); returns its output, fails with its tail unless it exits 0. */
export async function npmRun(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<string> {
  const p = startProcess('npm', ['run', ...args], { env: opts.env ?? {}, cwd: opts.cwd });
  const { code, signal } = await p.exited;
  if (code !== 0) throw new Error(`npm run ${args.join(' ')} exited ${code ?? signal}:\n${p.output().slice(-4000)}`);
  return p.output();
}

/** `node dist/main.js` with this environment (cwd: where a .env would be read from). */
export function startServer(env: Record<string, string>, opts: { cwd?: string; detached?: boolean } = {}): ServerProcess {
  return startProcess(process.execPath, [MAIN], { env, ...opts });
}

export async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 120_000, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${detail()}`);
}

/** Resolves once the server answers 200 on /ready; fails early if the process exits first. */
export async function waitForReady(port: number, server: ServerProcess, timeoutMs = 120_000): Promise<void> {
  await waitFor(
    `http://127.0.0.1:${port}/ready`,
    async () => {
      if (server.proc.exitCode !== null || server.proc.signalCode !== null) throw new Error(`server exited before it was ready:\n${server.output()}`);
      return fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.status === 200, () => false);
    },
    timeoutMs,
    server.output,
  );
}

/** Nothing accepts connections on the port any more. */
export async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** pino's JSON lines of the output at level error (50) or above. */
export function errorLogs(output: string): string[] {
  return output.split('\n').filter((line) => {
    try {
      return JSON.parse(line).level >= 50;
    } catch {
      return false;
    }
  });
}
