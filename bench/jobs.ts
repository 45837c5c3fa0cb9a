// Items/s through the jobs path (POST /v1/jobs → queue → consumer → GPU service
// → job object) versus the same number of POST /v1/score calls, and how long
// after the job's last item its webhook arrives. `wrangler dev` (local Queues,
// Durable Objects, R2) in front of one `imagereward serve` (ORT, tiny random
// model), a webhook receiver on loopback. Every image is distinct (no cache
// hits on either path); each item is one prompt with 2 PNGs.
//
//   node --import tsx bench/jobs.ts [items] [score-concurrency]
import http from 'node:http';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { startServeChild } from './serve-child.js';
import { RANDOM_MODEL_ID, TINY_RANDOM_CONFIG, writeRandomModel } from '../gpu-service/model/random-model.js';
import { startWranglerDev } from '../test/support/wrangler-dev.js';

const SECRET = 'bench-origin-secret';

export interface JobsBench {
  items: number;
  jobSeconds: number;
  jobItemsPerSecond: number;
  scoreSeconds: number;
  scoreItemsPerSecond: number;
  scoreConcurrency: number;
  webhookDelayMs: number;
}


async function distinctPngs(n: number, salt: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) =>
      (await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: i % 256, g: Math.floor(i / 256) % 256, b: salt } } }).png().toBuffer()).toString('base64'),
    ),
  );
}

export async function benchJobs(items = 200, concurrency = 8, outDir = join('bench', 'out')): Promise<JobsBench> {
  const modelDir = resolve(outDir, 'random-tiny');
  await writeRandomModel({ out: modelDir, config: TINY_RANDOM_CONFIG, seed: 0 });
  const service = await startServeChild(modelDir, SECRET);
  let webhookAt = 0;
  const receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      webhookAt ||= Date.now();
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const hook = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
  const edge = await startWranglerDev({
    vars: { ORIGINS: service.url, ORIGIN_SECRET: SECRET, MODEL_ID: RANDOM_MODEL_ID, AUTH: 'off', WEBHOOK_ALLOW_INSECURE_LOOPBACK: 'on' },
  });
  try {
    const a = await distinctPngs(items * 2, 1);
    const b = await distinctPngs(items * 2, 2);
    const json = { 'content-type': 'application/json' };
    // Warm both paths once (isolate start, model warm-up).
    await fetch(`${edge.url}/v1/score`, { method: 'POST', headers: json, body: JSON.stringify({ prompt: 'warm', images: [{ data: (await distinctPngs(1, 3))[0] }] }) });

    const t0 = Date.now();
    const created = (await (
      await fetch(`${edge.url}/v1/jobs`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ items: Array.from({ length: items }, (_, i) => ({ prompt: `bench prompt ${i % 10}`, images: [{ data: a[2 * i] }, { data: a[2 * i + 1] }] })), webhook: { url: hook } }),
      })
    ).json()) as { id: string };
    let completedAt = 0;
    for (;;) {
      const j = (await (await fetch(`${edge.url}/v1/jobs/${created.id}?items=false`)).json()) as { status: string; completed_at?: string; progress: { succeeded: number } };
      if (j.status === 'completed' || j.status === 'failed') {
        if (j.progress.succeeded !== items) throw new Error(`job ended ${j.status} with ${j.progress.succeeded}/${items} succeeded`);
        completedAt = Date.parse(j.completed_at!);
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const jobSeconds = (completedAt - t0) / 1000;
    for (let i = 0; i < 100 && webhookAt === 0; i++) await new Promise((r) => setTimeout(r, 50));

    const t1 = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < items) {
          const i = next++;
          const r = await fetch(`${edge.url}/v1/score`, { method: 'POST', headers: json, body: JSON.stringify({ prompt: `bench prompt ${i % 10}`, images: [{ data: b[2 * i] }, { data: b[2 * i + 1] }] }) });
          if (r.status !== 200) throw new Error(`/v1/score answered ${r.status}`);
          await r.arrayBuffer();
        }
      }),
    );
    const scoreSeconds = (Date.now() - t1) / 1000;
    return {
      items,
      jobSeconds,
      jobItemsPerSecond: items / jobSeconds,
      scoreSeconds,
      scoreItemsPerSecond: items / scoreSeconds,
      scoreConcurrency: concurrency,
      webhookDelayMs: webhookAt > 0 ? webhookAt - completedAt : NaN,
    };
  } finally {
    await edge.stop();
    service.child.kill('SIGTERM');
    receiver.close();
  }
}

export function printJobsBench(r: JobsBench): void {
  console.log('| path | items (2 images each) | seconds | items/s |');
  console.log('| --- | ---: | ---: | ---: |');
  console.log(`| POST /v1/jobs → queue → consumer (until completed_at) | ${r.items} | ${r.jobSeconds.toFixed(2)} | ${r.jobItemsPerSecond.toFixed(1)} |`);
  console.log(`| POST /v1/score, ${r.scoreConcurrency} concurrent clients | ${r.items} | ${r.scoreSeconds.toFixed(2)} | ${r.scoreItemsPerSecond.toFixed(1)} |`);
  console.log(`\nWebhook delay after the last item (receiver clock − completed_at): ${r.webhookDelayMs.toFixed(0)} ms`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  printJobsBench(await benchJobs(Number(process.argv[2] ?? 200), Number(process.argv[3] ?? 8)));
}
