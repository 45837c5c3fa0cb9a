// Tokenizer throughput (prompts/s, one thread) over the 10k DiffusionDB prompts:
// our TypeScript encode() against HF tokenizers (Rust, @anush008/tokenizers),
// measured in the same process after a warm-up pass each.
//
//   npx tsx bench/tokenizer.ts            (BENCH_SECONDS=3 by default)
//
// The Rust figure is encodeBatch with TOKENIZERS_PARALLELISM=false: the whole
// batch runs on one libuv worker thread, without Rayon, so it is one core's
// throughput like ours. `rustPerCall` awaits encode() one prompt at a time,
// which adds a thread hop per prompt (what a request handler would pay).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BertTokenizer } from '../contracts/tokenizer/index.js';
import { packageRoot } from '../gpu-service/package-root.js';
import { rustTokenizer } from '../test/fixtures/tokenizer/rust-reference.js';

export interface TokenizerBench {
  /** Our encode(), prompts/s. */
  ours: number;
  /** Our tokenIds() over the whole prompt (encode() stops after 33 tokens), prompts/s. */
  oursFull: number;
  /** Rust encodeBatch on one thread (TOKENIZERS_PARALLELISM=false), prompts/s. */
  rust: number;
  /** Rust encode() awaited per prompt, prompts/s. */
  rustPerCall: number;
  /** Prompts per pass. */
  prompts: number;
  /** Building our tokenizer from vocab.txt (the per-isolate cold start on the edge), ms. */
  vocabLoadMs: number;
  /** CPU time / wall time during the Rust batch runs (≈ 1 means one thread). */
  rustCpuPerWall: number;
}

async function timed(seconds: number, pass: () => unknown): Promise<{ passes: number; elapsed: number }> {
  await pass(); // warm-up
  let passes = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    await pass();
    passes++;
    elapsed = (performance.now() - start) / 1000;
  } while (elapsed < seconds);
  return { passes, elapsed };
}

export async function benchTokenizer(seconds = Number(process.env.BENCH_SECONDS ?? 3)): Promise<TokenizerBench> {
  const root = packageRoot();
  const promptsPath = join(root, '..', 'shared', 'prompts-10k.json');
  if (!existsSync(promptsPath)) throw new Error(`${promptsPath} not found`);
  const prompts = (JSON.parse(readFileSync(promptsPath, 'utf8')) as { prompts: string[] }).prompts;
  const vocabText = readFileSync(join(root, 'contracts', 'tokenizer', 'vocab.txt'), 'utf8');

  const t0 = performance.now();
  const ours = BertTokenizer.fromVocabText(vocabText);
  const vocabLoadMs = performance.now() - t0;
  const rust = rustTokenizer(vocabText);

  let sink = 0;
  const o = await timed(seconds, () => {
    for (const p of prompts) sink += ours.encode(p).input_ids[1] ?? 0;
  });

  const of = await timed(seconds, () => {
    for (const p of prompts) sink += ours.tokenIds(p).length;
  });

  const previous = process.env.TOKENIZERS_PARALLELISM;
  process.env.TOKENIZERS_PARALLELISM = 'false';
  let rb: { passes: number; elapsed: number };
  let cpu: NodeJS.CpuUsage;
  let wall: number;
  try {
    await rust.encodeBatch(prompts.slice(0, 100));
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    rb = await timed(seconds, async () => {
      for (const e of await rust.encodeBatch(prompts)) sink += (e.getIds()[1] ?? 0) + (e.getAttentionMask()[1] ?? 0);
    });
    cpu = process.cpuUsage(c0);
    wall = (performance.now() - w0) / 1000;
  } finally {
    if (previous === undefined) delete process.env.TOKENIZERS_PARALLELISM;
    else process.env.TOKENIZERS_PARALLELISM = previous;
  }

  const rp = await timed(seconds, async () => {
    for (const p of prompts) {
      const e = await rust.encode(p);
      sink += (e.getIds()[1] ?? 0) + (e.getAttentionMask()[1] ?? 0);
    }
  });
  if (sink === 42) console.log(''); // keep the results observable

  const n = prompts.length;
  return {
    ours: (o.passes * n) / o.elapsed,
    oursFull: (of.passes * n) / of.elapsed,
    rust: (rb.passes * n) / rb.elapsed,
    rustPerCall: (rp.passes * n) / rp.elapsed,
    prompts: n,
    vocabLoadMs,
    rustCpuPerWall: (cpu.user + cpu.system) / 1e6 / wall,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await benchTokenizer();
  console.log(`Tokenizer, ${r.prompts} prompts per pass, one thread, node ${process.version}\n`);
  console.log('| tokenizer | prompts/s |\n| --- | ---: |');
  console.log(`| ours (TypeScript) encode() | ${r.ours.toFixed(0)} |`);
  console.log(`| ours, tokenIds() of the whole prompt (no early stop at 33 tokens) | ${r.oursFull.toFixed(0)} |`);
  console.log(`| HF tokenizers (Rust) encodeBatch, TOKENIZERS_PARALLELISM=false | ${r.rust.toFixed(0)} |`);
  console.log(`| HF tokenizers (Rust) await encode() per prompt | ${r.rustPerCall.toFixed(0)} |`);
  console.log(`\nvocab load (BertTokenizer.fromVocabText): ${r.vocabLoadMs.toFixed(1)} ms; Rust batch CPU/wall: ${r.rustCpuPerWall.toFixed(2)}`);
}
