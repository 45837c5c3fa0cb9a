// A realistic request mix driven against the edge by N concurrent clients for a
// fixed time — shared by test/e2e/load.test.ts, test/e2e/faults.test.ts and
// bench/stack-load.ts. A hand-written loop rather than autocannon because every
// answer is checked (shape, codes, headers) and timed per kind:
//
//   hit        JSON, a (prompt, images) pair scored before → X-Cache: HIT
//   miss       JSON, a fixed image plus a never-seen JPEG → MISS / PARTIAL
//   multipart  multipart/form-data, the same shape as miss
//   url        a {url} image from the stack's image server (allow-listed)
//   job        POST /v1/jobs with 2 small items → 202; ids are returned so the
//              caller can check every accepted job finishes
//
// Each client uses its own API key (one tenant each, as real traffic is), so
// the per-key rate limit is not what is measured. Each request has a timeout:
// a hang is an outcome (status 0), never a stuck test.
import { MODEL_ID, b64 } from './stack.js';

export type Kind = 'hit' | 'miss' | 'multipart' | 'url' | 'job';
export const KINDS: readonly Kind[] = ['hit', 'miss', 'multipart', 'url', 'job'];

/** The rotation every client walks through (offset by its index): hits dominate, as in production. */
const ROTATION: readonly Kind[] = ['hit', 'miss', 'hit', 'multipart', 'url', 'hit', 'miss', 'hit', 'url', 'multipart', 'hit', 'job'];

export interface MixOptions {
  edgeUrl: string;
  /** One per client (reused round-robin when fewer). */
  keys: readonly string[];
  connections: number;
  durationMs: number;
  /** Known images (hits once warmed) and the image server's base URL serving them as /img/<i>. */
  images: readonly Buffer[];
  imageUrl: string;
  /** A never-seen image per call. */
  unique: (n: number) => Buffer;
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number;
  /** Whether a `hit` must say X-Cache: HIT (false during warm-up). */
  strictHits?: boolean;
  /** Distinguishes the unique images of several runs. */
  runId?: number;
  /** Kinds to leave out of the rotation (e.g. no jobs while measuring the scoring path alone). */
  without?: readonly Kind[];
}

export interface Outcome {
  kind: Kind;
  /** HTTP status; 0 = no answer (timeout or connection error). */
  status: number;
  ms: number;
  /** Why the answer is not well-formed, or null. */
  malformed: string | null;
  /** The problem code of a non-2xx answer. */
  code?: string;
  retryAfter?: string | null;
  /** When the request was sent (ms since the run began). */
  at: number;
}

export interface MixResult {
  outcomes: Outcome[];
  /** Every accepted job with the key that submitted it (jobs are visible to their tenant only). */
  jobs: { id: string; key: string }[];
  durationMs: number;
}

const PROMPTS = [
  'a painting of an ocean with clouds and birds',
  'a cat wearing a tiny wizard hat, studio lighting',
  'an isometric city at night, neon signs, rain',
  'portrait of an old fisherman, oil on canvas',
  'a bowl of ramen, food photography, 85mm',
  'a castle on a floating island, fantasy concept art',
];

/** The fixed (prompt, images) pairs of `hit` requests: warm them once and they are hits. */
export function hitBody(images: readonly Buffer[], k: number): string {
  const p = k % PROMPTS.length;
  return JSON.stringify({ prompt: PROMPTS[p], images: [b64(images[p % images.length]!), b64(images[(p + 1) % images.length]!)] });
}

/** Checks a score answer: the model, one reward/rank/cached flag per image, a sane X-Cache. */
function checkScore(body: unknown, n: number, xCache: string | null, mustHit: boolean): string | null {
  if (typeof body !== 'object' || body === null) return 'not a JSON object';
  const b = body as { model?: unknown; rewards?: unknown; ranking?: unknown; cached?: unknown };
  if (b.model !== MODEL_ID) return `model ${String(b.model)}`;
  if (!Array.isArray(b.rewards) || b.rewards.length !== n || !b.rewards.every((r) => typeof r === 'number' && Number.isFinite(r))) return `rewards ${JSON.stringify(b.rewards)}`;
  if (!Array.isArray(b.ranking) || b.ranking.length !== n || !b.ranking.every((r) => Number.isInteger(r) && (r as number) >= 1 && (r as number) <= n)) return `ranking ${JSON.stringify(b.ranking)}`;
  if (!Array.isArray(b.cached) || b.cached.length !== n || !b.cached.every((c) => typeof c === 'boolean')) return `cached ${JSON.stringify(b.cached)}`;
  if (!['HIT', 'MISS', 'PARTIAL'].includes(xCache ?? '')) return `x-cache ${xCache}`;
  if (mustHit && xCache !== 'HIT') return `a warmed request answered x-cache ${xCache}`;
  return null;
}

/** Checks a problem answer: problem+json with a code and the same status; 503 and 429 carry Retry-After. */
function checkProblem(res: Response, body: unknown): string | null {
  if (!(res.headers.get('content-type') ?? '').startsWith('application/problem+json')) return `content-type ${res.headers.get('content-type')}`;
  const b = body as { code?: unknown; status?: unknown } | null;
  if (typeof b?.code !== 'string' || b.status !== res.status) return `problem ${JSON.stringify(body)}`;
  if ((res.status === 503 || res.status === 429) && !(Number(res.headers.get('retry-after')) >= 1)) return `${res.status} without Retry-After`;
  return null;
}

