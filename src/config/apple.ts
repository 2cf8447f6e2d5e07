import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { SignInWithAppleConfig } from '../apple/sign-in.js';
import { bool, commaList, pem, readFileOf, withoutTrailingSlash, type ReportIssue } from './env.js';
import type { ServerEnv } from './server.js';

const DEFAULT_APPLE_ROOT = fileURLToPath(new URL('../../assets/apple/AppleRootCA-G3.cer', import.meta.url));

/** Apple's services: DeviceCheck (new guests), the App Store (purchases, refunds), Sign in with Apple. */
export const appleEnv = z.object({
  APPLE_TEAM_ID: z.string().optional(),
  APPLE_DEVICECHECK_KEY_ID: z.string().optional(),
  APPLE_DEVICECHECK_PRIVATE_KEY: pem.optional(),
  APPLE_DEVICECHECK_BASE_URL: z.string().url().default('https://api.devicecheck.apple.com/v1'),
  APPLE_DEVICECHECK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5000),
  /** Explicit opt-out of DeviceCheck in production (e.g. a staging deploy without Apple keys). */
  DEVICECHECK_DISABLED: bool.default(false),
  /** The app's bundle id: App Store transactions must carry it; Sign in with Apple's default audience. */
  APPLE_BUNDLE_ID: z.string().min(1).optional(),
  /** The app's numeric Apple ID (App Store Connect): Apple puts it in production notifications. */
  APPLE_APP_APPLE_ID: z.coerce.number().int().positive().optional(),
  APP_STORE_ISSUER_ID: z.string().min(1).optional(),
  APP_STORE_KEY_ID: z.string().min(1).optional(),
  APP_STORE_PRIVATE_KEY: pem.optional(),
  APP_STORE_PRODUCTION_URL: z.string().url().default('https://api.storekit.apple.com'),
  APP_STORE_SANDBOX_URL: z.string().url().default('https://api.storekit-sandbox.apple.com'),
  APP_STORE_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  /** DER root certificates signed App Store data must chain to (comma-separated paths). */
  APPLE_ROOT_CA_FILES: z.string().default(DEFAULT_APPLE_ROOT),
  /** OCSP revocation checks and "now" as the validity date; off only for archived test data. */
  APP_STORE_ONLINE_CHECKS: bool.default(true),
  /** Credit Sandbox purchases (App Review buys in the sandbox against production servers). */
  APP_STORE_ACCEPT_SANDBOX: bool.default(true),
  /** Answer Apple's CONSUMPTION_REQUEST notifications with Send Consumption Information. */
  APP_STORE_SEND_CONSUMPTION_INFO: bool.default(false),
  /** Accepted identity-token audiences (comma-separated); default APPLE_BUNDLE_ID. */
  APPLE_SIGN_IN_AUDIENCES: z.string().optional(),
  APPLE_ID_JWKS_URL: z.string().url().default('https://appleid.apple.com/auth/keys'),
  APPLE_ID_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5000),
  /** Least time between two JWKS fetches caused by unknown kids (stops kid-spam from hammering Apple). */
  APPLE_ID_JWKS_COOLDOWN_MS: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
});
export type AppleEnv = z.infer<typeof appleEnv>;
type AppleInput = AppleEnv & Pick<ServerEnv, 'NODE_ENV'>;

export interface DeviceCheckConfig {
  teamId: string;
  keyId: string;
  privateKeyPem: string;
  baseUrl: string;
  timeoutMs: number;
}

export interface AppStoreConfig {
  bundleId: string;
  appAppleId: number;
  issuerId: string;
  keyId: string;
  privateKeyPem: string;
  productionUrl: string;
  sandboxUrl: string;
  timeoutMs: number;
  onlineChecks: boolean;
  acceptSandbox: boolean;
  sendConsumptionInfo: boolean;
}

export interface AppleSection {
  deviceCheck: DeviceCheckConfig | undefined;
  /** undefined = purchases cannot be verified, so none is credited. */
  appStore: AppStoreConfig | undefined;
  /** Root certificates for App Store signed data (also used to verify notifications). */
  appleRootCertificates: Buffer[];
  /** undefined = Sign in with Apple is not configured (no audience to accept). */
  signInWithApple: SignInWithAppleConfig | undefined;
}

