import { DomainError } from '../errors/domain-error.js';

/** Expected ledger outcomes, each carrying the API code it answers with. */
export abstract class LedgerError extends DomainError {}

export class InsufficientCredits extends LedgerError {
  readonly code = 'ERR_4001';
  constructor(
    public readonly required: number,
    public readonly available: number,
  ) {
    super(`insufficient credits: required ${required}, available ${available}`);
  }
  override get details() {
    return { required: this.required, available: this.available };
  }
}

export class AccountNotFound extends LedgerError {
  readonly code = 'ERR_4007';
  constructor(public readonly userId: string) {
    super(`no credit account for user ${userId}`);
  }
  override get details() {
    return { resource: 'user' };
  }
}

// HoldNotFound, HoldAlreadyResolved and InvalidAmount are our own bugs, never the client's: if one
// reaches a request it answers as any unexpected error does (ERR_6003, logged with its message).

export class HoldNotFound extends LedgerError {
  readonly code = 'ERR_6003';
  constructor(public readonly holdId: string) {
    super(`hold ${holdId} not found`);
  }
}

/** A hold resolves exactly once; a second capture or release is refused, never applied. */
export class HoldAlreadyResolved extends LedgerError {
  readonly code = 'ERR_6003';
  constructor(
    public readonly holdId: string,
    public readonly status: string,
  ) {
    super(`hold ${holdId} is already ${status}`);
  }
}

export class InvalidAmount extends LedgerError {
  readonly code = 'ERR_6003';
}

/** The account was deleted: nothing new may be credited to it or held on it. */
export class AccountClosed extends LedgerError {
  readonly code = 'ERR_4005';
  constructor(public readonly userId: string) {
    super(`account ${userId} is deleted`);
  }
  /** Deleted while the request was under way: the same answer a request arriving a moment later gets. */
  override get details() {
    return { reason: 'user no longer exists' };
  }
}
