import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { timestamptzToIso } from '../../src/db/pool.js';
import { useTestApp } from '../support/harness.js';

/** What PostgreSQL's text output looks like with DateStyle ISO: trailing zeros of the fraction dropped. */
function postgresText(d: Date, micros: number, offsetHours: number): string {
  const shifted = new Date(d.getTime() + offsetHours * 3_600_000);
  const [date, time] = shifted.toISOString().slice(0, 19).split('T');
  const fraction = String(shifted.getUTCMilliseconds() * 1000 + micros).padStart(6, '0').replace(/0+$/, '');
  const offset = `${offsetHours < 0 ? '-' : '+'}${String(Math.abs(offsetHours)).padStart(2, '0')}`;
  return `${date} ${time}${fraction ? `.${fraction}` : ''}${offset}`;
}

describe('timestamptz as the app reads it', () => {
  it('matches a Date round trip for any instant, fraction and offset', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date('1000-01-01T00:00:00Z'), max: new Date('9999-12-31T00:00:00Z'), noInvalidDate: true }),
        fc.integer({ min: 0, max: 999 }),
        fc.integer({ min: -12, max: 14 }),
        (d, micros, offset) => {
          const text = postgresText(d, micros, offset);
          expect(timestamptzToIso(text)).toBe(d.toISOString());
        },
      ),
      { numRuns: 2000 },
    );
  });

  const t = useTestApp();
  it("reads the server's own output the same way", async () => {
    const { rows } = await t().db.query<{ a: string; b: string }>(
      "SELECT '2026-11-25 21:06:25.727123+00'::timestamptz AS a, '2026-11-25 23:06:25+02'::timestamptz AS b",
    );
    expect(rows[0]).toEqual({ a: '2026-11-25T21:06:25.727Z', b: '2026-11-25T21:06:25.000Z' });
  });
});
