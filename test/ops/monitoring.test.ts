import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { Metrics } from '../../src/metrics.js';
import { ROOT } from '../support/process.js';
import { useTestApp } from '../support/harness.js';
import { temporaryFolder } from '../support/temp.js';

/**
 * What an operator imports: the Prometheus alert rules and the Grafana dashboard in ops/. The rules
 * must load in Prometheus (promtool check rules), fire on the trouble they are for (promtool test
 * rules, ops/prometheus/rendio-alerts.test.yml), and name only metrics the server exposes — a
 * renamed metric would silence an alert without a word. promtool comes from Debian's prometheus
 * package (.ci/run installs it); without it this file fails rather than skips.
 */

const RULES = path.join(ROOT, 'ops/prometheus/rendio-alerts.yml');
const RULE_TESTS = path.join(ROOT, 'ops/prometheus/rendio-alerts.test.yml');
const DASHBOARD = path.join(ROOT, 'ops/grafana/rendio-dashboard.json');

function promtool(...args: string[]): string {
  const r = spawnSync('promtool', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`promtool is needed (apt-get install prometheus; .ci/run installs it): ${r.error.message}`);
  expect(r.status, `promtool ${args.join(' ')}:\n${r.stdout}${r.stderr}`).toBe(0);
  return r.stdout;
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
}
const rules = (): Rule[] => (parseYaml(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
  datasource?: { uid: string };
}
const panels = (): Panel[] => (JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] }).panels;
const dashboardExprs = () => panels().flatMap((p) => (p.targets ?? []).map((t) => t.expr));

/** The metric names a PromQL expression reads (ours all start with rendio_). */
const metricNames = (expr: string) => [...expr.matchAll(/\brendio_[a-z0-9_]+/g)].map((m) => m[0]);

describe('alert rules and dashboard (ops/)', () => {
  const t = useTestApp();

  it('the alert rules load in Prometheus and fire on what they are for (promtool)', () => {
    expect(promtool('check', 'rules', RULES)).toMatch(/SUCCESS: \d+ rules found/);
    expect(promtool('test', 'rules', RULE_TESTS)).toMatch(/SUCCESS/);
    // The alerts the runbook promises (docs/DEPLOY.md "Metrics and alerts").
    expect(rules().map((r) => r.alert)).toEqual(
      expect.arrayContaining(['RendioQueueBacklog', 'RendioProviderFailureRate', 'RendioHttp5xxRate', 'RendioDatabasePoolWaits', 'RendioLedgerViolations', 'RendioLedgerVerificationFailing']),
    );
  });

  it('every dashboard query is valid PromQL, on the dashboard\'s data source', () => {
    // promtool checks expressions only inside rule files: each query becomes a recording rule of a scratch file.
    const scratch = path.join(temporaryFolder('rendio-dashboard-'), 'dashboard-queries.yml');
    const recorded = dashboardExprs().map((expr, i) => ({ record: `dashboard:query_${i}`, expr }));
    writeFileSync(scratch, JSON.stringify({ groups: [{ name: 'dashboard', rules: recorded }] }));
    expect(recorded.length).toBeGreaterThan(15);
    expect(promtool('check', 'rules', scratch)).toMatch(new RegExp(`SUCCESS: ${recorded.length} rules found`));
    for (const p of panels().filter((p) => p.type !== 'row')) expect(p.datasource?.uid, p.title).toBe('${DS_PROMETHEUS}');
  });

  it('every metric the rules and the dashboard name is on /metrics', async () => {
    // The process metrics come with defaultMetrics (main.ts turns them on); the rest from a real app's registry.
    const exposition = (await t().services.metrics.registry.metrics()) + (await new Metrics({ defaultMetrics: true }).registry.metrics());
    const families = new Map([...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const exposed = (name: string) => {
      if (families.has(name)) return true;
      const histogram = /^(.*)_(bucket|sum|count)$/.exec(name);
      return histogram !== null && families.get(histogram[1]!) === 'histogram';
    };
    const named = [...new Set([...rules().map((r) => r.expr), ...dashboardExprs()].flatMap(metricNames))];
    expect(named.length).toBeGreaterThan(15);
    expect(named.filter((name) => !exposed(name))).toEqual([]);
  });
});
