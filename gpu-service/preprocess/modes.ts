// Pillow image modes as the pipeline sees them, and the per-pixel conversions Pillow
// 9.4 applies around resizing (libImaging/Convert.c): RGBA/LA are premultiplied for a
// non-NEAREST resize and un-premultiplied after, and every mode ends in convert('RGB').

import type { ResampleFilter } from './reference/resample.js';

export const PILLOW_MODES = ['1', 'L', 'LA', 'P', 'I', 'RGB', 'RGBA', 'CMYK'] as const;
export type PillowMode = (typeof PILLOW_MODES)[number];

/**
 * A decoded image in the mode Pillow would open it as.
 *
 * `data` holds interleaved samples, `bands(mode)` per pixel, rows top to bottom:
 *   1     one byte per pixel, 0 or 255 (Pillow stores mode "1" that way)
 *   L     grey; LA grey, alpha; RGB; RGBA (straight alpha)
 *   CMYK  Pillow's CMYK samples (for JPEG: after its "CMYK;I" Adobe inversion)
 *   I     Int32Array, one band (16-bit greyscale PNG lands here)
 *   P     the palette already applied: 3 bands, RGB. Pillow only ever resizes P with
 *         NEAREST, which picks source pixels, and picking commutes with the palette
 *         lookup that convert('RGB') does later, so expanding first changes nothing.
 */
export interface PillowImage {
  mode: PillowMode;
  width: number;
  height: number;
  data: Uint8Array | Int32Array;
}

export function bands(mode: PillowMode): number {
  switch (mode) {
    case '1':
    case 'L':
    case 'I':
      return 1;
    case 'LA':
      return 2;
    case 'P':
    case 'RGB':
      return 3;
    case 'RGBA':
    case 'CMYK':
      return 4;
  }
}

/** Image.resize: "If the image has mode 1 or P, it is always set to NEAREST". */
export function filterFor(mode: PillowMode, requested: ResampleFilter): ResampleFilter {
  return mode === '1' || mode === 'P' ? 'nearest' : requested;
}

/** Image.resize converts LA → La and RGBA → RGBa around any filter but NEAREST. */
export function resizesPremultiplied(mode: PillowMode, filter: ResampleFilter): boolean {
  return (mode === 'RGBA' || mode === 'LA') && filter !== 'nearest';
}

/** MULDIV255(a, b) = (t = a*b + 128, ((t >> 8) + t) >> 8): a·b/255 rounded, without a division. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/**
 * RGBA → RGBa (rgbA2rgba) and LA → La (lA2la): colour bands times alpha / 255.
 * `bandsPerPixel` is 4 (RGBA) or 2 (LA); the alpha is the last band.
 */
export function premultiply(data: Uint8Array, bandsPerPixel: 2 | 4): Uint8Array {
  const out = new Uint8Array(data.length);
  const colours = bandsPerPixel - 1;
  for (let p = 0; p < data.length; p += bandsPerPixel) {
    const alpha = data[p + colours] as number;
    for (let b = 0; b < colours; b++) out[p + b] = mulDiv255(data[p + b] as number, alpha);
    out[p + colours] = alpha;
  }
  return out;
}

/**
 * RGBa → RGBA (rgba2rgbA) and La → LA (la2lA): alpha 0 or 255 leaves the colour as is,
 * otherwise CLIP8(255 * c / alpha) with C's truncating unsigned division.
 */
export function unpremultiply(data: Uint8Array, bandsPerPixel: 2 | 4): Uint8Array {
  const out = new Uint8Array(data.length);
  const colours = bandsPerPixel - 1;
  for (let p = 0; p < data.length; p += bandsPerPixel) {
    const alpha = data[p + colours] as number;
    for (let b = 0; b < colours; b++) {
      const c = data[p + b] as number;
      out[p + b] = alpha === 255 || alpha === 0 ? c : Math.min(255, Math.floor((255 * c) / alpha));
    }
    out[p + colours] = alpha;
  }
  return out;
}

/** cmyk2rgb: nk = 255 - K; each of R, G, B = CLIP8(nk - MULDIV255(C|M|Y, nk)). */
function cmykToRgb(c: number, k: number): number {
  const nk = 255 - k;
  const v = nk - mulDiv255(c, nk);
  return v <= 0 ? 0 : v < 256 ? v : 255;
}

/** i2rgb: the int clipped (not scaled) to 0..255. */
function clipI(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : v;
}

/**
 * Image.convert('RGB') of `pixels` pixels in `mode` (Convert.c: bit2rgb, l2rgb, la2rgb,
 * rgba2rgb, cmyk2rgb, i2rgb; P is already RGB here, see PillowImage). Alpha is dropped,
 * never composited.
 */
export function toRgb(mode: PillowMode, data: Uint8Array | Int32Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  switch (mode) {
    case 'RGB':
    case 'P':
      out.set(data.subarray(0, pixels * 3));
      return out;
    case 'RGBA':
      for (let p = 0; p < pixels; p++) {
        out[p * 3] = data[p * 4] as number;
        out[p * 3 + 1] = data[p * 4 + 1] as number;
        out[p * 3 + 2] = data[p * 4 + 2] as number;
      }
      return out;
    case '1':
    case 'L':
    case 'LA':
    case 'I': {
      const step = mode === 'LA' ? 2 : 1;
      for (let p = 0; p < pixels; p++) {
        const s = data[p * step] as number;
        const v = mode === '1' ? (s !== 0 ? 255 : 0) : mode === 'I' ? clipI(s) : s;
        out[p * 3] = out[p * 3 + 1] = out[p * 3 + 2] = v;
      }
      return out;
    }
    case 'CMYK':
      for (let p = 0; p < pixels; p++) {
        const k = data[p * 4 + 3] as number;
        out[p * 3] = cmykToRgb(data[p * 4] as number, k);
        out[p * 3 + 1] = cmykToRgb(data[p * 4 + 1] as number, k);
        out[p * 3 + 2] = cmykToRgb(data[p * 4 + 2] as number, k);
      }
      return out;
  }
}
