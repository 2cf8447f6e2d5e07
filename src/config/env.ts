import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';

/** Pieces every section's slice of the environment is written with (src/config/index.ts joins them). */

export const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

// PEM keys often arrive through env files with literal "\n" escapes.
export const pem = z.string().transform((v) => v.replace(/\\n/g, '\n'));

/** A TCP port; NaN from `PORT=abc` gets the same plain sentence as an out-of-range number. */
export const port = (name: string, min: number) => {
  const message = `${name} must be a port number (${min}-65535)`;
  return z.coerce.number({ error: message }).int(message).min(min, message).max(65535, message);
};

export const commaList = (v: string) => v.split(',').map((h) => h.trim()).filter(Boolean);

/** A comma-separated list of addresses and CIDRs, or undefined when an item is neither. */
export function parseCidrs(spec: string): string[] | undefined {
  const items = commaList(spec);
  for (const item of items) {
    const [address, bits, ...rest] = item.split('/');
    const family = isIP(address ?? '');
    if (family === 0 || rest.length > 0) return undefined;
    if (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128))) return undefined;
  }
  return items;
}

/** Base URLs are joined with paths that start with a slash. */
export const withoutTrailingSlash = (url: string) => url.replace(/\/+$/, '');

/**
 * Records what is wrong with a variable beyond its own value (a rule across variables, a file it
 * names); loadConfig reports every one together. A section that reported something may return a
 * placeholder for that part: loadConfig throws before anything sees it.
 */
export type ReportIssue = (variable: string, message: string) => void;

/** The file's bytes, or undefined with the failure reported against the variable that named it. */
export function readFileOf(variable: string, path: string, report: ReportIssue): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (err) {
    report(variable, `cannot read ${path}: ${(err as Error).message}`);
    return undefined;
  }
}

export class ConfigError extends Error {
  constructor(public readonly issues: string[]) {
    super(`Invalid configuration:\n  - ${issues.join('\n  - ')}`);
  }
}
