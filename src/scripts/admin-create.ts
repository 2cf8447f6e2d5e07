import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import pg from 'pg';
import * as OTPAuth from 'otpauth';
import { normaliseEmail, totpFor } from '../admin/auth.js';
import { hashPassword, passwordProblem } from '../admin/passwords.js';
import { insertAdmin, updateAdminPassword } from '../admin/queries/admins.js';
import { migrate } from '../db/migrate.js';
import { scriptDatabase } from './database-url.js';

/**
 * `npm run admin:create -- --email you@example.com [--totp] [--reset]`
 * Creates an admin of the console and admin API (admins are not app users). The password is read
 * from standard input: typed at a hidden prompt, or piped (`printf '%s' "$PW" | npm run admin:create …`),
 * never from the command line, where other users of the machine could read it. --totp also sets up
 * a one-time-code second factor and prints its secret and otpauth:// URI (for an authenticator
 * app). --reset replaces an existing admin's password (and second factor).
 */

const { values } = parseArgs({
  options: { email: { type: 'string' }, totp: { type: 'boolean', default: false }, reset: { type: 'boolean', default: false } },
});
if (!values.email || !/^[^@\s]+@[^@\s]+$/.test(values.email)) {
  console.error('usage: npm run admin:create -- --email you@example.com [--totp] [--reset]');
  process.exit(2);
}
const email = normaliseEmail(values.email);

async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
  // Hide what is typed: readline echoes through _writeToOutput.
  const out = rl as unknown as { _writeToOutput: (s: string) => void; output: NodeJS.WriteStream };
  const ask = (q: string) =>
    new Promise<string>((resolve) => {
      process.stdout.write(q);
      out._writeToOutput = (s: string) => (s.includes('\n') ? out.output.write('\n') : undefined);
      rl.question('', resolve);
    });
  const first = await ask(`Password for ${email}: `);
  const second = await ask('Again: ');
  rl.close();
  if (first !== second) throw new Error('the passwords differ');
  return first;
}

const password = await readPassword();
const problem = passwordProblem(password);
if (problem) {
  console.error(problem);
  process.exit(2);
}
const totpSecret = values.totp ? new OTPAuth.Secret({ size: 20 }).base32 : null;
const { url, embedded } = await scriptDatabase({ direct: true });
let exitCode = 0;
try {
  await migrate(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const hash = await hashPassword(password);
    const row = values.reset ? await updateAdminPassword(client, email, hash, totpSecret) : await insertAdmin(client, email, hash, totpSecret);
    if (!row) {
      console.error(values.reset ? `no admin ${email}` : `admin ${email} exists (use --reset to replace the password)`);
      exitCode = 1;
    } else {
      console.log(`admin ${email} ${values.reset ? 'updated' : 'created'} (${row.id}); sign in at /admin`);
      if (totpSecret) console.log(`TOTP secret: ${totpSecret}\notpauth URI: ${totpFor(totpSecret, email).toString()}`);
    }
  } finally {
    await client.end();
  }
} finally {
  await embedded?.stop();
}
process.exit(exitCode);
