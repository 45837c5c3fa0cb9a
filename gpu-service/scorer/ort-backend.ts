// ONNX Runtime backend for ImageReward: both sessions live in a worker thread
// (ort-worker.ts) so the caller's event loop keeps running during a forward.
// Inputs are transferred to the worker (a typed array covering its whole
// ArrayBuffer is detached by the call; any other view is copied first) and the
// outputs are transferred back.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { readModelDirConfig } from '../model/model-dir.js';
import { DEFAULT_TEXT_LENGTH, buildImageRewardGraphs, graphFiles, type Precision } from '../onnx/imagereward-graph.js';
import { compact, transferable, type OrtInit, type OrtReady, type OrtRequest, type OrtResponse } from './protocol.js';

export interface OrtBackendOptions {
  /** Threads of each session's intra-op pool (default: onnxruntime's, one per core). */
  intraOpNumThreads?: number;
  /** Default ['cpu']. */
  executionProviders?: string[];
  graphOptimizationLevel?: OrtInit['graphOptimizationLevel'];
  /**
   * 'fp32' (default): vision.onnx / text.onnx, results identical on every machine.
   * 'int8' (opt-in, never chosen automatically): vision.int8.onnx / text.int8.onnx, every
   * transformer Linear as dynamically quantized int8 (weights from model.int8.bin, built
   * on demand); faster on CPUs with int8 dot products, rewards deviate from fp32
   * (see docs/benchmarks.md).
   */
  precision?: Precision;
}

export interface TextScores {
  /** Normalized reward, (raw - mean) / std: what upstream ImageReward.score returns. */
  reward: Float32Array;
  /** The MLP head's raw output. */
  raw: Float32Array;
}

export class OrtBackendError extends Error {
  override name = 'OrtBackendError';
}

type Request = OrtRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

interface Pending {
  resolve: (r: OrtResponse) => void;
  reject: (e: Error) => void;
}

/**
 * How to start the worker: ort-worker.js beside this module in dist/; under the
 * sources (vitest, tsx) only ort-worker.ts exists, and Node 20 workers do not
 * inherit loader hooks, so a small eval'd bootstrap imports it through tsx's API.
 */