export async function runMix(opts: MixOptions): Promise<MixResult> {
  const outcomes: Outcome[] = [];
  const jobs: { id: string; key: string }[] = [];
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const run = opts.runId ?? 0;
  let uniqueN = run * 1_000_000;
  const t0 = performance.now();
  const deadline = t0 + opts.durationMs;

  const one = async (kind: Kind, key: string, k: number): Promise<void> => {
    const auth = { authorization: `Bearer ${key}` };
    const json = { ...auth, 'content-type': 'application/json' };
    let path = '/v1/score';
    let init: RequestInit;
    let n = 2;
    switch (kind) {
      case 'hit':
        init = { method: 'POST', headers: json, body: hitBody(opts.images, k) };
        break;
      case 'miss':
        init = { method: 'POST', headers: json, body: JSON.stringify({ prompt: PROMPTS[k % PROMPTS.length], images: [b64(opts.images[k % opts.images.length]!), b64(opts.unique(uniqueN++))] }) };
        break;
      case 'multipart': {
        const form = new FormData();
        form.append('prompt', PROMPTS[(k + 1) % PROMPTS.length]!);
        form.append('a', new Blob([opts.unique(uniqueN++)], { type: 'image/jpeg' }), 'a.jpg');
        form.append('b', new Blob([opts.images[(k + 3) % opts.images.length]!], { type: 'image/png' }), 'b.png');
        init = { method: 'POST', headers: auth, body: form };
        break;
      }
      case 'url':
        n = 1;
        init = { method: 'POST', headers: json, body: JSON.stringify({ prompt: PROMPTS[(k + 2) % PROMPTS.length], images: [{ url: `${opts.imageUrl}/img/${k % opts.images.length}` }] }) };
        break;
      case 'job':
        path = '/v1/jobs';
        init = {
          method: 'POST',
          headers: json,
          body: JSON.stringify({
            items: [
              { id: 'a', prompt: PROMPTS[k % PROMPTS.length], images: [b64(opts.unique(uniqueN++))] },
              { id: 'b', prompt: PROMPTS[(k + 1) % PROMPTS.length], images: [b64(opts.images[k % opts.images.length]!)] },
            ],
            metadata: { run, k },
          }),
        };
        break;
    }
    const at = performance.now() - t0;
    const started = performance.now();
    let out: Outcome;
    try {
      const res = await fetch(`${opts.edgeUrl}${path}`, { ...init, signal: AbortSignal.timeout(timeoutMs) });
      const text = await res.text();
      const ms = performance.now() - started;
      let body: unknown;
      try {
        body = JSON.parse(text) as unknown;
      } catch {
        body = undefined;
      }
      let malformed: string | null;
      if (body === undefined) malformed = `not JSON: ${text.slice(0, 120)}`;
      else if (res.status === 200 && kind !== 'job') malformed = checkScore(body, n, res.headers.get('x-cache'), kind === 'hit' && opts.strictHits === true);
      else if (res.status === 202 && kind === 'job') {
        const id = (body as { id?: unknown }).id;
        malformed = typeof id === 'string' && res.headers.get('location') !== null ? null : `job answer ${text.slice(0, 120)}`;
        if (typeof id === 'string') jobs.push({ id, key });
      } else if (res.status >= 400) malformed = checkProblem(res, body);
      else malformed = `unexpected status ${res.status} for ${kind}`;
      out = { kind, status: res.status, ms, malformed, at, retryAfter: res.headers.get('retry-after') };
      if (res.status >= 400) out.code = String((body as { code?: unknown } | undefined)?.code);
    } catch (err) {
      out = { kind, status: 0, ms: performance.now() - started, malformed: `no answer: ${(err as Error).name}: ${(err as Error).message}`, at };
    }
    outcomes.push(out);
  };

  const rotation = ROTATION.filter((k) => !(opts.without ?? []).includes(k));
  await Promise.all(
    Array.from({ length: opts.connections }, async (_, c) => {
      const key = opts.keys[c % opts.keys.length]!;
      for (let i = 0; performance.now() < deadline; i++) {
        const k = c * 7919 + i;
        await one(rotation[(c + i) % rotation.length]!, key, k);
      }
    }),
  );
  return { outcomes, jobs, durationMs: performance.now() - t0 };
}

export interface KindStats {
  kind: Kind | 'all';
  count: number;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
  statuses: Record<string, number>;
}

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

/** req/s, p50/p99/max latency and status counts, per kind and over all. */
export function stats(r: MixResult): KindStats[] {
  const rows: KindStats[] = [];
  for (const kind of [...KINDS, 'all'] as const) {
    const os = kind === 'all' ? r.outcomes : r.outcomes.filter((o) => o.kind === kind);
    const ms = os.map((o) => o.ms).sort((a, b) => a - b);
    const statuses: Record<string, number> = {};
    for (const o of os) statuses[o.status] = (statuses[o.status] ?? 0) + 1;
    rows.push({ kind, count: os.length, perSecond: os.length / (r.durationMs / 1000), p50: percentile(ms, 0.5), p99: percentile(ms, 0.99), max: ms.at(-1) ?? NaN, statuses });
  }
  return rows;
}

export function formatStats(rows: readonly KindStats[]): string {
  const lines = ['| kind | requests | req/s | p50 ms | p99 ms | max ms | statuses |', '| --- | ---: | ---: | ---: | ---: | ---: | --- |'];
  for (const s of rows) {
    const st = Object.entries(s.statuses).map(([c, n]) => `${c} × ${n}`).join(', ');
    lines.push(`| ${s.kind} | ${s.count} | ${s.perSecond.toFixed(1)} | ${s.p50.toFixed(1)} | ${s.p99.toFixed(1)} | ${s.max.toFixed(0)} | ${st} |`);
  }
  return lines.join('\n');
}
