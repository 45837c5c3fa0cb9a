// Bytes → the image Pillow 9.4's Image.open would produce (mode, size, samples), frame 0,
// no EXIF transpose, no colour management.
//
// The mode comes from our own header readers (formats/*), which look at what Pillow's
// plugins look at; the pixel count is checked against the limit from those headers
// BEFORE anything is decoded. JPEG, PNG (bit depth <= 8) and still WebP are decoded by
// the native addon's decoders when they are compiled in (the system libjpeg-turbo,
// libpng and libwebp that Debian's Pillow links, so the samples are Pillow's by
// construction; IMAGEREWARD_NATIVE_DECODE=0 or decoder: 'sharp' turns them off). The
// rest — and everything when the addon is absent — comes from sharp (libvips) asked for
// raw samples in the right colourspace and depth, with ICC profiles ignored. Either
// way the bands are then fitted to the Pillow mode. GIF is decoded entirely by
// formats/gif.ts. The decoder choice is independent of the resize backend.

import sharp, { type Metadata } from 'sharp';
import { native, nativeLoadError, type NativeDecodeFormat } from '../../native/index.js';
import { ImageError, corrupt } from './errors.js';
import { readGifHeader, decodeGifIndices } from './formats/gif.js';
import { readJpegHeader } from './formats/jpeg.js';
import { padShortPalette, readPngHeader } from './formats/png.js';
import { readTiffHeader } from './formats/tiff.js';
import { readWebpHeader } from './formats/webp.js';
import { bands, type PillowImage, type PillowMode } from './modes.js';
import { sniff, type SupportedFormat } from '../../contracts/image/sniff.js';

export interface DecodedImage extends PillowImage {
  format: SupportedFormat;
}

/**
 * Which decoder produces JPEG / PNG / WebP samples: 'auto' (default) the native one when
 * compiled in and not disabled by IMAGEREWARD_NATIVE_DECODE=0, else sharp; 'native'
 * requires the native decoder for the format (an Error when it is missing); 'sharp'
 * never uses it. Cases the native decoders leave alone (16-bit PNG, animated WebP) and
 * other formats go through sharp / formats/gif.ts whatever this says.
 */
export type DecoderChoice = 'auto' | 'native' | 'sharp';

export interface DecodeLimits {
  maxPixels: number;
  decoder?: DecoderChoice;
}

const NATIVE_DECODERS: ReadonlySet<NativeDecodeFormat> = new Set(native ? (native.buildInfo().decoders ?? []) : []);

/** The formats the native decoders handle in this process (empty without the addon). */
export function nativeDecoders(): NativeDecodeFormat[] {
  return [...NATIVE_DECODERS];
}

function useNative(format: NativeDecodeFormat, choice: DecoderChoice = 'auto'): boolean {
  switch (choice) {
    case 'sharp':
      return false;
    case 'native':
      if (!NATIVE_DECODERS.has(format)) {
        throw new Error(`decoder 'native' requested but the native ${format} decoder is not available: ${nativeLoadError ?? 'not compiled in (library missing at build time)'}`);
      }
      return true;
    case 'auto':
      return NATIVE_DECODERS.has(format) && process.env.IMAGEREWARD_NATIVE_DECODE !== '0';
    default:
      throw new TypeError(`decoder must be 'auto', 'native' or 'sharp' (got ${String(choice)})`);
  }
}

export function checkPixels(format: string, width: number, height: number, maxPixels: number): void {
  if (width * height > maxPixels) {
    throw new ImageError('image_too_large', `${format}: ${width}x${height} = ${width * height} pixels is over the limit of ${maxPixels}`);
  }
}

type SharpColourspace = 'srgb' | 'b-w' | 'grey16' | 'rgb16' | 'cmyk';

interface RawRequest {
  colourspace: SharpColourspace;
  /** Ask for 16-bit samples (16-bit PNG). */
  ushort?: boolean;
  /** CMYK must stay CMYK through the pipeline instead of being converted to sRGB. */
  cmykPipeline?: boolean;
}

