// JPEG header: size, sample precision and component count from the SOF segment, which
// is all Pillow 9.4's JpegImagePlugin uses to pick the mode (1 → L, 3 → RGB, 4 → CMYK,
// and CMYK is always read with Adobe polarity, "CMYK;I", whether or not an Adobe APP14
// segment is present). Pixels are decoded natively (system libjpeg-turbo) or by sharp; see decode.ts.

import { ImageError, corrupt } from '../errors.js';
import type { PillowMode } from '../modes.js';

export interface JpegHeader {
  width: number;
  height: number;
  components: number;
  progressive: boolean;
  adobe: boolean;
  mode: PillowMode;
}

// Huffman baseline / extended / progressive, arithmetic extended / progressive: what
// libjpeg-turbo 2.1 decodes. Lossless (C3, CB) and hierarchical (C5-C7, CD-CF) are not.
const DECODABLE_SOF = new Set([0xc0, 0xc1, 0xc2, 0xc9, 0xca]);
const OTHER_SOF = new Set([0xc3, 0xc5, 0xc6, 0xc7, 0xcb, 0xcd, 0xce, 0xcf]);

const u16 = (b: Uint8Array, at: number): number => ((b[at] as number) << 8) | (b[at + 1] as number);

export function readJpegHeader(b: Uint8Array): JpegHeader {
  let at = 2; // after SOI
  let adobe = false;
  for (;;) {
    // Pillow skips junk between segments; so do we: find the next 0xFF, then skip fill bytes.
    while (at < b.length && b[at] !== 0xff) at++;
    while (at < b.length && b[at] === 0xff) at++;
    if (at >= b.length) throw corrupt('JPEG', 'no frame header (SOF) before the end of the file');
    const marker = b[at] as number;
    at++;
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue; // no length
    if (marker === 0xd9 || marker === 0xda) throw corrupt('JPEG', 'no frame header (SOF) before the scan');
    if (at + 2 > b.length) throw corrupt('JPEG', 'truncated segment');
    const length = u16(b, at);
    if (length < 2 || at + length > b.length) throw corrupt('JPEG', 'truncated segment');
    const seg = b.subarray(at + 2, at + length);
    if (marker === 0xee && seg.length >= 5 && String.fromCharCode(...seg.subarray(0, 5)) === 'Adobe') adobe = true;
    if (DECODABLE_SOF.has(marker) || OTHER_SOF.has(marker)) {
      if (seg.length < 6) throw corrupt('JPEG', 'short frame header');
      const precision = seg[0] as number;
      const height = u16(seg, 1);
      const width = u16(seg, 3);
      const components = seg[5] as number;
      if (OTHER_SOF.has(marker)) {
        throw new ImageError('unsupported_image_format', `JPEG: lossless/hierarchical coding (SOF ${marker.toString(16)}) is not supported`);
      }
      if (precision !== 8) throw new ImageError('unsupported_image_format', `JPEG: ${precision}-bit samples are not supported (Pillow cannot read them either)`);
      if (width === 0 || height === 0) throw corrupt('JPEG', `bad size ${width}x${height}`);
      const mode: PillowMode | undefined = components === 1 ? 'L' : components === 3 ? 'RGB' : components === 4 ? 'CMYK' : undefined;
      if (!mode) throw new ImageError('unsupported_image_format', `JPEG: ${components} components are not supported`);
      // Keep scanning to the scan start for an Adobe segment after SOF (informational).
      let rest = at + length;
      while (rest + 4 <= b.length && b[rest] === 0xff && b[rest + 1] !== 0xda) {
        const m = b[rest + 1] as number;
        const l = u16(b, rest + 2);
        if (m === 0xee && String.fromCharCode(...b.subarray(rest + 4, rest + 9)) === 'Adobe') adobe = true;
        rest += 2 + l;
      }
      return { width, height, components, progressive: marker === 0xc2 || marker === 0xca, adobe, mode };
    }
    at += length;
  }
}
