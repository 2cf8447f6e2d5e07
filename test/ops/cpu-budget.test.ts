import { afterEach, describe, expect, it } from 'vitest';
import { CpuBudget } from '../../src/jobs/cpu-budget.js';
import { until } from '../support/fal-submissions.js';

/**
 * ROLE=all's worker yields to the API: a task waits while requests arrive and the event loop is
 * busier than the worker's share, and never longer than the budget's bound. The loop's load is
 * given to the budget here (what it would read from event-loop utilisation), the requests are a
 * counter as the HTTP server keeps it.
 */
describe("the worker's CPU budget (ROLE=all)", () => {
  let budget: CpuBudget | undefined;
  afterEach(() => budget?.close());

  function budgetWith(load: { busy: number }, maxWaitMs = 60_000) {
    budget = new CpuBudget(0.5, maxWaitMs, () => load.busy);
    const requests = { started: 0 };
    budget.whileServing(() => requests.started);
    return { budget, requests };
  }

  it('lets a task run at once while no request arrives, however busy the loop', async () => {
    const { budget } = budgetWith({ busy: 0.95 });
    await budget.turn();
    expect(budget.waited).toBe(0);
  });

  it('holds a task while requests arrive and the loop is over the share, and lets it go once the loop has room', async () => {
    const load = { busy: 0.9 };
    const { budget, requests } = budgetWith(load);
    const arriving = setInterval(() => requests.started++, 10);
    try {
      // The budget's sampler sees requests arriving.
      expect(await until(async () => budget.apiActive, 10_000)).toBe(true);
      let ran = false;
      const task = budget.turn().then(() => (ran = true));
      await new Promise((r) => setTimeout(r, 300));
      expect(ran).toBe(false);
      load.busy = 0.3;
      await task;
      expect(ran).toBe(true);
      expect(budget.waited).toBe(1);
    } finally {
      clearInterval(arriving);
    }
  });

  it('never holds a task longer than its bound, so a saturated API slows the worker without stopping it', async () => {
    const { budget, requests } = budgetWith({ busy: 1 }, 200);
    const arriving = setInterval(() => requests.started++, 10);
    try {
      expect(await until(async () => budget.apiActive, 10_000)).toBe(true);
      await budget.turn();
      expect(budget.waited).toBe(1);
    } finally {
      clearInterval(arriving);
    }
  });
});
