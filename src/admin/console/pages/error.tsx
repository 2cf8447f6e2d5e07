import type { Context } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../../http/context.js';
import { Layout } from '../layout.js';

/** An error as the support agent reads it, with the API's code and message (c only when signed in: the header's links). */
export const ErrorPage: FC<{ c?: Context<AppEnv>; code: string; message: string; details?: Record<string, unknown> }> = ({ c, code, message, details }) => (
  <Layout title="Something needs attention" c={c}>
    <div class="error" id="error">
      <b>{code}</b>: {message}
      {details?.reason && typeof details.reason === 'string' && details.reason !== message ? <div class="muted">{details.reason}</div> : null}
    </div>
    <p>
      <a href="/admin">Dashboard</a> · <a href="/admin/users">Find a user</a>
    </p>
  </Layout>
);
