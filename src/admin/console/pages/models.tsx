import type { Context } from 'hono';
import type { FC } from 'hono/jsx';
import type { ModelRow } from '../../../db/queries/catalogue.js';
import type { AppEnv } from '../../../http/context.js';
import { Csrf, FlagForm, Head } from '../components.js';
import { Layout } from '../layout.js';

/** Every model with its flags and the price field of its pricing type, each a form of its own. */
export const ModelsPage: FC<{ c: Context<AppEnv>; models: ModelRow[] }> = ({ c, models }) => (
  <Layout title="Models" c={c}>
    <table id="models">
      <Head cols={['Model', 'Provider', 'Available', 'Featured', 'Price']} />
      <tbody>
        {models.map((m) => {
          const priceField = m.pricing_type === 'per_video' ? 'cost_per_generation' : 'credits_per_second';
          return (
            <tr id={`model-${m.id}`}>
              <td>
                <b>{m.name}</b>
                <div class="muted">{m.id}</div>
              </td>
              <td>
                {m.provider} <span class="muted">{m.provider_model_id}</span>
              </td>
              <td>
                <FlagForm c={c} modelId={m.id} field="is_available" on={m.is_available} labels={['Enable', 'Disable']} />
              </td>
              <td>
                <FlagForm c={c} modelId={m.id} field="is_featured" on={m.is_featured} labels={['Feature', 'Unfeature']} />
              </td>
              <td>
                <form method="post" action={`/admin/models/${m.id}`} class="inline">
                  <Csrf c={c} />
                  <input name={priceField} type="number" min="1" max="10000" value={String(m[priceField] ?? '')} style="width:80px" />
                  <span class="muted">{m.pricing_type === 'per_video' ? 'credits / video' : 'credits / second'}</span>
                  <button type="submit" class="plain">
                    Save
                  </button>
                </form>
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  </Layout>
);
