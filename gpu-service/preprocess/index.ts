// Image bytes → the float32 CHW 3×224×224 tensor that upstream ImageReward feeds BLIP,
// computed exactly as torchvision 0.14 + Pillow 9.4 do it:
//
//   Image.open(bytes)                      decode.ts (mode, size, samples of frame 0)
//   → Resize(224, BICUBIC)                 geometry.resizedSize; resize in the image's
//                                          OWN mode (NEAREST for 1/P, premultiplied for
//                                          RGBA/LA, 32-bit for I); only the crop window
//                                          of the resized image is computed
//   → CenterCrop(224)                      geometry.centerCropOffsets
//   → .convert('RGB')                      modes.toRgb
//   → ToTensor() → Normalize(mean, std)    reference/normalize.ts (or native)
//
// Backends: 'auto' (default) uses the native addon when it is built, 'native' requires
// it, 'reference' forces the TypeScript reference. Both give identical results; mode
// conversions stay in TypeScript either way. See docs/preprocessing.md.

import { native, nativeLoadError, type NativePreprocess } from '../../native/index.js';
import { decodeImage, type DecodedImage, type DecoderChoice } from './decode.js';
import { ImageError } from './errors.js';
import { centerCropOffsets, resizedSize } from './geometry.js';
import { bands, filterFor, premultiply, resizesPremultiplied, toRgb, unpremultiply, type PillowMode } from './modes.js';
import { cropNormalize } from './reference/normalize.js';
import { cropRegion, resizeRegion, resizeRegionInt32, type ResampleFilter } from './reference/resample.js';
import type { SupportedFormat } from '../../contracts/image/sniff.js';

export { ImageError, IMAGE_ERROR_CODES, IMAGE_ERROR_STATUS, isImageError, type ImageErrorCode } from './errors.js';
export type { PillowMode } from './modes.js';
export type { SupportedFormat } from '../../contracts/image/sniff.js';
export type { DecoderChoice } from './decode.js';

export const IMAGE_SIZE = 224;
export const MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** Pillow's Image.MAX_IMAGE_PIXELS (int(1024 * 1024 * 1024 // 4 // 3)). */
export const DEFAULT_MAX_PIXELS = 89_478_485;
export const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;

/**
 * The native resize returns the whole resized image; above this many pixels the
 * reference computes just the crop window instead (same values, bounded memory).
 */
export const NATIVE_FULL_RESIZE_MAX_PIXELS = 1 << 24;

export interface PreprocessOptions {
  /** Refuse images with more pixels than this (default 89,478,485, Pillow's MAX_IMAGE_PIXELS). Checked from the header, before decoding. The resized image (before the crop) must fit max(maxPixels, default) too. */
  maxPixels?: number;
  /** Refuse files larger than this many bytes (default 32 MiB). */
  maxBytes?: number;
  backend?: 'native' | 'reference' | 'auto';
  /**
   * Who decodes JPEG / PNG / WebP samples (independent of `backend`): 'auto' (default)
   * the native addon's decoders when compiled in (IMAGEREWARD_NATIVE_DECODE=0 turns them
   * off), 'native' requires them, 'sharp' never uses them. Same samples either way.
   */
  decoder?: DecoderChoice;
}

export interface PreprocessResult {
  format: SupportedFormat;
  /** The mode Pillow opens the file as. */
  mode: PillowMode;
  width: number;
  height: number;
  /** Size after Resize(224), before the crop. */
  resized: [number, number];
  crop: { left: number; top: number };
  /** The 224×224 crop after convert('RGB'), interleaved RGB (HWC). */
  rgb: Uint8Array;
  /** ToTensor + Normalize: float32, 3×224×224, CHW. */
  tensor: Float32Array;
  backend: 'native' | 'reference';
}

function limit(name: string, value: number | undefined, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !(value > 0) || !Number.isInteger(value)) throw new TypeError(`${name} must be a positive integer (got ${String(value)})`);
  return value;
}

function selectBackend(backend: PreprocessOptions['backend'] = 'auto'): NativePreprocess | null {
  switch (backend) {
    case 'reference':
      return null;
    case 'native':
      if (!native) throw new Error(`backend 'native' requested but the native addon is not available: ${nativeLoadError ?? 'unknown reason'}`);
      return native.preprocess;
    case 'auto':
      return native ? native.preprocess : null;
    default:
      throw new TypeError(`backend must be 'auto', 'native' or 'reference' (got ${String(backend)})`);
  }
}

/** The 224×224 window of the resized image, in the image's mode. */
async function resizedWindow(
  img: DecodedImage,
  outW: number,
  outH: number,
  region: { left: number; top: number; width: number; height: number },
  nativeBackend: NativePreprocess | null,
): Promise<Uint8Array | Int32Array> {
  const n = bands(img.mode);
  if (outW === img.width && outH === img.height) {
    // torchvision leaves the image alone (and Image.resize would copy): no premultiply.
    return cropRegion(img.data, img.width, n, region);
  }
  const filter: ResampleFilter = filterFor(img.mode, 'bicubic');
  if (img.data instanceof Int32Array) {
    // Mode I: Pillow's 32-bit path (doubles, ROUND_UP); the native resize is 8-bit only.
    return resizeRegionInt32(img.data, img.width, img.height, outW, outH, filter, region);
  }
  const premultiplied = resizesPremultiplied(img.mode, filter);
  const src = premultiplied ? premultiply(img.data, n as 2 | 4) : img.data;
  let window: Uint8Array;
  if (nativeBackend && outW * outH <= NATIVE_FULL_RESIZE_MAX_PIXELS) {
    const full = await nativeBackend.resize(src, img.width, img.height, n, outW, outH, filter);
    window = cropRegion(full, outW, n, region);
  } else {
    window = resizeRegion(src, img.width, img.height, n, outW, outH, filter, region);
  }
  return premultiplied ? unpremultiply(window, n as 2 | 4) : window;
}

