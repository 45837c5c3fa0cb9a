// Sustained load against the whole loopback stack (issue 8, "Load"): 16
// concurrent clients, each with its own high-tier key, for 15 s after a 4 s
// warm-up, with the realistic mix of test/e2e/support/load-mix.ts (cache hits,
// misses with fresh images, multipart uploads, URL images, small jobs).
//
// Asserted: zero 5xx and zero unanswered requests, every answer well-formed,
// every accepted job completes with all its items, and every process of the
// stack is bounded: each GPU service (what runs in production as it runs here)
// ends with an RSS at most 1.5× its RSS after the warm-up; wrangler dev's own
// processes (node, workerd, esbuild — the local simulator, not what Cloudflare
// runs) stay under a fixed cap, because their RSS keeps creeping under load
// even with no jobs (see the printed table). Speed is printed, never asserted:
// the figures for docs/benchmarks.md come from `npm run bench` (bench/stack-load.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatStats, runMix, stats, type MixOptions, type MixResult } from './support/load-mix.js';
import { finished, startStack, uniqueJpegs, type ProcessRss, type Stack } from './support/stack.js';

const CONNECTIONS = 16;
const WARMUP_MS = 4_000;
const LOAD_MS = 15_000;

let stack: Stack | undefined;
let mix: Omit<MixOptions, 'durationMs'>;

beforeAll(async () => {
  stack = await startStack({ origins: 2 });
  const keys = await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => stack!.createKey('high', `load-${i}`).then((k) => k.key)));
  mix = { edgeUrl: stack.edgeUrl, keys, connections: CONNECTIONS, images: stack.images, imageUrl: stack.imageServer.url, unique: await uniqueJpegs() };
}, 240_000);

afterAll(async () => {
  await stack?.stop();
});

/** wrangler dev's processes (local KV / Cache API / queue simulation, inspector proxy): a fixed cap. */
const WRANGLER_CAP_MB = 768;
/** A process's allowed RSS at the end, given its RSS after the warm-up. */
const bound = (p: ProcessRss) => (p.name.startsWith('origin') ? 1.5 * p.rssMB : WRANGLER_CAP_MB);

describe('load: 16 clients for 15 s through wrangler dev and two GPU services', () => {
  it('answers every request well-formed with no 5xx, finishes every job, and keeps every process bounded', async () => {
    const s = stack!;
    // Warm-up: every hit pair scored once, every code path and allocator at its working size.
    const warm = await runMix({ ...mix, durationMs: WARMUP_MS, runId: 1, strictHits: false });
    expect(warm.outcomes.filter((o) => o.status === 0 || o.status >= 500).map((o) => `${o.kind} ${o.status} ${o.malformed}`)).toEqual([]);
    const rssWarm = s.rss();

    const peak = new Map<number, number>();
    const sampler = setInterval(() => {
      for (const p of s.rss()) peak.set(p.pid, Math.max(peak.get(p.pid) ?? 0, p.rssMB));
    }, 250);
    let r: MixResult;
    try {
      r = await runMix({ ...mix, durationMs: LOAD_MS, runId: 2, strictHits: true });
    } finally {
      clearInterval(sampler);
    }
    const rssEnd = s.rss();
    const table = stats(r);
    console.log(`load: ${CONNECTIONS} connections, ${(r.durationMs / 1000).toFixed(1)} s\n${formatStats(table)}`);
    console.log(rssTable(rssWarm, rssEnd, peak));

    const all = table.find((t) => t.kind === 'all')!;
    expect(all.count).toBeGreaterThan(100); // the run did real work (not a speed assertion)
    const bad = r.outcomes.filter((o) => o.status === 0 || o.status >= 500 || o.malformed !== null);
    expect(bad.slice(0, 10).map((o) => `${o.kind} ${o.status} ${o.code ?? ''} ${o.malformed ?? ''}`)).toEqual([]);
    // Every kind was exercised and (the mix sends only valid requests) answered 200 / 202.
    for (const t of table.filter((x) => x.kind !== 'all')) expect(t.count, t.kind).toBeGreaterThan(0);
    expect(r.outcomes.filter((o) => o.status !== (o.kind === 'job' ? 202 : 200)).length).toBe(0);

    // Bounded memory: every process that was there after the warm-up is still there and bounded.
    expect(rssWarm.filter((p) => p.name.startsWith('origin'))).toHaveLength(2);
    expect(rssWarm.some((p) => p.name.includes('workerd'))).toBe(true);
    for (const w of rssWarm) {
      const e = rssEnd.find((p) => p.pid === w.pid);
      expect(e, `${w.name} (pid ${w.pid}) is gone`).toBeDefined();
      expect(e!.rssMB, `${w.name}: ${w.rssMB.toFixed(0)} MB after warm-up → ${e!.rssMB.toFixed(0)} MB`).toBeLessThanOrEqual(bound(w));
    }

    // Nothing accepted is lost: every job of both runs completes with both items scored.
    const jobs = [...warm.jobs, ...r.jobs];
    expect(jobs.length).toBeGreaterThan(0);
    for (const { id, key } of jobs) {
      const job = await finished(s.edgeUrl, id, key);
      expect(job.status, id).toBe('completed');
      expect(job.progress).toMatchObject({ total: 2, done: 2, succeeded: 2, failed: 0 });
    }
  });
});

function rssTable(warm: readonly ProcessRss[], end: readonly ProcessRss[], peak: ReadonlyMap<number, number>): string {
  const lines = ['| process | RSS after warm-up MB | peak MB | end MB | end ÷ warm-up |', '| --- | ---: | ---: | ---: | ---: |'];
  for (const w of warm) {
    const e = end.find((p) => p.pid === w.pid);
    lines.push(`| ${w.name} | ${w.rssMB.toFixed(0)} | ${(peak.get(w.pid) ?? NaN).toFixed(0)} | ${e ? e.rssMB.toFixed(0) : 'gone'} | ${e ? (e.rssMB / w.rssMB).toFixed(2) : '—'} |`);
  }
  return lines.join('\n');
}
