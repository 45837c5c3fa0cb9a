// POST /v1/score and POST /v1/score:batch at the edge: the same inputs and
// answers as the GPU service (contracts/api/inputs.ts parses both), answered
// from the result cache where possible (edge/scoring/score-at-edge.ts).
import { Hono, type Context } from 'hono';
import { setMetric } from 'hono/timing';
import {
  ApiFailure,
  isJsonMediaType,
  mediaTypeOf,
  parseBatchJson,
  parseJsonText,
  parseScoreJson,
  parseScoreMultipart,
  type ParsedScoreRequest,
} from '../../contracts/api/index.js';
import { edgeLimits } from '../config.js';
import { edgeProblemBody } from '../problem-reply.js';
import { scoreAtEdge, type CacheOutcome, type EdgeScoreContext } from '../scoring/score-at-edge.js';
import type { EdgeEnv } from '../env.js';

function scoreContext(c: Context<EdgeEnv>, startedAt: number): EdgeScoreContext {
  let ctx: ExecutionContext | undefined;
  try {
    ctx = c.executionCtx as ExecutionContext;
  } catch {
    ctx = undefined; // app.fetch called without one (unit tests): cache writes are awaited instead
  }
  const tenant = c.get('tenant');
  return {
    env: c.env,
    ctx,
    limits: edgeLimits(c.env),
    requestId: c.get('requestId'),
    signal: c.req.raw.signal,
    startedAt,
    ...(tenant !== undefined ? { tenant: tenant.tenant } : {}),
    timing: (name, ms, description) => setMetric(c, name, ms, description),
  };
}

/** The X-Cache of a batch: HIT/MISS when every scored request agrees, else PARTIAL. */
function mergeOutcomes(outcomes: (CacheOutcome | undefined)[]): CacheOutcome | undefined {
  const set = new Set(outcomes.filter((o): o is CacheOutcome => o !== undefined));
  if (set.size === 0) return undefined;
  if (set.size === 1) return [...set][0];
  return 'PARTIAL';
}

export const scoreRoutes = new Hono<EdgeEnv>();

scoreRoutes.post('/score', async (c) => {
  const startedAt = performance.now();
  const limits = edgeLimits(c.env);
  const type = mediaTypeOf(c.req.header('content-type'));
  let req: ParsedScoreRequest;
  if (isJsonMediaType(type)) {
    req = parseScoreJson(parseJsonText(await c.req.text()), limits);
  } else if (type === 'multipart/form-data') {
    let form: FormData;
    try {
      form = await c.req.raw.formData();
    } catch (err) {
      throw new ApiFailure('invalid_multipart', `the multipart/form-data body cannot be parsed: ${(err as Error).message}`);
    }
    req = await parseScoreMultipart(form, limits);
  } else {
    throw new ApiFailure('unsupported_media_type', `Content-Type must be application/json or multipart/form-data (got "${type || 'none'}")`);
  }
  const { body, cache } = await scoreAtEdge(scoreContext(c, startedAt), req.prompt, req.items);
  if (cache !== undefined) c.header('x-cache', cache);
  return c.json(body);
});

scoreRoutes.post('/score:batch', async (c) => {
  const startedAt = performance.now();
  const limits = edgeLimits(c.env);
  const type = mediaTypeOf(c.req.header('content-type'));
  if (!isJsonMediaType(type)) throw new ApiFailure('unsupported_media_type', `Content-Type must be application/json (got "${type || 'none'}")`);
  const prepared = parseBatchJson(parseJsonText(await c.req.text()), limits);
  const sc = scoreContext(c, startedAt);
  const outcomes: (CacheOutcome | undefined)[] = [];
  const results = await Promise.all(
    prepared.map(async (p) => {
      const fail = (f: ApiFailure) => edgeProblemBody(c, f.code, f.message, { ...(f.opts.status !== undefined ? { status: f.opts.status } : {}), ...(f.opts.errors !== undefined ? { errors: f.opts.errors } : {}) });
      if (p instanceof ApiFailure) return fail(p);
      try {
        const { body, cache } = await scoreAtEdge(sc, p.prompt, p.items);
        outcomes.push(cache);
        return body;
      } catch (err) {
        // One request's bad images fail that request; anything else (no origin, bad origin) fails the call.
        if (err instanceof ApiFailure) return fail(err);
        throw err;
      }
    }),
  );
  const cache = mergeOutcomes(outcomes);
  if (cache !== undefined) c.header('x-cache', cache);
  return c.json({ results });
});
