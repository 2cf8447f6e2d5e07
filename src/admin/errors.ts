/** What the admin services refuse, each carrying the API error it answers with. */
import { DomainError } from '../errors/domain-error.js';

/** Wrong email, password or one-time code (deliberately not saying which). */
export class AdminSignInFailed extends DomainError {
  readonly code = 'ERR_4025';
  constructor() {
    super('admin sign-in failed');
  }
}

/** Too many failed sign-ins within the window for this email: from this address, or from anywhere. */
export class AdminSignInLocked extends DomainError {
  readonly code = 'ERR_4004';
  constructor(
    readonly retryAfterSeconds: number,
    readonly scope: 'address' | 'email',
  ) {
    super(`admin sign-in locked (${scope})`);
  }
  override get details() {
    return { retry_after: this.retryAfterSeconds, scope: this.scope };
  }
  override get headers() {
    return { 'Retry-After': String(this.retryAfterSeconds) };
  }
}

/** The target account was deleted or merged into another: nothing can be granted to or banned on it. */
export class TargetAccountClosed extends DomainError {
  readonly code = 'ERR_4026';
  constructor(readonly userId: string) {
    super(`account ${userId} is closed`);
  }
  override get details() {
    return { user_id: this.userId };
  }
}

/** An admin reused a request key for a different request. */
export class AdminKeyReused extends DomainError {
  readonly code = 'ERR_4010';
  constructor() {
    super('idempotency key reused with a different request');
  }
}

export class ModelNotFound extends DomainError {
  readonly code = 'ERR_4007';
  constructor(readonly modelId: string) {
    super(`model ${modelId} not found`);
  }
  override get details() {
    return { resource: 'model' };
  }
}

/** A request the admin rules refuse, naming the field. */
export class AdminInputRejected extends DomainError {
  readonly code = 'ERR_4008';
  constructor(
    readonly reason: string,
    readonly field: string,
  ) {
    super(reason);
  }
  override get details() {
    return { reason: this.reason, field: this.field };
  }
}

/**
 * A model change that would leave the app nothing to show: no model both active and available (the
 * shipped app asks for exactly that row, docs/reference/ios-app.md §3), or no available model at all
 * (get-models). Refused unless the admin confirms; the console asks first.
 */
export class CatalogueWouldBeEmpty extends DomainError {
  readonly code = 'ERR_4028';
  constructor(readonly catalogue: 'no active, available model' | 'no available model') {
    super(`the change would leave ${catalogue}`);
  }
  override get details() {
    return { catalogue: this.catalogue, field: 'confirm_empty_catalogue' };
  }
}
