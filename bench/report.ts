/**
 * The bench's output: a console table, a JSON file (bench/results/latest.json) and the results
 * section of a markdown document (docs/PERFORMANCE.md, between its markers). The two paths are
 * options so a run that is not meant to be published (the tests' short run) leaves the checkout alone.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Row {
  name: string;
  value: number | null;
  unit: string;
  detail?: string;
  p50_ms?: number | null;
  p99_ms?: number | null;
  non_2xx?: number | null;
  server_cpu_ms?: number | null;
  pg_cpu_ms?: number | null;
  baseline?: string | null;
  baseline_value?: number | null;
  baseline_p99_ms?: number | null;
  ratio?: number | null;
  /** Our p99 ÷ the baseline's p99. */
  p99_ratio?: number | null;
  target?: string | null;
  met?: boolean | null;
}

const BEGIN = '<!-- bench:results:begin (written by npm run bench) -->';
const END = '<!-- bench:results:end -->';
const cell = (v: unknown) => (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v)) ? '—' : String(v));

function markdown(rows: Row[], meta: Record<string, unknown>): string {
  const lines = [
    BEGIN,
    `Last run: ${meta.at} — Node ${meta.node}, PostgreSQL ${meta.postgres}, server ${meta.server}, ` +
      `${JSON.stringify(meta.load)}, ${meta.users} users. Ratios are ours ÷ baseline, measured in the same run.`,
    '',
    '| path | ours | p50 / p99 ms | server / PG CPU ms per req | baseline | baseline value (p99 ms) | ratio (p99 ratio) | target | met |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${cell(r.value)} ${r.unit}${r.detail ? ` (${r.detail})` : ''} | ${r.p50_ms != null ? `${cell(r.p50_ms)} / ${cell(r.p99_ms)}` : '—'} | ` +
        `${r.server_cpu_ms != null || r.pg_cpu_ms != null ? `${cell(r.server_cpu_ms)} / ${cell(r.pg_cpu_ms)}` : '—'} | ${cell(r.baseline)} | ${cell(r.baseline_value)}${r.baseline_p99_ms != null ? ` (${r.baseline_p99_ms})` : ''} | ` +
        `${cell(r.ratio)}${r.p99_ratio != null ? ` (${r.p99_ratio}×)` : ''} | ${cell(r.target)} | ${r.met === null || r.met === undefined ? '—' : r.met ? 'yes' : '**no**'} |`,
    ),
    END,
  ];
  return lines.join('\n');
}

export function writeReport(rows: Row[], meta: Record<string, unknown>, to: { json: string; doc: string }): void {
  console.table(rows.map((r) => ({ path: r.name, ours: `${cell(r.value)} ${r.unit}`, p99: cell(r.p99_ms), baseline: cell(r.baseline_value), ratio: cell(r.ratio), p99x: cell(r.p99_ratio), target: cell(r.target), met: cell(r.met) })));
  mkdirSync(path.dirname(to.json), { recursive: true });
  writeFileSync(to.json, `${JSON.stringify({ ...meta, rows }, null, 2)}\n`);
  const doc = to.doc;
  const section = markdown(rows, meta);
  const current = existsSync(doc) ? readFileSync(doc, 'utf8') : '# Performance\n\n## Latest bench results\n\n';
  const start = current.indexOf(BEGIN);
  const end = current.indexOf(END);
  const next = start >= 0 && end > start ? current.slice(0, start) + section + current.slice(end + END.length) : `${current.trimEnd()}\n\n${section}\n`;
  writeFileSync(doc, next);
  console.log(`wrote ${to.json} and ${doc}`);
}
