import { context, propagation, trace, SpanKind, SpanStatusCode, type Attributes, type Context, type Span } from '@opentelemetry/api';
import type { TracingConfig } from './config/observability.js';

/**
 * Optional OpenTelemetry traces (OTEL_EXPORTER_OTLP_ENDPOINT): a request, the queue tasks it leads
 * to (in whichever process runs them: the trace context travels in the task's payload), the
 * provider calls and the ingest. Without an endpoint nothing is registered, and every helper here
 * runs on OpenTelemetry's no-op API: no span is recorded and the payloads carry nothing extra.
 */

const TRACER = 'rendio';

/**
 * Registers the process's tracer provider; returns what shutdown calls to send the last spans. The
 * SDK is loaded only here, so a process without an endpoint never holds it in memory.
 */
export async function startTracing(config: TracingConfig): Promise<{ shutdown(): Promise<void> }> {
  const [{ AsyncLocalStorageContextManager }, { W3CTraceContextPropagator }, { OTLPTraceExporter }, { resourceFromAttributes }, { BasicTracerProvider, BatchSpanProcessor }] =
    await Promise.all([
      import('@opentelemetry/context-async-hooks'),
      import('@opentelemetry/core'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/sdk-trace-base'),
    ]);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.serviceName }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${config.endpoint}/v1/traces` }), { scheduledDelayMillis: 1000 })],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return { shutdown: () => provider.shutdown() };
}

/** fn in a span of its own (a child of the active one, or of `parent`), ended with fn's outcome. */
export function inSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>, opts: { kind?: SpanKind; parent?: Context } = {}): Promise<T> {
  return trace.getTracer(TRACER).startActiveSpan(name, { attributes, kind: opts.kind ?? SpanKind.INTERNAL }, opts.parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** The active trace context as W3C headers (traceparent), for a queue task's payload; empty when tracing is off. */
export function traceCarrier(): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier;
}

/** The context a task's payload carried (traceCarrier), or the active one. */
export function contextFrom(carrier: unknown): Context {
  return carrier && typeof carrier === 'object' ? propagation.extract(context.active(), carrier as Record<string, string>) : context.active();
}

export { SpanKind, SpanStatusCode };
