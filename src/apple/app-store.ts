import {
  APIException,
  AppStoreServerAPIClient,
  Environment,
  SignedDataVerifier,
  VerificationException,
  VerificationStatus,
  type ConsumptionRequest,
  type JWSTransactionDecodedPayload,
  type ResponseBodyV2DecodedPayload,
} from '@apple/app-store-server-library';
import type { AppStoreConfig } from '../config/index.js';
import { DomainError, UpstreamUnavailable } from '../errors/domain-error.js';

/**
 * Apple's App Store Server API and signed-data verification, through Apple's own library
 * (`@apple/app-store-server-library`): we never hand-roll JWS chain checks. This file knows Apple's
 * wire formats; the purchase rules live in purchases.ts.
 */

export type AppStoreEnvironment = 'Production' | 'Sandbox';

/** Why Apple's data was refused: the details.reason of ERR_4011. */
export type RejectionReason =
  | 'bad_signature'
  | 'wrong_bundle'
  | 'wrong_environment'
  | 'not_found'
  | 'invalid_transaction_id'
  | 'not_consumable'
  | 'unknown_product'
  | 'product_mismatch'
  | 'revoked'
  | 'transaction_mismatch';

/** Apple said no (forged, foreign, unknown or unfit data): nothing may be credited. */
export class AppStoreRejected extends DomainError {
  readonly code = 'ERR_4011';
  constructor(readonly reason: RejectionReason, detail?: string) {
    super(detail ? `${reason}: ${detail}` : reason);
  }
  override get details() {
    return { reason: this.reason };
  }
}

/** Apple could not answer (network, timeout, 401 of our key, 429, 5xx): the client may retry. */
export class AppStoreUnavailable extends UpstreamUnavailable {
  protected readonly service = 'app_store';
}

export interface VerifierConfig {
  bundleId: string;
  appAppleId: number;
  rootCertificates: Buffer[];
  onlineChecks: boolean;
  acceptSandbox: boolean;
}

/**
 * One SignedDataVerifier per environment (production servers also see App Review's sandbox
 * purchases). The environment a JWS claims only picks the verifier; that verifier then requires
 * the same environment and our bundle id inside the verified payload.
 */
export class AppStoreVerifier {
  private readonly verifiers: Partial<Record<AppStoreEnvironment, SignedDataVerifier>>;

  constructor(cfg: VerifierConfig) {
    this.verifiers = {
      Production: new SignedDataVerifier(cfg.rootCertificates, cfg.onlineChecks, Environment.PRODUCTION, cfg.bundleId, cfg.appAppleId),
      ...(cfg.acceptSandbox
        ? { Sandbox: new SignedDataVerifier(cfg.rootCertificates, cfg.onlineChecks, Environment.SANDBOX, cfg.bundleId) }
        : {}),
    };
  }

  async transaction(jws: string): Promise<JWSTransactionDecodedPayload & { environment: AppStoreEnvironment }> {
    const verifier = this.pick(claimedEnvironment(jws, (p) => p.environment));
    const tx = await verifying(() => verifier.verifyAndDecodeTransaction(jws));
    return tx as JWSTransactionDecodedPayload & { environment: AppStoreEnvironment };
  }

  async notification(signedPayload: string): Promise<ResponseBodyV2DecodedPayload> {
    const verifier = this.pick(claimedEnvironment(signedPayload, (p) => (p.data as { environment?: unknown } | undefined)?.environment));
    return verifying(() => verifier.verifyAndDecodeNotification(signedPayload));
  }

  private pick(environment: unknown): SignedDataVerifier {
    // Xcode and LocalTesting data is never accepted: the library skips signature checks for them.
    if (environment !== 'Production' && environment !== 'Sandbox') throw new AppStoreRejected('wrong_environment', String(environment));
    const verifier = this.verifiers[environment];
    if (!verifier) throw new AppStoreRejected('wrong_environment', `${environment} purchases are not accepted`);
    return verifier;
  }
}

/** The environment a JWS says it is from, read WITHOUT verifying (only to choose the verifier). */
function claimedEnvironment(jws: string, read: (payload: Record<string, unknown>) => unknown): unknown {
  try {
    const payload = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
    return read(payload);
  } catch {
    throw new AppStoreRejected('bad_signature', 'not a JWS');
  }
}

