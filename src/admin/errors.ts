/** What the admin services refuse; src/http/on-error.ts turns each into its API error. */

/** Wrong email, password or one-time code (deliberately not saying which). */
export class AdminSignInFailed extends Error {
  constructor() {
    super('admin sign-in failed');
  }
}

/** Too many failed sign-ins for this email from this address within the window. */
export class AdminSignInLocked extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super('admin sign-in locked');
  }
}

/** The target account was deleted or merged into another: nothing can be granted to or banned on it. */
export class TargetAccountClosed extends Error {
  constructor(readonly userId: string) {
    super(`account ${userId} is closed`);
  }
}

/** An admin reused a request key for a different request. */
export class AdminKeyReused extends Error {
  constructor() {
    super('idempotency key reused with a different request');
  }
}

export class ModelNotFound extends Error {
  constructor(readonly modelId: string) {
    super(`model ${modelId} not found`);
  }
}

/** A request the admin rules refuse, naming the field. */
export class AdminInputRejected extends Error {
  constructor(
    readonly reason: string,
    readonly field: string,
  ) {
    super(reason);
  }
}
