/** Expected ledger outcomes, typed so the HTTP layer maps them in one place. */
export class LedgerError extends Error {}

export class InsufficientCredits extends LedgerError {
  constructor(
    public readonly required: number,
    public readonly available: number,
  ) {
    super(`insufficient credits: required ${required}, available ${available}`);
  }
}

export class AccountNotFound extends LedgerError {
  constructor(public readonly userId: string) {
    super(`no credit account for user ${userId}`);
  }
}

export class HoldNotFound extends LedgerError {
  constructor(public readonly holdId: string) {
    super(`hold ${holdId} not found`);
  }
}

/** A hold resolves exactly once; a second capture or release is refused, never applied. */
export class HoldAlreadyResolved extends LedgerError {
  constructor(
    public readonly holdId: string,
    public readonly status: string,
  ) {
    super(`hold ${holdId} is already ${status}`);
  }
}

export class InvalidAmount extends LedgerError {}

/** The account was deleted: nothing new may be credited to it or held on it. */
export class AccountClosed extends LedgerError {
  constructor(public readonly userId: string) {
    super(`account ${userId} is deleted`);
  }
}