async function verifying<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof VerificationException)) throw new AppStoreRejected('bad_signature', (err as Error).message);
    switch (err.status) {
      case VerificationStatus.RETRYABLE_VERIFICATION_FAILURE:
        throw new AppStoreUnavailable('Apple certificate status (OCSP) could not be checked');
      case VerificationStatus.INVALID_APP_IDENTIFIER:
        throw new AppStoreRejected('wrong_bundle');
      case VerificationStatus.INVALID_ENVIRONMENT:
        throw new AppStoreRejected('wrong_environment');
      default:
        throw new AppStoreRejected('bad_signature', VerificationStatus[err.status]);
    }
  }
}

/**
 * Apple's API client, reaching a configurable host (tests: the local fake) with a timeout. The
 * library has no base-URL option; overriding makeFetchRequest is how Apple's own tests do it.
 */
class ApiClient extends AppStoreServerAPIClient {
  constructor(
    cfg: AppStoreConfig,
    environment: Environment,
    private readonly baseUrl: string,
    private readonly timeoutMs: number,
  ) {
    super(cfg.privateKeyPem, cfg.keyId, cfg.issuerId, cfg.bundleId, environment);
  }

  protected override async makeFetchRequest(
    path: string,
    query: URLSearchParams,
    method: string,
    body: string | Buffer | undefined,
    headers: Record<string, string>,
  ): Promise<any> {
    const qs = query.toString();
    return fetch(`${this.baseUrl}${path}${qs ? `?${qs}` : ''}`, {
      method,
      body: body === undefined ? undefined : new Uint8Array(typeof body === 'string' ? Buffer.from(body) : body),
      headers,
      signal: AbortSignal.timeout(this.timeoutMs),
    });
  }
}

const TRANSACTION_NOT_FOUND = 4040010;
const INVALID_TRANSACTION_ID = 4000006;

export class AppStore {
  readonly verify: AppStoreVerifier;
  private readonly clients: Partial<Record<AppStoreEnvironment, ApiClient>>;

  constructor(
    readonly cfg: AppStoreConfig,
    rootCertificates: Buffer[],
  ) {
    this.verify = new AppStoreVerifier({ ...cfg, rootCertificates });
    this.clients = {
      Production: new ApiClient(cfg, Environment.PRODUCTION, cfg.productionUrl, cfg.timeoutMs),
      ...(cfg.acceptSandbox ? { Sandbox: new ApiClient(cfg, Environment.SANDBOX, cfg.sandboxUrl, cfg.timeoutMs) } : {}),
    };
  }

  /**
   * Get Transaction Info: production first, then the sandbox when production does not know the
   * id (Apple's documented fallback: App Review buys in the sandbox) — or refuses our key with 401,
   * which production does until the app's first release, exactly when App Review is buying. The
   * signed answer is verified before anything reads it. "Not found" is only said when every
   * environment asked said so; otherwise the client may retry (ERR_5002).
   */
  async fetchTransaction(transactionId: string) {
    let unanswered: string | undefined;
    for (const env of ['Production', 'Sandbox'] as const) {
      const client = this.clients[env];
      if (!client) continue;
      let signed: string | undefined;
      try {
        signed = (await client.getTransactionInfo(transactionId)).signedTransactionInfo;
      } catch (err) {
        if (err instanceof APIException && err.apiError === TRANSACTION_NOT_FOUND) continue;
        if (err instanceof APIException && err.apiError === INVALID_TRANSACTION_ID) throw new AppStoreRejected('invalid_transaction_id');
        if (env === 'Production' && err instanceof APIException && err.httpStatusCode === 401 && this.clients.Sandbox) {
          unanswered = `App Store Server API (Production): ${describe(err)}`;
          continue;
        }
        throw new AppStoreUnavailable(`App Store Server API (${env}): ${describe(err)}`);
      }
      if (!signed) throw new AppStoreUnavailable(`App Store Server API (${env}) answered without signedTransactionInfo`);
      return { signed, tx: await this.verify.transaction(signed) };
    }
    if (unanswered) throw new AppStoreUnavailable(`${unanswered}; the sandbox does not know the transaction either`);
    throw new AppStoreRejected('not_found', `transaction ${transactionId} is unknown to the App Store`);
  }

  /** Send Consumption Information (answer to a CONSUMPTION_REQUEST notification). */
  async sendConsumptionInformation(environment: AppStoreEnvironment, transactionId: string, info: ConsumptionRequest): Promise<void> {
    const client = this.clients[environment];
    if (!client) throw new AppStoreRejected('wrong_environment');
    try {
      await client.sendConsumptionInformation(transactionId, info);
    } catch (err) {
      throw new AppStoreUnavailable(`Send Consumption Information: ${describe(err)}`);
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof APIException) return `HTTP ${err.httpStatusCode}${err.apiError ? ` error ${err.apiError}` : ''}${err.errorMessage ? ` ${err.errorMessage}` : ''}`;
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
