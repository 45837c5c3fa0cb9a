// The CUDA engine (native/, issue 4) behind the ScoringBackend interface.
// The engine's own work runs on the libuv pool (AsyncWorker), so the event loop
// stays free; this wrapper converts ids/masks to int32 and maps engine error
// codes to NativeBackendError.
import { native, nativeLoadError, type NativeEngine, type NativeEngineLoadOptions } from '../../native/index.js';
import type { ScoringBackend, TextScores } from './backend.js';

export class NativeBackendError extends Error {
  override name = 'NativeBackendError';
  constructor(
    /** ENGINE_* from the addon, or NATIVE_UNAVAILABLE when the addon has no CUDA engine. */
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
    try {
      // 2 is the engine's default, 8 its most (native/src/cuda/engine.cu)
      return new NativeBackend(await native!.engine!.load({ modelDir, ...opts }), Math.min(8, Math.max(1, opts.streams ?? 2)));
    } catch (err) {
      throw wrapError(err);
    }
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
