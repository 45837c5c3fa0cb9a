// A pool of worker threads that decode and preprocess images off the main thread
// (preprocessImageRgb: Pillow-exact decode, Resize(224), CenterCrop(224), convert('RGB')
// → 224x224x3 uint8), so the event loop keeps serving and preprocessing overlaps
// inference. ToTensor + Normalize happen where the model runs (the ORT worker, or the
// CUDA engine on the GPU): 3 bytes a pixel travel instead of 12.
//
// Each worker runs one image at a time. The input bytes are copied into a fresh
// buffer that is transferred (the caller's array is left alone); the RGB pixels are
// transferred back. Tasks wait in a bounded FIFO (maxQueued) when every worker
// is busy. A worker that crashes or exits is replaced, and the task it was
// running fails with a PreprocessWorkerError saying so; an ImageError thrown
// in the worker comes back as an ImageError with the same code.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ImageError, type ImageErrorCode, type PreprocessOptions } from '../preprocess/index.js';

/** Options forwarded to preprocessImage in the worker. */
export type PoolPreprocessOptions = Pick<PreprocessOptions, 'maxBytes' | 'maxPixels' | 'backend' | 'decoder'>;

export type PoolRequest = { op: 'preprocess'; id: number; bytes: Uint8Array; opts: PoolPreprocessOptions } | { op: 'exit'; code: number };

export type PoolReply =
  | { id: number; ok: true; rgb: Uint8Array }
  | { id: number; ok: false; error: { name: string; message: string; code?: ImageErrorCode } };

export class PreprocessWorkerError extends Error {
  override name = 'PreprocessWorkerError';
  readonly code = 'preprocess_worker_failed';
}

export class PoolClosedError extends Error {
  override name = 'PoolClosedError';
  readonly code = 'pool_closed';
}

export class PoolQueueFullError extends Error {
  override name = 'PoolQueueFullError';
  readonly code = 'pool_queue_full';
}

export interface PreprocessPoolOptions {
  /** Worker threads (default min(4, available cores)). */
  size?: number;
  /** Tasks that may wait for a worker; more are refused with PoolQueueFullError (default 1024). */
  maxQueued?: number;
  /** Default preprocessImage options for every task. */
  preprocess?: PoolPreprocessOptions;
}

/**
 * How to start a worker: preprocess-worker.js beside this module in dist/; under
 * the sources (vitest, tsx) only the .ts exists and Node 20 workers do not inherit
 * loader hooks, so a small eval'd bootstrap imports it through tsx's API (the
 * pattern of scorer/ort-backend.ts).
 */