function workerSpec(): { entry: URL | string; eval: boolean } {
  const js = new URL('./ort-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return { entry: js, eval: false };
  const ts = new URL('./ort-worker.ts', import.meta.url);
  if (!existsSync(fileURLToPath(ts))) throw new OrtBackendError(`the ORT worker entry is missing beside ${fileURLToPath(import.meta.url)}`);
  const tsxRoot = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(join(tsxRoot, 'dist', 'esm', 'api', 'index.mjs')).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => (m.tsImport ?? m.default.tsImport)(${JSON.stringify(ts.href)}, ${JSON.stringify(ts.href)}));`;
  return { entry: boot, eval: true };
}

export class OrtBackend {
  readonly name = 'ort' as const;
  readonly imageSize: number;
  readonly textLength: number;
  /** image_embeds per image: [embedTokens, embedWidth]. */
  readonly embedTokens: number;
  readonly embedWidth: number;
  readonly precision: Precision;

  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | undefined;
  private disposing: Promise<void> | undefined;

  private constructor(
    private readonly worker: Worker,
    init: OrtInit,
  ) {
    this.imageSize = init.imageSize;
    this.textLength = init.textLength;
    this.embedTokens = init.embedTokens;
    this.embedWidth = init.embedWidth;
    this.precision = init.precision;
    worker.on('message', (msg: OrtResponse) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      p.resolve(msg);
    });
    worker.on('error', (err) => this.fail(new OrtBackendError(`the ORT worker crashed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => this.fail(new OrtBackendError(`the ORT worker exited (code ${code})`)));
  }

  /**
   * Brings the graphs of the chosen precision in `modelDir` up to date (idempotent:
   * files are rewritten only when their bytes change; 'int8' also builds or
   * rebuilds a missing or stale model.int8.bin), then starts the worker, which
   * creates both sessions and runs a B=1 warm-up forward.
   */
  static async load(modelDir: string, opts: OrtBackendOptions = {}): Promise<OrtBackend> {
    const precision = opts.precision ?? 'fp32';
    if (precision !== 'fp32' && precision !== 'int8') throw new OrtBackendError(`unknown precision '${String(precision)}' (expected 'fp32' or 'int8')`);
    const dirConfig = await readModelDirConfig(modelDir);
    const names = graphFiles(precision);
    let vision = join(modelDir, names.vision);
    let text = join(modelDir, names.text);
    try {
      ({ vision, text } = await buildImageRewardGraphs(modelDir, { precision }));
    } catch (err) {
      // fp32 graphs that exist but cannot be refreshed (read-only directory) are still usable.
      if (precision === 'int8' || !existsSync(vision) || !existsSync(text)) throw err;
    }
    const v = dirConfig.config.vision;
    const init: OrtInit = {
      modelDir,
      vision,
      text,
      precision,
      imageSize: v.image,
      embedTokens: (v.image / v.patch) ** 2 + 1,
      embedWidth: v.width,
      textLength: DEFAULT_TEXT_LENGTH,
      executionProviders: opts.executionProviders ?? ['cpu'],
      ...(opts.intraOpNumThreads !== undefined ? { intraOpNumThreads: opts.intraOpNumThreads } : {}),
      ...(opts.graphOptimizationLevel !== undefined ? { graphOptimizationLevel: opts.graphOptimizationLevel } : {}),
    };
    const spec = workerSpec();
    const worker = new Worker(spec.entry, { workerData: init, eval: spec.eval });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (msg: OrtReady): void => {
        cleanup();
        if (msg.ready) resolve();
        else {
          void worker.terminate();
          reject(new OrtBackendError(`cannot load ${modelDir} into onnxruntime: ${msg.error.message}`));
        }
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(new OrtBackendError(`the ORT worker failed to start: ${err.message}`, { cause: err }));
      };
      const onExit = (code: number): void => {
        cleanup();
        reject(new OrtBackendError(`the ORT worker exited during load (code ${code})`));
      };
      const cleanup = (): void => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
    return new OrtBackend(worker, init);
  }

  /** pixel_values [batch,3,S,S] → image_embeds [batch, embedTokens, embedWidth]. */
  async encodeImages(pixels: Float32Array, batch: number): Promise<Float32Array> {
    const p = compact(pixels);
    const r = await this.call({ op: 'encode', pixels: p, batch }, [transferable(p)!]);
    if (!('embeds' in r)) throw new OrtBackendError('the ORT worker answered encode without embeds');
    return r.embeds;
  }

  /** RGB crops [batch,S,S,3] uint8 → image_embeds; ToTensor + Normalize run in the worker. */
  async encodeImagesRgb(rgb: Uint8Array, batch: number): Promise<Float32Array> {
    const p = compact(rgb);
    const r = await this.call({ op: 'encodeRgb', rgb: p, batch }, [transferable(p)!]);
    if (!('embeds' in r)) throw new OrtBackendError('the ORT worker answered encodeRgb without embeds');
    return r.embeds;
  }

  /** input_ids / attention_mask [batch, textLength] + image_embeds → reward and raw [batch]. */
  async scoreText(ids: BigInt64Array, mask: BigInt64Array, embeds: Float32Array, batch: number): Promise<TextScores> {
    const i = compact(ids);
    const m = compact(mask);
    const e = compact(embeds);
    const list = [i, m, e].map((a) => transferable(a)!);
    // One buffer listed twice (the same array passed for two inputs) cannot be transferred.
    const r = await this.call({ op: 'score', ids: i, mask: m, embeds: e, batch }, [...new Set(list)]);
    if (!('reward' in r)) throw new OrtBackendError('the ORT worker answered score without rewards');
    return { reward: r.reward, raw: r.raw };
  }

  /** Releases both sessions and stops the worker. Later calls reject; calling again is a no-op. */
  dispose(): Promise<void> {
    if (!this.disposing) {
      const released = this.failure ? Promise.resolve() : this.call({ op: 'dispose' }, []).then(() => undefined, () => undefined);
      this.disposing = released.then(async () => {
        this.fail(new OrtBackendError('the ORT backend is disposed'));
        await this.worker.terminate();
      });
    }
    return this.disposing;
  }

  private fail(err: Error): void {
    if (!this.failure) this.failure = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private call(req: Request, transfer: ArrayBuffer[]): Promise<OrtResponse & { ok: true }> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.disposing && req.op !== 'dispose') return Promise.reject(new OrtBackendError('the ORT backend is disposed'));
    const id = this.nextId++;
    return new Promise<OrtResponse>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id }, transfer);
    }).then((r) => {
      if (!r.ok) throw new OrtBackendError(r.error.message);
      return r;
    });
  }
}
