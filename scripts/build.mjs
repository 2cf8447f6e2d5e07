// `npm run build`: src/**/*.ts(x) → dist/ as plain ES modules, one file per source file (no bundle),
// so every `new URL('…', import.meta.url)` keeps its meaning: dist/ mirrors src/ at the same depth
// (assets/ is found as before) and the SQL migrations are copied next to dist/db/migrate.js.
// esbuild only strips types (milliseconds); type-checking is `npm run typecheck` / `npm test`.
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SRC = path.join(ROOT, 'src');
export const DIST = path.join(ROOT, 'dist');
/** Written last: its mtime is when dist/ was complete (scripts/launch.mjs compares against it). */
export const STAMP = path.join(DIST, '.build-stamp');

async function walk(dir) {
  const out = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

export async function build({ quiet = false } = {}) {
  const started = Date.now();
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new Error('dist/ is missing or older than src/, and esbuild (a dev dependency) is not installed: run `npm ci` then `npm run build`, or ship a built dist/');
  }
  const files = await walk(SRC);
  // Built beside dist/ and swapped in whole, so a process starting meanwhile never sees half a build.
  const tmp = `${DIST}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await esbuild.build({
    entryPoints: files.filter((f) => /\.tsx?$/.test(f) && !f.endsWith('.d.ts')),
    outdir: tmp,
    outbase: SRC,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'warning',
  });
  for (const f of files.filter((f) => !/\.tsx?$/.test(f))) {
    const to = path.join(tmp, path.relative(SRC, f));
    await fs.mkdir(path.dirname(to), { recursive: true });
    await fs.copyFile(f, to);
  }
  await fs.writeFile(path.join(tmp, '.build-stamp'), new Date().toISOString() + '\n');
  const old = `${DIST}.old-${process.pid}`;
  await fs.rename(DIST, old).catch(() => undefined);
  try {
    await fs.rename(tmp, DIST);
  } catch {
    await fs.rm(tmp, { recursive: true, force: true }); // another build won the race: its dist/ is as fresh
  }
  await fs.rm(old, { recursive: true, force: true });
  if (!quiet) console.log(`built dist/ from ${files.length} files in ${Date.now() - started} ms`);
}

/** Newest mtime under src/ (directories too: a deleted or renamed file changes its directory's). */
async function newestSource(dir = SRC) {
  let newest = (await fs.stat(dir)).mtimeMs;
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? await newestSource(p) : (await fs.stat(p)).mtimeMs);
  }
  return newest;
}

/** True when dist/ is absent or any file under src/ (or package.json) changed after the last build. */
export async function isStale() {
  let built;
  try {
    built = (await fs.stat(STAMP)).mtimeMs;
  } catch {
    return true;
  }
  const pkg = (await fs.stat(path.join(ROOT, 'package.json'))).mtimeMs;
  return Math.max(pkg, await newestSource()) > built;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await build();
}