function workerSpec(): { entry: URL | string; eval: boolean } {
  const js = new URL('./preprocess-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return { entry: js, eval: false };
  const ts = new URL('./preprocess-worker.ts', import.meta.url);
  if (!existsSync(fileURLToPath(ts))) throw new PreprocessWorkerError(`the preprocess worker entry is missing beside ${fileURLToPath(import.meta.url)}`);
  const tsxRoot = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(join(tsxRoot, 'dist', 'esm', 'api', 'index.mjs')).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => (m.tsImport ?? m.default.tsImport)(${JSON.stringify(ts.href)}, ${JSON.stringify(ts.href)}));`;
  return { entry: boot, eval: true };
}

interface Task {
  id: number;
  bytes: Uint8Array;
  opts: PoolPreprocessOptions;
  resolve: (rgb: Uint8Array) => void;
  reject: (e: Error) => void;
  /** Test hook: make the worker exit with this code instead of preprocessing. */
  crash?: number;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  task: Task | undefined;
  dead: boolean;
}

/** Consecutive workers that die before becoming ready, after which the pool gives up. */
const MAX_START_FAILURES = 3;

export class PreprocessPool {
  readonly size: number;
  readonly maxQueued: number;
  private readonly defaults: PoolPreprocessOptions;
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private nextId = 1;
  private closed = false;
  private startFailures = 0;
  private broken: Error | undefined;
  private crashes = 0;
  private readonly spec = workerSpec();

  constructor(opts: PreprocessPoolOptions = {}) {
    const size = opts.size ?? Math.min(4, availableParallelism());
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`pool size must be a positive integer (got ${String(size)})`);
    const maxQueued = opts.maxQueued ?? 1024;
    if (!Number.isInteger(maxQueued) || maxQueued < 0) throw new RangeError(`maxQueued must be a non-negative integer (got ${String(maxQueued)})`);
    this.size = size;
    this.maxQueued = maxQueued;
    this.defaults = { ...(opts.preprocess ?? {}) };
    for (let i = 0; i < size; i++) this.spawn();
  }

  /** Tasks waiting for a worker. */
  get queued(): number {
    return this.queue.length;
  }

  /** Tasks running on a worker now. */
  get running(): number {
    return this.slots.filter((s) => s.task).length;
  }

  /** Workers replaced after a crash or unexpected exit, since the pool started. */
  get crashCount(): number {
    return this.crashes;
  }

  /** Resolves when every worker has started (or rejects when they cannot). */
  async whenReady(timeoutMs = 60_000): Promise<void> {
    const t0 = Date.now();
    while (!this.slots.every((s) => s.ready)) {
      if (this.broken) throw this.broken;
      if (this.closed) throw new PoolClosedError('the preprocess pool is closed');
      if (Date.now() - t0 > timeoutMs) throw new PreprocessWorkerError(`the preprocess workers did not start within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Image bytes → float32 3x224x224 (CHW). `bytes` is copied, never detached. */
  run(bytes: Uint8Array, opts: PoolPreprocessOptions = {}): Promise<Uint8Array> {
    return this.submit(bytes, opts);
  }

  /** Test hook: the next free worker exits with `code` as if it crashed mid-task; the returned promise rejects like the task it ran would. */
  crashOneForTest(code = 1): Promise<Uint8Array> {
    return this.submit(new Uint8Array(0), {}, code);
  }

  /** Terminates every worker; queued and running tasks reject with PoolClosedError. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new PoolClosedError('the preprocess pool is closed');
    for (const t of this.queue.splice(0)) t.reject(err);
    await Promise.all(
      this.slots.map(async (s) => {
        s.dead = true;
        const t = s.task;
        s.task = undefined;
        t?.reject(err);
        await s.worker.terminate();
      }),
    );
    this.slots.length = 0;
  }

  private submit(bytes: Uint8Array, opts: PoolPreprocessOptions, crash?: number): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new PoolClosedError('the preprocess pool is closed'));
    if (this.broken) return Promise.reject(this.broken);
    if (!(bytes instanceof Uint8Array)) return Promise.reject(new TypeError('image bytes must be a Uint8Array'));
    const free = this.slots.some((s) => s.ready && !s.task && !s.dead);
    if (!free && this.queue.length >= this.maxQueued) return Promise.reject(new PoolQueueFullError(`the preprocess queue is full (${this.maxQueued} tasks)`));
    return new Promise<Uint8Array>((resolve, reject) => {
      const task: Task = { id: this.nextId++, bytes, opts: { ...this.defaults, ...opts }, resolve, reject, ...(crash !== undefined ? { crash } : {}) };
      this.queue.push(task);
      this.pump();
    });
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (!slot.ready || slot.task || slot.dead) continue;
      const task = this.queue.shift()!;
      slot.task = task;
      if (task.crash !== undefined) {
        const req: PoolRequest = { op: 'exit', code: task.crash };
        slot.worker.postMessage(req);
        continue;
      }
      // A fresh, whole buffer: transferable, and the caller's array stays intact.
      const copy = new Uint8Array(task.bytes.byteLength);
      copy.set(task.bytes);
      const req: PoolRequest = { op: 'preprocess', id: task.id, bytes: copy, opts: task.opts };
      try {
        slot.worker.postMessage(req, [copy.buffer]);
      } catch (err) {
        slot.task = undefined;
        task.reject(err as Error);
      }
    }
  }

  private spawn(): void {
    const worker = new Worker(this.spec.entry, { eval: this.spec.eval });
    const slot: Slot = { worker, ready: false, task: undefined, dead: false };
    this.slots.push(slot);
    worker.on('message', (msg: PoolReply | { ready: true }) => {
      if ('ready' in msg) {
        slot.ready = true;
        this.startFailures = 0;
        this.pump();
        return;
      }
      const task = slot.task;
      if (!task || task.id !== msg.id) return;
      slot.task = undefined;
      if (msg.ok) task.resolve(msg.rgb);
      else if (msg.error.code) task.reject(new ImageError(msg.error.code, msg.error.message));
      else {
        const e = new Error(msg.error.message);
        e.name = msg.error.name;
        task.reject(e);
      }
      this.pump();
    });
    const died = (why: string, cause?: Error): void => {
      if (slot.dead) return;
      slot.dead = true;
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      if (this.closed) return;
      this.crashes++;
      const task = slot.task;
      slot.task = undefined;
      task?.reject(new PreprocessWorkerError(`the preprocess worker ${why} while preprocessing this image; it was replaced`, cause ? { cause } : undefined));
      void worker.terminate();
      if (!slot.ready && ++this.startFailures >= MAX_START_FAILURES) {
        this.broken = new PreprocessWorkerError(`preprocess workers fail to start (${why})`, cause ? { cause } : undefined);
        for (const t of this.queue.splice(0)) t.reject(this.broken);
        return;
      }
      this.spawn();
      this.pump();
    };
    worker.on('error', (err) => died(`crashed (${err.message})`, err));
    worker.on('exit', (code) => died(`exited (code ${code})`));
  }
}
