// TIFF header: the first IFD (Pillow's frame 0), mapped to a mode through the part of
// Pillow 9.4's TiffImagePlugin.OPEN_INFO table that we support. Pixels are decoded by
// sharp (libtiff); this only decides the mode and refuses what we cannot match.
//
// Supported (key = photometric, bits per sample, extra samples; unsigned integer
// samples, fill order 1, chunky planar configuration, lossless compression):
//   min-is-white/black, (1)            → 1
//   min-is-white/black, (8)            → L
//   min-is-black,       (8, 8), (2)    → LA
//   RGB,                (8, 8, 8)      → RGB
//   RGB,                (8, 8, 8, 8), none / (2) unassociated / (999) → RGBA
//   palette,            (1|2|4|8)      → P   (colour map scaled by //256 as Pillow does)
// Everything else (associated alpha — Pillow un-premultiplies it on load —, RGBX, CMYK,
// YCbCr, JPEG-compressed, 16-bit, float, planar, fill order 2, ...) is refused as
// unsupported_image_format rather than decoded differently from Pillow.

import { ImageError, corrupt } from '../errors.js';
import type { PillowMode } from '../modes.js';

export interface TiffHeader {
  width: number;
  height: number;
  mode: PillowMode;
}

// Lossless compressions libtiff decodes for both Pillow and libvips.
const COMPRESSIONS: Record<number, string> = {
  1: 'raw',
  2: 'CCITT RLE',
  3: 'group3',
  4: 'group4',
  5: 'LZW',
  8: 'Adobe deflate',
  32773: 'packbits',
  32946: 'deflate',
};

const TYPE_SIZES: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 6: 1, 7: 1, 8: 2, 9: 4, 16: 8 };

function unsupported(what: string): ImageError {
  return new ImageError('unsupported_image_format', `TIFF: ${what} is not supported`);
}

export function readTiffHeader(b: Uint8Array): TiffHeader {
  const le = b[0] === 0x49;
  const u16 = (at: number): number => (le ? (b[at] as number) | ((b[at + 1] as number) << 8) : ((b[at] as number) << 8) | (b[at + 1] as number));
  const u32 = (at: number): number =>
    (le
      ? (b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16) | ((b[at + 3] as number) << 24)
      : ((b[at] as number) << 24) | ((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number)) >>> 0;
  if (b.length < 8) throw corrupt('TIFF', 'truncated header');
  const ifd = u32(4);
  if (ifd < 8 || ifd + 2 > b.length) throw corrupt('TIFF', 'first IFD outside the file');
  const n = u16(ifd);
  if (ifd + 2 + n * 12 > b.length) throw corrupt('TIFF', 'truncated IFD');

  const tags = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + i * 12;
    const tag = u16(e);
    const type = u16(e + 2);
    const count = u32(e + 4);
    const size = TYPE_SIZES[type];
    if (size === undefined || (type !== 3 && type !== 4 && type !== 1)) continue; // only BYTE/SHORT/LONG tags matter here
    if (count > 1 << 16) continue;
    const bytes = size * count;
    const at = bytes <= 4 ? e + 8 : u32(e + 8);
    if (at + bytes > b.length) throw corrupt('TIFF', `tag ${tag} outside the file`);
    const values: number[] = [];
    for (let j = 0; j < count; j++) values.push(type === 3 ? u16(at + j * 2) : type === 4 ? u32(at + j * 4) : (b[at + j] as number));
    tags.set(tag, values);
  }
  const one = (tag: number, dflt?: number): number => {
    const v = tags.get(tag)?.[0] ?? dflt;
    if (v === undefined) throw corrupt('TIFF', `missing tag ${tag}`);
    return v;
  };

  const width = one(256);
  const height = one(257);
  if (width < 1 || height < 1) throw corrupt('TIFF', `bad size ${width}x${height}`);
  const compression = one(259, 1);
  if (!(compression in COMPRESSIONS)) throw unsupported(`compression ${compression}`);
  const photo = one(262, 0);
  if (one(266, 1) !== 1) throw unsupported('fill order 2');
  const spp = one(277, 1);
  if (one(284, 1) !== 1 && spp > 1) throw unsupported('planar configuration 2');
  const sampleFormat = tags.get(339) ?? [1];
  if (!sampleFormat.every((v) => v === 1)) throw unsupported('non-unsigned-integer samples');
  let bps = tags.get(258) ?? [1];
  if (spp < bps.length) bps = bps.slice(0, spp);
  else if (spp > bps.length && bps.length === 1) bps = new Array<number>(spp).fill(bps[0] as number);
  if (bps.length !== spp) throw corrupt('TIFF', 'bits per sample do not match samples per pixel');
  const extra = tags.get(338) ?? [];
  const key = `${photo}|${bps.join(',')}|${extra.join(',')}`;

  let mode: PillowMode | undefined;
  if ((photo === 0 || photo === 1) && key.endsWith('|1|')) mode = '1';
  else if ((photo === 0 || photo === 1) && key.endsWith('|8|')) mode = 'L';
  else if (key === '1|8,8|2') mode = 'LA';
  else if (key === '2|8,8,8|') mode = 'RGB';
  else if (key === '2|8,8,8,8|' || key === '2|8,8,8,8|2' || key === '2|8,8,8,8|999') mode = 'RGBA';
  else if (photo === 3 && ['3|1|', '3|2|', '3|4|', '3|8|'].includes(key)) {
    // Pillow takes colormap >> 8; libvips treats an all-below-256 colormap as 8-bit.
    const top = (tags.get(320) ?? []).reduce((m, v) => Math.max(m, v), 0);
    if (top > 0 && top < 256) throw unsupported('an 8-bit-valued colour map');
    mode = 'P';
  }
  if (!mode) throw unsupported(`photometric ${photo} with bits ${bps.join(',')} and extra samples (${extra.join(',')})`);
  return { width, height, mode };
}
