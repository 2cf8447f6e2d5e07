import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { clientAddressOf } from '../../src/http/client-ip.js';
import { useTestApp, type TestApp } from '../support/harness.js';

/**
 * Whose word on the client's address we take (src/http/client-ip.ts), issue 23 items 1 and 2:
 * a vendor's header (CF-Connecting-IP) only from that vendor's listed ranges, never because some
 * other trusted proxy passed it on; X-Forwarded-For entries with ports; an entry we cannot read at
 * the counted position. The integration tests count requests against the global per-address
 * ceiling (3 a minute here, for IPv4 and IPv6 alike): a client that could choose its address would never reach a 429.
 */

// IPv6 clients count under their own rule kind (per /64): both are held to 3 here.
const LIMITED = { RATE_LIMITS_ENABLED: 'true', RATE_LIMITS: 'global.ip=3/60,global.ip6=3/60' };
const CLOUDFLARE = '173.245.48.0/20';

/** Four requests, each from `socket` with the headers `nth` gives: the statuses, in order. */
async function fourRequests(t: TestApp, socket: string, nth: (i: number) => Record<string, string>): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) statuses.push((await t.get('/functions/v1/get-models', { remoteAddress: socket, headers: nth(i) })).status);
  return statuses;
}
const ONE_ADDRESS = [200, 200, 200, 429];
const OWN_ALLOWANCE_EACH = [200, 200, 200, 200];

describe('the client address resolver', () => {
  const resolve = (env: Record<string, string>, socket: string, headers: Record<string, string>) =>
    clientAddressOf(loadConfig({ NODE_ENV: 'test', ...env }))(socket, (name) => headers[name]);

  type Case = [env: Record<string, string>, socket: string, headers: Record<string, string>, expected: string, why: string];
  it.each<Case>([
    [{ TRUST_PROXY: '127.0.0.1' }, '127.0.0.1', { 'x-forwarded-for': '198.51.100.7', 'cf-connecting-ip': '203.0.113.1' }, '198.51.100.7', 'nginx passed a client’s CF-Connecting-IP on'],
    [{ TRUST_PROXY: '10.0.0.0/8' }, '10.0.0.2', { 'cf-connecting-ip': '203.0.113.1' }, '10.0.0.2', 'a trusted proxy is no Cloudflare'],
    [{ TRUST_PROXY: '127.0.0.1', TRUST_CLOUDFLARE_CIDRS: CLOUDFLARE }, '127.0.0.1', { 'x-forwarded-for': '173.245.48.5', 'cf-connecting-ip': '203.0.113.1' }, '203.0.113.1', 'Cloudflare → nginx → us'],
    [{ TRUST_PROXY: '127.0.0.1', TRUST_CLOUDFLARE_CIDRS: CLOUDFLARE }, '127.0.0.1', { 'x-forwarded-for': '173.245.48.5, 198.51.100.8', 'cf-connecting-ip': '203.0.113.1' }, '198.51.100.8', 'a client at nginx naming a Cloudflare hop'],
    [{ TRUST_CLOUDFLARE_CIDRS: CLOUDFLARE }, '173.245.48.9', { 'cf-connecting-ip': '203.0.113.2' }, '203.0.113.2', 'Cloudflare connecting to us directly'],
    [{ TRUST_CLOUDFLARE_CIDRS: CLOUDFLARE }, '198.51.100.9', { 'cf-connecting-ip': '203.0.113.2' }, '198.51.100.9', 'anyone else connecting directly'],
    [{ TRUST_PROXY: '1', TRUST_CLOUDFLARE_CIDRS: CLOUDFLARE }, '10.0.0.5', { 'x-forwarded-for': '173.245.48.5', 'cf-connecting-ip': '203.0.113.3' }, '203.0.113.3', 'Cloudflare → a balancer → us'],
    [{ TRUST_CLOUDFLARE_CIDRS: CLOUDFLARE }, '173.245.48.9', { 'cf-connecting-ip': 'not-an-address' }, '173.245.48.9', 'an unreadable vendor header'],
    [{ TRUST_PROXY: '1' }, '10.0.0.5', { 'x-forwarded-for': '203.0.113.7, 10.0.0.9:4444' }, '10.0.0.9', 'a port on the counted entry'],
    [{ TRUST_PROXY: '1' }, '10.0.0.5', { 'x-forwarded-for': '203.0.113.7, [2001:DB8::9]:443' }, '2001:db8::9', 'a bracketed IPv6 with a port'],
    [{ TRUST_PROXY: '1' }, '10.0.0.5', { 'x-forwarded-for': '203.0.113.7, [2001:db8::9]' }, '2001:db8::9', 'a bracketed IPv6'],
    [{ TRUST_PROXY: '1' }, '10.0.0.5', { 'x-forwarded-for': '203.0.113.7, unknown' }, '10.0.0.5', 'an unreadable counted entry is no address, not a shift'],
    [{ TRUST_PROXY: '2' }, '10.0.0.5', { 'x-forwarded-for': '203.0.113.7:1, _hidden, 10.0.0.6' }, '10.0.0.5', 'two hops: the counted entry is unreadable'],
    [{ TRUST_PROXY: '2' }, '10.0.0.5', { 'x-forwarded-for': '1.1.1.1, 203.0.113.7:1, 10.0.0.6' }, '203.0.113.7', 'two hops, with a port'],
    [{ TRUST_PROXY: '10.0.0.0/8' }, '10.0.0.5', { 'x-forwarded-for': '198.51.100.1, 10.0.0.7:8080' }, '198.51.100.1', 'a trusted hop with a port is still trusted'],
    [{ TRUST_PROXY: '10.0.0.0/8' }, '10.0.0.5', { 'x-forwarded-for': '198.51.100.1, garbage, 10.0.0.7' }, '10.0.0.5', 'an unreadable entry met walking back'],
  ])('%o from %s with %o is %s (%s)', (env, socket, headers, expected) => {
    expect(resolve(env, socket, headers)).toBe(expected);
  });
});

