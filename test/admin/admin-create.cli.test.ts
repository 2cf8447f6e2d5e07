import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { totpCode } from '../support/admin.js';
import { useTestApp } from '../support/harness.js';

/**
 * `npm run admin:create -- --email …`, through npm as README.md names it (piped: `printf '%s' "$PW" |
 * npm run admin:create -- --email … --totp`): the password from stdin (never argv), the admin can then sign in.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');

function adminCreate(databaseUrl: string, args: string[], stdin: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', 'admin:create', '--', ...args], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end(stdin);
  });
}

describe('npm run admin:create', () => {
  const t = useTestApp();

  it('creates an admin (email lower-cased, optional TOTP) who can sign in; refuses a short password and a second create', async () => {
    const made = await adminCreate(t().dbUrl, ['--email', 'Ops@Example.com', '--totp'], 'a long enough password\n');
    expect(made.code, made.out).toBe(0);
    const secret = /TOTP secret: ([A-Z2-7]+)/.exec(made.out)?.[1];
    expect(secret, made.out).toBeDefined();
    const login = await t().post('/admin/api/login', { body: { email: 'ops@example.com', password: 'a long enough password', totp: totpCode(secret!) } });
    expect(login.status, await login.clone().text()).toBe(200);

    const short = await adminCreate(t().dbUrl, ['--email', 'other@example.com'], 'short');
    expect(short.code).toBe(2);
    expect(short.out).toContain('at least 12 characters');
    const again = await adminCreate(t().dbUrl, ['--email', 'ops@example.com'], 'another long password');
    expect(again.code, again.out).toBe(1);
    const reset = await adminCreate(t().dbUrl, ['--email', 'ops@example.com', '--reset'], 'another long password');
    expect(reset.code, reset.out).toBe(0);
    expect((await t().post('/admin/api/login', { body: { email: 'ops@example.com', password: 'another long password' } })).status).toBe(200);
  }, 120_000);
});
