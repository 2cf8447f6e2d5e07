import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

const made = new Set<string>();
// Registered while the test file that imports this is collected: its folders go after its tests.
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
  made.clear();
});

/**
 * A temporary folder that goes after the test file's tests: certificates and files handed to a
 * server under test by path must outlive the call that wrote them, so they cannot go at once.
 */
export function temporaryFolder(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  made.add(dir);
  return dir;
}