interface Raw {
  /** One entry per sample, 0..255 or 0..65535. */
  samples: Uint8Array | Uint16Array;
  channels: number;
}

async function sharpRaw(bytes: Uint8Array, format: string, width: number, height: number, req: RawRequest, maxPixels: number): Promise<Raw> {
  try {
    let s = sharp(bytes, {
      failOn: 'error', // truncated or corrupt data fails, libjpeg/libpng warnings do not (as in Pillow)
      limitInputPixels: Math.max(1, Math.floor(maxPixels)),
      ignoreIcc: true, // Pillow does no colour management
      autoOrient: false, // Pillow does not apply EXIF orientation
      page: 0,
      pages: 1,
    });
    if (req.cmykPipeline) s = s.pipelineColourspace('cmyk');
    s = s.toColourspace(req.colourspace).raw(req.ushort ? { depth: 'ushort' } : undefined);
    const { data, info } = await s.toBuffer({ resolveWithObject: true });
    if (info.width !== width || info.height !== height) {
      throw corrupt(format, `decoder returned ${info.width}x${info.height}, header says ${width}x${height}`);
    }
    let samples: Uint8Array | Uint16Array;
    if (req.ushort) {
      // copy to get 2-byte alignment; native byte order, as libvips writes it
      const copy = new Uint8Array(data.length);
      copy.set(data);
      samples = new Uint16Array(copy.buffer, 0, copy.length >> 1);
    } else {
      samples = new Uint8Array(data.buffer, data.byteOffset, data.length);
    }
    if (samples.length !== width * height * info.channels) throw corrupt(format, 'decoder returned a short buffer');
    return { samples, channels: info.channels };
  } catch (err) {
    if (err instanceof ImageError) throw err;
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    if (/pixel limit/i.test(message ?? '')) throw new ImageError('image_too_large', `${format}: ${message}`, { cause: err });
    throw new ImageError('image_decode_failed', `${format}: ${message}`, { cause: err });
  }
}

/**
 * Samples from the native decoder, or null when it leaves this file to sharp
 * (ERR_DECODE_UNSUPPORTED). `channels` is what the caller expects for the file's mode.
 */
async function nativeRaw(
  bytes: Uint8Array,
  format: string,
  kind: NativeDecodeFormat,
  width: number,
  height: number,
  channels: number,
  maxPixels: number,
  alpha = false,
): Promise<Raw | null> {
  const addon = native;
  if (!addon) throw new Error('internal: native decoder used without the addon');
  let r;
  try {
    r = await addon.decode(bytes, kind, { maxPixels: Math.max(1, Math.floor(maxPixels)), alpha });
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (code === 'ERR_DECODE_UNSUPPORTED') return null;
    const message = (err instanceof Error ? err.message : String(err)).replace(/^decode: /, '');
    if (code === 'ERR_DECODE_TOO_LARGE') throw new ImageError('image_too_large', `${format}: ${message}`, { cause: err });
    throw new ImageError('image_decode_failed', `${format}: ${message}`, { cause: err });
  }
  if (r.width !== width || r.height !== height) throw corrupt(format, `decoder returned ${r.width}x${r.height}, header says ${width}x${height}`);
  if (r.channels !== channels) throw corrupt(format, `decoder returned ${r.channels} channels, expected ${channels}`);
  if (r.data.length !== width * height * channels) throw corrupt(format, 'decoder returned a short buffer');
  return { samples: r.data, channels };
}

/** PNG colour type → channels the native decoder returns (bit depth <= 8). */
const PNG_NATIVE_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 3, 4: 2, 6: 4 };
const JPEG_NATIVE_CHANNELS: Partial<Record<PillowMode, number>> = { L: 1, RGB: 3, CMYK: 4 };

