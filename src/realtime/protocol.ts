/**
 * The Phoenix channel wire format Supabase Realtime clients speak. vsn 1.0.0 (supabase-swift, and
 * realtime-js when asked) frames a message as a JSON object; 2.0.0 (realtime-js's default) as the
 * array [join_ref, ref, topic, event, payload]. 2.0.0's binary frames carry only broadcasts, which
 * this server does not serve.
 */

export type Vsn = '1.0.0' | '2.0.0';
export const VSNS: readonly Vsn[] = ['1.0.0', '2.0.0'];

export interface PhoenixMessage {
  join_ref: string | null;
  ref: string | null;
  topic: string;
  event: string;
  payload: Record<string, unknown>;
}

const isRef = (v: unknown): v is string | null | undefined => v === null || v === undefined || typeof v === 'string';
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The message in one text frame, or undefined when it is not a Phoenix message of this version. */
export function decodeMessage(vsn: Vsn, text: string): PhoenixMessage | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  let joinRef: unknown, ref: unknown, topic: unknown, event: unknown, payload: unknown;
  if (vsn === '2.0.0') {
    if (!Array.isArray(parsed) || parsed.length !== 5) return undefined;
    [joinRef, ref, topic, event, payload] = parsed;
  } else {
    if (!isObject(parsed)) return undefined;
    ({ join_ref: joinRef, ref, topic, event, payload } = parsed);
  }
  if (!isRef(joinRef) || !isRef(ref) || typeof topic !== 'string' || typeof event !== 'string') return undefined;
  return { join_ref: joinRef ?? null, ref: ref ?? null, topic, event, payload: isObject(payload) ? payload : {} };
}

export function encodeMessage(vsn: Vsn, m: PhoenixMessage): string {
  return JSON.stringify(vsn === '2.0.0' ? [m.join_ref, m.ref, m.topic, m.event, m.payload] : m);
}
