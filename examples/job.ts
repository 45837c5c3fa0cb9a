// Submit an async job through the edge with the typed client, wait for it,
// and print every item's rewards. Each `--prompt` starts an item; the image
// files after it are that item's images:
//
//   IMAGEREWARD_API_KEY=irk_… node --import tsx examples/job.ts \
//     --prompt "a red fox" fox1.png fox2.png --prompt "an old lighthouse" lh1.webp lh2.webp
//
// Options: --webhook <url> (called with job.completed / job.failed, signed;
// see examples/webhook-receiver.ts), --idempotency-key <key> (default: a hash
// of the request, so running the same command twice returns the same job
// instead of scoring twice), --timeout <seconds> (default 600).
// IMAGEREWARD_URL defaults to http://127.0.0.1:8787. Outside this repository,
// import from 'imagereward-serve/client' instead of the relative path.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { createClient, ImageRewardApiError, JobWaitTimeoutError, type ClientJobRequest } from '../client/index.js';

interface Item {
  prompt: string;
  files: string[];
}

function parse(argv: string[]): { items: Item[]; webhook?: string; key?: string; timeoutS: number } {
  const items: Item[] = [];
  let webhook: string | undefined;
  let key: string | undefined;
  let timeoutS = 600;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--prompt' || arg === '-p') items.push({ prompt: value(), files: [] });
    else if (arg === '--webhook') webhook = value();
    else if (arg === '--idempotency-key') key = value();
    else if (arg === '--timeout') timeoutS = Number(value());
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`);
    else if (items.length === 0) throw new Error(`${arg}: give --prompt before its images`);
    else items[items.length - 1]!.files.push(arg);
  }
  if (items.length === 0 || items.some((it) => it.files.length === 0)) throw new Error('every --prompt needs at least one image file after it');
  return { items, ...(webhook !== undefined ? { webhook } : {}), ...(key !== undefined ? { key } : {}), timeoutS };
}

let args: ReturnType<typeof parse>;
try {
  args = parse(process.argv.slice(2));
} catch (err) {
  console.error(`${(err as Error).message}\nusage: node --import tsx examples/job.ts --prompt "<prompt>" <image>… [--prompt …] [--webhook <url>] [--idempotency-key <key>]`);
  process.exit(2);
}

const url = process.env.IMAGEREWARD_URL ?? 'http://127.0.0.1:8787';
const apiKey = process.env.IMAGEREWARD_API_KEY;
const ir = createClient(url, { ...(apiKey ? { apiKey } : {}), retry: { attempts: 3, maxDelayMs: 5_000 } });

try {
  const req: ClientJobRequest = {
    items: await Promise.all(args.items.map(async (it, i) => ({ id: `item-${i}`, prompt: it.prompt, images: await Promise.all(it.files.map((f) => readFile(f))) }))),
    metadata: { source: 'examples/job.ts' },
    ...(args.webhook !== undefined ? { webhook: { url: args.webhook } } : {}),
  };
  // The default key is the request's content: a retried or re-run command finds the job it made.
  const idempotencyKey = args.key ?? `example-${createHash('sha256').update(JSON.stringify(args)).digest('hex').slice(0, 32)}`;
  const created = await ir.createJob(req, { idempotencyKey });
  console.log(`job ${created.id} ${created.replayed ? '(replayed: made earlier with this Idempotency-Key)' : 'created'} · ${created.progress.total} items · key ${idempotencyKey}`);
  if (created.webhook?.secret) console.log(`webhook secret (shown only now): ${created.webhook.secret}`);

  const job = await ir.waitForJob(created.id, { intervalMs: 500, timeoutMs: args.timeoutS * 1000 });
  console.log(`status ${job.status} · ${job.progress.succeeded} succeeded, ${job.progress.failed} failed`);
  for (const item of job.items ?? []) {
    const input = args.items[item.index]!;
    console.log(`${item.id ?? item.index} "${input.prompt}": ${item.status}${item.error ? ` (${item.error.code}: ${item.error.message})` : ''}`);
    const result = item.result;
    if (!result) continue;
    for (const [i, file] of input.files.entries()) {
      const reward = result.rewards[i];
      const err = result.errors?.find((e) => e.index === i);
      console.log(`  ${reward === null || reward === undefined ? '   -  error  ' : `${String(result.ranking[i]).padStart(4)}  ${reward.toFixed(4).padStart(7)}`}  ${basename(file)}${err ? `: ${err.code}` : ''}`);
    }
  }
} catch (err) {
  if (err instanceof ImageRewardApiError) {
    console.error(`error ${err.code} (HTTP ${err.status}): ${err.detail}${err.requestId ? ` [request ${err.requestId}]` : ''}`);
    process.exit(1);
  }
  if (err instanceof JobWaitTimeoutError) {
    console.error(`${err.message}; it keeps running: GET /v1/jobs/${err.job.id}`);
    process.exit(1);
  }
  throw err;
}
