import { z } from 'zod';
import { commaList, parseCidrs, type ReportIssue } from './env.js';

/** Whose word on the client's address src/http/client-ip.ts takes. */
export const trustProxyEnv = z.object({
  /**
   * Which peers' X-Forwarded-For to believe: a number of proxy hops in front of us, or a
   * comma-separated list of proxy addresses/CIDRs. Unset: the socket's address only.
   */
  TRUST_PROXY: z.string().default(''),
  /**
   * Cloudflare's edge ranges (https://www.cloudflare.com/ips/): CF-Connecting-IP is believed only
   * when the hop that handed the request to us (or to our trusted proxies) is in them. A vendor's
   * header has its own setting: a proxy we trust for X-Forwarded-For passes on whatever
   * CF-Connecting-IP the client wrote.
   */
  TRUST_CLOUDFLARE_CIDRS: z.string().default(''),
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
  const cidrs = parseCidrs(spec);
  return cidrs ? { kind: 'cidrs', cidrs } : undefined;
}

export interface TrustProxySection {
  trustProxy: TrustProxy;
  /** Cloudflare's edge addresses/CIDRs: from these, CF-Connecting-IP names the client. Empty: never. */
  trustCloudflare: string[];
}

export function trustProxySection(e: TrustProxyEnv, report: ReportIssue): TrustProxySection {
  let trustProxy = parseTrustProxy(e.TRUST_PROXY);
  if (!trustProxy) {
    report('TRUST_PROXY', 'must be a number of hops or a comma-separated list of addresses/CIDRs');
    trustProxy = { kind: 'none' };
  }
  const trustCloudflare = parseCidrs(e.TRUST_CLOUDFLARE_CIDRS);
  if (!trustCloudflare) report('TRUST_CLOUDFLARE_CIDRS', 'must be a comma-separated list of addresses/CIDRs (Cloudflare’s ranges)');
  return { trustProxy, trustCloudflare: trustCloudflare ?? [] };
}
