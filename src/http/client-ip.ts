import { BlockList, isIP } from 'node:net';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';
import type { TrustProxy } from '../config/index.js';

/**
 * The address a request came from, as far as we can believe it. X-Forwarded-For and
 * CF-Connecting-IP are written by whoever sends the request, so they count only when the peer that
 * handed us the request is a proxy we were told to trust; otherwise it is the socket's address and a
 * spoofed header changes nothing.
 *
 * - TRUST_PROXY (hops or CIDRs) says whose X-Forwarded-For to believe: the client is the entry that
 *   many hops from the right, or the first untrusted one walking back from the socket.
 * - A vendor's header is believed only from that vendor: CF-Connecting-IP names the client when the
 *   address found above is one of TRUST_CLOUDFLARE_CIDRS (Cloudflare's edge handed the request to
 *   us or to our proxies; it overwrites the header). A proxy of ours that is not Cloudflare (an nginx
 *   in front of us) passes on a client's made-up header unchanged, so being trusted is not enough.
 */
export type ClientIpResolver = (c: Context) => string;

/** Requests with no socket (in-process app.request() in tests and scripts) share this key. */
export const UNKNOWN_ADDRESS = 'unknown';

/** The settings the rule reads (src/config/trust-proxy.ts). */
export interface ClientAddressTrust {
  trustProxy: TrustProxy;
  trustCloudflare: string[];
}

/** How many distinct (socket, forwarding headers) answers a resolver remembers before starting over. */
const REMEMBERED_ADDRESSES = 10_000;
/**
 * Longer inputs are worked out each time, never remembered: a header may be 16 KiB, and 10,000 of
 * them would be 160 MiB a client could make us hold (a real chain of proxies is far shorter).
 */
const REMEMBERED_KEY_MAX = 256;

/**
 * The rule above for a request. It runs on every request (the global ceiling), so each answer is
 * kept for the inputs it depends on, the socket's address and the headers the settings make it
 * read, instead of parsing them again (~3 % of a get-models 304's throughput).
 */
export function clientIpResolver(trust: ClientAddressTrust): ClientIpResolver {
  const resolve = clientAddressOf(trust);
  const readsForwarded = trust.trustProxy.kind !== 'none';
  const readsCloudflare = trust.trustCloudflare.length > 0;
  const remembered = new Map<string, string>();
  return (c) => {
    const socket = socketAddress(c);
    if (socket === undefined) return resolve(undefined, () => undefined);
    const forwarded = readsForwarded ? c.req.header('x-forwarded-for') : undefined;
    const cloudflare = readsCloudflare ? c.req.header('cf-connecting-ip') : undefined;
    const key = readsForwarded || readsCloudflare ? `${socket}\n${forwarded ?? ''}\n${cloudflare ?? ''}` : socket;
    let address = remembered.get(key);
    if (address === undefined) {
      address = resolve(socket, (name) => (name === 'x-forwarded-for' ? forwarded : name === 'cf-connecting-ip' ? cloudflare : c.req.header(name)));
      if (key.length > REMEMBERED_KEY_MAX) return address;
      if (remembered.size >= REMEMBERED_ADDRESSES) remembered.clear();
      remembered.set(key, address);
    }
    return address;
  };
}

/**
 * The same rule for callers outside Hono (the Realtime WebSocket's upgrade request): from the
 * socket's address and a header reader.
 */
export function clientAddressOf({ trustProxy: trust, trustCloudflare }: ClientAddressTrust): (socketAddress: string | undefined, header: (name: string) => string | undefined) => string {
  const isTrusted = trust.kind === 'cidrs' ? addressMatcher(trust.cidrs) : () => false;
  const isCloudflare = addressMatcher(trustCloudflare);

  /** The last address our own proxies vouch for: the client, or the vendor's edge that connected to them. */
  const nearestUntrusted = (socket: string, header: (name: string) => string | undefined): string => {
    if (trust.kind === 'none') return socket;
    // Entries keep their places: dropping one we cannot read would shift the count onto an entry
    // the client wrote. One we cannot read where the client should be means "no client address".
    const forwarded = (header('x-forwarded-for') ?? '').split(',').map((a) => normalise(withoutPort(a.trim())));
    if (trust.kind === 'hops') {
      // Each trusted proxy appends the address it received from: the client is `hops` entries from
      // the right of [...forwarded, socket]; anything further left was written by the client.
      const chain = [...forwarded, socket];
      return chain[Math.max(0, chain.length - 1 - trust.hops)] ?? socket;
    }
    // Walk back through trusted proxies; the first untrusted address is the client.
    let client = socket;
    for (let i = forwarded.length - 1; i >= 0 && isTrusted(client); i--) {
      const next = forwarded[i];
      if (next === undefined) return socket;
      client = next;
    }
    return client;
  };

  return (socketAddr, header) => {
    const socket = normalise(socketAddr);
    if (socket === undefined) return UNKNOWN_ADDRESS;
    const client = nearestUntrusted(socket, header);
    if (!isCloudflare(client)) return client;
    return normalise(header('cf-connecting-ip')?.trim()) ?? client;
  };
}

function socketAddress(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined; // no Node socket (in-process request)
  }
}

/** `1.2.3.4:80` and `[2001:db8::1]:443` (some proxies append the port they saw) as bare addresses. */
function withoutPort(entry: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(entry);
  if (bracketed) return bracketed[1]!;
  const v4 = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(entry);
  return v4 ? v4[1]! : entry;
}

/** A valid address without zone id, IPv4-mapped IPv6 as IPv4; undefined when it is not an address. */
function normalise(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const bare = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return mapped[1];
  return isIP(bare) === 0 ? undefined : bare.toLowerCase();
}

/** Whether an address is in a list of addresses/CIDRs (validated by src/config/). */
export function addressMatcher(cidrs: string[]): (address: string) => boolean {
  if (cidrs.length === 0) return () => false;
  const list = new BlockList();
  for (const item of cidrs) {
    const [address, bits] = item.split('/') as [string, string | undefined];
    const family = isIP(address) === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  return (address) => {
    const family = isIP(address);
    return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  };
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
