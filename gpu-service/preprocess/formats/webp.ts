// WebP header: size and whether Pillow 9.4 opens the file as RGBA or RGB.
//
// Pillow (with WebPAnimDecoder, as Debian builds it) asks libwebp's WebPGetFeatures:
// mode is RGBA when `has_alpha`, else RGB (decoded as RGBX, X dropped). has_alpha is
//   - animated (VP8X with the animation flag): the VP8X alpha flag;
//   - VP8X still image: the VP8X alpha flag, but a VP8L bitstream overrides it with its
//     own alpha_is_used bit; an ALPH chunk sets it;
//   - simple lossy (VP8 ): false; simple lossless (VP8L): the alpha_is_used bit.
// sharp/libvips decides its band count differently (an animated file always gets
// alpha), so the mode comes from here and the bands are fitted to it.

import { corrupt } from '../errors.js';
import type { PillowMode } from '../modes.js';

export interface WebpHeader {
  width: number;
  height: number;
  animated: boolean;
  hasAlpha: boolean;
  mode: PillowMode;
}

const u24le = (b: Uint8Array, at: number): number => (b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16);
const u32le = (b: Uint8Array, at: number): number => (u24le(b, at) | ((b[at + 3] as number) << 24)) >>> 0;
const tag = (b: Uint8Array, at: number): string => String.fromCharCode(...b.subarray(at, at + 4));

/** VP8L header: 0x2f, then width-1 (14 bits), height-1 (14 bits), alpha_is_used (1), version (3). */
function vp8l(b: Uint8Array, at: number, len: number): { width: number; height: number; alpha: boolean } {
  if (len < 5 || b[at] !== 0x2f) throw corrupt('WebP', 'bad VP8L header');
  const bits = u32le(b, at + 1);
  return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1, alpha: ((bits >>> 28) & 1) === 1 };
}

/** VP8 key frame: 3-byte tag, start code 9d 01 2a, then 14-bit width and height. */
function vp8(b: Uint8Array, at: number, len: number): { width: number; height: number } {
  if (len < 10 || b[at + 3] !== 0x9d || b[at + 4] !== 0x01 || b[at + 5] !== 0x2a) throw corrupt('WebP', 'bad VP8 header');
  return { width: u24le(b, at + 6) & 0x3fff, height: u24le(b, at + 8) & 0x3fff };
}

export function readWebpHeader(b: Uint8Array): WebpHeader {
  if (b.length < 20) throw corrupt('WebP', 'truncated header');
  let at = 12;
  const chunk = (): { type: string; len: number; body: number } => {
    if (at + 8 > b.length) throw corrupt('WebP', 'truncated chunk header');
    const type = tag(b, at);
    const len = u32le(b, at + 4);
    if (at + 8 + len > b.length) throw corrupt('WebP', `truncated ${type.trim()} chunk`);
    const c = { type, len, body: at + 8 };
    at += 8 + len + (len & 1);
    return c;
  };
  const first = chunk();
  const result = (width: number, height: number, animated: boolean, hasAlpha: boolean): WebpHeader => {
    if (width < 1 || height < 1) throw corrupt('WebP', `bad size ${width}x${height}`);
    return { width, height, animated, hasAlpha, mode: hasAlpha ? 'RGBA' : 'RGB' };
  };
  if (first.type === 'VP8 ') {
    const d = vp8(b, first.body, first.len);
    return result(d.width, d.height, false, false);
  }
  if (first.type === 'VP8L') {
    const d = vp8l(b, first.body, first.len);
    return result(d.width, d.height, false, d.alpha);
  }
  if (first.type !== 'VP8X' || first.len < 10) throw corrupt('WebP', `unexpected first chunk "${first.type}"`);
  const flags = b[first.body] as number;
  const width = u24le(b, first.body + 4) + 1;
  const height = u24le(b, first.body + 7) + 1;
  const animated = (flags & 0x02) !== 0;
  let hasAlpha = (flags & 0x10) !== 0;
  if (animated) return result(width, height, true, hasAlpha);
  let alph = false;
  for (;;) {
    const c = chunk();
    if (c.type === 'ALPH') alph = true;
    else if (c.type === 'VP8L') {
      hasAlpha = vp8l(b, c.body, c.len).alpha;
      break;
    } else if (c.type === 'VP8 ') {
      vp8(b, c.body, c.len);
      break;
    }
  }
  return result(width, height, false, hasAlpha || alph);
}
