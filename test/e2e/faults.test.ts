// Faults (issue 8) on the whole loopback stack, with load where it matters:
//
// - a GPU service SIGKILLed mid-load and started again on the same port (two
//   origins): every answer is 200/202, or 503 origin_unavailable + Retry-After
//   — never another 5xx, never a hang (each request has a timeout) — and jobs
//   submitted during the outage (one origin down, then both) finish;
// - the webhook receiver flapping (connections refused, then 503, then up,
//   several times) while several jobs deliver: every job's webhook is answered
//   2xx exactly once, every attempt carries the same webhook-id and verifies;
// - `wrangler dev` stopped and started again mid-job: the job completes with
//   every item, its webhook arrives, and the state (API keys, cached results)
//   survives.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '../../contracts/api/index.js';
import { runMix, stats, formatStats } from './support/load-mix.js';
import { b64, finished, getJob, startStack, uniqueJpegs, until, WEBHOOK_SECRET, type Delivery, type Stack } from './support/stack.js';

let s: Stack;
let unique: (n: number) => Buffer;
let uniqueN = 0;

beforeAll(async () => {
  s = await startStack({ origins: 2 });
  unique = await uniqueJpegs();
}, 240_000);

afterAll(async () => {
  await s?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const auth = (key = s.key) => ({ authorization: `Bearer ${key}` });

async function postJob(body: unknown, key = s.key): Promise<Job> {
  const res = await fetch(`${s.edgeUrl}/v1/jobs`, { method: 'POST', headers: { ...auth(key), 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  expect(res.status, text).toBe(202);
  return JSON.parse(text) as Job;
}

/** Items of never-seen images (so the GPU tier must do the work). */
const freshItems = (n: number, perItem: number, tag: string) =>
  Array.from({ length: n }, (_, i) => ({ id: `${tag}-${i}`, prompt: `${tag} item ${i}`, images: Array.from({ length: perItem }, () => b64(unique(uniqueN++))) }));

/** The deliveries of one job's message (its id is in the body). */
const deliveriesOf = (jobId: string): Delivery[] => s.receiver.deliveries.filter((d) => d.body.includes(`"id":"${jobId}"`));

describe('faults: GPU service killed and restarted mid-load', () => {
  it('answers 200 or 503 + Retry-After throughout, and jobs submitted during the outage finish', async () => {
    const keys = await Promise.all(Array.from({ length: 8 }, (_, i) => s.createKey('high', `faults-${i}`).then((k) => k.key)));
    const outageJobs: { id: string; total: number }[] = [];
    const chaos = (async () => {
      await sleep(3_000);
      await s.killOrigin(0);
      outageJobs.push({ id: (await postJob({ items: freshItems(6, 2, 'one-down') })).id, total: 6 });
      await sleep(4_000);
      await s.startOrigin(0);
    })();
    const r = await runMix({ edgeUrl: s.edgeUrl, keys, connections: 8, durationMs: 12_000, images: s.images, imageUrl: s.imageServer.url, unique: (n) => unique(10_000_000 + n), runId: 7, timeoutMs: 30_000 });
    await chaos;
    console.log(`faults: origin 0 killed at 3 s, back at ~7 s\n${formatStats(stats(r))}`);

    const bad = r.outcomes.filter((o) => !(o.status === 200 || o.status === 202 || (o.status === 503 && o.code === 'origin_unavailable')) || o.malformed !== null);
    expect(bad.slice(0, 10).map((o) => `${o.kind} at ${o.at.toFixed(0)} ms: ${o.status} ${o.code ?? ''} ${o.malformed ?? ''}`)).toEqual([]);
    // With one origin left, the other takes the work: nearly everything succeeds.
    const ok = r.outcomes.filter((o) => o.status === 200 || o.status === 202).length;
    expect(ok / r.outcomes.length).toBeGreaterThan(0.9);

    // Both origins down: an immediate 503 + Retry-After, never a hang; a job is still accepted.
    await s.killOrigin(0);
    await s.killOrigin(1);
    const t0 = Date.now();
    const down = await fetch(`${s.edgeUrl}/v1/score`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'nobody home', images: [b64(unique(uniqueN++))] }), signal: AbortSignal.timeout(30_000) });
    expect(down.status).toBe(503);
    expect(Number(down.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await down.json()).toMatchObject({ code: 'origin_unavailable' });
    expect(Date.now() - t0).toBeLessThan(25_000);
    outageJobs.push({ id: (await postJob({ items: freshItems(5, 2, 'all-down') })).id, total: 5 });
    await sleep(2_000);
    await s.startOrigin(0);
    await s.startOrigin(1);

    // Nothing accepted is lost: the outage jobs and every job of the load mix complete.
    for (const j of outageJobs) {
      const done = await finished(s.edgeUrl, j.id, s.key, 120_000);
      expect(done.status, j.id).toBe('completed');
      expect(done.progress).toMatchObject({ total: j.total, done: j.total, succeeded: j.total, failed: 0 });
    }
    for (const j of r.jobs) {
      const done = await finished(s.edgeUrl, j.id, j.key, 120_000);
      expect(done.progress).toMatchObject({ total: 2, succeeded: 2, failed: 0 });
    }
    // Both are serving again.
    for (const u of s.originUrls) expect((await fetch(`${u}/readyz`)).status).toBe(200);
  });
});

describe('faults: webhook receiver flapping', () => {
  it('delivers every job webhook exactly once as 2xx, with one webhook-id per job and every attempt verified', async () => {
    // Start down: the first attempts of every job meet a receiver that refuses connections.
    await s.receiver.down();
    const jobs: string[] = [];
    for (let i = 0; i < 4; i++) jobs.push((await postJob({ items: freshItems(2, 1, `flap-${i}`), webhook: { url: `${s.receiver.url}/hook`, secret: WEBHOOK_SECRET }, metadata: { flap: i } })).id);
    // Flap: refused → 503 → up, three times, while the jobs finish and their deliveries retry.
    for (let cycle = 0; cycle < 3; cycle++) {
      await s.receiver.down();
      await sleep(900);
      s.receiver.failWith(503);
      await s.receiver.up();
      await sleep(900);
      s.receiver.failWith(undefined);
      await sleep(400);
    }
    for (const id of jobs) {
      await finished(s.edgeUrl, id, s.key, 60_000);
      await until(`the webhook of ${id}`, async () => (deliveriesOf(id).some((d) => d.answered < 300) ? true : undefined), 60_000);
    }
    await sleep(3_000); // time for any wrong extra attempt to show up

    let attempts = 0;
    for (const id of jobs) {
      const ds = deliveriesOf(id);
      attempts += ds.length;
      expect(ds.filter((d) => d.answered < 300), `2xx answers for ${id}`).toHaveLength(1);
      expect(ds.at(-1)!.answered, 'no attempt after the 2xx').toBeLessThan(300);
      expect(new Set(ds.map((d) => d.id)).size, 'one webhook-id per message').toBe(1);
      expect(ds.map((d) => d.failure)).toEqual(ds.map(() => null));
      const payload = JSON.parse(ds.at(-1)!.body) as { type: string; data: Job };
      expect(payload).toMatchObject({ type: 'job.completed', data: { id, status: 'completed' } });
      const log = (await (await fetch(`${s.edgeUrl}/v1/jobs/${id}/deliveries`, { headers: auth() })).json()) as { deliveries: { outcome: string }[] };
      expect(log.deliveries.at(-1)!.outcome).toBe('delivered');
      expect(log.deliveries.filter((d) => d.outcome === 'delivered')).toHaveLength(1);
    }
    // The flapping really met the deliveries: refused attempts are not seen here, 503s are.
    expect(attempts).toBeGreaterThan(jobs.length);
  });
});

describe('faults: wrangler dev restarted mid-job', () => {
  it('completes the job after the restart, delivers its webhook, and keeps keys and cached results', async () => {
    const items = freshItems(32, 4, 'restart');
    const job = await postJob({ items, webhook: { url: `${s.receiver.url}/hook`, secret: WEBHOOK_SECRET } });
    const mid = await until('the first results', async () => {
      const j = await getJob(s.edgeUrl, job.id, s.key);
      return j.progress.done > 0 ? j : undefined;
    });
    await s.restartEdge();
    expect(mid.progress.done, 'the restart came mid-job').toBeLessThan(32);

    // State survives: the key made before the restart still works, and the job is there.
    const after = await getJob(s.edgeUrl, job.id, s.key);
    expect(after.progress.total).toBe(32);
    expect(after.progress.done).toBeGreaterThanOrEqual(mid.progress.done);
    const done = await finished(s.edgeUrl, job.id, s.key, 120_000, true);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ total: 32, done: 32, succeeded: 32, failed: 0 });
    expect(done.items!.map((i) => i.id)).toEqual(items.map((i) => i.id));

    const hook = await until('the webhook after the restart', async () => deliveriesOf(job.id).find((d) => d.answered < 300), 60_000);
    expect(hook.failure).toBeNull();
    expect(deliveriesOf(job.id).filter((d) => d.answered < 300)).toHaveLength(1);

    // Results scored before the restart are still cached (KV persisted): the same request is a HIT with the job's rewards.
    const first = items[0]!;
    const res = await fetch(`${s.edgeUrl}/v1/score`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: JSON.stringify({ prompt: first.prompt, images: first.images }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-cache')).toBe('HIT');
    expect(((await res.json()) as { rewards: number[] }).rewards).toEqual(done.items![0]!.result!.rewards);
  });
});
