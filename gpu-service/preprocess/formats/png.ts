// PNG header: what Pillow 9.4's PngImagePlugin needs to pick the mode — bit depth and
// colour type from IHDR. Pixels are decoded natively (system libpng, bit depth <= 8) or by sharp; this only reads
// the chunks before the first IDAT, checking their CRCs as Pillow does.

import { crc32 } from 'node:zlib';
import { corrupt } from '../errors.js';
import type { PillowMode } from '../modes.js';

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colourType: number;
  interlaced: boolean;
  mode: PillowMode;
  /** Byte offset of the PLTE chunk (its length field) and its entry count, if any. */
  palette: { offset: number; entries: number } | null;
}

/** PngImagePlugin._MODES: (bit depth, colour type) → mode Pillow opens the file as. */
const PNG_MODES: Record<string, PillowMode> = {
  '1,0': '1',
  '2,0': 'L', // rawmode L;2, scaled ×85
  '4,0': 'L', // L;4, ×17
  '8,0': 'L',
  '16,0': 'I', // I;16B: the full 16-bit value in a 32-bit int
  '8,2': 'RGB',
  '16,2': 'RGB', // RGB;16B: keeps the high byte of each sample
  '1,3': 'P',
  '2,3': 'P',
  '4,3': 'P',
  '8,3': 'P',
  '8,4': 'LA',
  '16,4': 'RGBA', // LA;16B → RGBA (L copied to R, G, B), high bytes
  '8,6': 'RGBA',
  '16,6': 'RGBA', // RGBA;16B, high bytes
};

const u32 = (b: Uint8Array, at: number): number =>
  (((b[at] as number) << 24) | ((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number)) >>> 0;

export function readPngHeader(b: Uint8Array): PngHeader {
  // signature (8) + IHDR length (4) + "IHDR" (4) + 13 bytes + CRC (4)
  if (b.length < 33) throw corrupt('PNG', 'truncated before the end of IHDR');
  if (u32(b, 8) !== 13 || String.fromCharCode(...b.subarray(12, 16)) !== 'IHDR') throw corrupt('PNG', 'first chunk is not a 13-byte IHDR');
  const width = u32(b, 16);
  const height = u32(b, 20);
  const bitDepth = b[24] as number;
  const colourType = b[25] as number;
  const interlace = b[28] as number;
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) throw corrupt('PNG', `bad size ${width}x${height}`);
  const mode = PNG_MODES[`${bitDepth},${colourType}`];
  if (!mode) throw corrupt('PNG', `unknown bit depth ${bitDepth} / colour type ${colourType}`);
  if (b[26] !== 0 || b[27] !== 0 || interlace > 1) throw corrupt('PNG', 'unknown compression, filter or interlace method');
  // Pillow reads (and CRC-checks) every chunk up to the first IDAT while opening.
  let at = 8;
  let palette: PngHeader['palette'] = null;
  for (;;) {
    if (at + 8 > b.length) throw corrupt('PNG', 'truncated before the image data');
    const length = u32(b, at);
    const type = String.fromCharCode(...b.subarray(at + 4, at + 8));
    if (type === 'IDAT') break;
    if (type === 'IEND') throw corrupt('PNG', 'no image data');
    if (length > b.length - at - 12) throw corrupt('PNG', `truncated ${type} chunk`);
    if (crc32(b.subarray(at + 4, at + 8 + length)) !== u32(b, at + 8 + length)) throw corrupt('PNG', `bad CRC in ${type} chunk`);
    if (type === 'PLTE') palette = { offset: at, entries: Math.floor(length / 3) };
    at += 12 + length;
  }
  return { width, height, bitDepth, colourType, interlaced: interlace === 1, mode, palette };
}

/**
 * For a palette image whose PLTE has fewer entries than its bit depth can index:
 * the same file with PLTE padded to 2^depth entries of Pillow's default palette ramp
 * (entry i = (i, i, i)). Pillow looks indices past the end of the file's palette up in
 * that ramp; libpng would make them black. Files that use no such index decode the same
 * either way. Returns the input when nothing needs padding.
 */
export function padShortPalette(b: Uint8Array, h: PngHeader): Uint8Array {
  if (h.colourType !== 3 || !h.palette) return b;
  const wanted = 1 << h.bitDepth;
  const { offset, entries } = h.palette;
  if (entries >= wanted) return b;
  const body = new Uint8Array(4 + wanted * 3); // "PLTE" + entries
  body.set(b.subarray(offset + 4, offset + 8 + entries * 3));
  for (let i = entries; i < wanted; i++) body[4 + i * 3] = body[5 + i * 3] = body[6 + i * 3] = i;
  const chunk = new Uint8Array(12 + wanted * 3);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, wanted * 3);
  chunk.set(body, 4);
  view.setUint32(8 + wanted * 3, crc32(body));
  const oldLength = u32(b, offset);
  const out = new Uint8Array(b.length - (12 + oldLength) + chunk.length);
  out.set(b.subarray(0, offset));
  out.set(chunk, offset);
  out.set(b.subarray(offset + 12 + oldLength), offset + chunk.length);
  return out;
}
