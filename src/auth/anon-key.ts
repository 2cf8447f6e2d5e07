import { timingSafeEqual } from 'node:crypto';
import { hashToken } from './tokens.js';

/**
 * Whether `presented` is one of the project's anon keys (config.acceptedAnonKeys: ANON_KEY and,
 * during a rotation, ANON_KEY_PREVIOUS). Constant time, and every key is compared every time: how
 * long the answer takes tells neither how close a guess came nor which key matched.
 */
export function isAnonKey(presented: string, acceptedAnonKeys: readonly string[]): boolean {
  const digest = hashToken(presented);
  let matched = false;
  for (const key of acceptedAnonKeys) matched = timingSafeEqual(digest, hashToken(key)) || matched;
  return matched;
}