type RgbResult = Omit<PreprocessResult, 'tensor' | 'backend'>;

/** Decode → Resize(224) → CenterCrop(224) → convert('RGB'): everything before ToTensor. */
async function preprocessToRgb(bytes: Uint8Array, opts: PreprocessOptions, nativeBackend: NativePreprocess | null): Promise<RgbResult> {
  const maxPixels = limit('maxPixels', opts.maxPixels, DEFAULT_MAX_PIXELS);
  const maxBytes = limit('maxBytes', opts.maxBytes, DEFAULT_MAX_BYTES);
  if (!(bytes instanceof Uint8Array)) throw new TypeError('image bytes must be a Uint8Array');
  if (bytes.length === 0) throw new ImageError('image_empty', 'the image is empty (0 bytes)');
  if (bytes.length > maxBytes) throw new ImageError('image_too_large', `the file is ${bytes.length} bytes, over the limit of ${maxBytes}`);

  const img = await decodeImage(bytes, opts.decoder === undefined ? { maxPixels } : { maxPixels, decoder: opts.decoder });
  const [outW, outH] = resizedSize(img.width, img.height, IMAGE_SIZE);
  // Upstream materialises the whole resized image before cropping; for extreme aspect
  // ratios (beyond ~1783:1 with the default) that is itself a bomb, so it gets the same
  // bound as a decoded image (never below the default: any image resizes to >= 224x224).
  const maxResized = Math.max(maxPixels, DEFAULT_MAX_PIXELS);
  if (outW * outH > maxResized) {
    throw new ImageError('image_too_large', `${img.width}x${img.height} would be resized to ${outW}x${outH}, over the limit of ${maxResized} pixels`);
  }
  const crop = centerCropOffsets(outW, outH, IMAGE_SIZE);
  const region = { left: crop.left, top: crop.top, width: IMAGE_SIZE, height: IMAGE_SIZE };
  const window = await resizedWindow(img, outW, outH, region, nativeBackend);
  const rgb = toRgb(img.mode, window, IMAGE_SIZE * IMAGE_SIZE);
  return { format: img.format, mode: img.mode, width: img.width, height: img.height, resized: [outW, outH], crop, rgb };
}

/**
 * ToTensor + Normalize of `batch` interleaved RGB size×size images ([batch, size, size, 3]
 * uint8) → float32 [batch, 3, size, size] — the last step of preprocessImage, for callers
 * that ship the 3-byte pixels and normalize where the model runs (the ORT worker; the CUDA
 * engine does the same on the GPU). Bit-identical to preprocessImage's tensor.
 */
export function normalizeRgb(rgb: Uint8Array, batch: number, size = IMAGE_SIZE, backend: PreprocessOptions['backend'] = 'auto'): Float32Array {
  const per = size * size * 3;
  if (!Number.isInteger(batch) || batch < 0 || rgb.length !== batch * per) {
    throw new RangeError(`rgb must hold ${batch} x ${size} x ${size} x 3 bytes (got ${rgb.length})`);
  }
  const nativeBackend = selectBackend(backend);
  const out = new Float32Array(batch * per);
  for (let i = 0; i < batch; i++) {
    const one = rgb.subarray(i * per, (i + 1) * per);
    out.set(
      nativeBackend ? nativeBackend.cropNormalize(one, size, size, 0, 0, size, MEAN, STD) : cropNormalize(one, size, size, 0, 0, size, MEAN, STD),
      i * per,
    );
  }
  return out;
}

/** Everything the pipeline computes, for tests and diagnostics. */
export async function preprocessImageDetailed(bytes: Uint8Array, opts: PreprocessOptions = {}): Promise<PreprocessResult> {
  const nativeBackend = selectBackend(opts.backend);
  const r = await preprocessToRgb(bytes, opts, nativeBackend);
  const tensor = nativeBackend
    ? nativeBackend.cropNormalize(r.rgb, IMAGE_SIZE, IMAGE_SIZE, 0, 0, IMAGE_SIZE, MEAN, STD)
    : cropNormalize(r.rgb, IMAGE_SIZE, IMAGE_SIZE, 0, 0, IMAGE_SIZE, MEAN, STD);
  return { ...r, tensor, backend: nativeBackend ? 'native' : 'reference' };
}

/**
 * bytes of an image file → the 224×224 crop after convert('RGB'), interleaved RGB (HWC,
 * 150,528 bytes): preprocessImage without ToTensor + Normalize (see normalizeRgb).
 */
export async function preprocessImageRgb(bytes: Uint8Array, opts: PreprocessOptions = {}): Promise<Uint8Array> {
  return (await preprocessToRgb(bytes, opts, selectBackend(opts.backend))).rgb;
}

/** bytes of an image file → float32 CHW 3×224×224 exactly as upstream ImageReward computes it. */
export async function preprocessImage(bytes: Uint8Array, opts: PreprocessOptions = {}): Promise<Float32Array> {
  return (await preprocessImageDetailed(bytes, opts)).tensor;
}
