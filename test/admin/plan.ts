import type { Pool } from 'pg';

/**
 * What a query's generic plan reads (the plan a pooler's or statement cache's prepared statement
 * gets: no parameter value to plan around): the tables it scans whole and the indexes it uses.
 * Sequential scans are forbidden for the EXPLAIN: a test's tables are tiny, so the planner would
 * rightly scan them; a plan with no scan left shows an index serves every part (at scale the
 * planner picks them itself: bench/scale.ts times them). As test/ops/query-plans.test.ts does.
 */
export async function planOf(db: Pool, sql: string, params: unknown[] = []): Promise<{ scanned: string[]; indexes: Set<string>; sortKeys: string[] }> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    await client.query('SET LOCAL enable_seqscan = off');
    await client.query('SET LOCAL plan_cache_mode = force_generic_plan');
    await client.query(`PREPARE planned AS ${sql}`);
    const args = params.map((v) => (v === null ? 'NULL' : client.escapeLiteral(String(v))));
    const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (FORMAT JSON) EXECUTE planned${args.length ? `(${args.join(', ')})` : ''}`);
    await client.query('ROLLBACK');
    await client.query('DEALLOCATE ALL');
    const nodes: PlanNode[] = [];
    const walk = (n: PlanNode) => {
      nodes.push(n);
      for (const child of n.Plans ?? []) walk(child);
    };
    walk(rows[0]!['QUERY PLAN'][0].Plan);
    return {
      scanned: nodes.filter((n) => n['Node Type'] === 'Seq Scan').map((n) => n['Relation Name'] ?? '?'),
      indexes: new Set(nodes.map((n) => n['Index Name']).filter((i): i is string => !!i)),
      sortKeys: nodes.flatMap((n) => n['Sort Key'] ?? []),
    };
  } finally {
    client.release();
  }
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Sort Key'?: string[];
  Plans?: PlanNode[];
}
