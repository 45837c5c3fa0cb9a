// The CUDA engine (native/, issue 4) behind the ScoringBackend interface.
// The engine's own work runs on the libuv pool (AsyncWorker), so the event loop
// stays free; this wrapper converts ids/masks to int32 and maps engine error
// codes to NativeBackendError.
import { native, nativeLoadError, type NativeEngine, type NativeEngineLoadOptions } from '../../native/index.js';
import type { ScoringBackend, TextScores } from './backend.js';

export class NativeBackendError extends Error {
  override name = 'NativeBackendError';
  constructor(
    /** ENGINE_* from the addon; NATIVE_UNAVAILABLE when the addon has no CUDA engine;
     *  NATIVE_SELF_CHECK when its first forward gave a non-finite reward. */
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type NativeBackendOptions = Omit<NativeEngineLoadOptions, 'modelDir'>;

/** Why the CUDA engine cannot be used in this process, or null when it can be tried. */
export function nativeEngineUnavailable(): string | null {
  if (!native) return `native addon not loaded (${nativeLoadError ?? 'unknown reason'})`;
  if (!native.buildInfo().cuda || !native.engine) return 'the native addon was built without CUDA (IMAGEREWARD_CUDA=OFF, or no CUDA toolkit at build time)';
  return null;
}

/**
 * One forward at batch 1 (a blank image, "[CLS] [SEP]") before the engine joins a
 * service: an engine that loads but cannot run here — no kernel image for this GPU, no
 * cuBLASLt algorithm, a broken device — fails now (and `auto` falls back to ONNX Runtime
 * with the reason) instead of answering 500 to every batch. It also warms the bucket up.
 */
async function selfCheck(engine: NativeEngine): Promise<void> {
  const c = engine.config;
  const ids = new Int32Array(c.textLength);
  const mask = new Int32Array(c.textLength);
  ids[0] = 101; // [CLS]
  ids[1] = 102; // [SEP]
  mask[0] = mask[1] = 1;
  const { reward } = await engine.forward(new Float32Array(3 * c.imageSize * c.imageSize), ids, mask, 1);
  if (!Number.isFinite(reward[0])) throw new NativeBackendError('NATIVE_SELF_CHECK', `its reward for a blank image is ${reward[0]}`);
}

function toInt32(a: BigInt64Array): Int32Array {
  const out = new Int32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Number(a[i]);
  return out;
}

function wrapError(err: unknown): NativeBackendError {
  const e = err as Error & { code?: unknown };
  // The binding validates arguments synchronously with plain TypeError / RangeError (no
  // code): those are bad input, not a device failure.
  const code = typeof e.code === 'string' ? e.code : e instanceof TypeError || e instanceof RangeError ? 'ENGINE_BAD_INPUT' : 'ENGINE_CUDA';
  return new NativeBackendError(code, e.message ?? String(err), { cause: err });
}

export class NativeBackend implements ScoringBackend {
  readonly name = 'native' as const;
  readonly imageSize: number;
  readonly textLength: number;
  readonly embedTokens: number;
  readonly embedWidth: number;
  /** The engine's streams: that many batches are in flight at once (host staging of one
   *  overlaps the GPU work of another). */
  readonly concurrency: number;

  private constructor(
    private readonly engine: NativeEngine,
    streams: number,
  ) {
    this.concurrency = streams;
    const c = engine.config;
    this.imageSize = c.imageSize;
    this.textLength = c.textLength;
    this.embedTokens = c.imageTokens;
    this.embedWidth = c.visionWidth;
  }

  static async load(modelDir: string, opts: NativeBackendOptions = {}): Promise<NativeBackend> {
    const why = nativeEngineUnavailable();
    if (why !== null) throw new NativeBackendError('NATIVE_UNAVAILABLE', why);
    let engine: NativeEngine;
    try {
      engine = await native!.engine!.load({ modelDir, ...opts });
    } catch (err) {
      throw wrapError(err);
    }
    try {
      await selfCheck(engine);
    } catch (err) {
      await engine.dispose().catch(() => undefined);
      const e = err instanceof NativeBackendError ? err : wrapError(err);
      throw new NativeBackendError(e.code, `the CUDA engine loaded but its first forward failed: ${e.message}`, { cause: err });
    }
    // 2 is the engine's default, 8 its most (native/src/cuda/engine.cu)
    return new NativeBackend(engine, Math.min(8, Math.max(1, opts.streams ?? 2)));
  }

  get lost(): boolean {
    return this.engine.lost;
  }

  deviceInfo() {
    return this.engine.deviceInfo();
  }

  async encodeImages(pixels: Float32Array, batch: number): Promise<Float32Array> {
    try {
      return await this.engine.encodeImages(pixels, batch);
    } catch (err) {
      throw wrapError(err);
    }
  }

  /** ToTensor + Normalize on the GPU (the engine's u8 entry): 3 bytes a pixel cross PCIe. */
  async encodeImagesRgb(rgb: Uint8Array, batch: number): Promise<Float32Array> {
    try {
      return await this.engine.encodeImagesU8(rgb, batch);
    } catch (err) {
      throw wrapError(err);
    }
  }

  async scoreText(ids: BigInt64Array, mask: BigInt64Array, embeds: Float32Array, batch: number): Promise<TextScores> {
    try {
      return await this.engine.scoreText(toInt32(ids), toInt32(mask), embeds, batch);
    } catch (err) {
      throw wrapError(err);
    }
  }

  dispose(): Promise<void> {
    return this.engine.dispose();
  }
}
