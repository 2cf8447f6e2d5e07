import type { Context } from 'hono';
import type { FC } from 'hono/jsx';
import type { ModelRow } from '../../../db/queries/catalogue.js';
import type { AppEnv } from '../../../http/context.js';
import { Csrf } from '../components.js';
import { Layout } from '../layout.js';

/** A change the service refused because the app would be left with no model, to confirm or drop. */
export interface CatalogueConfirm {
  modelId: string;
  message: string;
  /** The fields of the refused form, posted again with confirm_empty_catalogue. */
  fields: Record<string, string>;
}

const YesNo: FC<{ name: string; on: boolean; labels: [string, string] }> = ({ name, on, labels }) => (
  <select name={name}>
    <option value="true" selected={on}>
      {labels[0]}
    </option>
    <option value="false" selected={!on}>
      {labels[1]}
    </option>
  </select>
);

/**
 * Every model as a form of its own: active (the app's one), available, featured, the price field of
 * its pricing type, its place in the catalogue, and the reason the audit log keeps. Above them: a
 * change waiting for confirmation because it would leave the app nothing to show, or the warning
 * that the app shows nothing now.
 */
export const ModelsPage: FC<{ c: Context<AppEnv>; models: ModelRow[]; confirm?: CatalogueConfirm }> = ({ c, models, confirm }) => {
  const appModel = models.find((m) => m.is_active && m.is_available);
  return (
    <Layout title="Models" c={c}>
      {confirm && (
        <div class="error" id="confirm-empty" role="alert">
          <b>ERR_4028</b>: {confirm.message}
          <form method="post" action={`/admin/models/${confirm.modelId}`} class="inline" style="margin-top:8px">
            <Csrf c={c} />
            {Object.entries(confirm.fields).map(([name, value]) => (
              <input type="hidden" name={name} value={value} />
            ))}
            <input type="hidden" name="confirm_empty_catalogue" value="true" />
            <button type="submit" class="danger">
              Change {confirm.modelId} anyway
            </button>
            <a href="/admin/models">Cancel</a>
          </form>
        </div>
      )}
      <p class="muted" id="app-model">
        {appModel ? (
          <>
            The app&apos;s active model: <b>{appModel.name}</b> ({appModel.id}). Making another one active replaces it.
          </>
        ) : (
          <span class="banned">The app shows no model: none is both active and available.</span>
        )}
      </p>
      <div id="models">
        {models.map((m) => {
          const priceField = m.pricing_type === 'per_video' ? 'cost_per_generation' : 'credits_per_second';
          return (
            <section class="panel" id={`model-${m.id}`} data-active={String(m.is_active)} data-available={String(m.is_available)}>
              <div>
                <b>{m.name}</b> <span class="muted">{m.id}</span>
                <div class="muted">
                  {m.provider} · {m.provider_model_id}
                  {m.unavailable_reason ? ` · ${m.unavailable_reason}` : ''}
                </div>
              </div>
              <form method="post" action={`/admin/models/${m.id}`} class="fields">
                <Csrf c={c} />
                <label>
                  App&apos;s model <YesNo name="is_active" on={m.is_active} labels={['active', 'not active']} />
                </label>
                <label>
                  Available <YesNo name="is_available" on={m.is_available} labels={['yes', 'no']} />
                </label>
                <label>
                  Featured <YesNo name="is_featured" on={m.is_featured} labels={['yes', 'no']} />
                </label>
                <label>
                  {m.pricing_type === 'per_video' ? 'Credits / video' : 'Credits / second'}{' '}
                  <input name={priceField} type="number" min="1" max="10000" required value={String(m[priceField] ?? '')} style="width:80px" />
                </label>
                <label>
                  Order <input name="sort_order" type="number" min="0" max="100000" required value={String(m.sort_order)} style="width:80px" />
                </label>
                <input name="reason" required minlength={3} maxlength={500} placeholder="reason (required)" class="grow" />
                <button type="submit">Save</button>
              </form>
            </section>
          );
        })}
      </div>
    </Layout>
  );
};
