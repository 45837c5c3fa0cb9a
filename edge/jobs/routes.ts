// The jobs API: POST /v1/jobs, GET/DELETE /v1/jobs/:id, GET /v1/jobs/:id/deliveries,
// POST /v1/jobs/:id/webhook/redeliver. Mounted under /v1, behind the API key,
// rate limit and body limit middleware.
//
// A job is validated whole before anything is stored (shape, limits, base64,
// webhook URL); per-image problems found now (too large, bad URL) are kept and
// reported on that item. Inline images go to R2 under jobs/<id>/<sha256>, so
// queue messages stay tiny. The job's Durable Object is addressed by
// (tenant, Idempotency-Key) when a key is given: the same key reaches the same
// object, which compares the body's sha256 (same → the same job, different →
// 422 idempotency_key_reused, still being created → 409).
import { Hono, type Context } from 'hono';
import {
  ApiFailure,
  JOB_LIMITS,
  JobRequestSchema,
  checkRequestLimits,
  isJsonMediaType,
  mediaTypeOf,
  parseJsonText,
  prepareJsonImages,
  zodFailure,
  type Job,
} from '../../contracts/api/index.js';
import { sha256Hex } from '../../contracts/cache-key.js';
import { generateWebhookSecret } from '../../contracts/webhooks.js';
import { edgeLimits } from '../config.js';
import type { EdgeEnv } from '../env.js';
import { EdgeFailure, edgeProblem } from '../problem-reply.js';
import { jobConfig } from './job-config.js';
import type { StoredImage, StoredItemInput } from './job-object.js';
import { checkWebhookUrl } from './webhook-sender.js';

const JOB_ID = /^[0-9a-f]{64}$/;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]+$/;

function stubFor(c: Context<EdgeEnv>, id: string): DurableObjectStub<import('./job-object.js').JobObject> {
  if (!JOB_ID.test(id)) throw new EdgeFailure('not_found', `no job ${id}`);
  let doId: DurableObjectId;
  try {
    doId = c.env.JOBS.idFromString(id);
  } catch {
    throw new EdgeFailure('not_found', `no job ${id}`);
  }
  return c.env.JOBS.get(doId);
}

const notFound = (id: string) => new EdgeFailure('not_found', `no job ${id} (or it expired)`);

export const jobRoutes = new Hono<EdgeEnv>();

