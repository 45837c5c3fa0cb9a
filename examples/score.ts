// Score local image files against a prompt through the edge with the typed
// client, and print each image's reward and rank (1 = best).
//
// Run it from the repository root (an edge on `wrangler dev`, see README "Edge"):
//
//   IMAGEREWARD_API_KEY=irk_… node --import tsx examples/score.ts img1.webp img2.png --prompt "a red fox in the snow"
//
// IMAGEREWARD_URL defaults to http://127.0.0.1:8787. Outside this repository,
// import from 'imagereward-serve/client' instead of the relative path.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { createClient, ImageRewardApiError } from '../client/index.js';

const { values, positionals } = parseArgs({ options: { prompt: { type: 'string', short: 'p' } }, allowPositionals: true });
if (values.prompt === undefined || positionals.length === 0) {
  console.error('usage: node --import tsx examples/score.ts <image>… --prompt "<prompt>"');
  process.exit(2);
}

const url = process.env.IMAGEREWARD_URL ?? 'http://127.0.0.1:8787';
const apiKey = process.env.IMAGEREWARD_API_KEY;
// Retries only the answers the API marks "retry after Retry-After" (rate limit, busy, loading).
const ir = createClient(url, { ...(apiKey ? { apiKey } : {}), retry: { attempts: 2, maxDelayMs: 5_000 } });

try {
  const files = await Promise.all(positionals.map((p) => readFile(p)));
  const result = await ir.score(values.prompt, files);
  console.log(`model ${result.model} · cache ${result.cache ?? '-'} · request ${result.requestId ?? '-'}`);
  const failed = new Map((result.errors ?? []).map((e) => [e.index, e]));
  // Best first; failed images last, with their error.
  const order = positionals.map((_, i) => i).sort((a, b) => (result.ranking[a] ?? Infinity) - (result.ranking[b] ?? Infinity));
  console.log('rank  reward   image');
  for (const i of order) {
    const reward = result.rewards[i];
    const rank = result.ranking[i];
    const name = basename(positionals[i]!);
    if (reward === null || reward === undefined || rank === null || rank === undefined) {
      const err = failed.get(i);
      console.log(`   -  error    ${name}: ${err ? `${err.code}: ${err.message}` : 'not scored'}`);
    } else {
      console.log(`${String(rank).padStart(4)}  ${reward.toFixed(4).padStart(7)}  ${name}`);
    }
  }
} catch (err) {
  if (err instanceof ImageRewardApiError) {
    console.error(`error ${err.code} (HTTP ${err.status}): ${err.detail}${err.requestId ? ` [request ${err.requestId}]` : ''}`);
    for (const e of err.errors) console.error(`  ${'index' in e ? `image ${e.index}` : e.path}: ${e.message}`);
    process.exit(1);
  }
  throw err;
}
