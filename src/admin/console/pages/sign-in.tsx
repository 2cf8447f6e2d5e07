import type { FC } from 'hono/jsx';
import { Layout } from '../layout.js';

/**
 * The sign-in form; _login is the double-submit nonce the handler set as a cookie. After a refused
 * attempt: the error above the form and the email typed (never the password).
 */
export const SignInPage: FC<{ nonce: string; email?: string; error?: { code: string; message: string } }> = ({ nonce, email, error }) => (
  <Layout title="Sign in">
    {error && (
      <div class="error" id="error" role="alert">
        <b>{error.code}</b>: {error.message}
      </div>
    )}
    <form method="post" action="/admin/login" class="panel" id="login-form" style="max-width:380px;display:grid;gap:10px">
      <input type="hidden" name="_login" value={nonce} />
      <label>
        Email
        <br />
        <input name="email" type="email" autocomplete="username" required value={email ?? ''} style="width:100%" />
      </label>
      <label>
        Password
        <br />
        <input name="password" type="password" autocomplete="current-password" required style="width:100%" />
      </label>
      <label>
        One-time code (if enabled)
        <br />
        <input name="totp" inputmode="numeric" autocomplete="one-time-code" style="width:100%" />
      </label>
      <button type="submit">Sign in</button>
    </form>
  </Layout>
);
