import { isIP } from 'node:net';
import { z } from 'zod';
import { commaList, type ReportIssue } from './env.js';

/** Whose word on the client's address src/http/client-ip.ts takes. */
export const trustProxyEnv = z.object({
  /**
   * Which peers' X-Forwarded-For / CF-Connecting-IP to believe: a number of proxy hops in front of
   * us, or a comma-separated list of proxy addresses/CIDRs. Unset: the socket's address only.
   */
  TRUST_PROXY: z.string().default(''),
});
type TrustProxyEnv = z.infer<typeof trustProxyEnv>;

/** hops: that many proxies in front of us; cidrs: the proxies' addresses; neither: trust no header. */
export type TrustProxy = { kind: 'none' } | { kind: 'hops'; hops: number } | { kind: 'cidrs'; cidrs: string[] };

export function parseTrustProxy(spec: string): TrustProxy | undefined {
  const items = commaList(spec);
  if (items.length === 0) return { kind: 'none' };
  const [first] = items;
  if (items.length === 1 && first !== undefined && /^\d+$/.test(first)) {
    const hops = Number(first);
    return hops === 0 ? { kind: 'none' } : hops <= 10 ? { kind: 'hops', hops } : undefined;
  }
  for (const item of items) {
    const [address, bits, ...rest] = item.split('/');
    const family = isIP(address ?? '');
    if (family === 0 || rest.length > 0) return undefined;
    if (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128))) return undefined;
  }
  return { kind: 'cidrs', cidrs: items };
}

export interface TrustProxySection {
  trustProxy: TrustProxy;
}

export function trustProxySection(e: TrustProxyEnv, report: ReportIssue): TrustProxySection {
  const trustProxy = parseTrustProxy(e.TRUST_PROXY);
  if (trustProxy) return { trustProxy };
  report('TRUST_PROXY', 'must be a number of hops or a comma-separated list of addresses/CIDRs');
  return { trustProxy: { kind: 'none' } };
}
