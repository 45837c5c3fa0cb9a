// The queue consumer: each message is one chunk of one job. Its pending items
// are scored through the same pipeline as POST /v1/score (scoreAtEdge: cache,
// origin pool, merge), so a job's scores are exactly /v1/score's and its pairs
// share the result cache.
//
//   an item whose images are all bad     → that item fails (recorded), the job goes on
//   the GPU tier unavailable / erroring  → what succeeded is recorded, the message is
//                                          retried with backoff; after max_retries it
//                                          lands in the dead-letter queue, whose
//                                          consumer fails the chunk's pending items
//                                          (nothing is silently lost)
import { ApiFailure, type PreparedImage } from '../../contracts/api/index.js';
import { edgeLimits } from '../config.js';
import type { Env } from '../env.js';
import { EdgeFailure } from '../problem-reply.js';
import { scoreAtEdge } from '../scoring/score-at-edge.js';
import type { ChunkMessage, ItemOutcome, StoredItemInput } from './job-object.js';

/** Seconds before the n-th retry of a chunk (n = attempts so far): 2, 4, 8 … capped at 60. */
export function chunkRetryDelaySeconds(attempts: number): number {
  return Math.min(60, 2 ** Math.max(1, attempts));
}

export const DEAD_LETTER_SUFFIX = '-dlq';

function isChunkMessage(v: unknown): v is ChunkMessage {
  const m = v as Partial<ChunkMessage> | null;
  return typeof m === 'object' && m !== null && typeof m.job === 'string' && /^[0-9a-f]{64}$/.test(m.job) && Number.isInteger(m.chunk) && (m.chunk as number) >= 0;
}

async function loadImages(env: Env, input: StoredItemInput): Promise<PreparedImage[]> {
  return Promise.all(
    input.images.map(async (img, index): Promise<PreparedImage> => {
      if ('error' in img) return { kind: 'error', error: { ...img.error, index } };
      if ('url' in img) return { kind: 'url', url: img.url };
      const obj = await env.JOB_BLOBS.get(img.blob);
      if (!obj) return { kind: 'error', error: { index, code: 'internal', message: `image ${index}: its stored bytes are gone`, status: 500 } };
      return { kind: 'bytes', bytes: new Uint8Array(await obj.arrayBuffer()) };
    }),
  );
}

/** Scores one chunk; throws when the GPU tier failed (after recording what did succeed). */
async function runChunk(env: Env, ctx: ExecutionContext, msg: ChunkMessage): Promise<void> {
  const stub = env.JOBS.get(env.JOBS.idFromString(msg.job));
  const work = await stub.chunkWork(msg.chunk);
  if (!work.run) return;
  const limits = edgeLimits(env);
  const outcomes: ItemOutcome[] = [];
  let transient: unknown;
  await Promise.all(
    work.items.map(async ({ idx, input }) => {
      try {
        const items = await loadImages(env, input);
        const { body } = await scoreAtEdge(
          { env, ctx, limits, requestId: `job-${msg.job.slice(0, 16)}-${msg.chunk}-${idx}`, tenant: work.tenant, startedAt: performance.now() },
          input.prompt,
          items,
        );
        const { timings: _t, ...result } = body;
        outcomes.push({ idx, result });
      } catch (err) {
        // The item's own fault (every image bad, or a 4xx the GPU tier gave for it): final.
        // The GPU tier's or the edge's 5xx, or anything unexpected: the chunk is retried.
        const transientFailure = err instanceof EdgeFailure ? (err.opts.status ?? 500) >= 500 : !(err instanceof ApiFailure);
        if (!transientFailure && err instanceof ApiFailure) {
          outcomes.push({ idx, error: { code: err.code, message: err.message, status: err.opts.status ?? 400 } });
        } else {
          transient ??= err;
        }
      }
    }),
  );
  if (outcomes.length > 0) await stub.record(msg.chunk, outcomes);
  if (transient !== undefined) throw transient;
}

export async function handleJobQueue(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext): Promise<void> {
  const deadLetter = batch.queue.endsWith(DEAD_LETTER_SUFFIX);
  await Promise.all(
    batch.messages.map(async (m) => {
      if (!isChunkMessage(m.body)) {
        console.error(JSON.stringify({ level: 'error', event: 'job_bad_message', queue: batch.queue, id: m.id }));
        m.ack();
        return;
      }
      const msg = m.body;
      if (deadLetter) {
        const stub = env.JOBS.get(env.JOBS.idFromString(msg.job));
        await stub.failChunk(msg.chunk, { code: 'origin_unavailable', message: 'the GPU tier could not score this item after every retry', status: 503 });
        m.ack();
        return;
      }
      try {
        await runChunk(env, ctx, msg);
        m.ack();
      } catch (err) {
        const delaySeconds = chunkRetryDelaySeconds(m.attempts);
        console.error(JSON.stringify({ level: 'warn', event: 'job_chunk_retry', job: msg.job, chunk: msg.chunk, attempts: m.attempts, delay_s: delaySeconds, message: err instanceof Error ? err.message : String(err) }));
        m.retry({ delaySeconds });
      }
    }),
  );
}
