// Pillow 9.4's Image.resize, bit for bit, in plain TypeScript: the readable reference
// for the native resampler (native/src/resample.cc) and the fallback when the addon
// is not built.
//
// Two filters are needed by torchvision's Resize(224, BICUBIC):
//
//  bicubic  libImaging/Resample.c ImagingResample: two separable passes (horizontal,
//           then vertical), filter support scaled by the reduction factor, coefficients
//           from precompute_coeffs (doubles, normalised to sum 1). For 8-bit images the
//           coefficients become fixed point (normalize_coeffs_8bpc, PRECISION_BITS =
//           32 - 8 - 2 = 22), every pass rounds by adding 1 << 21 and clips to 0..255.
//           For mode I (int32) the coefficients stay doubles and each pass rounds with
//           ROUND_UP (half away from zero), no clipping.
//  nearest  libImaging/Geometry.c ImagingScaleAffine (Image.resize sends NEAREST through
//           the affine transform): source position xo starts at scale / 2 and is
//           advanced by repeated addition of scale; the pixel is (int)xo.
//
// Every output pixel depends only on its own coefficients (and, for the vertical pass,
// on the horizontally resampled rows it reads), so a region of the resized image can be
// computed on its own with exactly the values the full resize would have there. That is
// what CenterCrop needs: resizeRegion computes just the 224x224 window instead of, say,
// 74666x224 for a 1000x3 strip. Pillow's own "only resample the rows the vertical pass
// uses" trick (ybox_first/ybox_last in ImagingResampleInner) is the same idea on one axis.
//
// Images are interleaved: `channels` samples per pixel, rows top to bottom. Pillow
// stores 2- and 3-band images in 4-byte pixels, but every band is resampled on its own,
// so the layout does not change any value.

export type ResampleFilter = 'nearest' | 'bicubic';

/** A rectangle of the OUTPUT image. */
export interface Region {
  left: number;
  top: number;
  width: number;
  height: number;
}

const BICUBIC_SUPPORT = 2.0;
const PRECISION_BITS = 32 - 8 - 2;
const FIXED_ONE = 1 << PRECISION_BITS;
const FIXED_HALF = 1 << (PRECISION_BITS - 1);

