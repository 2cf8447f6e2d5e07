import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll } from 'vitest';
import ws from 'ws';
import { startHttpServer, type ListeningServer } from '../../src/server.js';
import type { TestApp } from './harness.js';

/** The real @supabase/supabase-js client against the test server on a real socket. */

export const ANON_KEY = 'anon-key-of-this-test-project';

/** Serves the test app on a loopback port for the file's tests; its base URL. */
export function serveOverHttp(t: () => TestApp): () => string {
  let server: ListeningServer | undefined;
  beforeAll(async () => {
    server = await startHttpServer(t().app.fetch, { port: 0, hostname: '127.0.0.1', limits: t().services.config.http });
  });
  afterAll(async () => {
    await server?.close();
  });
  return () => `http://127.0.0.1:${server!.port}`;
}

/** A client as a server-side or test program makes one: no stored session, ws for Realtime (Node 20 has no WebSocket). */
export const supabaseClient = (url: string, key = ANON_KEY, fetchImpl?: typeof fetch): SupabaseClient =>
  createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: ws as never },
    ...(fetchImpl ? { global: { fetch: fetchImpl } } : {}),
  });

/** A client holding a session of the given tokens (setSession, as an app restoring its session does). */
export async function signedInClient(url: string, tokens: { accessToken: string; refreshToken: string }): Promise<SupabaseClient> {
  const sb = supabaseClient(url);
  const { error } = await sb.auth.setSession({ access_token: tokens.accessToken, refresh_token: tokens.refreshToken });
  if (error) throw error;
  return sb;
}

/** The smallest files the image gate takes: a JPEG's markers, a PNG's signature and header. */
export const TINY_JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0xff, 0xd9]);
export const TINY_PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0, 0x90, 0x77, 0x53, 0xde]);

/** A new guest signed in through supabase-js, with its client and the inputs bucket. */
export async function storageUser(t: TestApp, url: string) {
  const g = await t.createGuest();
  const sb = await signedInClient(url, g);
  return { g, sb, bucket: sb.storage.from('thumbnails') };
}
