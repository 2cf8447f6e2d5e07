import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkProviderLimits, ProviderLimitExceeded, resolveSettings, SettingNotAllowed, type PricedModel, type RequiredFields } from '../../src/catalogue/pricing.js';
import { useTestApp } from '../support/harness.js';

/**
 * What the shipped app sends as settings (docs/reference/ios-app.md §2.10, §3): "auto" for a resolution or aspect
 * ratio the model or theme gives no value for (and "720p" when its settings have no resolution at
 * all), and an Int duration clamped to 4...12 — the model's default, the client default 4, a theme's
 * 8, or VideoSettings.default's 15 clamped to 12. "auto" means the model's default for every
 * model; a duration the model cannot do is the old backend's 400 text.
 */
const APP_DURATIONS = [4, 8, 12];
const APP_RESOLUTIONS = ['auto', '720p'];
const APP_ASPECT_RATIOS = ['auto'];

interface ModelRow extends PricedModel {
  id: string;
  is_available: boolean;
  required_fields: RequiredFields;
}

describe('generate-video settings as the shipped app sends them', () => {
  const t = useTestApp();

  it('every value the app can send, against every seeded model: "auto" is the model default, anything else is allowed or refused with the documented text', async () => {
    const { rows: models } = await t().db.query<ModelRow>('SELECT id, is_available, pricing_type, cost_per_generation, credits_per_second, required_fields FROM models ORDER BY id');
    expect(models.length).toBeGreaterThan(5);
    let cases = 0;
    for (const model of models) {
      const cfg = model.required_fields.settings ?? {};
      const durations = [...new Set([...(cfg.duration?.default !== undefined ? [cfg.duration.default] : []), ...APP_DURATIONS])];
      const resolutions = [...new Set([...(cfg.resolution?.default !== undefined ? [cfg.resolution.default] : []), ...APP_RESOLUTIONS])];
      const ratios = [...new Set([...(cfg.aspect_ratio?.default !== undefined ? [cfg.aspect_ratio.default] : []), ...APP_ASPECT_RATIOS])];
      for (const duration of durations)
        for (const resolution of resolutions)
          for (const aspect_ratio of ratios) {
            cases++;
            const sent = { duration, resolution, aspect_ratio };
            const label = `${model.id} ${JSON.stringify(sent)}`;
            // The first field (in checking order) the model cannot do, if any.
            const refused = (['duration', 'resolution', 'aspect_ratio'] as const).find((f) => {
              const options = cfg[f]?.options as (string | number)[] | undefined;
              return sent[f] !== 'auto' && !!options?.length && !options.includes(sent[f]);
            });
            if (refused) {
              let error: unknown;
              try {
                resolveSettings(model, sent);
              } catch (err) {
                error = err;
              }
              expect(error, label).toBeInstanceOf(SettingNotAllowed);
              expect((error as Error).message, label).toBe(`Invalid ${refused}. Allowed values: ${cfg[refused]!.options!.join(', ')}`);
              continue;
            }
            const resolved = resolveSettings(model, sent);
            expect(resolved.duration, label).toBe(duration);
            for (const f of ['resolution', 'aspect_ratio'] as const) {
              // A setting the model does not declare is dropped, never passed on to the provider.
              const expected = cfg[f] === undefined ? undefined : sent[f] === 'auto' ? cfg[f]?.default : sent[f];
              expect(resolved[f], `${label} ${f}`).toBe(expected);
              if (resolved[f] !== undefined && cfg[f]?.options?.length) expect(cfg[f]!.options, `${label} ${f}`).toContain(resolved[f]);
            }
          }
    }
    expect(cases).toBeGreaterThan(50);
  });

  it("provider limits: each one refuses what breaks it and only that, the prompt counted in UTF-16 code units", () => {
    const limits = { prompt_max_length: 4, durations: [5], aspect_ratios: ['16:9'], resolutions: ['720p'], image: 'unsupported' as const };
    const ok = { prompt: 'abcd', settings: { duration: 5, aspect_ratio: '16:9', resolution: '720p' }, hasImage: false };
    expect(() => checkProviderLimits(limits, ok)).not.toThrow();
    expect(() => checkProviderLimits(limits, { ...ok, prompt: '🎬🎬' })).not.toThrow();
    const broken = (change: { prompt?: string; hasImage?: boolean; settings?: Partial<typeof ok.settings> }) => {
      try {
        checkProviderLimits(limits, { ...ok, ...change, settings: { ...ok.settings, ...change.settings } });
      } catch (err) {
        expect(err).toBeInstanceOf(ProviderLimitExceeded);
        return (err as ProviderLimitExceeded).field;
      }
      return 'accepted';
    };
    expect(broken({ prompt: '🎬🎬a' })).toBe('prompt');
    expect(broken({ settings: { duration: 10 } })).toBe('duration');
    expect(broken({ settings: { aspect_ratio: '9:16' } })).toBe('aspect_ratio');
    expect(broken({ settings: { resolution: '1080p' } })).toBe('resolution');
    expect(broken({ hasImage: true })).toBe('image_url');
    expect(() => checkProviderLimits({ image: 'required' }, ok)).toThrow(ProviderLimitExceeded);
    expect(() => checkProviderLimits({}, { ...ok, prompt: 'x'.repeat(5000), hasImage: true })).not.toThrow();
  });

  it('"auto" from a theme is the model default too, and a theme value the model cannot do falls back to it', () => {
    const model: PricedModel = {
      pricing_type: 'per_second',
      cost_per_generation: null,
      credits_per_second: 1,
      required_fields: { settings: { aspect_ratio: { default: '16:9', options: ['16:9', '9:16'] }, duration: { default: 5, options: [5, 10] } } },
    };
    expect(resolveSettings(model, {}, { aspect_ratio: 'auto', resolution: 'auto' })).toEqual({ duration: 5, aspect_ratio: '16:9' });
    expect(resolveSettings(model, { aspect_ratio: 'auto' }, { aspect_ratio: '9:16', duration: 8 })).toEqual({ duration: 5, aspect_ratio: '9:16' });
  });

  it('over HTTP: the app body with "auto" is accepted and stores the model defaults; a duration the model cannot do is 400 with the documented text', async () => {
    const g = await t().createGuest();
    const themes = await t().json<any[]>(t().get('/rest/v1/themes?select=id,name'));
    // docs/reference/ios-app.md §2.10, a theme on Veo 3.1 (resolution 720p|1080p, aspect 16:9|9:16, duration 4|6|8).
    const ok = await t().json(t().generate(g, { user_id: g.userId, theme_id: themes[0].id, prompt: 'festive lights', settings: { resolution: 'auto', aspect_ratio: 'auto', duration: 4 } }));
    expect(ok).toMatchObject({ status: 'pending', credits_used: 4 });
    const job = await t().db.query('SELECT settings FROM video_jobs WHERE job_id = $1', [ok.job_id]);
    // "auto" is "not given": the theme's value (Christmas Magic: 720p, 16:9), which is the model's default here too.
    expect(job.rows[0].settings).toEqual({ duration: 4, resolution: '720p', aspect_ratio: '16:9' });

    const direct = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a paper boat', settings: { resolution: 'auto', aspect_ratio: 'auto', duration: 4 } }));
    const stored = await t().db.query('SELECT settings FROM video_jobs WHERE job_id = $1', [direct.job_id]);
    expect(stored.rows[0].settings).toEqual({ duration: 4, resolution: '720p', aspect_ratio: '16:9' });

    // VideoSettings.default's 15 s, clamped by the app to 12.
    const refused = await t().json(t().generate(g, { user_id: g.userId, theme_id: themes[0].id, prompt: 'festive lights', settings: { resolution: 'auto', aspect_ratio: 'auto', duration: 12 } }), 400);
    expect(refused.error).toMatchObject({ code: 'ERR_4008', details: { field: 'settings.duration', reason: 'Invalid duration. Allowed values: 4, 6, 8' } });
  });

  it("the app's request sequence (docs/reference/ios-app.md §2) with its default settings succeeds on every available model", async () => {
    await t().startWorker();
    const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0xff, 0xd9]);
    const { rows: models } = await t().db.query<ModelRow>('SELECT id, is_available, pricing_type, cost_per_generation, credits_per_second, required_fields FROM models WHERE is_available ORDER BY id');
    expect(models.length).toBeGreaterThan(5);
    for (const model of models) {
      const g = await t().createGuest();
      const cfg = model.required_fields.settings ?? {};
      // §2.10: resolution ?? "720p", aspect_ratio ?? "auto", duration (model default ?? 8) clamped to 4...12.
      const settings = { resolution: cfg.resolution?.default ?? '720p', aspect_ratio: cfg.aspect_ratio?.default ?? 'auto', duration: Math.min(12, Math.max(4, cfg.duration?.default ?? 8)) };
      const body: Record<string, unknown> = { user_id: g.userId, model_id: model.id, prompt: 'a lighthouse on a cliff at dawn', settings };
      if (model.required_fields.requires_image) {
        const name = `input_${randomUUID().toUpperCase()}.jpg`;
        const up = await t().app.request(`/storage/v1/object/thumbnails/${g.userId}/${name}`, { method: 'POST', headers: { authorization: `Bearer ${g.accessToken}`, 'content-type': 'image/jpeg' }, body: JPEG });
        expect(up.status, `${model.id} upload`).toBe(200);
        body.image_url = `${t().services.config.publicUrl}/storage/v1/object/public/thumbnails/${g.userId}/${name}`;
      }
      const res = await t().json(t().generate(g, body));
      expect(res, model.id).toMatchObject({ status: 'pending' });
      const done = await t().waitForJob(g.accessToken, res.job_id);
      expect(done.status, `${model.id}: ${JSON.stringify(done)}`).toBe('completed');
    }
  });
});
