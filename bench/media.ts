/**
 * `npm run bench:media`: what ingesting one large delivered video costs in memory and time.
 *
 *   npm run bench:media -- [--size-mb 200] [--database-url postgres://…]
 *
 * Writes a synthetic MP4 of about --size-mb (its index at the end, so the faststart rewrite runs too),
 * serves it from a local HTTP server, and runs the real ingest on it (src/media/ingest.ts): fal's
 * download code streaming it to a temporary file, the MP4 checks, the rewrite, the local store's copy,
 * the SHA-256 and the storage_objects row, and the poster when ffmpeg is on the machine. The process's
 * peak RSS (VmHWM, reset just before the ingest through /proc/self/clear_refs) is compared with its
 * RSS before: the growth is what one ingest holds. A throwaway database is created and dropped.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { migrate } from '../src/db/migrate.js';
import { createPool } from '../src/db/pool.js';
import { createLogger } from '../src/logger.js';
import { MediaIngest } from '../src/media/ingest.js';
import { writeSyntheticMp4 } from '../src/media/synthetic.js';
import { FalProvider } from '../src/providers/fal.js';
import { LocalObjectStore } from '../src/storage/local.js';
import { adminQuery, withDatabase } from '../test/support/db.js';

const { values: args } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: '200' },
    'database-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
  },
});
const sizeMb = Number(args['size-mb']);
const adminUrl = args['database-url']!;

const mib = (bytes: number) => Math.round(bytes / 1024 / 1024);
function peakRssMib(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rendio-bench-media-'));
const dbName = `rendio_bench_media_${randomBytes(4).toString('hex')}`;
const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'video/mp4' });
  createReadStream(path.join(dir, 'delivered.mp4')).pipe(res);
});
try {
  // 25 frames a second of 1 MiB each: an 8 s clip of about --size-mb.
  const durationSeconds = 8;
  const sampleBytes = randomBytes(Math.max(1024, Math.round((sizeMb * 1024 * 1024) / (durationSeconds * 25))));
  const size = await writeSyntheticMp4(path.join(dir, 'delivered.mp4'), { durationSeconds, aspectRatio: '16:9', framesPerSecond: 25, moovLast: true, sampleBytes });

  await adminQuery(adminUrl, `CREATE DATABASE ${dbName}`);
  const dbUrl = withDatabase(adminUrl, dbName);
  await migrate(dbUrl);
  const db = createPool(dbUrl, 2);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const fal = new FalProvider({ apiKey: 'bench', queueUrl: `http://${host}`, jwksUrl: `http://${host}/jwks`, resultHosts: [host], webhookUserId: undefined, timeoutMs: 600_000 });
  const store = new LocalObjectStore(path.join(dir, 'storage'), 'http://localhost', 'bench-secret');
  const log = createLogger('silent');
  const media = new MediaIngest(store, log, { ffmpegPath: 'ffmpeg', tempDir: path.join(dir, 'tmp'), maxResultBytes: size + 1 });
  const ffmpeg = await media.posterMaker();
  const { rows } = await db.query<{ id: string }>("INSERT INTO users (is_guest) VALUES (true) RETURNING id");
  const ownerId = rows[0]!.id;

  global.gc?.();
  const rssBefore = mib(process.memoryUsage().rss);
  writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM: the peak from here on is the ingest's
  const started = performance.now();
  const stored = await media.ingest(db, {
    jobId: 'bench',
    ownerId,
    provider: fal,
    output: { videoUrl: `http://${host}/delivered.mp4` },
    paid: { durationSeconds, aspectRatio: '16:9' },
    videoKey: `${ownerId}/bench.mp4`,
    thumbnailKey: `${ownerId}/bench.jpg`,
  });
  const seconds = (performance.now() - started) / 1000;
  const peak = peakRssMib();
  await db.end();

  console.log('| media ingest | value |');
  console.log('|---|---|');
  console.log(`| delivered file | ${mib(size)} MiB, index at the end (rewritten: ${stored.facts.faststart}) |`);
  console.log(`| checked | ${stored.facts.durationSeconds} s, ${stored.facts.width}×${stored.facts.height}, ${stored.facts.codecString} |`);
  console.log(`| poster | ${stored.posterSource ?? 'none'}${ffmpeg ? '' : ' (no ffmpeg)'} |`);
  console.log(`| time (download, check, rewrite, store, hash${ffmpeg ? ', poster' : ''}) | ${seconds.toFixed(2)} s |`);
  console.log(`| RSS before → peak during ingest | ${rssBefore} → ${peak} MiB |`);
  console.log(`| RSS growth while ingesting | ${peak - rssBefore} MiB (${((peak - rssBefore) / mib(size) * 100).toFixed(0)} % of the file) |`);
} finally {
  server.close();
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
  await fs.rm(dir, { recursive: true, force: true });
}
