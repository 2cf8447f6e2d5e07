import { performance } from 'node:perf_hooks';

/**
 * ROLE=all runs the worker on the API's event loop: a backlog drained at full speed (the simulator
 * and ingest are CPU work, not waiting) takes the cores the requests need. Before each task the
 * worker takes a turn here: while requests are arriving (one in the last sample) and the event
 * loop has been busier than its share over the last sample, the task waits (in steps of STEP_MS, at most maxWaitMs, so a
 * saturated API slows the worker down but never stops it). With no request in flight the worker
 * runs at full speed. ROLE=worker has no budget: the process is the worker's alone.
 */
const SAMPLE_MS = 100;
const STEP_MS = 20;

export class CpuBudget {
  private requestsStarted: () => number = () => 0;
  private requestsSeen = 0;
  private serving = false;
  private last = performance.eventLoopUtilization();
  private recent = 0;
  private readonly sampler: NodeJS.Timeout;
  /** Turns that had to wait (a metric, and what the tests watch). */
  waited = 0;

  constructor(
    /** WORKER_CPU_SHARE: the event loop's busy share above which tasks wait while the API serves. */
    private readonly share: number,
    private readonly maxWaitMs = 1000,
    /** The loop's recent busy share, 0–1; default: event-loop utilisation sampled every SAMPLE_MS. */
    private readonly utilization: () => number = () => this.recent,
  ) {
    this.sampler = setInterval(() => {
      const now = performance.eventLoopUtilization();
      this.recent = performance.eventLoopUtilization(now, this.last).utilization;
      this.last = now;
      const started = this.requestsStarted();
      this.serving = started !== this.requestsSeen;
      this.requestsSeen = started;
    }, SAMPLE_MS);
    this.sampler.unref();
  }

  /** Whether requests arrived in the last sample. */
  get apiActive(): boolean {
    return this.serving;
  }

  /** How the budget sees the API at work: the count of requests the HTTP server has started (known once it is up). */
  whileServing(requestsStarted: () => number): void {
    this.requestsStarted = requestsStarted;
  }

  async turn(): Promise<void> {
    const until = performance.now() + this.maxWaitMs;
    let waited = false;
    while (this.serving && this.utilization() > this.share && performance.now() < until) {
      waited = true;
      await new Promise((resolve) => setTimeout(resolve, STEP_MS));
    }
    if (waited) this.waited++;
  }

  close(): void {
    clearInterval(this.sampler);
  }
}
