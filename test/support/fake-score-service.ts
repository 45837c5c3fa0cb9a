// A stand-in for the scoring service, for unit tests of the HTTP layer only
// (gpu-service/server/app.ts). Integration tests use the real createScoreService.
//
// Reward of an image = its byte length / 1000. Bytes starting with "BAD" fail
// with image_decode_failed (422). Prompt "QUEUE_FULL" throws a queue_full error;
// prompt "SLOW" waits until aborted (or `slowMs`).
import { rankRewards } from '../../contracts/api/ranking.js';
import type { ScoringService, ServiceItemResult, ServiceScoreOutcome, ServiceScoreRequest } from '../../gpu-service/server/app.js';

export class FakeQueueFullError extends Error {
  override name = 'QueueFullError';
  readonly code = 'queue_full';
  readonly retryAfterSeconds = 7;
}

export interface FakeService extends ScoringService {
  calls: ServiceScoreRequest[];
  closed: boolean;
  close(opts?: { drainMs?: number }): Promise<void>;
  isReady: boolean;
  slowMs: number;
  aborted: number;
}

export function fakeScoreService(): FakeService {
  const svc: FakeService = {
    modelId: 'fake-model',
    backend: 'ort',
    skippedBackends: [{ name: 'native', reason: 'no GPU in the fake' }],
    calls: [],
    closed: false,
    async close() {
      svc.closed = true;
      svc.isReady = false;
    },
    isReady: true,
    slowMs: 60_000,
    aborted: 0,
    ready: () => svc.isReady,
    metrics: { render: () => '# TYPE imagereward_fake_total counter\nimagereward_fake_total 1\n' },
    async score(req): Promise<ServiceScoreOutcome> {
      svc.calls.push(req);
      if (req.prompt === 'QUEUE_FULL') throw new FakeQueueFullError('queue full');
      if (req.prompt === 'SLOW') {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, svc.slowMs);
          req.signal?.addEventListener('abort', () => {
            clearTimeout(t);
            svc.aborted++;
            const e = new Error('canceled');
            e.name = 'CanceledError';
            (e as Error & { code: string }).code = 'canceled';
            reject(e);
          });
        });
      }
      const results: ServiceItemResult[] = req.images.map((b) =>
        b.length >= 3 && b[0] === 0x42 && b[1] === 0x41 && b[2] === 0x44
          ? { ok: false, code: 'image_decode_failed', message: 'corrupt', status: 422 }
          : { ok: true, reward: b.length / 1000, cached: false },
      );
      const ok = results.map((r, i) => ({ r, i })).filter((x) => x.r.ok);
      const ranks = rankRewards(ok.map((x) => (x.r as { reward: number }).reward));
      const ranking: (number | null)[] = results.map(() => null);
      ok.forEach((x, j) => (ranking[x.i] = ranks[j] ?? null));
      return { results, ranking, timings: { queueMs: 1, preprocessMs: 2, inferenceMs: 3, totalMs: 6 } };
    },
  };
  return svc;
}