/**
 * Picks bands out of sharp's interleaved output. `take` lists, per output band, the
 * input band; -1 means a constant 255 (an alpha sharp did not produce). 16-bit samples
 * keep their high byte (Pillow's ;16B rawmodes). Mode I goes through fitInt32 instead.
 */
function fit(raw: Raw, pixels: number, take: number[]): Uint8Array {
  // Hot path (8-bit RGB/RGBA/L as decoded): the samples are already in place.
  if (raw.samples instanceof Uint8Array && take.length === raw.channels && take.every((band, j) => band === j)) return raw.samples;
  const out = new Uint8Array(pixels * take.length);
  const shift = raw.samples instanceof Uint16Array ? 8 : 0;
  const { samples, channels } = raw;
  for (let p = 0; p < pixels; p++) {
    for (let j = 0; j < take.length; j++) {
      const band = take[j] as number;
      out[p * take.length + j] = band < 0 ? 255 : (samples[p * channels + band] as number) >> shift;
    }
  }
  return out;
}

function fitInt32(raw: Raw, pixels: number): Int32Array {
  const out = new Int32Array(pixels);
  for (let p = 0; p < pixels; p++) out[p] = raw.samples[p * raw.channels] as number;
  return out;
}

/** Band picks for an sRGB (or grey) decode into each Pillow mode; alpha is the last band sharp gives. */
function takeFor(mode: PillowMode, channels: number): number[] {
  const alpha = channels === 2 || channels === 4 ? channels - 1 : -1;
  switch (mode) {
    case '1':
    case 'L':
      return [0];
    case 'LA':
      return [0, alpha];
    case 'RGB':
    case 'P':
      return channels >= 3 ? [0, 1, 2] : [0, 0, 0];
    case 'RGBA':
      return channels >= 3 ? [0, 1, 2, alpha] : [0, 0, 0, alpha];
    case 'CMYK':
      return [0, 1, 2, 3];
    case 'I':
      return [0];
  }
}

async function decodeWithSharp(
  bytes: Uint8Array,
  format: SupportedFormat,
  mode: PillowMode,
  width: number,
  height: number,
  req: RawRequest,
  maxPixels: number,
  nativeFirst?: () => Promise<Raw | null>,
): Promise<DecodedImage> {
  const raw = (nativeFirst ? await nativeFirst() : null) ?? (await sharpRaw(bytes, format, width, height, req, maxPixels));
  const pixels = width * height;
  const data = mode === 'I' ? fitInt32(raw, pixels) : fit(raw, pixels, takeFor(mode, raw.channels));
  if (data.length !== pixels * bands(mode)) throw new Error(`internal: ${mode} image has ${data.length} samples`);
  return { format, mode, width, height, data };
}

