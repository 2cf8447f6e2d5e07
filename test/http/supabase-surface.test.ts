import { FunctionsHttpError } from '@supabase/supabase-js';
import { describe, expect, it } from 'vitest';
import { useTestApp } from '../support/harness.js';
import { ANON_KEY, serveOverHttp, supabaseClient } from '../support/supabase-js.js';

/**
 * What a developer of another app on Supabase tries first with the real @supabase/supabase-js
 * (pinned in package.json) beyond the shipped app's own calls, against the real server.
 */

/** supabase-js always sends its key: this one drops the apikey header on the way out, as a hand-written client would. */
const clientWithoutApiKey = (url: string) =>
  supabaseClient(url, ANON_KEY, (input, init) => {
    const headers = new Headers(init?.headers);
    headers.delete('apikey');
    return fetch(input, { ...init, headers });
  });

describe('the API key, as Supabase\'s gateway answers for it', () => {
  const t = useTestApp({ ANON_KEY });
  const url = serveOverHttp(t);

  it('no apikey: "No API key found in request" with the gateway\'s hint on every surface, not a session error', async () => {
    const sb = clientWithoutApiKey(url());
    const rest = await sb.from('models').select('id');
    expect(rest.status).toBe(401);
    expect(rest.error).toMatchObject({ message: 'No API key found in request', hint: 'No `apikey` request header or url param was found.', code: 'ERR_4042' });

    const fn = await sb.functions.invoke('get-models');
    expect(fn.error).toBeInstanceOf(FunctionsHttpError);
    const fnBody = await (fn.error as FunctionsHttpError).context.json();
    expect(fnBody).toMatchObject({ message: 'No API key found in request', error: { code: 'ERR_4042' } });

    const auth = await sb.auth.refreshSession({ refresh_token: 'x' });
    expect(auth.error).toMatchObject({ status: 401, message: 'No API key found in request' });

    // The gateway also takes the key as a url parameter.
    expect((await fetch(`${url()}/rest/v1/themes?select=id&apikey=${ANON_KEY}`)).status).toBe(200);
  });

  it('a wrong apikey: "Invalid API key"', async () => {
    const rest = await supabaseClient(url(), 'not-the-anon-key').from('models').select('id');
    expect(rest.status).toBe(401);
    expect(rest.error).toMatchObject({ message: 'Invalid API key', hint: 'Double check your Supabase `anon` or `service_role` API key.', code: 'ERR_4043' });
  });
});