/** Pillow's bicubic_filter with a = -0.5 (Keys' cubic convolution). */
export function bicubicFilter(x: number): number {
  const a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

/** Coefficients for the output indices first .. first+count-1 of one axis. */
export interface Coefficients {
  ksize: number;
  /** Per output index: first source index, number of source samples. */
  bounds: Int32Array;
  /** Per output index: ksize weights (doubles, normalised; zero past the count). */
  weights: Float64Array;
}

/**
 * precompute_coeffs for the box (0, inSize): Pillow passes the box as C floats, so the
 * input extent is Math.fround(inSize) (exact below 2^24).
 */
export function precomputeCoeffs(inSize: number, outSize: number, first = 0, count = outSize): Coefficients {
  const in0 = 0;
  const in1 = Math.fround(inSize);
  const scale = Math.fround(in1 - in0) / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(count * 2);
  const weights = new Float64Array(count * ksize);
  const ss = 1.0 / filterscale;
  for (let i = 0; i < count; i++) {
    const xx = first + i;
    const center = in0 + (xx + 0.5) * scale;
    // (int) casts truncate toward zero
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    const k = i * ksize;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubicFilter((x + xmin - center + 0.5) * ss);
      weights[k + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      if (ww !== 0.0) weights[k + x] = (weights[k + x] as number) / ww;
    }
    bounds[i * 2] = xmin;
    bounds[i * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

/** normalize_coeffs_8bpc: doubles → fixed point with 22 fractional bits, rounded half away from zero. */
export function fixedPointCoeffs(weights: Float64Array): Int32Array {
  const out = new Int32Array(weights.length);
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i] as number;
    out[i] = w < 0 ? Math.trunc(-0.5 + w * FIXED_ONE) : Math.trunc(0.5 + w * FIXED_ONE);
  }
  return out;
}

/** clip8: the accumulator (which started at 1 << 21) shifted right 22 bits, clamped to 0..255. */
function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS; // arithmetic shift: floor for negatives, like C on int
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** ROUND_UP(f) = (int)(f >= 0 ? f + 0.5 : f - 0.5) */
function roundUp(f: number): number {
  return Math.trunc(f >= 0.0 ? f + 0.5 : f - 0.5);
}

type Samples = Uint8Array | Int32Array;

/** A separable pass over an interleaved image: `rows` source rows read through `rowIndex`, etc. */
interface PassInput<T extends Samples> {
  data: T;
  width: number; // samples per row / channels
  channels: number;
}

// --- 8 bits per channel (ImagingResampleHorizontal_8bpc / Vertical_8bpc) --------------

function horizontal8(src: PassInput<Uint8Array>, rowFirst: number, rows: number, c: Coefficients): Uint8Array {
  const { data, width, channels } = src;
  const n = c.bounds.length / 2;
  const k = fixedPointCoeffs(c.weights);
  const out = new Uint8Array(rows * n * channels);
  for (let y = 0; y < rows; y++) {
    const rowBase = (rowFirst + y) * width;
    for (let i = 0; i < n; i++) {
      const xmin = c.bounds[i * 2] as number;
      const count = c.bounds[i * 2 + 1] as number;
      const kOff = i * c.ksize;
      for (let b = 0; b < channels; b++) {
        let ss = FIXED_HALF;
        for (let x = 0; x < count; x++) {
          ss += (data[(rowBase + xmin + x) * channels + b] as number) * (k[kOff + x] as number);
        }
        out[(y * n + i) * channels + b] = clip8(ss);
      }
    }
  }
  return out;
}

function vertical8(src: PassInput<Uint8Array>, colFirst: number, cols: number, rowShift: number, c: Coefficients): Uint8Array {
  const { data, width, channels } = src;
  const n = c.bounds.length / 2;
  const k = fixedPointCoeffs(c.weights);
  const out = new Uint8Array(n * cols * channels);
  for (let i = 0; i < n; i++) {
    const ymin = (c.bounds[i * 2] as number) - rowShift;
    const count = c.bounds[i * 2 + 1] as number;
    const kOff = i * c.ksize;
    for (let x = 0; x < cols; x++) {
      for (let b = 0; b < channels; b++) {
        let ss = FIXED_HALF;
        for (let y = 0; y < count; y++) {
          ss += (data[((ymin + y) * width + colFirst + x) * channels + b] as number) * (k[kOff + y] as number);
        }
        out[(i * cols + x) * channels + b] = clip8(ss);
      }
    }
  }
  return out;
}

// --- 32-bit integers, mode I (ImagingResampleHorizontal_32bpc / Vertical_32bpc) --------

function horizontal32(src: PassInput<Int32Array>, rowFirst: number, rows: number, c: Coefficients): Int32Array {
  const { data, width, channels } = src;
  const n = c.bounds.length / 2;
  const k = c.weights;
  const out = new Int32Array(rows * n * channels);
  for (let y = 0; y < rows; y++) {
    const rowBase = (rowFirst + y) * width;
    for (let i = 0; i < n; i++) {
      const xmin = c.bounds[i * 2] as number;
      const count = c.bounds[i * 2 + 1] as number;
      const kOff = i * c.ksize;
      for (let b = 0; b < channels; b++) {
        let ss = 0.0;
        for (let x = 0; x < count; x++) {
          ss += (data[(rowBase + xmin + x) * channels + b] as number) * (k[kOff + x] as number);
        }
        out[(y * n + i) * channels + b] = roundUp(ss);
      }
    }
  }
  return out;
}

function vertical32(src: PassInput<Int32Array>, colFirst: number, cols: number, rowShift: number, c: Coefficients): Int32Array {
  const { data, width, channels } = src;
  const n = c.bounds.length / 2;
  const k = c.weights;
  const out = new Int32Array(n * cols * channels);
  for (let i = 0; i < n; i++) {
    const ymin = (c.bounds[i * 2] as number) - rowShift;
    const count = c.bounds[i * 2 + 1] as number;
    const kOff = i * c.ksize;
    for (let x = 0; x < cols; x++) {
      for (let b = 0; b < channels; b++) {
        let ss = 0.0;
        for (let y = 0; y < count; y++) {
          ss += (data[((ymin + y) * width + colFirst + x) * channels + b] as number) * (k[kOff + y] as number);
        }
        out[(i * cols + x) * channels + b] = roundUp(ss);
      }
    }
  }
  return out;
}

// --- the two-pass driver (ImagingResampleInner) -----------------------------------------

function bicubicRegion<T extends Samples>(
  src: PassInput<T>,
  height: number,
  outWidth: number,
  outHeight: number,
  region: Region,
  horizontal: (src: PassInput<T>, rowFirst: number, rows: number, c: Coefficients) => T,
  vertical: (src: PassInput<T>, colFirst: number, cols: number, rowShift: number, c: Coefficients) => T,
): T {
  const width = src.width;
  // need_horizontal = xsize != imIn->xsize || box[0] || box[2] != xsize, box = (0, 0, w, h) as floats
  const needH = outWidth !== width || Math.fround(width) !== Math.fround(outWidth);
  const needV = outHeight !== height || Math.fround(height) !== Math.fround(outHeight);
  if (!needH && !needV) return cropRegion(src.data, width, src.channels, region);

  const hc = needH ? precomputeCoeffs(width, outWidth, region.left, region.width) : null;
  const vc = needV ? precomputeCoeffs(height, outHeight, region.top, region.height) : null;

  // Source rows the vertical pass will read (all of the region's rows when there is none).
  let rowFirst = region.top;
  let rowEnd = region.top + region.height;
  if (vc) {
    rowFirst = Infinity;
    rowEnd = -Infinity;
    for (let i = 0; i < region.height; i++) {
      const ymin = vc.bounds[i * 2] as number;
      rowFirst = Math.min(rowFirst, ymin);
      rowEnd = Math.max(rowEnd, ymin + (vc.bounds[i * 2 + 1] as number));
    }
  }

  let stage: PassInput<T> = src;
  let colFirst = region.left;
  let rowShift = 0;
  if (hc) {
    // horizontal pass first, over just the rows needed, into a region.width-wide strip
    stage = { data: horizontal(src, rowFirst, rowEnd - rowFirst, hc), width: region.width, channels: src.channels };
    colFirst = 0;
    rowShift = rowFirst;
  }
  if (!vc) return stage.data; // horizontal only: the strip is the region
  return vertical(stage, colFirst, region.width, rowShift, vc);
}

// --- NEAREST (ImagingScaleAffine) -------------------------------------------------------

/**
 * Source index for each output index first..first+count-1 of one axis, or -1 where
 * Pillow leaves the fill value 0. The position is accumulated exactly as Pillow does
 * (xo = scale * 0.5, then xo += scale per step), so we walk from 0 even for a window.
 */
export function nearestIndices(inSize: number, outSize: number, first = 0, count = outSize): Int32Array {
  const a = Math.fround(Math.fround(inSize) - 0) / outSize; // (double)(box[2] - box[0]) / xsize
  const out = new Int32Array(count).fill(-1);
  let xo = 0 + a * 0.5; // a[2] + a[0] * 0.5, a[2] = box[0] = 0
  const end = first + count;
  for (let x = 0; x < end; x++) {
    const xin = xo < 0.0 ? -1 : Math.trunc(xo); // COORD
    if (x >= first && xin >= 0 && xin < inSize) out[x - first] = xin;
    xo += a;
  }
  return out;
}

function nearestRegion<T extends Samples>(src: PassInput<T>, height: number, outWidth: number, outHeight: number, region: Region): T {
  const { data, width, channels } = src;
  // Columns: Pillow tabulates xin for every x, keeps [xmin, xmax) = the x whose xin is
  // inside the image (a contiguous run, since xo only grows) and fills the rest with 0.
  const xs = nearestIndices(width, outWidth, region.left, region.width);
  const ys = nearestIndices(height, outHeight, region.top, region.height);
  const out = (data instanceof Uint8Array ? new Uint8Array(region.width * region.height * channels) : new Int32Array(region.width * region.height * channels)) as T;
  for (let y = 0; y < region.height; y++) {
    const yi = ys[y] as number;
    if (yi < 0) continue; // row outside the source: stays 0 (fill)
    for (let x = 0; x < region.width; x++) {
      const xi = xs[x] as number;
      if (xi < 0) continue;
      const s = (yi * width + xi) * channels;
      const d = (y * region.width + x) * channels;
      for (let b = 0; b < channels; b++) out[d + b] = data[s + b] as number;
    }
  }
  return out;
}

// --- public API ------------------------------------------------------------------------

/** A copy of `region` of an interleaved image (ImagingCrop). */
export function cropRegion<T extends Samples>(data: T, width: number, channels: number, region: Region): T {
  const rowLen = region.width * channels;
  const out = (data instanceof Uint8Array ? new Uint8Array(rowLen * region.height) : new Int32Array(rowLen * region.height)) as T;
  for (let y = 0; y < region.height; y++) {
    const s = ((region.top + y) * width + region.left) * channels;
    out.set(data.subarray(s, s + rowLen), y * rowLen);
  }
  return out;
}

function checkArgs(len: number, width: number, height: number, channels: number, outWidth: number, outHeight: number, region: Region): void {
  for (const [name, v] of [['width', width], ['height', height], ['outWidth', outWidth], ['outHeight', outHeight]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer (got ${v})`);
  }
  if (!Number.isInteger(channels) || channels < 1 || channels > 4) throw new RangeError(`channels must be 1..4 (got ${channels})`);
  if (len !== width * height * channels) throw new RangeError(`source has ${len} samples, expected ${width}x${height}x${channels}`);
  const { left, top, width: rw, height: rh } = region;
  if (![left, top, rw, rh].every(Number.isSafeInteger) || left < 0 || top < 0 || rw < 1 || rh < 1 || left + rw > outWidth || top + rh > outHeight) {
    throw new RangeError(`region ${rw}x${rh}+${left}+${top} is not inside ${outWidth}x${outHeight}`);
  }
}

/**
 * `region` of Pillow's im.resize((outWidth, outHeight), filter) for an interleaved
 * 8-bit image with 1..4 bands (L, La, RGB, RGBa, CMYK, ... — no mode conversion here).
 * Same size → a copy.
 */
export function resizeRegion(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
  filter: ResampleFilter,
  region: Region,
): Uint8Array {
  checkArgs(src.length, width, height, channels, outWidth, outHeight, region);
  const input = { data: src, width, channels };
  if (outWidth === width && outHeight === height) return cropRegion(src, width, channels, region);
  if (filter === 'nearest') return nearestRegion(input, height, outWidth, outHeight, region);
  return bicubicRegion(input, height, outWidth, outHeight, region, horizontal8, vertical8);
}

/** Mode I (32-bit signed ints, one band): the 32bpc path, doubles and ROUND_UP, unclipped. */
export function resizeRegionInt32(
  src: Int32Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  filter: ResampleFilter,
  region: Region,
): Int32Array {
  checkArgs(src.length, width, height, 1, outWidth, outHeight, region);
  const input = { data: src, width, channels: 1 };
  if (outWidth === width && outHeight === height) return cropRegion(src, width, 1, region);
  if (filter === 'nearest') return nearestRegion(input, height, outWidth, outHeight, region);
  return bicubicRegion(input, height, outWidth, outHeight, region, horizontal32, vertical32);
}

/** The whole resized image — the same contract as native.preprocess.resizeSync. */
export function resizeSync(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
  filter: ResampleFilter,
): Uint8Array {
  return resizeRegion(src, width, height, channels, outWidth, outHeight, filter, { left: 0, top: 0, width: outWidth, height: outHeight });
}