export async function decodeImage(bytes: Uint8Array, limits: DecodeLimits): Promise<DecodedImage> {
  const sniffed = sniff(bytes);
  if (!sniffed.supported) {
    throw new ImageError(
      'unsupported_image_format',
      sniffed.format ? `${sniffed.format} images are not supported` : 'not a supported image format (PNG, JPEG, GIF, WebP, TIFF, AVIF)',
    );
  }
  const { maxPixels, decoder } = limits;
  const format = sniffed.format;
  switch (format) {
    case 'PNG': {
      const h = readPngHeader(bytes);
      checkPixels(format, h.width, h.height, maxPixels);
      const sixteen = h.bitDepth === 16;
      const grey = h.colourType === 0 || h.colourType === 4;
      let req: RawRequest;
      if (h.mode === 'I') req = { colourspace: 'grey16', ushort: true };
      else if (h.colourType === 0) req = { colourspace: 'b-w' }; // 1, L (1/2/4/8 bits, scaled by the decoder)
      else if (sixteen) req = { colourspace: grey ? 'grey16' : 'rgb16', ushort: true };
      else req = { colourspace: 'srgb' }; // RGB, RGBA, P (palette applied), LA (grey copied to R, G, B)
      const input = h.mode === 'P' ? padShortPalette(bytes, h) : bytes;
      const channels = PNG_NATIVE_CHANNELS[h.colourType];
      const viaNative = h.bitDepth <= 8 && channels !== undefined && useNative('png', decoder)
        ? () => nativeRaw(input, format, 'png', h.width, h.height, channels, maxPixels)
        : undefined;
      return decodeWithSharp(input, format, h.mode, h.width, h.height, req, maxPixels, viaNative);
    }
    case 'JPEG': {
      const h = readJpegHeader(bytes);
      checkPixels(format, h.width, h.height, maxPixels);
      // libvips inverts CMYK JPEG samples unconditionally, which is Pillow's "CMYK;I".
      const req: RawRequest = h.mode === 'L' ? { colourspace: 'b-w' } : h.mode === 'CMYK' ? { colourspace: 'cmyk', cmykPipeline: true } : { colourspace: 'srgb' };
      const channels = JPEG_NATIVE_CHANNELS[h.mode];
      const viaNative = channels !== undefined && useNative('jpeg', decoder)
        ? () => nativeRaw(bytes, format, 'jpeg', h.width, h.height, channels, maxPixels)
        : undefined;
      return decodeWithSharp(bytes, format, h.mode, h.width, h.height, req, maxPixels, viaNative);
    }
    case 'WEBP': {
      const h = readWebpHeader(bytes);
      checkPixels(format, h.width, h.height, maxPixels);
      // Animated files keep going through sharp (frame 0 composited as Pillow's WebPAnimDecoder does).
      const alpha = h.mode === 'RGBA';
      const viaNative = !h.animated && useNative('webp', decoder)
        ? () => nativeRaw(bytes, format, 'webp', h.width, h.height, alpha ? 4 : 3, maxPixels, alpha)
        : undefined;
      return decodeWithSharp(bytes, format, h.mode, h.width, h.height, { colourspace: 'srgb' }, maxPixels, viaNative);
    }
    case 'TIFF': {
      const h = readTiffHeader(bytes);
      checkPixels(format, h.width, h.height, maxPixels);
      const req: RawRequest = h.mode === '1' || h.mode === 'L' ? { colourspace: 'b-w' } : { colourspace: 'srgb' };
      return decodeWithSharp(bytes, format, h.mode, h.width, h.height, req, maxPixels);
    }
    case 'GIF': {
      const h = readGifHeader(bytes);
      checkPixels(format, h.width, h.height, maxPixels);
      const indices = decodeGifIndices(bytes, h);
      if (h.mode === 'L') return { format, mode: 'L', width: h.width, height: h.height, data: indices };
      const palette = h.palette as Uint8Array;
      const rgb = new Uint8Array(indices.length * 3);
      for (let i = 0; i < indices.length; i++) {
        const e = (indices[i] as number) * 3;
        rgb[i * 3] = palette[e] as number;
        rgb[i * 3 + 1] = palette[e + 1] as number;
        rgb[i * 3 + 2] = palette[e + 2] as number;
      }
      return { format, mode: 'P', width: h.width, height: h.height, data: rgb };
    }
    case 'AVIF': {
      // Pillow 9.4 has no AVIF reader, so upstream cannot open these at all; we decode
      // them the way AVIF plugins for Pillow do (RGB, or RGBA with alpha). No parity claim.
      let meta: Metadata;
      try {
        meta = await sharp(bytes, { failOn: 'error', limitInputPixels: false }).metadata();
      } catch (err) {
        throw new ImageError('image_decode_failed', `AVIF: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      const { width, height } = meta;
      if (!width || !height) throw corrupt('AVIF', 'no size in header');
      checkPixels(format, width, height, maxPixels);
      return decodeWithSharp(bytes, format, meta.hasAlpha ? 'RGBA' : 'RGB', width, height, { colourspace: 'srgb' }, maxPixels);
    }
  }
}
