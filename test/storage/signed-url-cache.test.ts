import { describe, expect, it } from 'vitest';
import { SignedUrlCache } from '../../src/storage/signed-url-cache.js';

describe('signed URL reuse', () => {
  const setup = () => {
    let now = 1_000_000;
    let signed = 0;
    const cache = new SignedUrlCache(async (bucket, key, ttl) => `${bucket}/${key}?ttl=${ttl}&n=${++signed}&at=${now}`, () => now);
    return { cache, advance: (ms: number) => (now += ms), signed: () => signed };
  };

  it('hands out one URL while more than half of its lifetime is left, then a new one', async () => {
    const { cache, advance, signed } = setup();
    const first = await cache.signedUrl('videos', 'u/j.mp4', 3600);
    advance(1_799_999);
    expect(await cache.signedUrl('videos', 'u/j.mp4', 3600)).toBe(first);
    advance(1);
    const second = await cache.signedUrl('videos', 'u/j.mp4', 3600);
    expect(second).not.toBe(first);
    expect(signed()).toBe(2);
  });

  it('keeps objects and lifetimes apart, and forgets a deleted object', async () => {
    const { cache, signed } = setup();
    const a = await cache.signedUrl('videos', 'u/a.mp4', 3600);
    expect(await cache.signedUrl('videos', 'u/b.mp4', 3600)).not.toBe(a);
    expect(await cache.signedUrl('videos', 'u/a.mp4', 60)).not.toBe(a);
    expect(await cache.signedUrl('thumbnails', 'u/a.mp4', 3600)).not.toBe(a);
    cache.forget('videos', 'u/a.mp4');
    expect(await cache.signedUrl('videos', 'u/a.mp4', 3600)).not.toBe(a);
    expect(signed()).toBe(5);
  });
});
