// The whole stack under sustained load, for docs/benchmarks.md: `wrangler dev`
// (workerd, local KV / Cache API / queues / Durable Objects) in front of two
// `imagereward serve` (ORT, one thread each, the tiny224 test model), started
// by the e2e suite's helper (test/e2e/support/stack.ts), driven by N clients
// (one high-tier key each) with the e2e mix (test/e2e/support/load-mix.ts):
// cache hits, misses with never-seen images, multipart uploads, URL images and
// small jobs. Prints req/s and p50/p99 per kind, the status counts, and the
// RSS of every process after the warm-up, at its peak and at the end.
// test/e2e/load.test.ts asserts the same run's correctness and bounds; this
// file only measures. Everything on loopback.
//
//   node --import tsx bench/stack-load.ts [seconds] [connections]
import { pathToFileURL } from 'node:url';
import { formatStats, runMix, stats, type KindStats } from '../test/e2e/support/load-mix.js';
import { cpuMsOf, startStack, uniqueJpegs, type ProcessRss } from '../test/e2e/support/stack.js';

export interface StackLoadResult {
  seconds: number;
  connections: number;
  kinds: KindStats[];
  /** Per process: RSS after the warm-up, peak during the run, at the end (MB); CPU seconds during the run. */
  processes: { name: string; warmMB: number; peakMB: number; endMB: number; cpuS: number }[];
  /** Requests with no answer, a 5xx, or a malformed answer. */
  failures: number;
  jobsAccepted: number;
}

export async function benchStackLoad(seconds = 20, connections = 16, warmupSeconds = 5): Promise<StackLoadResult> {
  const stack = await startStack({ origins: 2 });
  try {
    const keys = await Promise.all(Array.from({ length: connections }, (_, i) => stack.createKey('high', `bench-${i}`).then((k) => k.key)));
    const base = { edgeUrl: stack.edgeUrl, keys, connections, images: stack.images, imageUrl: stack.imageServer.url, unique: await uniqueJpegs() };
    await runMix({ ...base, durationMs: warmupSeconds * 1000, runId: 1 });
    const warm: ProcessRss[] = stack.rss();
    const cpu0 = new Map(warm.map((p) => [p.pid, cpuMsOf(p.pid)]));
    const peak = new Map<number, number>();
    const sampler = setInterval(() => {
      for (const p of stack.rss()) peak.set(p.pid, Math.max(peak.get(p.pid) ?? 0, p.rssMB));
    }, 250);
    let r;
    try {
      r = await runMix({ ...base, durationMs: seconds * 1000, runId: 2, strictHits: true });
    } finally {
      clearInterval(sampler);
    }
    const end = stack.rss();
    return {
      seconds,
      connections,
      kinds: stats(r),
      processes: warm.map((w) => {
        const e = end.find((p) => p.pid === w.pid);
        return { name: w.name, warmMB: w.rssMB, peakMB: peak.get(w.pid) ?? NaN, endMB: e?.rssMB ?? NaN, cpuS: (cpuMsOf(w.pid) - (cpu0.get(w.pid) ?? NaN)) / 1000 };
      }),
      failures: r.outcomes.filter((o) => o.status === 0 || o.status >= 500 || o.malformed !== null).length,
      jobsAccepted: r.jobs.length,
    };
  } finally {
    await stack.stop();
  }
}

/** Prints the markdown tables; true when no request failed (no 5xx, no hang, nothing malformed). */
export function printStackLoad(r: StackLoadResult): boolean {
  console.log(formatStats(r.kinds));
  console.log(`\n${r.connections} clients, ${r.seconds} s measured; jobs accepted: ${r.jobsAccepted}; failed or malformed answers: ${r.failures}\n`);
  console.log('| process | RSS after warm-up MB | peak MB | end MB | end ÷ warm-up | CPU s in the run |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const p of r.processes) {
    console.log(`| ${p.name} | ${p.warmMB.toFixed(0)} | ${p.peakMB.toFixed(0)} | ${p.endMB.toFixed(0)} | ${(p.endMB / p.warmMB).toFixed(2)}× | ${p.cpuS.toFixed(1)} |`);
  }
  return r.failures === 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await benchStackLoad(Number(process.argv[2] ?? 20), Number(process.argv[3] ?? 16));
  if (!printStackLoad(r)) process.exitCode = 1;
}
