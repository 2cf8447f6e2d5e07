import { BlockList, isIP } from 'node:net';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';
import type { TrustProxy } from '../config/index.js';

/**
 * The address a request came from, as far as we can believe it. X-Forwarded-For and
 * CF-Connecting-IP are written by whoever sends the request, so they count only when the peer that
 * handed us the request is a proxy we were told to trust (TRUST_PROXY); otherwise it is the
 * socket's address and a spoofed header changes nothing. With TRUST_PROXY as a hop count only
 * X-Forwarded-For counts; CF-Connecting-IP needs the proxies' addresses (CIDRs).
 */
export type ClientIpResolver = (c: Context) => string;

/** Requests with no socket (in-process app.request() in tests and scripts) share this key. */
export const UNKNOWN_ADDRESS = 'unknown';

export function clientIpResolver(trust: TrustProxy): ClientIpResolver {
  const resolve = clientAddressOf(trust);
  return (c) => resolve(socketAddress(c), (name) => c.req.header(name));
}

/**
 * The same rule for callers outside Hono (the Realtime WebSocket's upgrade request): from the
 * socket's address and a header reader.
 */
export function clientAddressOf(trust: TrustProxy): (socketAddress: string | undefined, header: (name: string) => string | undefined) => string {
  const trusted = trust.kind === 'cidrs' ? blockList(trust.cidrs) : undefined;
  const isTrusted = (address: string) => (trusted ? matches(trusted, address) : false);

  return (socketAddr, header) => {
    const socket = normalise(socketAddr);
    if (trust.kind === 'none' || socket === undefined) return socket ?? UNKNOWN_ADDRESS;
    const forwarded = (header('x-forwarded-for') ?? '')
      .split(',')
      .map((a) => normalise(a.trim()))
      .filter((a): a is string => a !== undefined);

    if (trust.kind === 'hops') {
      // CF-Connecting-IP is not believed here: a load balancer or nginx in front of us passes it on
      // unchanged from the client, so every request could name a new address. Behind Cloudflare,
      // list its ranges as TRUST_PROXY CIDRs: then the header counts, from those peers only.
      // Each trusted proxy appends the address it received from: the client is `hops` entries from
      // the right of [...forwarded, socket]; anything further left was written by the client.
      const chain = [...forwarded, socket];
      return chain[Math.max(0, chain.length - 1 - trust.hops)]!;
    }
    if (!isTrusted(socket)) return socket;
    // Cloudflare's header names the client in one value; believed only from a trusted peer.
    const cf = normalise(header('cf-connecting-ip')?.trim());
    if (cf) return cf;
    // Walk back through trusted proxies; the first untrusted address is the client.
    let client = socket;
    for (let i = forwarded.length - 1; i >= 0 && isTrusted(client); i--) client = forwarded[i]!;
    return client;
  };
}

function socketAddress(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined; // no Node socket (in-process request)
  }
}

/** A valid address without zone id, IPv4-mapped IPv6 as IPv4; undefined when it is not an address. */
function normalise(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const bare = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return mapped[1];
  return isIP(bare) === 0 ? undefined : bare.toLowerCase();
}

function blockList(cidrs: string[]): BlockList {
  const list = new BlockList();
  for (const item of cidrs) {
    const [address, bits] = item.split('/') as [string, string | undefined];
    const family = isIP(address) === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  return list;
}

function matches(list: BlockList, address: string): boolean {
  return list.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The key an address is limited under. One IPv6 subscriber is usually given a whole /64, so the
 * limit applies to the /64 (otherwise each of its 2^64 addresses would get its own allowance).
 */
export function addressKey(address: string): string {
  if (isIP(address) !== 6) return address;
  return `${expandIpv6(address).slice(0, 4).join(':')}::/64`;
}

function expandIpv6(address: string): string[] {
  const [head = '', tail] = address.split('::') as [string, string | undefined];
  const groups = (s: string) => (s ? s.split(':') : []);
  // An embedded IPv4 tail (::1.2.3.4) is two groups; only the first four groups matter here.
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const missing = 8 - left.length - right.length;
  const all = tail === undefined ? left : [...left, ...Array.from({ length: Math.max(0, missing) }, () => '0'), ...right];
  return all.map((g) => (g.includes('.') ? g : Number.parseInt(g || '0', 16).toString(16)));
}
