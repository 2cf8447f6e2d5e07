import { FakeHttpServer } from './http.js';

/**
 * An OpenTelemetry collector's OTLP/HTTP trace receiver (POST /v1/traces, the JSON encoding the
 * server's exporter sends): keeps every span it is sent, flattened, for a test to read.
 */

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  service: string;
  attributes: Record<string, unknown>;
}

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
type OtlpAttribute = { key: string; value: OtlpValue };
interface OtlpTraces {
  resourceSpans: {
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans: { spans: { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: OtlpAttribute[] }[] }[];
  }[];
}

const valueOf = (v: OtlpValue) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue));
const attributesOf = (list: OtlpAttribute[] = []) => Object.fromEntries(list.map((a) => [a.key, valueOf(a.value)]));

export function fakeOtlpReceiver(): FakeHttpServer & { spans(): ReceivedSpan[] } {
  const server = new FakeHttpServer((req) => (req.method === 'POST' && req.path === '/v1/traces' ? { status: 200, body: '{}', headers: { 'content-type': 'application/json' } } : { status: 404 }));
  return Object.assign(server, {
    spans: () =>
      server.calls(/^\/v1\/traces$/).flatMap((r) =>
        (JSON.parse(r.body) as OtlpTraces).resourceSpans.flatMap((rs) => {
          const service = String(attributesOf(rs.resource?.attributes)['service.name']);
          return rs.scopeSpans.flatMap((ss) =>
            ss.spans.map((s) => ({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, name: s.name, service, attributes: attributesOf(s.attributes) })),
          );
        }),
      ),
  });
}
