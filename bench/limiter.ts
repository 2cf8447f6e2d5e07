/** The rate limiter alone: what it adds to one generate-video request (bench/README.md). */
import { randomBytes, randomUUID } from 'node:crypto';
import { loadConfig } from '../src/config/index.js';
import { createPool } from '../src/db/pool.js';
import { RateLimits } from '../src/http/rate-limit.js';
import { createLogger } from '../src/logger.js';

/** Limits no bench can reach: the limiter runs (its cost is in every number) but never refuses. */
export const UNREACHABLE_LIMITS =
  'global.ip=1000000000/60,generate-video.user=1000000000/3600,generate-video.ip=1000000000/3600,device-check.ip=1000000/3600,device-check.device=1000000/3600,' +
  'realtime-join.user=1000000/60,realtime-join.ip=1000000/60';

/**
 * In this process against the bench database (or Redis): the global rule and generate-video's two
 * rules, one store round trip each, 2000 times in sequence after 200 warm-up checks.
 */
export async function limiterLatency(dbUrl: string, redisUrl: string | undefined): Promise<{ store: string; samples: number; p50_ms: number; p99_ms: number }> {
  const pool = createPool(dbUrl, 4);
  const config = loadConfig({ DATABASE_URL: dbUrl, RATE_LIMITS_ENABLED: 'true', RATE_LIMITS: UNREACHABLE_LIMITS, REDIS_URL: redisUrl, RATE_LIMIT_KEY_PREFIX: `bench-${randomBytes(4).toString('hex')}` });
  const limits = new RateLimits(config.rateLimits, pool, () => '127.0.0.1', createLogger('silent'));
  const users = Array.from({ length: 40 }, () => randomUUID());
  const once = async (i: number) => {
    await limits.consume('global', { ip: '127.0.0.1' });
    await limits.consume('generate-video', { ip: '127.0.0.1', user: users[i % users.length] });
  };
  try {
    await limits.ready();
    for (let i = 0; i < 200; i++) await once(i); // warm up: connections, prepared statements
    const samples: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const started = performance.now();
      await once(i);
      samples.push(performance.now() - started);
    }
    samples.sort((a, b) => a - b);
    const at = (q: number) => Math.round(samples[Math.floor(q * (samples.length - 1))]! * 1000) / 1000;
    return { store: redisUrl ? 'redis' : 'postgres', samples: samples.length, p50_ms: at(0.5), p99_ms: at(0.99) };
  } finally {
    await limits.close();
    await pool.end();
  }
}
