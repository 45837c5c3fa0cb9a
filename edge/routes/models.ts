// GET /v1/models at the edge: what the GPU tier reports (backend, readiness),
// with the edge's own limits — the ones a client of this endpoint is held to.
// Asked of an origin at most every 30 s per isolate; the model id must be the
// one the edge caches under (MODEL_ID), or the answer is refused like any other
// mismatched origin answer.
import { Hono } from 'hono';
import { ModelsResponseSchema, type ModelsResponse } from '../../contracts/api/index.js';
import { edgeLimits, modelId } from '../config.js';
import { EdgeFailure } from '../problem-reply.js';
import { forwardToOrigins } from '../origins/pool.js';
import type { EdgeEnv } from '../env.js';

const TTL_MS = 30_000;
let memo: { at: number; key: string; body: ModelsResponse } | undefined;

export const modelsRoutes = new Hono<EdgeEnv>();

modelsRoutes.get('/models', async (c) => {
  const model = modelId(c.env);
  const key = `${c.env.ORIGINS}\n${model}`;
  if (!memo || memo.key !== key || Date.now() - memo.at > TTL_MS) {
    const { response, origin } = await forwardToOrigins(c.env, {
      path: '/v1/models',
      method: 'GET',
      requestId: c.get('requestId'),
      deadlineMs: Date.now() + 10_000,
      signal: c.req.raw.signal,
    });
    const parsed = ModelsResponseSchema.safeParse(await response.json().catch(() => undefined));
    if (response.status !== 200 || !parsed.success) {
      console.error(JSON.stringify({ level: 'error', event: 'bad_origin_response', origin, status: response.status, route: '/v1/models' }));
      throw new EdgeFailure('bad_origin_response', 'the GPU tier answered /v1/models with an invalid response');
    }
    const entry = parsed.data.data[0];
    if (!entry || entry.id !== model) {
      throw new EdgeFailure('bad_origin_response', `the GPU tier serves model "${entry?.id ?? 'none'}", the edge is configured for "${model}" (MODEL_ID)`);
    }
    memo = { at: Date.now(), key, body: parsed.data };
  }
  const limits = edgeLimits(c.env);
  return c.json({ ...memo.body, data: memo.body.data.map((m) => ({ ...m, limits: { ...limits } })) } satisfies ModelsResponse);
});
