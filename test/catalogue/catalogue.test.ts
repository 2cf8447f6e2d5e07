import { describe, expect, it, vi } from 'vitest';
import { useTestApp } from '../support/harness.js';

// The exact queries the shipped app sends (docs/reference/ios-app.md §2.4–2.5).
const THEME_COLUMNS = 'id,name,description,thumbnail_url,prompt,is_featured,is_available,default_settings,created_at';
const THEMES_LIST = `/rest/v1/themes?is_available=eq.true&select=${THEME_COLUMNS}&order=is_featured.desc,name.asc`;
const ACTIVE_MODEL = '/rest/v1/models?is_active=eq.true&is_available=eq.true&select=id,name,category,description,thumbnail_url,is_featured,cost_per_generation,required_fields';

describe('catalogue', () => {
  const t = useTestApp();

  it('themes list: exactly the selected columns, the five seeded themes, featured then by name', async () => {
    const rows = await t().json<any[]>(t().get(THEMES_LIST));
    expect(rows.map((r) => r.name)).toEqual(['Christmas Magic', 'City Nightlife', 'Halloween Spooky', 'Summer Beach', 'Thanksgiving Feast']);
    for (const r of rows) {
      expect(Object.keys(r).sort()).toEqual(THEME_COLUMNS.split(',').sort());
      expect(typeof r.prompt).toBe('string');
      expect(r.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T/);
      expect(r.default_settings).toMatchObject({ duration: 8, aspect_ratio: '16:9' });
    }
  });

  it('theme detail by id, and an unavailable theme disappears', async () => {
    const [first] = await t().json<any[]>(t().get(THEMES_LIST));
    const detail = await t().json<any[]>(t().get(`/rest/v1/themes?id=eq.${first.id}&is_available=eq.true&select=${THEME_COLUMNS}`));
    expect(detail).toEqual([first]);
    await t().db.query('UPDATE themes SET is_available = false WHERE id = $1', [first.id]);
    expect(await t().json(t().get(`/rest/v1/themes?id=eq.${first.id}&select=id`))).toEqual([]);
    await t().db.query('UPDATE themes SET is_available = true WHERE id = $1', [first.id]);
  });

  it('active model: one row the app decodes as ModelDetail, priced as the app prices it', async () => {
    const rows = await t().json<any[]>(t().get(ACTIVE_MODEL));
    expect(rows).toHaveLength(1);
    const m = rows[0];
    expect(Object.keys(m).sort()).toEqual(['category', 'cost_per_generation', 'description', 'id', 'is_featured', 'name', 'required_fields', 'thumbnail_url'].sort());
    expect(m).toMatchObject({ id: 'veo-3.1-text-to-video', category: 'text-to-video', is_featured: true });
    // The app's pre-check charges 1 credit per second at the default duration; the server agrees.
    expect(m.cost_per_generation).toBe(m.required_fields.settings.duration.default);
    expect(m.required_fields.settings.duration.options.length).toBeGreaterThan(0);
  });

  it('the retired Sora 2 model is never listed', async () => {
    const all = await t().json<any[]>(t().get('/rest/v1/models?select=id'));
    expect(all.map((m) => m.id)).not.toContain('sora-2-image-to-video');
    expect(await t().json(t().get('/rest/v1/models?id=eq.sora-2-image-to-video&select=id'))).toEqual([]);
    expect(all.map((m) => m.id)).toEqual(expect.arrayContaining(['veo-3.1-image-to-video', 'kling-2.6-pro-text-to-video', 'pika-2.2-text-to-video', 'runway-gen4.5', 'simulator-text-to-video']));
  });

  it.each([
    ['/rest/v1/models?select=provider_model_id', 'select'],
    ['/rest/v1/models?select=id;drop table models', 'select'],
    ['/rest/v1/models?order=provider.asc', 'order'],
    ['/rest/v1/models?provider=eq.fal', 'provider'],
    ['/rest/v1/models?is_active=like.t*', 'is_active'],
    ['/rest/v1/models?is_active=eq.maybe', 'is_active'],
    ['/rest/v1/themes?id=eq.not-a-uuid', 'id'],
    ['/rest/v1/themes?limit=-1', 'limit'],
  ])('rejects %s with ERR_4008 naming the parameter', async (path, field) => {
    const res = await t().json(t().get(path), 400);
    expect(res.error).toMatchObject({ code: 'ERR_4008', details: { field } });
  });

  it.each([
    ['/rest/v1/models?created_at=gt.0000-01-01', 'created_at'],
    ['/rest/v1/themes?updated_at=lt.9999-12-31T23:59-14:00', 'updated_at'],
    ['/rest/v1/models?created_at=lt.0001-01-01T00:00%2B01:00', 'created_at'],
    ['/rest/v1/themes?created_at=in.(2020-01-01,10000-01-01)', 'created_at'],
    ['/rest/v1/models?created_at=gt.2020-01-01T10:00%2B15:00', 'created_at'],
    ['/rest/v1/models?created_at=gt.2020-01-01T10:00-14:30', 'created_at'],
  ])('a date PostgreSQL cannot hold, or an offset no place has, is 400 (not 500): %s', async (path, field) => {
    const res = await t().json(t().get(path), 400);
    expect(res.error).toMatchObject({ code: 'ERR_4008', details: { field } });
  });

  it('the first and last instants PostgreSQL and ISO 8601 share, and the widest real offsets, are served', async () => {
    for (const path of [
      '/rest/v1/models?select=id&created_at=gt.0001-01-01T00:00:00Z',
      '/rest/v1/themes?select=id&updated_at=lt.9999-12-31T23:59:59.999Z',
      '/rest/v1/models?select=id&created_at=gt.2020-01-01T10:00%2B14:00',
      '/rest/v1/models?select=id&created_at=gt.2020-01-01T10:00-12:00',
    ]) {
      const res = await t().get(path);
      expect(res.status, `${path}: ${await res.clone().text()}`).toBe(200);
    }
    const all = await t().json<any[]>(t().get('/rest/v1/models?select=id'));
    expect(await t().json<any[]>(t().get('/rest/v1/models?select=id&created_at=gt.0001-01-01T00:00:00Z'))).toHaveLength(all.length);
  });

  it('limit and offset page through themes', async () => {
    const page = await t().json<any[]>(t().get('/rest/v1/themes?select=name&order=name.asc&limit=2&offset=1'));
    expect(page.map((r) => r.name)).toEqual(['City Nightlife', 'Halloween Spooky']);
  });

  it('get-models: {models:[…]} with ETag; If-None-Match answers 304; a change changes the ETag', async () => {
    const res = await t().get('/functions/v1/get-models');
    expect(res.status).toBe(200);
    const etag = res.headers.get('ETag')!;
    expect(etag).toMatch(/^".+"$/);
    const body = (await res.json()) as { models: any[] };
    for (const m of body.models) {
      expect(m).toMatchObject({ id: expect.any(String), name: expect.any(String), category: expect.any(String), is_featured: expect.any(Boolean) });
      expect(m.thumbnail_url === null || /^https?:\/\//.test(m.thumbnail_url)).toBe(true);
      expect(m).not.toHaveProperty('provider_model_id');
    }
    const cached = await t().get('/functions/v1/get-models', { headers: { 'if-none-match': etag } });
    expect(cached.status).toBe(304);
    expect(await cached.text()).toBe('');
    expect((await t().get('/functions/v1/get-models', { headers: { 'if-none-match': `W/${etag}, "other"` } })).status).toBe(304);

    // Written as another process would (no in-process invalidation): the NOTIFY reaches the cache.
    await t().db.query("UPDATE models SET is_available = false WHERE id = 'pika-2.2-text-to-video'");
    const changed = await vi.waitFor(
      async () => {
        const r = await t().get('/functions/v1/get-models', { headers: { 'if-none-match': etag } });
        expect(r.status).toBe(200);
        return r;
      },
      { timeout: 10_000, interval: 20 },
    );
    expect(changed.headers.get('ETag')).not.toBe(etag);
    expect(((await changed.json()) as { models: { id: string }[] }).models.map((m) => m.id)).not.toContain('pika-2.2-text-to-video');
    await t().db.query("UPDATE models SET is_available = true WHERE id = 'pika-2.2-text-to-video'");
  });

  it('get-models after the LISTEN connection dies: changes made meanwhile are still seen, and caching resumes', async () => {
    const before = (await t().get('/functions/v1/get-models')).headers.get('ETag');
    const killed = await t().db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rendio-listen' AND datname = current_database()");
    expect(killed.rowCount).toBe(1);
    await t().db.query("UPDATE models SET is_featured = NOT is_featured WHERE id = 'kling-2.6-pro-text-to-video'");
    try {
      await vi.waitFor(async () => expect((await t().get('/functions/v1/get-models')).headers.get('ETag')).not.toBe(before), { timeout: 10_000, interval: 20 });
      // A new LISTEN is opened on demand; the next change reaches the cache through it.
      await vi.waitFor(async () => {
        const { rowCount } = await t().db.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'rendio-listen' AND datname = current_database()");
        expect(rowCount).toBe(1);
        await t().get('/functions/v1/get-models');
      }, { timeout: 15_000, interval: 100 });
      const cachedTag = (await t().get('/functions/v1/get-models')).headers.get('ETag');
      await t().db.query("UPDATE models SET is_featured = NOT is_featured WHERE id = 'kling-2.6-pro-text-to-video'");
      await vi.waitFor(async () => expect((await t().get('/functions/v1/get-models')).headers.get('ETag')).not.toBe(cachedTag), { timeout: 10_000, interval: 20 });
    } finally {
      await t().db.query("UPDATE models SET is_featured = false WHERE id = 'kling-2.6-pro-text-to-video'");
    }
  });
});
