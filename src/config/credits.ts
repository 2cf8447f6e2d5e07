import { z } from 'zod';
import { bool } from './env.js';

const ProductMap = z.record(z.string().min(1), z.number().int().positive().max(100_000));
/** The shipped app's consumable packs (docs/reference/ios-app.md §5): the credits are in the product id. */
export const DEFAULT_PRODUCTS: Record<string, number> = {
  'com.rendioai.credits.starter.25': 25,
  'com.rendioai.credits.popular.60': 60,
  'com.rendioai.credits.best.150': 150,
};

/** Where credits come from: the grant to a new user, and what each App Store product is worth. */
export const creditsEnv = z.object({
  INITIAL_GRANT_CREDITS: z.coerce.number().int().min(0).max(1000).default(10),
  /**
   * Guests may buy credits. Off by default: a guest is opened by its device_id alone, which is not
   * a secret, so purchased credits belong on an Apple account (the shipped app never lets a guest buy).
   */
  ALLOW_GUEST_PURCHASES: bool.default(false),
  /** JSON object product id → credits per unit; defaults to the app's three packs. */
  IAP_PRODUCTS: z
    .string()
    .transform((v, ctx) => {
      try {
        return ProductMap.parse(JSON.parse(v));
      } catch {
        ctx.addIssue({ code: 'custom', message: 'IAP_PRODUCTS must be a JSON object of product id → positive integer credits' });
        return z.NEVER;
      }
    })
    .optional(),
});
type CreditsEnv = z.infer<typeof creditsEnv>;

export interface CreditsSection {
  initialGrantCredits: number;
  allowGuestPurchases: boolean;
  products: Record<string, number>;
}

export function creditsSection(e: CreditsEnv): CreditsSection {
  return { initialGrantCredits: e.INITIAL_GRANT_CREDITS, allowGuestPurchases: e.ALLOW_GUEST_PURCHASES, products: e.IAP_PRODUCTS ?? DEFAULT_PRODUCTS };
}
