import { z } from '@hono/zod-openapi';
import { isStorableText } from '../http/storable-text.js';

/** The inputs of admin actions: one schema each, used by the admin API and the console's forms. */

const storable = (s: string) => isStorableText(s);

/**
 * A path's ids, checked before the database: PostgreSQL refuses a uuid column compared with
 * anything but a uuid, and any text with U+0000 — each was a 500 (`/admin/users/not-a-uuid/ban`,
 * `PATCH /admin/api/models/%00`). The API's routes and the console's handlers parse with these.
 */
export const UserId = z.uuid();
export const ModelId = z.string().min(1).max(64).refine(storable, 'text must be valid Unicode without U+0000');

export const Reason = z
  .string()
  .trim()
  .min(3, 'a reason of at least 3 characters is required')
  .max(500)
  .refine(storable, 'text must be valid Unicode without U+0000')
  .openapi({ example: 'video failed twice, goodwill refund (ticket #1234)' });

export const CreditChangeBody = z
  .object({
    amount: z.coerce.number().int().min(1).max(100_000).openapi({ example: 5 }),
    reason: Reason,
  })
  .openapi('AdminCreditChange');

export const BanBody = z.object({ reason: Reason }).openapi('AdminBan');

const flag = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);

const MODEL_FIELDS = ['is_active', 'is_available', 'is_featured', 'cost_per_generation', 'credits_per_second', 'sort_order'] as const;

export const ModelPatchBody = z
  .object({
    is_active: flag.optional().openapi({ description: "The app's one active model: making one active makes the previous one inactive" }),
    is_available: flag.optional(),
    is_featured: flag.optional(),
    cost_per_generation: z.coerce.number().int().min(1).max(10_000).optional(),
    credits_per_second: z.coerce.number().int().min(1).max(10_000).optional(),
    sort_order: z.coerce.number().int().min(0).max(100_000).optional().openapi({ description: 'Catalogue position, lowest first' }),
    reason: z.string().trim().max(500).refine(storable, 'text must be valid Unicode without U+0000').optional(),
    confirm_empty_catalogue: flag.optional().openapi({ description: 'Go ahead although the app would be left with no model to show (409 ERR_4028 otherwise)' }),
  })
  .refine((p) => MODEL_FIELDS.some((k) => p[k] !== undefined), {
    message: `nothing to change: give ${MODEL_FIELDS.join(', ')}`,
  })
  .openapi('AdminModelPatch');

export const SignInBody = z
  .object({
    email: z.string().trim().min(3).max(254).refine(storable, 'text must be valid Unicode without U+0000'),
    password: z.string().min(1).max(1024),
    totp: z.string().max(16).optional(),
  })
  .openapi('AdminSignIn');

export const IdempotencyKey = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');

export const SearchQuery = z.string().trim().min(1).max(300).refine(storable, 'text must be valid Unicode without U+0000');

export const ChartRangeQuery = z.enum(['24h', '7d', '30d']).default('24h').openapi({ description: 'The charts\' range: 24 h in hours, 7 days in 6 h, 30 days in days' });
