import { describe, expect, it } from 'vitest';
import { useTestApp, type Guest } from '../support/harness.js';

/**
 * Upload keys the file system cannot hold are the client's mistake (4xx), never "storage
 * unavailable" (503), which the app would retry forever. The test failed when it was written.
 */

describe('crafted input never answers 5xx', () => {
  const t = useTestApp();
  const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0xff, 0xd9]);
  const upload = (g: Guest, name: string) =>
    t().app.request(`/storage/v1/object/thumbnails/${g.userId}/${name}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${g.accessToken}`, 'content-type': 'image/jpeg' },
      body: JPEG,
    });

  it('an upload key the file system cannot hold (a segment > 255 bytes, a file where a folder is, a folder where a file is) is a 4xx, not 503 "storage unavailable"', async () => {
    const g = await t().createGuest();
    const statuses: Record<string, number> = {};
    statuses['segment of 300 characters'] = (await upload(g, `${'a'.repeat(300)}.jpg`)).status;
    expect((await upload(g, 'x')).status).toBe(200);
    statuses['x/y after the file x'] = (await upload(g, 'x/y')).status;
    expect((await upload(g, 'd/e')).status).toBe(200);
    statuses['d after the folder d/'] = (await upload(g, 'd')).status;
    // Observed: 503 ERR_6002 for each ("try again shortly": the app retries a request that can never succeed).
    for (const [how, status] of Object.entries(statuses)) expect.soft(status, how).toBeLessThan(500);
  });
});
