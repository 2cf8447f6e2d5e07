import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ERROR_CODES } from './errors/codes.js';

export type SubmissionOutcome = 'accepted' | 'lost' | 'orphan_adopted' | 'redundant' | 'orphan_late';

/** What a finished job tells the metrics: labels only from bounded sets (never a user or job id). */
export interface EndedJob {
  provider: string;
  model_id: string;
  created_at: string | Date;
}

/** A provider call's outcome: ok, lost (no answer came: it may have run), or the error code it failed with. */
export type ProviderCallOutcome = 'ok' | 'lost' | string;

/** Only known codes become label values: an unexpected string must not grow a series per value. */
const boundedCode = (code: string | undefined) => (code && Object.hasOwn(ERROR_CODES, code) ? code : 'other');

/** Prometheus metrics on a registry of our own (tests build many apps in one process). */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly duration: Histogram<'method' | 'route'>;
  private readonly submissions: Counter<'provider' | 'outcome'>;
  private readonly cancels: Counter<'provider' | 'answer'>;
  private readonly duplicatesBilled: Counter<'provider'>;
  private readonly jobsStarted: Counter<'provider' | 'model'>;
  private readonly jobsCompleted: Counter<'provider' | 'model'>;
  private readonly jobsFailed: Counter<'provider' | 'model' | 'code'>;
  private readonly timeToVideo: Histogram<'provider' | 'model' | 'outcome'>;
  private readonly providerCalls: Counter<'provider' | 'operation' | 'outcome'>;
  private readonly providerLatency: Histogram<'provider' | 'operation'>;
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
    this.jobsStarted = new Counter({
      name: 'rendio_video_jobs_started_total',
      help: 'Video jobs created (credits held, submission queued) by provider and model',
      labelNames: ['provider', 'model'],
      registers: [this.registry],
    });
    this.jobsCompleted = new Counter({
      name: 'rendio_video_jobs_completed_total',
      help: 'Video jobs completed (video stored, credits captured) by provider and model',
      labelNames: ['provider', 'model'],
      registers: [this.registry],
    });
    this.jobsFailed = new Counter({
      name: 'rendio_video_jobs_failed_total',
      help: 'Video jobs failed (credits released) by provider, model and error code (ERR_5001 timeout, ERR_5002 provider failure, ERR_5003 refused content, ERR_4019 cancelled by the user…)',
      labelNames: ['provider', 'model', 'code'],
      registers: [this.registry],
    });
    this.timeToVideo = new Histogram({
      name: 'rendio_video_job_duration_seconds',
      help: 'From generate-video to the job\'s end (outcome completed: time to video; failed: time to failure), by provider and model',
      labelNames: ['provider', 'model', 'outcome'],
      buckets: [5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600],
      registers: [this.registry],
    });
    this.providerCalls = new Counter({
      name: 'rendio_provider_requests_total',
      help: 'Calls to provider APIs by operation and outcome (ok; lost: no answer came; else the error code: ERR_5001 timeout/unreachable, ERR_5002 provider error, ERR_5003 refused)',
      labelNames: ['provider', 'operation', 'outcome'],
      registers: [this.registry],
    });
    this.providerLatency = new Histogram({
      name: 'rendio_provider_request_duration_seconds',
      help: 'Duration of calls to provider APIs by operation (download: the whole result file)',
      labelNames: ['provider', 'operation'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [this.registry],
    });
    this.mediaRejections = new Counter({
      name: 'rendio_media_rejected_total',
      help: 'Delivered videos that failed the checks before capture (job failed, credits released), by provider and reason: empty, not_mp4, truncated, no_video, codec, duration, aspect_ratio',
      labelNames: ['provider', 'reason'],
      registers: [this.registry],
    });
  }

  /** A video job was created (its credits held, its submission queued): counted once its transaction committed. */
  jobStarted(provider: string, model: string): void {
    this.jobsStarted.inc({ provider, model });
  }

  /** A video job ended (at most once per job: the state machine's ending transaction said so). */
  jobEnded(job: EndedJob, outcome: 'completed' | 'failed', code?: string): void {
    const labels = { provider: job.provider, model: job.model_id };
    if (outcome === 'completed') this.jobsCompleted.inc(labels);
    else this.jobsFailed.inc({ ...labels, code: boundedCode(code) });
    const seconds = (Date.now() - new Date(job.created_at).getTime()) / 1000;
    if (seconds >= 0) this.timeToVideo.observe({ ...labels, outcome }, seconds);
  }

  /** One call to a provider's API (submit, status, fetch_result, cancel, download) and how it went. */
  providerCall(provider: string, operation: string, seconds: number, outcome: ProviderCallOutcome): void {
    this.providerCalls.inc({ provider, operation, outcome: outcome === 'ok' || outcome === 'lost' ? outcome : boundedCode(outcome) });
    this.providerLatency.observe({ provider, operation }, seconds);
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

  /**
   * On every request: the labelled series are looked up once per method, route and status (a
   * bounded set: route is the pattern, not the path) rather than hashed from their labels each time.
   */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${route} ${status}`;
    let series = this.requestSeries.get(key);
    if (!series) {
      series = { count: this.requests.labels({ method, route, status: String(status) }), duration: this.duration.labels({ method, route }) };
      this.requestSeries.set(key, series);
    }
    series.count.inc();
    series.duration.observe(seconds);
  }
  private readonly requestSeries = new Map<string, { count: { inc(): void }; duration: { observe(v: number): void } }>();

  /** A counter of the caller's own (e.g. pushes by outcome and reason). */
  counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter({ name, help, labelNames: [...labelNames], registers: [this.registry] });
  }

  /**
   * Gauges with labels, filled at scrape time from one shared reading (a database query) that is
   * reused for maxAgeMs, so several gauges and several scrapers cost one query. A reading that fails
   * or takes longer than timeoutMs keeps the previous values: a scrape never waits on a database outage.
   */
  labelledGauges<R, L extends string>(
    read: () => Promise<R>,
    opts: { maxAgeMs: number; timeoutMs: number; onError?: (err: unknown) => void },
    gauges: { name: string; help: string; labelNames: readonly L[]; values: (reading: R) => Iterable<[Partial<Record<L, string>>, number]> }[],
  ): void {
    let last: { at: number; reading: Promise<R | undefined> } | undefined;
    const current = () => {
      if (last && Date.now() - last.at < opts.maxAgeMs) return last.reading;
      const reading = Promise.race([read(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('metrics reading timed out')), opts.timeoutMs).unref())]).catch(
        (err: unknown) => {
          opts.onError?.(err);
          return undefined;
        },
      );
      last = { at: Date.now(), reading };
      return reading;
    };
    for (const g of gauges) {
      new Gauge({
        name: g.name,
        help: g.help,
        labelNames: [...g.labelNames],
        registers: [this.registry],
        async collect() {
          const reading = await current();
          if (reading === undefined) return;
          this.reset();
          for (const [labels, value] of g.values(reading)) this.set(labels, value);
        },
      });
    }
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
