// imagereward verify-published [--model <dir|ImageReward.pt>] [--published <json>]
// Scores upstream's README example (four images, one prompt) and compares with
// the rewards upstream published for the released weights: the check that our
// whole path (tokenizer, preprocessing, converter, graph, backend) reproduces
// ImageReward, run by anyone who has the real checkpoint.
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CliError, EXIT, type Io, parseCommand, rejectPositionals } from './io.js';
import { scoreFailure } from './score.js';
import { locateModel, noModelMessage } from '../model/locate.js';
import { readModelDirConfig } from '../model/model-dir.js';
import { packageRoot } from '../package-root.js';
import { createScorer, type Scorer } from '../scorer/scorer.js';

const DEFAULT_TOLERANCE = 0.01;

const HELP = `Usage:
  imagereward verify-published [--model <dir|ImageReward.pt>] [--published <file>]
                               [--tolerance <x>] [--threads <n>] [--json]

Scores the example images of upstream's README with its prompt and compares with
the rewards upstream published for the released ImageReward-v1.0 weights: every
|ours - published| must be <= the tolerance and the ranking must be the same.
Exit 0 when it holds, 1 when it does not (or the model is not the released one).

Options:
  --model <path>     model directory or ImageReward.pt (default: $IMAGEREWARD_MODEL,
                     else the checkpoint \`imagereward fetch-model\` downloaded)
  --published <file> the published results (default: $IMAGEREWARD_SHARED/published.json,
                     else ../shared/published.json beside the package); images are
                     resolved relative to this file
  --tolerance <x>    largest allowed |difference| (default ${DEFAULT_TOLERANCE})
  --backend <name>   ort (default: fp32 on CPU), native (the CUDA engine) or auto
  --threads <n>      onnxruntime intra-op threads (default: one per core)
  --json             print the comparison as JSON
`;

export interface Published {
  prompt: string;
  images: string[];
  rewards: number[];
  ranking: number[];
  checkpoint: { sha256: string; file?: string };
}

export async function readPublished(path: string): Promise<Published> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new CliError(
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (pass --published <file> or set IMAGEREWARD_SHARED)`,
      EXIT.failure,
      'published_missing',
    );
  }
  const p = parsed as Partial<Published> | null;
  const ok =
    typeof p === 'object' &&
    p !== null &&
    typeof p.prompt === 'string' &&
    Array.isArray(p.images) &&
    p.images.length > 0 &&
    p.images.every((i) => typeof i === 'string') &&
    Array.isArray(p.rewards) &&
    p.rewards.length === p.images.length &&
    p.rewards.every((r) => typeof r === 'number' && Number.isFinite(r)) &&
    Array.isArray(p.ranking) &&
    p.ranking.length === p.images.length &&
    typeof p.checkpoint?.sha256 === 'string';
  if (!ok) throw new CliError(`${path} must hold prompt, images[], rewards[] and ranking[] of equal length, and checkpoint.sha256`, EXIT.failure, 'published_invalid');
  return p as Published;
}

export function defaultPublishedPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.IMAGEREWARD_SHARED ? join(env.IMAGEREWARD_SHARED, 'published.json') : join(packageRoot(), '..', 'shared', 'published.json');
}

export interface Comparison {
  image: string;
  published: number;
  ours: number;
  diff: number;
  publishedRank: number;
  ourRank: number;
}

export async function verifyPublishedCommand(argv: string[], io: Io, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const parsed = parseCommand(
    argv,
    { model: { type: 'string' }, published: { type: 'string' }, tolerance: { type: 'string' }, threads: { type: 'string' }, json: { type: 'boolean' }, backend: { type: 'string' } },
    HELP,
    io,
  );
  if (!parsed) return EXIT.ok;
  const { values, positionals } = parsed;
  rejectPositionals(positionals, HELP);
  const tolerance = values.tolerance !== undefined ? Number(values.tolerance) : DEFAULT_TOLERANCE;
  if (!Number.isFinite(tolerance) || tolerance < 0) throw new CliError(`--tolerance must be a non-negative number (got "${values.tolerance ?? ''}")`, EXIT.usage);
  const threads = values.threads !== undefined ? Number(values.threads) : undefined;
  if (threads !== undefined && (!Number.isSafeInteger(threads) || threads <= 0)) throw new CliError(`--threads must be a positive integer (got "${values.threads ?? ''}")`, EXIT.usage);

  const backend = values.backend ?? 'ort';
  if (backend !== 'auto' && backend !== 'ort' && backend !== 'native') throw new CliError(`--backend must be ort, native or auto (got "${backend}")`, EXIT.usage);
  const publishedPath = resolve(values.published ?? defaultPublishedPath(env));
  const published = await readPublished(publishedPath);
  const model = values.model ?? locateModel(env)?.path;
  if (model === undefined) throw new CliError(noModelMessage(env), EXIT.failure, 'model_not_found');

  let scorer: Scorer | undefined;
  try {
    scorer = await createScorer({ model, backend, ...(threads !== undefined ? { ort: { intraOpNumThreads: threads } } : {}) });
    const source = (await readModelDirConfig(scorer.modelDir)).source;
    if (source.sha256 !== published.checkpoint.sha256) {
      throw new CliError(
        `${scorer.modelDir} was converted from ${source.file} (sha256 ${source.sha256}), not the checkpoint the rewards were published for ` +
          `(sha256 ${published.checkpoint.sha256}); run \`imagereward fetch-model\` for the released weights`,
        EXIT.failure,
        'not_published_weights',
      );
    }
    const base = dirname(publishedPath);
    const images = published.images.map((i) => resolve(base, i));
    const { rewards, ranking } = await scorer.rank(published.prompt, images);
    const rows: Comparison[] = images.map((image, i) => {
      const ours = rewards[i] as number;
      const pub = published.rewards[i] as number;
      return { image, published: pub, ours, diff: Math.abs(ours - pub), publishedRank: published.ranking[i] as number, ourRank: ranking[i] as number };
    });
    const worst = Math.max(...rows.map((r) => r.diff));
    const sameRanking = rows.every((r) => r.publishedRank === r.ourRank);
    const pass = worst <= tolerance && sameRanking;
    if (values.json === true) {
      io.stdout(`${JSON.stringify({ model: scorer.modelId, backend: scorer.backend, prompt: published.prompt, tolerance, pass, maxAbsDiff: worst, sameRanking, rows })}\n`);
    } else {
      io.stdout(`prompt: ${published.prompt}\n`);
      io.stdout('image\tpublished\tours\t|diff|\trank (published/ours)\n');
      for (const r of rows) {
        io.stdout(`${r.image}\t${r.published.toFixed(6)}\t${r.ours.toFixed(6)}\t${r.diff.toExponential(2)}\t${r.publishedRank}/${r.ourRank}\n`);
      }
      io.stdout(`${pass ? 'PASS' : 'FAIL'}: max |diff| ${worst.toExponential(2)} (tolerance ${tolerance}), ranking ${sameRanking ? 'identical' : 'differs'}\n`);
    }
    if (!pass) {
      throw new CliError(
        `rewards do not reproduce the published ones: max |diff| ${worst.toExponential(2)} (tolerance ${tolerance}), ranking ${sameRanking ? 'identical' : 'differs'}`,
        EXIT.failure,
        'verify_mismatch',
      );
    }
    return EXIT.ok;
  } catch (err) {
    return scoreFailure(err);
  } finally {
    await scorer?.dispose();
  }
}
