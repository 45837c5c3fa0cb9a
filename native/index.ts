// The native addon's JS surface, typed once. Everything native/ exports is
// described here; gpu-service imports only this file, never the .node binary.
//
// CONTRACT (implemented by native/src; later issues add load/forward/dispose/info
// for the CUDA engine):
//   preprocess.resize        Pillow 9.4 Image.resize on an interleaved 8-bit image
//                            with 1..4 bands and the full source box; 'bicubic' is
//                            ImagingResample (two separable passes, support scaled by
//                            the reduction factor, 8bpc fixed point), 'nearest' is
//                            Pillow's NEAREST (affine transform path). Same output size
//                            as input → a copy. Runs on the libuv pool (AsyncWorker).
//   preprocess.resizeSync    Same, on the calling thread (tests, CLI).
//   preprocess.cropNormalize Crop size×size at (left, top) from interleaved RGB and
//                            apply torchvision ToTensor + Normalize in float32,
//                            CHW layout (what the model consumes).
//   decode(bytes, format, {maxPixels, alpha?})
//                            JPEG / PNG (bit depth <= 8) / still WebP → interleaved
//                            8-bit samples with the system libjpeg-turbo / libpng /
//                            libwebp (the libraries Debian's Pillow 9.4 links, with its
//                            settings): JPEG grey 1, RGB 3, CMYK 4 channels (inverted, as
//                            Pillow's CMYK;I); PNG grey 1 (1/2/4-bit scaled), RGB 3,
//                            palette 3 (looked up), grey+alpha 2, RGBA 4, tRNS never
//                            applied; WebP RGB 3 or, with alpha: true, RGBA 4. Runs on the
//                            libuv pool; the input is copied first. The pixel limit is
//                            checked from the stream's header before allocating. Rejects
//                            with an Error whose code is ERR_DECODE_CORRUPT,
//                            ERR_DECODE_TOO_LARGE or ERR_DECODE_UNSUPPORTED (a case the
//                            decoder leaves to another: 16-bit PNG, animated WebP, or a
//                            decoder not compiled in).
//   buildInfo()              What was compiled in (decoders: the formats decode handles).
//
// Bad arguments throw TypeError (wrong type, unknown filter) or RangeError (sizes,
// buffer length != width*height*channels, crop outside the image); `resize` rejects
// instead of throwing. `resize` copies its input before queueing, so the caller may
// reuse or transfer the buffer at once. IMAGEREWARD_NATIVE=0 disables the addon
// (native = null); IMAGEREWARD_NATIVE_SIMD=0 makes it use its portable kernels only.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ResampleFilter = 'nearest' | 'bicubic';
export type Triple = readonly [number, number, number];

export interface NativePreprocess {
  resize(src: Uint8Array, width: number, height: number, channels: number, outWidth: number, outHeight: number, filter: ResampleFilter): Promise<Uint8Array>;
  resizeSync(src: Uint8Array, width: number, height: number, channels: number, outWidth: number, outHeight: number, filter: ResampleFilter): Uint8Array;
  cropNormalize(rgb: Uint8Array, width: number, height: number, left: number, top: number, size: number, mean: Triple, std: Triple): Float32Array;
}

export type NativeDecodeFormat = 'jpeg' | 'png' | 'webp';

export interface NativeDecodeOptions {
  /** Refuse (ERR_DECODE_TOO_LARGE) when the stream's header has more pixels than this. */
  maxPixels: number;
  /** WebP only: decode to RGBA (4 channels) instead of RGB (3). */
  alpha?: boolean;
}

