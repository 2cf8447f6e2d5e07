/** How the console shows values: timestamps, rates, counts, JSON and an audit row's changes. */

export const when = (iso: string | null | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—');
export const pct = (r: number | null) => (r === null ? '—' : `${(r * 100).toFixed(1)}%`);
export const counts = (byKey: Record<string, number>) =>
  Object.entries(byKey)
    .map(([k, n]) => `${k} ${n}`)
    .join(' · ') || '—';
export const json = (v: unknown) => (v === null || v === undefined ? '' : JSON.stringify(v));

/** An audit row's before/after as a support agent reads it: only what changed, "balance 9 → 14". */
export function changes(before: Record<string, unknown> | null, after: Record<string, unknown> | null): string {
  const keys = [...new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})])].filter((k) => k !== 'owner_id');
  const shown = (v: unknown) => (v === null || v === undefined ? '—' : typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v) ? when(v) : String(v));
  return keys
    .filter((k) => json(before?.[k]) !== json(after?.[k]))
    .map((k) => (before && k in before ? `${k} ${shown(before[k])} → ${shown(after?.[k])}` : `${k} ${shown(after?.[k])}`))
    .join(', ');
}