export function appleSection(e: AppleInput, report: ReportIssue): AppleSection {
  return {
    deviceCheck: deviceCheck(e, report),
    appStore: appStore(e, report),
    appleRootCertificates: commaList(e.APPLE_ROOT_CA_FILES).flatMap((p) => readFileOf('APPLE_ROOT_CA_FILES', p, report) ?? []),
    signInWithApple: signInWithApple(e),
  };
}

function deviceCheck(e: AppleInput, report: ReportIssue): DeviceCheckConfig | undefined {
  const { APPLE_TEAM_ID: teamId, APPLE_DEVICECHECK_KEY_ID: keyId, APPLE_DEVICECHECK_PRIVATE_KEY: privateKeyPem } = e;
  const set = [teamId, keyId, privateKeyPem].filter(Boolean).length;
  if (set > 0 && set < 3) {
    report('APPLE_DEVICECHECK_PRIVATE_KEY', 'DeviceCheck needs APPLE_TEAM_ID, APPLE_DEVICECHECK_KEY_ID and APPLE_DEVICECHECK_PRIVATE_KEY together');
  }
  if (e.NODE_ENV === 'production' && set === 0 && !e.DEVICECHECK_DISABLED) {
    report('APPLE_DEVICECHECK_PRIVATE_KEY', 'DeviceCheck is required in production (set DEVICECHECK_DISABLED=true to run without it)');
  }
  if (!teamId || !keyId || !privateKeyPem || e.DEVICECHECK_DISABLED) return undefined;
  return { teamId, keyId, privateKeyPem, baseUrl: withoutTrailingSlash(e.APPLE_DEVICECHECK_BASE_URL), timeoutMs: e.APPLE_DEVICECHECK_TIMEOUT_MS };
}

function appStore(e: AppleInput, report: ReportIssue): AppStoreConfig | undefined {
  const { APPLE_BUNDLE_ID: bundleId, APPLE_APP_APPLE_ID: appAppleId, APP_STORE_ISSUER_ID: issuerId, APP_STORE_KEY_ID: keyId, APP_STORE_PRIVATE_KEY: privateKeyPem } = e;
  const set = [issuerId, keyId, privateKeyPem].filter(Boolean).length;
  if (set > 0 && (set < 3 || !bundleId)) {
    report('APP_STORE_PRIVATE_KEY', 'the App Store needs APPLE_BUNDLE_ID, APP_STORE_ISSUER_ID, APP_STORE_KEY_ID and APP_STORE_PRIVATE_KEY together');
  }
  if (set === 3 && !appAppleId) report('APPLE_APP_APPLE_ID', 'required with the App Store (production notifications carry it)');
  if (!bundleId || !appAppleId || !issuerId || !keyId || !privateKeyPem) return undefined;
  return {
    bundleId,
    appAppleId,
    issuerId,
    keyId,
    privateKeyPem,
    productionUrl: withoutTrailingSlash(e.APP_STORE_PRODUCTION_URL),
    sandboxUrl: withoutTrailingSlash(e.APP_STORE_SANDBOX_URL),
    timeoutMs: e.APP_STORE_TIMEOUT_MS,
    onlineChecks: e.APP_STORE_ONLINE_CHECKS,
    acceptSandbox: e.APP_STORE_ACCEPT_SANDBOX,
    sendConsumptionInfo: e.APP_STORE_SEND_CONSUMPTION_INFO,
  };
}

function signInWithApple(e: AppleInput): SignInWithAppleConfig | undefined {
  const audiences = commaList(e.APPLE_SIGN_IN_AUDIENCES ?? e.APPLE_BUNDLE_ID ?? '');
  if (audiences.length === 0) return undefined;
  return { audiences, jwksUrl: e.APPLE_ID_JWKS_URL, timeoutMs: e.APPLE_ID_TIMEOUT_MS, jwksCooldownMs: e.APPLE_ID_JWKS_COOLDOWN_MS };
}
