// Which model `imagereward stack` (`npm start`) serves, in this order:
//   1. --model / IMAGEREWARD_MODEL: a model directory, or an ImageReward.pt that
//      is converted (with progress) into $IMAGEREWARD_HOME/models/<name>-<hash>/,
//      the directory `imagereward serve` and `score` would convert it into;
//   2. the checkpoint `imagereward fetch-model` left in the cache (converted once);
//   3. a download from the Hub (HF_ENDPOINT honoured) with a progress line, after
//      a short reachability probe so that offline this step costs seconds;
//      skipped with --offline / IMAGEREWARD_OFFLINE=1;
//   4. otherwise the demo model: deterministic random weights written into
//      $IMAGEREWARD_HOME/demo-model (tiny by default, so it starts in seconds).
// An explicit model that is broken is an error, never a silent demo fallback:
// the user asked for that model.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { formatBytes } from '../cli/fetch-model.js';
import { IMAGEREWARD_CONFIG } from '../model/architecture.js';
import { convertCheckpoint, type ConvertProgress } from '../model/convert.js';
import { DEFAULT_ENDPOINT, FetchError, fetchModel, type FetchProgress } from '../model/fetch.js';
import { cachedCheckpointPath } from '../model/locate.js';
import { CONFIG_FILE, WEIGHTS_FILE, readModelDirConfig } from '../model/model-dir.js';
import { TINY_RANDOM_CONFIG, writeRandomModel } from '../model/random-model.js';
import { openSafetensors } from '../model/safetensors.js';
import { modelDirFor } from '../scorer/scorer.js';
import { probeEndpoint } from './probe-endpoint.js';
import type { ProgressLine } from './progress-line.js';

export type StackModelSource = '--model' | 'IMAGEREWARD_MODEL' | 'cache' | 'download' | 'demo';

export interface StackModel {
  /** The model directory to serve. */
  dir: string;
  modelId: string;
  /** Random weights: every score is meaningless. */
  demo: boolean;
  source: StackModelSource;
  /** Why the demo model was chosen (demo only). */
  demoReason?: string;
}

export interface ResolveStackModelOptions {
  /** The cache root ($IMAGEREWARD_HOME, default ~/.cache/imagereward). */
  home: string;
  /** --model (wins over env.IMAGEREWARD_MODEL). */
  model?: string;
  /** Go straight to the demo model. */
  demo?: boolean;
  /** Never try the Hub (also env IMAGEREWARD_OFFLINE=1). */
  offline?: boolean;
  /** Demo model size (default env IMAGEREWARD_DEMO_SIZE, else tiny). */
  demoSize?: 'tiny' | 'full';
  env?: NodeJS.ProcessEnv;
  /** How long the Hub reachability probe may take (default 5 s). */
  probeTimeoutMs?: number;
  /** Informational lines. */
  log: (line: string) => void;
  /** The progress line download and conversion redraw. */
  progress: ProgressLine;
  signal?: AbortSignal;
}

export class StackModelError extends Error {
  override name = 'StackModelError';
}

function pct(done: number, total: number): string {
  return `${((100 * done) / Math.max(1, total)).toFixed(0).padStart(3)}%`;
}

/** Converts `checkpoint` into `out` showing progress; returns the directory. */
async function convertWithProgress(checkpoint: string, out: string, opts: ResolveStackModelOptions): Promise<string> {
  const { log, progress } = opts;
  const onProgress = (p: ConvertProgress): void => {
    switch (p.phase) {
      case 'up-to-date':
        log(`model: ${p.dir} (already converted)`);
        break;
      case 'hashing':
        log(`model: converting ${p.file} (${formatBytes(p.bytes)}) into ${out}: hashing`);
        break;
      case 'validating':
        log(`model: checking ${p.tensors} tensors`);
        break;
      case 'writing':
        progress.update(`model: writing ${p.tensors} tensors (${formatBytes(p.bytes)})`);
        break;
      case 'tensor':
        progress.update(`model: converting  ${pct(p.index + 1, p.tensors)}  tensor ${p.index + 1}/${p.tensors}`);
        break;
      case 'done':
        progress.done(`model: converted into ${p.dir}`);
        break;
    }
  };
  try {
    // force: the derived directory belongs to this checkpoint path; a changed file replaces it.
    const { dir } = await convertCheckpoint({ checkpoint, out, force: true, onProgress });
    return dir;
  } finally {
    progress.clear();
  }
}

async function fromDir(dir: string, source: StackModelSource): Promise<StackModel> {
  if (!existsSync(join(dir, CONFIG_FILE))) {
    throw new StackModelError(`${dir} is not a model directory (no ${CONFIG_FILE}): pass an ImageReward.pt or a directory made by \`imagereward convert\``);
  }
  const config = await readModelDirConfig(dir);
  // The weights' header and size, checked here (cheap), so a truncated or garbled
  // file is reported before any process starts; serve would find it too, later.
  const weights = await openSafetensors(join(dir, WEIGHTS_FILE));
  await weights.close();
  return { dir, modelId: config.model_id, demo: config.source.generated !== undefined, source };
}

