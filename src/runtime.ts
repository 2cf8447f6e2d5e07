import { existsSync } from 'node:fs';
import net from 'node:net';
import pg from 'pg';

/**
 * Start-up checks that turn the usual operator mistakes into one clear line (main.ts prints it and
 * exits 1) instead of a stack trace, and that run before anything is started that would then have
 * to be stopped again (the embedded database takes seconds to start and to migrate).
 */

/** A start-up failure whose message is the whole story: printed alone, no stack. */
export class StartupError extends Error {}

/**
 * `.env` in the working directory, if present, before the config is read. Variables already in the
 * environment win, so a deployment's settings are never overridden by a stray file.
 */
export function loadDotEnv(file = '.env'): void {
  if (existsSync(file)) process.loadEnvFile(file);
}

/** Fails at once when something already listens on host:port (port 0 picks a free one: nothing to check). */
export async function assertPortFree(name: string, host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new StartupError(
          err.code === 'EADDRINUSE'
            ? `${name}=${port}: the port is already in use on ${host} (another server is running?); stop it or choose another ${name}`
            : `${name}=${port}: cannot listen on ${host}: ${err.message}`,
        ),
      ),
    );
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/** The URL without its password, to name in messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** What went wrong connecting to PostgreSQL, in words: host, port, database, credentials. */
export function describeConnectError(err: unknown, url: string): string {
  const e = err as NodeJS.ErrnoException & { code?: string };
  let host = '?';
  let port = '5432';
  let database = '?';
  let user = '?';
  try {
    const u = new URL(url);
    host = u.hostname;
    port = u.port || port;
    user = decodeURIComponent(u.username) || 'the current user';
    database = decodeURIComponent(u.pathname.replace(/^\//, '')) || user;
  } catch {
    // described generically below
  }
  switch (e?.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host "${host}" could not be resolved`;
    case 'ECONNREFUSED':
      return `nothing accepts connections at ${host}:${port} (is PostgreSQL running there?)`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${host}:${port} is unreachable (${e.code})`;
    case '3D000':
      return `database "${database}" does not exist on ${host}:${port} (create it: createdb ${database})`;
    case '28P01':
    case '28000':
      return `PostgreSQL refused user "${user}": ${e.message}`;
    case '57P03':
      return `PostgreSQL at ${host}:${port} is starting up or shutting down`;
    default:
      return /timeout/i.test(e?.message ?? '') ? `no answer from ${host}:${port} within the connection timeout` : (e?.message ?? String(err));
  }
}

/** One connection and a round trip, so a wrong DATABASE_URL is named before migrations run. */
export async function checkDatabase(url: string, setting = 'DATABASE_URL', timeoutMs = 10_000): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs, application_name: 'rendio-start' });
  client.on('error', () => undefined); // a late socket error after a failed connect must not crash the process
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    throw new StartupError(`${setting}: cannot connect to ${redactUrl(url)}: ${describeConnectError(err, url)}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}
