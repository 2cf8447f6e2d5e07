import type { FC } from 'hono/jsx';
import type { Series } from '../queries/charts.js';

/**
 * A line chart drawn on the server as SVG: no script, no library, nothing fetched, so it works
 * offline and inside the console's Content-Security-Policy. Each series is a <g> carrying its
 * values (data-values), each point a circle whose <title> the browser shows on hover.
 */

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];
const W = 600;
const H = 200;
const LEFT = 52;
const RIGHT = 10;
const TOP = 10;
const BOTTOM = 24;

/** A round number at or above the largest value, so the axis reads 0, half, top. */
function niceTop(max: number): number {
  if (max <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 2.5, 5, 10].map((m) => m * step).find((v) => v >= max)!;
}

export const LineChart: FC<{
  id: string;
  title: string;
  buckets: string[];
  /** How a bucket's start reads on the axis. */
  label: (iso: string) => string;
  series: Series[];
  format?: (v: number) => string;
  /** A fixed top of the axis (1 for a rate); the data's otherwise. */
  top?: number;
}> = ({ id, title, buckets, label, series, format = String, top }) => {
  const yTop = top ?? niceTop(Math.max(0, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null))));
  const n = buckets.length;
  const x = (i: number) => LEFT + ((W - LEFT - RIGHT) * (i + 0.5)) / n;
  const y = (v: number) => TOP + (H - TOP - BOTTOM) * (1 - v / yTop);
  // A line joins neighbouring points only: a bucket with nothing to measure leaves a gap.
  const segments = (values: (number | null)[]) => {
    const runs: string[] = [];
    let run: string[] = [];
    values.forEach((v, i) => {
      if (v === null) {
        if (run.length) runs.push(run.join(' '));
        run = [];
      } else run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    });
    if (run.length) runs.push(run.join(' '));
    return runs;
  };
  const ticks = [0, Math.floor((n - 1) / 2), n - 1];
  return (
    <figure class="chart" id={id}>
      <figcaption>{title}</figcaption>
      {series.length === 0 ? (
        <p class="muted">Nothing in this range.</p>
      ) : (
        <>
          <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={title} xmlns="http://www.w3.org/2000/svg">
            {[0, 0.5, 1].map((f) => (
              <g class="grid">
                <line x1={LEFT} x2={W - RIGHT} y1={y(yTop * f)} y2={y(yTop * f)} stroke="#e4e7eb" />
                <text x={LEFT - 4} y={y(yTop * f) + 4} text-anchor="end" font-size="13" fill="#616e7c">
                  {format(yTop * f)}
                </text>
              </g>
            ))}
            {ticks.map((i) => (
              <text x={x(i)} y={H - 6} text-anchor="middle" font-size="13" fill="#616e7c">
                {label(buckets[i]!)}
              </text>
            ))}
            {series.map((s, k) => {
              const color = PALETTE[k % PALETTE.length];
              return (
                <g class="series" data-series={s.name} data-values={s.values.map((v) => (v === null ? '' : String(v))).join(',')}>
                  {segments(s.values).map((points) => (
                    <polyline points={points} fill="none" stroke={color} stroke-width="2" />
                  ))}
                  {s.values.map((v, i) =>
                    v === null ? null : (
                      <circle cx={x(i)} cy={y(v)} r="2.5" fill={color}>
                        <title>{`${s.name}, ${label(buckets[i]!)}: ${format(v)}`}</title>
                      </circle>
                    ),
                  )}
                </g>
              );
            })}
          </svg>
          <ul class="legend">
            {series.map((s, k) => (
              <li>
                <span style={`background:${PALETTE[k % PALETTE.length]}`} />
                {s.name}
              </li>
            ))}
          </ul>
        </>
      )}
    </figure>
  );
};
