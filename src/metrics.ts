import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type SubmissionOutcome = 'accepted' | 'lost' | 'orphan_adopted' | 'redundant' | 'orphan_late';

/** Prometheus metrics on a registry of our own (tests build many apps in one process). */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly duration: Histogram<'method' | 'route'>;
  private readonly submissions: Counter<'provider' | 'outcome'>;
  private readonly cancels: Counter<'provider' | 'answer'>;
  private readonly duplicatesBilled: Counter<'provider'>;
  private readonly mediaRejections: Counter<'provider' | 'reason'>;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'rendio_' });
    this.requests = new Counter({
      name: 'rendio_http_requests_total',
      help: 'HTTP requests by method, route pattern and status',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: 'rendio_http_request_duration_seconds',
      help: 'HTTP request duration by method and route pattern',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.submissions = new Counter({
      name: 'rendio_provider_submissions_total',
      help: 'Provider submissions by outcome (lost: the answer never came; orphan_adopted: such a request reported first and became the job; redundant: a request its job does not use, its cancel queued; orphan_late: a lost one that reported but was not used: its job had ended, another request of the job had reported a result first, or it failed while another may still deliver)',
      labelNames: ['provider', 'outcome'],
      registers: [this.registry],
    });
    this.cancels = new Counter({
      name: 'rendio_provider_cancels_total',
      help: 'What providers answered to our cancels: cancelled, refused, already_finished (billed), unknown',
      labelNames: ['provider', 'answer'],
      registers: [this.registry],
    });
    this.duplicatesBilled = new Counter({
      name: 'rendio_provider_duplicates_billed_total',
      help: 'Requests a provider ran to their end (so bills) though their job did not use them: a cancel answered already finished, or a lost request that reported its result too late to be used (its job had ended, or another request had reported first)',
      labelNames: ['provider'],
      registers: [this.registry],
    });
    this.mediaRejections = new Counter({
      name: 'rendio_media_rejected_total',
      help: 'Delivered videos that failed the checks before capture (job failed, credits released), by provider and reason: empty, not_mp4, truncated, no_video, codec, duration, aspect_ratio',
      labelNames: ['provider', 'reason'],
      registers: [this.registry],
    });
  }

  /** A delivered video that failed ingest's checks. */
  mediaRejected(provider: string, reason: string): void {
    this.mediaRejections.inc({ provider, reason });
  }

  /** A provider submission's fate: accepted, lost (no answer), orphan_adopted, redundant, orphan_late. */
  submission(provider: string, outcome: SubmissionOutcome): void {
    this.submissions.inc({ provider, outcome });
  }

  /** What a provider answered to a cancel. */
  cancelAnswer(provider: string, answer: string): void {
    this.cancels.inc({ provider, answer });
  }

  /** A request the provider billed that no job used. */
  duplicateBilled(provider: string): void {
    this.duplicatesBilled.inc({ provider });
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.requests.inc({ method, route, status: String(status) });
    this.duration.observe({ method, route }, seconds);
  }

  /** A counter of the caller's own (e.g. pushes by outcome and reason). */
  counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter({ name, help, labelNames: [...labelNames], registers: [this.registry] });
  }

  /** A gauge read at scrape time (pool size, waiting clients, dropped error-log rows). */
  gauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }
}
