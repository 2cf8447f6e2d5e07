import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lintFromString, loadConfig, type NormalizedProblem } from '@redocly/openapi-core';
import { describe, expect, it } from 'vitest';
import { useTestApp } from '../support/harness.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Each problem on one line: severity, rule, where, what (so a red test says what to fix). */
const describeProblems = (problems: NormalizedProblem[]) =>
  problems.map((p) => `${p.severity} ${p.ruleId} at ${p.location.map((l) => l.pointer).join(', ')}: ${p.message}`).join('\n');

/**
 * Redocly's recommended rules as redocly.yaml configures them, on a document named as
 * .redocly.lint-ignore.yaml names it: the findings accepted there (each with its reason) come back
 * marked ignored and do not count.
 */
async function lint(document: unknown): Promise<NormalizedProblem[]> {
  const config = await loadConfig({ configPath: path.join(root, 'redocly.yaml') });
  const problems = await lintFromString({ source: JSON.stringify(document), absoluteRef: path.join(root, 'openapi.json'), config });
  return problems.filter((p) => !p.ignored);
}

describe('/openapi.json', () => {
  const t = useTestApp();

  it("passes Redocly's recommended rules, warnings included", async () => {
    const problems = await lint(await t().json(t().get('/openapi.json')));
    expect(problems, describeProblems(problems)).toEqual([]);
  });

  it('the lint refuses a document without servers, or an operation without operationId or security', async () => {
    const doc = await t().json(t().get('/openapi.json'));
    delete doc.servers;
    delete doc.paths['/functions/v1/device-check'].post.operationId;
    delete doc.paths['/functions/v1/device-check'].post.security;
    const rules = (await lint(doc)).map((p) => p.ruleId);
    expect(rules).toEqual(expect.arrayContaining(['no-empty-servers', 'operation-operationId', 'security-defined']));
  });
});
