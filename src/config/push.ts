import { createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import type { ApnsConfig } from '../push/apns.js';
import type { AppleEnv } from './apple.js';
import { pem, readFileOf, type ReportIssue } from './env.js';

/**
 * The shipped app's bundle id as the team knows it: docs/reference/ios-app.md only shows the com.rendioai prefix
 * (keychain service, product ids), so set APNS_BUNDLE_ID or APPLE_BUNDLE_ID when it differs.
 */
export const DEFAULT_APNS_BUNDLE_ID = 'com.rendioai.app';

/** APNs token auth (push notifications): a .p8 key of the team; without all three, pushes are skipped. */
export const pushEnv = z.object({
  APNS_TEAM_ID: z.string().min(1).optional(),
  APNS_KEY_ID: z.string().min(1).optional(),
  APNS_PRIVATE_KEY: pem.optional(),
  /** apns-topic; default APPLE_BUNDLE_ID, else the shipped app's bundle id. */
  APNS_BUNDLE_ID: z.string().min(1).optional(),
  /** Overrides both APNs hosts (api.push.apple.com, api.sandbox.push.apple.com) and their port: for tests. */
  APNS_HOST: z.string().min(1).optional(),
  APNS_PORT: z.coerce.number().int().min(1).max(65535).default(443),
  /** A PEM CA certificate the APNs connection trusts instead of the public CAs (a local fake's test CA). */
  APNS_CA_FILE: z.string().min(1).optional(),
  APNS_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
});
type PushEnv = z.infer<typeof pushEnv> & Pick<AppleEnv, 'APPLE_TEAM_ID' | 'APPLE_BUNDLE_ID'>;

export interface PushSection {
  /** undefined = no APNs key: pushes are skipped (one start-up line says so). */
  apns: ApnsConfig | undefined;
}

function isP256PrivateKey(pemText: string): boolean {
  try {
    const key = createPrivateKey(pemText);
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  } catch {
    return false;
  }
}

export function pushSection(e: PushEnv, report: ReportIssue): PushSection {
  const { APNS_KEY_ID: keyId, APNS_PRIVATE_KEY: privateKeyPem } = e;
  const teamId = e.APNS_TEAM_ID ?? e.APPLE_TEAM_ID;
  const set = [keyId, privateKeyPem].filter(Boolean).length;
  if (set === 1 || (set === 2 && !teamId)) {
    report('APNS_PRIVATE_KEY', 'push notifications need APNS_KEY_ID, APNS_PRIVATE_KEY and APNS_TEAM_ID (or APPLE_TEAM_ID) together');
  }
  // A bad key would otherwise surface only at the first push, as a task failing in the queue.
  if (privateKeyPem && !isP256PrivateKey(privateKeyPem)) report('APNS_PRIVATE_KEY', 'must be the APNs key (.p8): an EC P-256 private key in PEM');
  if (!keyId || !privateKeyPem || !teamId) return { apns: undefined };
  return {
    apns: {
      teamId,
      keyId,
      privateKeyPem,
      bundleId: e.APNS_BUNDLE_ID ?? e.APPLE_BUNDLE_ID ?? DEFAULT_APNS_BUNDLE_ID,
      host: e.APNS_HOST,
      port: e.APNS_PORT,
      ca: e.APNS_CA_FILE ? readFileOf('APNS_CA_FILE', e.APNS_CA_FILE, report) : undefined,
      timeoutMs: e.APNS_TIMEOUT_MS,
    },
  };
}