export interface NativeDecoded {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

export type NativeDecodeErrorCode = 'ERR_DECODE_CORRUPT' | 'ERR_DECODE_TOO_LARGE' | 'ERR_DECODE_UNSUPPORTED';

export interface NativeBuildInfo {
  version: string;
  cuda: boolean;
  compiler: string;
  /** Formats `decode` handles (each compiled in only when its system library was found). */
  decoders: NativeDecodeFormat[];
}

// ---- CUDA engine (native/src/engine_binding.cc over native/src/cuda/engine.h) -----
// Present only when the addon was built with CUDA (buildInfo().cuda). Every GPU call
// runs on the libuv pool; input typed arrays are read in place while a call is
// pending, so do not mutate them until its promise settles. The promise-returning
// methods never throw: every failure is a rejection carrying a `code`
// (NativeEngineErrorCode; bad arguments are a TypeError / RangeError with code
// ENGINE_BAD_INPUT). ENGINE_OOM: retry with a smaller batch.
// ENGINE_DEVICE_LOST: sticky; `lost` turns true and the engine must be recreated.

export type NativeEngineErrorCode =
  | 'ENGINE_NO_DEVICE'
  | 'ENGINE_CUBLAS_MISSING'
  | 'ENGINE_OOM'
  | 'ENGINE_BAD_MODEL'
  | 'ENGINE_BAD_INPUT'
  | 'ENGINE_CUDA'
  | 'ENGINE_CUBLAS'
  | 'ENGINE_DEVICE_LOST'
  | 'ENGINE_DISPOSED';

export interface NativeEngineLoadOptions {
  /** A model directory (model.safetensors + config.json). */
  modelDir: string;
  device?: number;
  /** Storage type of weights and GEMM inputs (fp32 accumulation and statistics either way). Default bf16. */
  dtype?: 'bf16' | 'fp16';
  /** Largest batch accepted (default 256). */
  maxBatch?: number;
  /** Capture one CUDA graph per batch-size bucket (default true). */
  cudaGraphs?: boolean;
  /** Batches in flight on separate streams (default 2). */
  streams?: number;
}

export interface NativeEngineScores {
  /** (raw - mean) / std, as upstream's score(). */
  reward: Float32Array;
  raw: Float32Array;
}

export interface NativeDeviceInfo {
  device: number;
  name: string;
  computeCapability: string;
  totalMemory: number;
  freeMemory: number;
  /** Device bytes held by the weights. */
  weightBytes: number;
  driverVersion: number;
  runtimeVersion: number;
  cublasLtVersion: string;
}

export interface NativeEngineConfig {
  imageSize: number;
  imageTokens: number;
  visionWidth: number;
  textLength: number;
  vocab: number;
  maxBatch: number;
}

export interface NativeEngine {
  readonly config: NativeEngineConfig;
  /** True after a sticky device error. */
  readonly lost: boolean;
  /** pixels [B,3,S,S] → image embeddings [B,tokens,width]. */
  encodeImages(pixels: Float32Array, batch: number): Promise<Float32Array>;
  /** uint8 HWC [B,S,S,3] after Pillow-exact resize/crop, normalized on the device. */
  encodeImagesU8(images: Uint8Array, batch: number): Promise<Float32Array>;
  /** ids/mask [B,textLength], embeds [B,tokens,width]. */
  scoreText(ids: Int32Array, mask: Int32Array, embeds: Float32Array, batch: number): Promise<NativeEngineScores>;
  /** Whole pass, embeddings stay on the device. */
  forward(pixels: Float32Array, ids: Int32Array, mask: Int32Array, batch: number): Promise<NativeEngineScores>;
  deviceInfo(): NativeDeviceInfo;
  /** Waits for in-flight batches, frees device memory; later calls reject with ENGINE_DISPOSED. */
  dispose(): Promise<void>;
}

export interface NativeCudaBuildInfo {
  /** Compiled SM architectures, e.g. "80;90". */
  archs: string;
  /** CUDART_VERSION the addon was built with (e.g. 13000). */
  cudaRuntimeVersion: number;
  /** How cuBLASLt is reached: loaded at run time (dlopen), and the sonames tried. */
  cublasLt: string;
}

export interface NativeEngineApi {
  load(options: NativeEngineLoadOptions): Promise<NativeEngine>;
  buildInfo(): NativeCudaBuildInfo;
}

export interface NativeAddon {
  preprocess: NativePreprocess;
  decode(bytes: Uint8Array, format: NativeDecodeFormat, options: NativeDecodeOptions): Promise<NativeDecoded>;
  buildInfo(): NativeBuildInfo;
  /** The CUDA engine; undefined when the addon was built without CUDA. */
  engine?: NativeEngineApi;
}

// ---- loader ---------------------------------------------------------------------
// The binary is native/build/Release/imagereward_native.node (scripts/build-native.js,
// run by `npm install` and `npm run build:native`). This file runs from the sources
// (native/index.ts under tsx/vitest) and compiled (dist/native/index.js); both find
// the same file. IMAGEREWARD_NATIVE=0 disables the addon (reference path);
// IMAGEREWARD_NATIVE_ADDON=<file.node> loads another build of it instead (tests).

const BINARY = join('build', 'Release', 'imagereward_native.node');

/** Where the binary lives: beside this file (sources), or ../../native for dist/native/index.js. */
function binaryPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const compiled = basename(here) === 'native' && basename(dirname(here)) === 'dist';
  return compiled ? resolve(here, '..', '..', 'native', BINARY) : join(here, BINARY);
}

function isAddon(m: unknown): m is NativeAddon {
  const a = m as Partial<NativeAddon> | null;
  const p = a?.preprocess as Partial<NativePreprocess> | undefined;
  return typeof a?.buildInfo === 'function' && typeof a.decode === 'function' && typeof p?.resize === 'function' &&
    typeof p.resizeSync === 'function' && typeof p.cropNormalize === 'function';
}

function load(): { addon: NativeAddon | null; error: string | null } {
  if (process.env.IMAGEREWARD_NATIVE === '0') return { addon: null, error: 'disabled by IMAGEREWARD_NATIVE=0' };
  // Another build of the addon, by path: tests load imagereward_native_emu.node (the same
  // addon over the engine's CPU emulation, native/tests/emu) through this.
  const path = process.env.IMAGEREWARD_NATIVE_ADDON ? resolve(process.env.IMAGEREWARD_NATIVE_ADDON) : binaryPath();
  if (!existsSync(path)) return { addon: null, error: `native addon not built: ${path} is missing (npm run build:native builds it)` };
  try {
    const m: unknown = createRequire(import.meta.url)(path);
    if (!isAddon(m)) return { addon: null, error: `${path} does not export the expected API (stale build? npm run build:native)` };
    return { addon: m, error: null };
  } catch (err) {
    return { addon: null, error: `failed to load ${path}: ${(err as Error).message}` };
  }
}

const loaded = load();

/** The addon, or null when it is not built, failed to load or is disabled (see nativeLoadError). */
export const native: NativeAddon | null = loaded.addon;
/** Why `native` is null; null when it loaded. */
export const nativeLoadError: string | null = loaded.error;