describe('CF-Connecting-IP behind a trusted proxy that is not Cloudflare (item 1)', () => {
  const t = useTestApp({ ...LIMITED, TRUST_PROXY: '127.0.0.1' });

  it('is ignored: a client behind nginx writing a new one per request gets no new allowance', async () => {
    const statuses = await fourRequests(t(), '127.0.0.1', (i) => ({ 'x-forwarded-for': '198.51.100.7', 'cf-connecting-ip': `203.0.113.${i + 1}` }));
    expect(statuses).toEqual(ONE_ADDRESS);
  });
});

describe('CF-Connecting-IP with TRUST_CLOUDFLARE_CIDRS (item 1)', () => {
  const t = useTestApp({ ...LIMITED, TRUST_PROXY: '127.0.0.1', TRUST_CLOUDFLARE_CIDRS: CLOUDFLARE });

  it('is the client when Cloudflare’s edge handed the request to our nginx, and only then', async () => {
    // Through Cloudflare: nginx appended the edge's address; each CF-Connecting-IP is its own client.
    const viaCloudflare = (client: (i: number) => string) => (i: number) => ({ 'x-forwarded-for': '173.245.48.5', 'cf-connecting-ip': client(i) });
    expect(await fourRequests(t(), '127.0.0.1', viaCloudflare((i) => `203.0.113.${10 + i}`))).toEqual(OWN_ALLOWANCE_EACH);
    expect(await fourRequests(t(), '127.0.0.1', viaCloudflare(() => '203.0.113.20'))).toEqual(ONE_ADDRESS);
    // Straight to nginx, naming a Cloudflare hop: nginx appended the client's real address.
    const forged = (i: number) => ({ 'x-forwarded-for': '173.245.48.5, 198.51.100.8', 'cf-connecting-ip': `203.0.113.${30 + i}` });
    expect(await fourRequests(t(), '127.0.0.1', forged)).toEqual(ONE_ADDRESS);
  });
});

describe('X-Forwarded-For entries with ports behind one load balancer (item 2)', () => {
  const t = useTestApp({ ...LIMITED, TRUST_PROXY: '1' });

  it('an ip:port the balancer appended is that address: the client’s own entries to its left change nothing', async () => {
    const statuses = await fourRequests(t(), '10.0.0.5', (i) => ({ 'x-forwarded-for': `203.0.113.${i + 1}, 10.0.0.9:4444` }));
    expect(statuses).toEqual(ONE_ADDRESS);
  });

  it('the port is not part of the address: other ports are the same client, another address is not', async () => {
    expect(await fourRequests(t(), '10.0.0.5', (i) => ({ 'x-forwarded-for': `198.51.100.1:${1000 + i}` }))).toEqual(ONE_ADDRESS);
    expect((await t().get('/functions/v1/get-models', { remoteAddress: '10.0.0.5', headers: { 'x-forwarded-for': '198.51.100.2:1000' } })).status).toBe(200);
    expect(await fourRequests(t(), '10.0.0.5', (i) => ({ 'x-forwarded-for': `[2001:db8:5:6::${i + 1}]:${2000 + i}` }))).toEqual(ONE_ADDRESS);
  });

  it('an unreadable entry at the counted position is the connection’s address, not the entry to its left', async () => {
    const statuses = await fourRequests(t(), '10.0.0.6', (i) => ({ 'x-forwarded-for': `203.0.113.${50 + i}, unknown` }));
    expect(statuses).toEqual(ONE_ADDRESS);
  });
});

describe('TRUST_CLOUDFLARE_CIDRS configuration', () => {
  it('is validated like TRUST_PROXY’s CIDRs, and empty by default', () => {
    expect(loadConfig({ NODE_ENV: 'test' }).trustCloudflare).toEqual([]);
    expect(loadConfig({ NODE_ENV: 'test', TRUST_CLOUDFLARE_CIDRS: '173.245.48.0/20, 2400:cb00::/32' }).trustCloudflare).toEqual(['173.245.48.0/20', '2400:cb00::/32']);
    for (const bad of ['cloudflare', '173.245.48.0/33', '2400:cb00::/129', '1']) {
      expect(() => loadConfig({ NODE_ENV: 'test', TRUST_CLOUDFLARE_CIDRS: bad }), bad).toThrow(/TRUST_CLOUDFLARE_CIDRS/);
    }
  });
});