async function fromCheckpoint(path: string, source: StackModelSource, opts: ResolveStackModelOptions): Promise<StackModel> {
  const out = modelDirFor(path, { IMAGEREWARD_HOME: opts.home });
  const dir = await convertWithProgress(path, out, opts);
  return fromDir(dir, source);
}

/** Downloads the real checkpoint into the cache; undefined (with the reason) when that is not possible. */
async function tryDownload(opts: ResolveStackModelOptions, env: NodeJS.ProcessEnv): Promise<{ path: string } | { reason: string }> {
  const endpoint = env.HF_ENDPOINT || DEFAULT_ENDPOINT;
  opts.log(`model: none found locally; trying ${endpoint} (set IMAGEREWARD_OFFLINE=1 to skip)`);
  const probe = await probeEndpoint(endpoint, opts.probeTimeoutMs ?? 5_000, opts.signal);
  if (!probe.ok) return { reason: `offline: cannot reach ${endpoint} (${probe.reason})` };
  const started = Date.now();
  const onProgress = (p: FetchProgress): void => {
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0.5 ? `  ${formatBytes(p.received / secs)}/s` : '';
    const of = p.total !== undefined ? ` / ${formatBytes(p.total)}  ${pct(p.received, p.total)}` : '';
    opts.progress.update(`download: ${p.file}  ${formatBytes(p.received)}${of}${rate}`);
  };
  try {
    const result = await fetchModel({
      home: opts.home,
      env,
      onProgress,
      onFileDone: (f) => opts.progress.done(`download: ${f.file}  ${formatBytes(f.size)}  ${f.downloaded ? 'downloaded' : 'already present'}, sha256 ok`),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const pt = result.files.find((f) => f.file === 'ImageReward.pt');
    return { path: pt?.path ?? join(result.dir, 'ImageReward.pt') };
  } catch (err) {
    // Keep the last progress line: how far it got before failing is worth seeing.
    opts.progress.done();
    if (err instanceof FetchError) {
      if (err.code === 'fetch_aborted') throw err;
      return { reason: `download failed: ${err.message}` };
    }
    throw err;
  }
}

export async function resolveStackModel(opts: ResolveStackModelOptions): Promise<StackModel> {
  const env = opts.env ?? process.env;
  const explicit = opts.model ?? (env.IMAGEREWARD_MODEL || undefined);
  if (explicit !== undefined && opts.demo !== true) {
    const source: StackModelSource = opts.model !== undefined ? '--model' : 'IMAGEREWARD_MODEL';
    const path = resolve(explicit);
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch {
      throw new StackModelError(`${source} ${explicit}: no such file or directory`);
    }
    return isDir ? fromDir(path, source) : fromCheckpoint(path, source, opts);
  }

  let demoReason = 'started with --demo';
  if (opts.demo !== true) {
    const cached = cachedCheckpointPath({ ...env, IMAGEREWARD_HOME: opts.home });
    if (existsSync(cached)) return fromCheckpoint(cached, 'cache', opts);
    const offline = opts.offline === true || env.IMAGEREWARD_OFFLINE === '1' || env.IMAGEREWARD_OFFLINE === 'true';
    if (offline) {
      demoReason = `no model found (IMAGEREWARD_MODEL unset, nothing in ${cached}) and downloads are off (${opts.offline === true ? '--offline' : 'IMAGEREWARD_OFFLINE'})`;
    } else {
      const got = await tryDownload(opts, env);
      if ('path' in got) return fromCheckpoint(got.path, 'download', opts);
      demoReason = `no model found (IMAGEREWARD_MODEL unset, nothing in ${cached}); ${got.reason}`;
    }
  }

  const size = opts.demoSize ?? (env.IMAGEREWARD_DEMO_SIZE === 'full' ? 'full' : 'tiny');
  const out = join(opts.home, size === 'full' ? 'demo-model-full' : 'demo-model');
  opts.log(`model: writing the ${size} demo model (random weights) into ${out}`);
  const { dir } = await writeRandomModel({
    out,
    config: size === 'full' ? IMAGEREWARD_CONFIG : TINY_RANDOM_CONFIG,
    seed: 0,
    // Its own id: the edge's result cache (kept in edge-state across runs) is keyed by
    // model id, so the full-size random model must not be served the tiny one's scores.
    modelId: size === 'full' ? 'random-demo-full' : 'random-demo',
    // The directory is ours: anything else in it (an older generator version) is replaced.
    force: true,
    onProgress: (p) => {
      if (p.phase === 'writing') opts.progress.update(`model: writing ${p.tensors ?? 0} random tensors (${formatBytes(p.bytes ?? 0)})`);
      else opts.progress.done(p.phase === 'up-to-date' ? `model: ${p.dir} (already written)` : `model: demo model written into ${p.dir}`);
    },
  });
  const model = await fromDir(dir, 'demo');
  return { ...model, demo: true, demoReason };
}
