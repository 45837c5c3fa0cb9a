// The async jobs API (POST /v1/jobs, GET/DELETE /v1/jobs/:id, deliveries):
// request and response shapes shared by the edge, the typed client and the
// webhook payloads. Pure zod (runs in Node and workerd).
import { z } from '@hono/zod-openapi';
import { ImageInputSchema, ItemErrorSchema } from './schemas.js';

/** Limits of one job (documented in README "Jobs"). */
export const JOB_LIMITS = Object.freeze({
  /** Most items in one job. More → 422 too_many_items. */
  maxItems: 1000,
  /** Longest client item id. */
  maxItemIdChars: 128,
  /** Largest metadata object, as JSON text. */
  maxMetadataBytes: 16 * 1024,
  /** Longest Idempotency-Key. */
  maxIdempotencyKeyChars: 255,
});

export const WebhookSecretPattern = /^whsec_[A-Za-z0-9+/]{32,88}={0,2}$/;

export const JobWebhookSchema = z
  .object({
    url: z.string().min(1).openapi({ description: 'https URL called with job.completed / job.failed (Standard Webhooks). http only for loopback, and only where the edge allows it (development).' }),
    secret: z
      .string()
      .regex(WebhookSecretPattern, 'must be "whsec_" + base64 of 24 to 64 random bytes')
      .optional()
      .openapi({ description: 'Signing secret ("whsec_…"). Absent: the edge makes one and returns it once in the 202 answer.' }),
  })
  .strict()
  .openapi('JobWebhook');

export const JobItemInputSchema = z
  .object({
    id: z.string().min(1).max(JOB_LIMITS.maxItemIdChars).optional().openapi({ description: 'Your id for the item (unique within the job), echoed in the results' }),
    prompt: z.string(),
    images: z.array(ImageInputSchema).min(1),
  })
  .strict()
  .openapi('JobItemInput');

export const JobMetadataSchema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).openapi('JobMetadata', {
  description: `Your key/value pairs, echoed in the job and its webhooks (at most ${JOB_LIMITS.maxMetadataBytes} bytes as JSON)`,
});

export const JobRequestSchema = z
  .object({
    items: z.array(JobItemInputSchema).min(1).openapi({ description: `1 to ${JOB_LIMITS.maxItems} (prompt, images) items, each scored like one POST /v1/score` }),
    webhook: JobWebhookSchema.optional(),
    metadata: JobMetadataSchema.optional(),
  })
  .strict()
  .openapi('JobRequest');

export const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const isFinalJobStatus = (s: JobStatus): boolean => s === 'completed' || s === 'failed' || s === 'cancelled';

export const JobItemResultSchema = z
  .object({
    model: z.string(),
    rewards: z.array(z.number().nullable()),
    ranking: z.array(z.number().int().min(1).nullable()),
    errors: z.array(ItemErrorSchema).optional(),
    cached: z.array(z.boolean()).optional(),
  })
  .openapi('JobItemResult', { description: 'What POST /v1/score answers for this item (without timings)' });

export const JobItemSchema = z
  .object({
    index: z.number().int().min(0),
    id: z.string().optional(),
    status: z.enum(['pending', 'succeeded', 'failed', 'cancelled']),
    result: JobItemResultSchema.optional(),
    error: z.object({ code: z.string(), message: z.string(), status: z.number().int() }).optional().openapi({ description: 'Why the item failed as a whole (every image bad, or the GPU tier gave up)' }),
  })
  .openapi('JobItem');

export const JobSchema = z
  .object({
    id: z.string(),
    object: z.literal('job'),
    status: z.enum(JOB_STATUSES),
    created_at: z.string(),
    updated_at: z.string(),
    completed_at: z.string().optional(),
    expires_at: z.string().optional().openapi({ description: 'When the job and its results are deleted (set once it is final)' }),
    status_url: z.string(),
    progress: z.object({ total: z.number().int(), done: z.number().int(), succeeded: z.number().int(), failed: z.number().int() }),
    metadata: JobMetadataSchema.optional(),
    webhook: z.object({ url: z.string(), secret: z.string().optional().openapi({ description: 'Only in the 202 answer, when the edge made it' }) }).optional(),
    items: z.array(JobItemSchema).optional().openapi({ description: 'Omitted with ?items=false' }),
  })
  .openapi('Job');

export const WebhookDeliverySchema = z
  .object({
    webhook_id: z.string(),
    event: z.enum(['job.completed', 'job.failed']),
    attempt: z.number().int().min(1),
    at: z.string(),
    outcome: z.enum(['delivered', 'retry', 'gone', 'refused']),
    status: z.number().int().optional(),
    error: z.string().optional(),
    ms: z.number(),
    next_attempt_at: z.string().optional(),
  })
  .openapi('WebhookDelivery');

export const JobDeliveriesSchema = z.object({ deliveries: z.array(WebhookDeliverySchema) }).openapi('JobDeliveries');

/** The body of a job.completed / job.failed webhook (Standard Webhooks: type, timestamp, data). */
export const JobWebhookPayloadSchema = z
  .object({
    type: z.enum(['job.completed', 'job.failed']),
    timestamp: z.string(),
    data: JobSchema,
  })
  .openapi('JobWebhookPayload');

export type JobRequest = z.infer<typeof JobRequestSchema>;
export type JobItemInput = z.infer<typeof JobItemInputSchema>;
export type Job = z.infer<typeof JobSchema>;
export type JobItem = z.infer<typeof JobItemSchema>;
export type JobItemResult = z.infer<typeof JobItemResultSchema>;
export type WebhookDelivery = z.infer<typeof WebhookDeliverySchema>;
export type JobWebhookPayload = z.infer<typeof JobWebhookPayloadSchema>;