jobRoutes.post('/jobs', async (c) => {
  const type = mediaTypeOf(c.req.header('content-type'));
  if (!isJsonMediaType(type)) throw new ApiFailure('unsupported_media_type', `Content-Type must be application/json (got "${type || 'none'}")`);
  const key = c.req.header('idempotency-key');
  if (key !== undefined && (key.length > JOB_LIMITS.maxIdempotencyKeyChars || !IDEMPOTENCY_KEY.test(key))) {
    throw new ApiFailure('invalid_request', `Idempotency-Key must be 1 to ${JOB_LIMITS.maxIdempotencyKeyChars} printable ASCII characters`, { errors: [{ path: 'Idempotency-Key', message: 'invalid' }] });
  }
  const text = await c.req.text();
  const parsed = JobRequestSchema.safeParse(parseJsonText(text));
  if (!parsed.success) throw zodFailure(parsed.error.issues);
  const req = parsed.data;
  if (req.items.length > JOB_LIMITS.maxItems) throw new ApiFailure('too_many_items', `${req.items.length} items (limit ${JOB_LIMITS.maxItems} per job)`);
  if (req.metadata !== undefined && new TextEncoder().encode(JSON.stringify(req.metadata)).length > JOB_LIMITS.maxMetadataBytes) {
    throw new ApiFailure('invalid_request', `metadata is larger than ${JOB_LIMITS.maxMetadataBytes} bytes as JSON`, { errors: [{ path: 'metadata', message: 'too large' }] });
  }
  const ids = new Set<string>();
  for (const [i, item] of req.items.entries()) {
    if (item.id !== undefined) {
      if (ids.has(item.id)) throw new ApiFailure('invalid_request', `items[${i}].id "${item.id}" is used twice`, { errors: [{ path: `items.${i}.id`, message: 'duplicate' }] });
      ids.add(item.id);
    }
  }
  const cfg = jobConfig(c.env);
  if (req.webhook) {
    const why = checkWebhookUrl(req.webhook.url, { allowInsecureLoopback: cfg.allowInsecureLoopbackWebhooks });
    if (why !== null) throw new ApiFailure('invalid_webhook_url', `webhook.url: ${why}`, { errors: [{ path: 'webhook.url', message: why }] });
  }

  // Every item's limits and images before anything is stored.
  const limits = edgeLimits(c.env);
  const prepared = req.items.map((item, i) => {
    checkRequestLimits(item.prompt, item.images.length, limits, `items[${i}]: `);
    try {
      return prepareJsonImages(item.images, limits);
    } catch (err) {
      if (err instanceof ApiFailure) throw new ApiFailure(err.code, `items[${i}]: ${err.message}`, err.opts);
      throw err;
    }
  });

  const tenant = c.get('tenant').tenant;
  const doId = key !== undefined ? c.env.JOBS.idFromName(`${tenant}\n${key}`) : c.env.JOBS.newUniqueId();
  const id = doId.toString();
  const stub = c.env.JOBS.get(doId);

  // Inline bytes → R2 (content-addressed within the job: a repeated image is stored once).
  const stored = new Map<string, Promise<void>>();
  const items: StoredItemInput[] = await Promise.all(
    prepared.map(async (images, i) => ({
      ...(req.items[i]!.id !== undefined ? { id: req.items[i]!.id } : {}),
      prompt: req.items[i]!.prompt,
      images: await Promise.all(
        images.map(async (img): Promise<StoredImage> => {
          if (img.kind === 'error') return { error: img.error };
          if (img.kind === 'url') return { url: img.url };
          const blob = `jobs/${id}/${await sha256Hex(img.bytes)}`;
          if (!stored.has(blob)) stored.set(blob, c.env.JOB_BLOBS.put(blob, img.bytes).then(() => undefined));
          await stored.get(blob);
          return { blob };
        }),
      ),
    })),
  );

  const secret = req.webhook?.secret;
  const result = await stub.create({
    id,
    tenant,
    payloadSha: await sha256Hex(text),
    ...(key !== undefined ? { idempotencyKey: key } : {}),
    items,
    ...(req.webhook !== undefined ? { webhook: { url: req.webhook.url, secret: secret ?? generateWebhookSecret(), generated: secret === undefined } } : {}),
    ...(req.metadata !== undefined ? { metadata: req.metadata } : {}),
    statusUrl: `/v1/jobs/${id}`,
  });
  if (result.kind === 'payload_mismatch') throw new ApiFailure('idempotency_key_reused', 'this Idempotency-Key was used with a different body');
  if (result.kind === 'in_progress') return edgeProblem(c, 'idempotency_key_in_progress', 'a request with this Idempotency-Key is still being processed', { retryAfter: 1 });
  const headers: Record<string, string> = { location: `/v1/jobs/${id}` };
  if (result.kind === 'replayed') headers['idempotent-replayed'] = 'true';
  return c.json(result.job satisfies Job, 202, headers);
});

jobRoutes.get('/jobs/:id', async (c) => {
  const id = c.req.param('id');
  const job = await stubFor(c, id).get(c.get('tenant').tenant, { items: c.req.query('items') !== 'false' });
  if (!job) throw notFound(id);
  return c.json(job);
});

jobRoutes.delete('/jobs/:id', async (c) => {
  const id = c.req.param('id');
  const out = await stubFor(c, id).cancel(c.get('tenant').tenant);
  if (out.kind === 'not_found') throw notFound(id);
  if (out.kind === 'finished') return edgeProblem(c, 'job_finished', `job ${id} is already ${out.job.status}`);
  return c.json(out.job);
});

jobRoutes.get('/jobs/:id/deliveries', async (c) => {
  const id = c.req.param('id');
  const deliveries = await stubFor(c, id).deliveries(c.get('tenant').tenant);
  if (!deliveries) throw notFound(id);
  return c.json({ deliveries });
});

jobRoutes.post('/jobs/:id/webhook/redeliver', async (c) => {
  const id = c.req.param('id');
  const out = await stubFor(c, id).redeliver(c.get('tenant').tenant);
  if (out.kind === 'not_found') throw notFound(id);
  if (out.kind === 'no_webhook') throw new ApiFailure('invalid_request', `job ${id} has no webhook`);
  if (out.kind === 'not_finished') return edgeProblem(c, 'job_not_finished', `job ${id} has no webhook message yet (it is not completed or failed)`);
  return c.json({ status: 'scheduled' }, 202);
});
