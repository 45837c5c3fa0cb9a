// Zod schemas of the scoring API (the request and response bodies of every
// route), shared by the GPU service and the edge. Pure TypeScript over
// @hono/zod-openapi's `z` (zod 4 + .openapi() metadata): runs in Node and workerd.
//
// Limits (image count, prompt length, bytes) are NOT in the schemas: they are
// deployment settings (limits.ts) checked after the shape, with their own codes.
import { z } from '@hono/zod-openapi';
import { ERROR_CODES } from './errors.js';

export const ImageInputSchema = z
  .union([
    z
      .object({
        data: z.string().min(1).openapi({
          description:
            'The image file (JPEG, PNG, WebP, GIF, AVIF or TIFF), base64 (standard or URL-safe alphabet, padding optional; a data: URL is accepted)',
          example: 'iVBORw0KGgoAAAANSUhEUgAA…',
        }),
      })
      .strict(),
    z
      .object({
        url: z.string().min(1).openapi({ description: 'An http(s) URL the service fetches the image from (when URL fetching is enabled)', example: 'https://example.com/1.webp' }),
      })
      .strict(),
  ])
  .openapi('ImageInput', { description: 'One image: inline bytes ({data}) or a URL ({url})' });

export const ScoreRequestSchema = z
  .object({
    prompt: z.string().openapi({ description: 'The prompt the images were generated from (the model reads its first 35 tokens)', example: 'a painting of an ocean with clouds and birds' }),
    images: z.array(ImageInputSchema).min(1).openapi({ description: 'The images to score against the prompt, in the order of the answer' }),
  })
  .strict()
  .openapi('ScoreRequest');

export const ItemErrorSchema = z
  .object({
    index: z.number().int().min(0).openapi({ description: 'Position of the image in the request' }),
    code: z.string().openapi({ description: 'Stable error code (see the error table)', example: 'image_decode_failed' }),
    message: z.string(),
    status: z.number().int().optional().openapi({ description: 'The HTTP status this image alone would have had' }),
  })
  .openapi('ItemError');

export const TimingsSchema = z
  .object({
    queue_ms: z.number(),
    preprocess_ms: z.number(),
    inference_ms: z.number(),
    total_ms: z.number(),
  })
  .openapi('Timings', { description: 'Where the time of this call went, in milliseconds' });

export const ScoreResponseSchema = z
  .object({
    model: z.string().openapi({ description: 'The model id', example: 'ImageReward-v1.0' }),
    rewards: z.array(z.number().nullable()).openapi({ description: 'Reward of each image in input order (higher is better); null for an image that failed (see errors)' }),
    ranking: z.array(z.number().int().min(1).nullable()).openapi({
      description: 'ranking[i] is image i\'s place among the scored images, 1 = best (upstream inference_rank; ties keep input order); null for a failed image',
    }),
    errors: z.array(ItemErrorSchema).optional().openapi({ description: 'Present when some images failed; the others are scored' }),
    cached: z.array(z.boolean()).optional().openapi({ description: 'cached[i]: image i\'s reward came from the result cache' }),
    timings: TimingsSchema,
  })
  .openapi('ScoreResponse');

export const ProblemSchema = z
  .object({
    type: z.string().openapi({ example: 'https://imagereward-serve.dev/problems/invalid_request' }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional().openapi({ example: 'urn:request:6f1c…' }),
    code: z.string().openapi({ description: `Stable error code: ${Object.keys(ERROR_CODES).join(', ')}`, example: 'invalid_request' }),
    request_id: z.string().optional(),
    errors: z
      .array(z.union([ItemErrorSchema, z.object({ path: z.string(), message: z.string(), code: z.string().optional() })]))
      .optional()
      .openapi({ description: 'Per-image errors, or per-field validation errors' }),
  })
  .openapi('Problem', { description: 'RFC 9457 problem details (application/problem+json)' });

export const BatchScoreRequestSchema = z
  .object({
    requests: z.array(ScoreRequestSchema).min(1).openapi({ description: 'Independent score requests, answered in order' }),
  })
  .strict()
  .openapi('BatchScoreRequest');

export const BatchScoreResponseSchema = z
  .object({
    results: z.array(z.union([ScoreResponseSchema, ProblemSchema])).openapi({
      description: 'results[i] answers requests[i]: a ScoreResponse, or a Problem (has "status" and "code") when that request failed as a whole',
    }),
  })
  .openapi('BatchScoreResponse');

export const ModelSchema = z
  .object({
    id: z.string().openapi({ example: 'ImageReward-v1.0' }),
    object: z.literal('model'),
    backend: z.enum(['ort', 'native']).openapi({ description: 'ort: ONNX Runtime (CPU, fp32); native: the CUDA engine' }),
    ready: z.boolean(),
    skipped_backends: z.array(z.object({ name: z.string(), reason: z.string() })).openapi({ description: 'Backends tried first and why they are not used' }),
    limits: z.record(z.string(), z.number()).openapi({ description: 'The request limits this server enforces' }),
  })
  .openapi('Model');

export const ModelsResponseSchema = z.object({ object: z.literal('list'), data: z.array(ModelSchema) }).openapi('ModelsResponse');

export const HealthResponseSchema = z.object({ status: z.literal('ok') }).openapi('Health');
export const ReadyResponseSchema = z.object({ status: z.enum(['ready', 'not_ready', 'shutting_down']), model: z.string().optional() }).openapi('Ready');

export type ImageInput = z.infer<typeof ImageInputSchema>;
export type ScoreRequest = z.infer<typeof ScoreRequestSchema>;
export type ScoreResponse = z.infer<typeof ScoreResponseSchema>;
export type BatchScoreRequest = z.infer<typeof BatchScoreRequestSchema>;
export type BatchScoreResponse = z.infer<typeof BatchScoreResponseSchema>;
export type ModelsResponse = z.infer<typeof ModelsResponseSchema>;
export type ModelInfo = z.infer<typeof ModelSchema>;
export type ProblemBody = z.infer<typeof ProblemSchema>;
export type Timings = z.infer<typeof TimingsSchema>;
