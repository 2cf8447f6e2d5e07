// The bench's baseline: what bare Hono on Node does with the project's own hono, @hono/node-server,
// pg and jose, and nothing else. Plain JavaScript (no TypeScript loader) so its cold start is the
// floor ours is compared with. Not part of the product.
//   GET /status?job_id=…  Bearer HS256 JWT verified with jose, one primary-key select, JSON
//   GET /static            a fixed JSON body (get-models' bytes) with an ETag; If-None-Match → 304
import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { jwtVerify } from 'jose';
import pg from 'pg';

const { DATABASE_URL, JWT_SECRET, PORT, STATIC_BODY_FILE, POOL_MAX = '10' } = process.env;
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: Number(POOL_MAX) });
const key = await webcrypto.subtle.importKey('raw', new TextEncoder().encode(JWT_SECRET), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
const staticBody = STATIC_BODY_FILE ? readFileSync(STATIC_BODY_FILE, 'utf8') : '{"models":[]}';
const staticTag = '"baseline-static"';

const app = new Hono();
app.get('/static', (c) => {
  c.header('ETag', staticTag);
  if (c.req.header('if-none-match') === staticTag) return c.body(null, 304);
  return c.body(staticBody, 200, { 'Content-Type': 'application/json' });
});
app.get('/status', async (c) => {
  const token = (c.req.header('authorization') ?? '').slice(7);
  let sub;
  try {
    sub = (await jwtVerify(token, key, { algorithms: ['HS256'] })).payload.sub;
  } catch {
    return c.json({ error: 'unauthenticated' }, 401);
  }
  const { rows } = await pool.query('SELECT job_id, user_id, status, prompt, credits_used, created_at FROM video_jobs WHERE job_id = $1', [c.req.query('job_id')]);
  if (!rows[0] || rows[0].user_id !== sub) return c.json({ error: 'not found' }, 404);
  return c.json(rows[0]);
});

const server = serve({ fetch: app.fetch, port: Number(PORT), hostname: '127.0.0.1' });
process.on('SIGTERM', () => server.close(() => pool.end().then(() => process.exit(0))));
