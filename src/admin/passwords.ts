import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Admin password hashing with scrypt from node:crypto. Why not argon2 or bcrypt: Node 20 has no
 * argon2 in node:crypto, and the npm packages are native addons (install scripts or per-platform
 * binaries); bcrypt truncates passwords at 72 bytes. scrypt is memory-hard, an OWASP-recommended
 * choice, maintained with Node itself, and runs off the event loop (libuv thread pool).
 * Parameters: OWASP's N=2^15, r=8, p=3 (32 MiB). They are stored in each hash, so raising them
 * later keeps old hashes verifiable.
 */

const PARAMS = { N: 2 ** 15, r: 8, p: 3 };
const KEY_BYTES = 32;

function derive(password: string, salt: Buffer, o: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = { N: o.N, r: o.r, p: o.p, maxmem: 256 * o.N * o.r + 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFKC'), salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, PARAMS);
  return ['scrypt', PARAMS.N, PARAMS.r, PARAMS.p, salt.toString('base64'), key.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const key = await derive(password, Buffer.from(salt, 'base64'), { N: Number(n), r: Number(r), p: Number(p) });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** What the admin:create script and the lockout accept as a password. */
export function passwordProblem(password: string): string | undefined {
  if (password.length < 12) return 'the password must be at least 12 characters';
  if (password.length > 1024) return 'the password must be at most 1024 characters';
  return undefined;
}
