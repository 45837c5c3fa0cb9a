// GIF, frame 0, exactly as Pillow 9.4's GifImagePlugin + libImaging/GifDecode.c see it.
//
// Decoded here rather than by sharp because a GIF decoder's RGBA output loses what
// Pillow keeps: Pillow opens frame 0 as mode P (palette indices) and convert('RGB')
// maps EVERY index through the palette, the transparent one included, whereas
// decoders hand back 0,0,0,0 there. Likewise for pixels outside a frame that does not
// cover the logical screen, and for indices past the end of a short palette.
//
// Pillow's rules for frame 0 (RGB_AFTER_FIRST, the default loading strategy):
//  - A colour table whose entries are exactly (i, i, i) for every index i is "not
//    needed": it is dropped and the frame opens as mode L (index = grey level).
//    Mode is P when the frame has a needed palette: its local table, else the global one.
//  - The image size is the logical screen, grown to cover frame 0 if it sticks out.
//  - The canvas starts filled with the frame's transparent index (from its Graphic
//    Control Extension) when it has one, else with index 0; frame 0's pixels are then
//    written into its rectangle, all of them (transparency is not applied to frame 0).
//  - Palette entries past the end of the table are Pillow's default ramp (i, i, i).
//  - LZW: clear code resets, a second clear right after a reset is ignored, the first
//    code after a reset must be a literal, codes may be at most `next` (KwKwK), the
//    code width grows when entry 2^width - 1 is added, the table stops growing at 4096.
//    Decoding stops as soon as the last pixel is written. An end code or the end of
//    the data before that is a truncated image (Pillow: "image file is truncated").

import { ImageError, corrupt } from '../errors.js';

export interface GifHeader {
  width: number;
  height: number;
  mode: 'P' | 'L';
  /** 256 RGB entries (768 bytes) for mode P, with the ramp past the file's table. */
  palette: Uint8Array | null;
  transparency: number | null;
  frame: { left: number; top: number; width: number; height: number; interlaced: boolean; minCodeSize: number; dataOffset: number };
}

const u16le = (b: Uint8Array, at: number): number => (b[at] as number) | ((b[at + 1] as number) << 8);

/** GifImageFile._is_palette_needed: false when entry i is (i, i, i) for every i. */
function paletteNeeded(p: Uint8Array): boolean {
  for (let i = 0; i < p.length; i += 3) {
    const n = i / 3;
    if (!(p[i] === n && p[i + 1] === n && p[i + 2] === n)) return true;
  }
  return false;
}

/** A 256-entry palette: the file's entries, then Pillow's ImagingPaletteNew ramp. */
function fullPalette(p: Uint8Array): Uint8Array {
  const out = new Uint8Array(768);
  for (let i = 0; i < 256; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = i;
  out.set(p.subarray(0, 768));
  return out;
}

/** Walks the header, extensions and frame 0's descriptor; does not touch the LZW data. */
export function readGifHeader(b: Uint8Array): GifHeader {
  if (b.length < 13) throw corrupt('GIF', 'truncated header');
  let width = u16le(b, 6);
  let height = u16le(b, 8);
  const flags = b[10] as number;
  let at = 13;
  let globalPalette: Uint8Array | null = null;
  if (flags & 0x80) {
    const len = 3 << ((flags & 7) + 1);
    if (at + len > b.length) throw corrupt('GIF', 'truncated global colour table');
    const p = b.subarray(at, at + len);
    if (paletteNeeded(p)) globalPalette = p;
    at += len;
  }
  // Sub-blocks: a length byte, that many bytes; a zero length ends the sequence.
  const skipSubBlocks = (): void => {
    for (;;) {
      if (at >= b.length) throw corrupt('GIF', 'truncated extension');
      const n = b[at] as number;
      at += 1 + n;
      if (n === 0) return;
    }
  };
  let transparency: number | null = null;
  for (;;) {
    if (at >= b.length || b[at] === 0x3b) throw corrupt('GIF', 'no image in file');
    const introducer = b[at++] as number;
    if (introducer === 0x21) {
      if (at + 1 > b.length) throw corrupt('GIF', 'truncated extension');
      const label = b[at++] as number;
      if (label === 0xf9 && b[at] !== undefined && (b[at] as number) >= 4 && at + 5 <= b.length) {
        // Graphic Control Extension: packed flags, delay (2), transparent index
        if ((b[at + 1] as number) & 1) transparency = b[at + 4] as number;
      }
      skipSubBlocks();
    } else if (introducer === 0x2c) {
      if (at + 9 > b.length) throw corrupt('GIF', 'truncated image descriptor');
      const left = u16le(b, at);
      const top = u16le(b, at + 2);
      const fw = u16le(b, at + 4);
      const fh = u16le(b, at + 6);
      const iflags = b[at + 8] as number;
      at += 9;
      if (fw === 0 || fh === 0) throw corrupt('GIF', 'empty frame');
      width = Math.max(width, left + fw);
      height = Math.max(height, top + fh);
      // Local colour table: undefined = none, null = present but "not needed" (grey ramp).
      let local: Uint8Array | null | undefined;
      if (iflags & 0x80) {
        const len = 3 << ((iflags & 7) + 1);
        if (at + len > b.length) throw corrupt('GIF', 'truncated local colour table');
        const p = b.subarray(at, at + len);
        local = paletteNeeded(p) ? p : null;
        at += len;
      }
      if (at >= b.length) throw corrupt('GIF', 'truncated image data');
      const minCodeSize = b[at++] as number;
      if (minCodeSize > 12) throw corrupt('GIF', `bad LZW code size ${minCodeSize}`);
      const framePalette = local !== undefined ? local : globalPalette;
      return {
        width,
        height,
        mode: framePalette ? 'P' : 'L',
        palette: framePalette ? fullPalette(framePalette) : null,
        transparency,
        frame: { left, top, width: fw, height: fh, interlaced: (iflags & 0x40) !== 0, minCodeSize, dataOffset: at },
      };
    }
    // Any other byte is skipped, as Pillow does.
  }
}

/** Frame 0's palette indices on the full canvas (width × height bytes). */
export function decodeGifIndices(b: Uint8Array, h: GifHeader): Uint8Array {
  const { frame } = h;
  const canvas = new Uint8Array(h.width * h.height).fill(h.transparency ?? 0);

  // Row order: 0..h-1, or the four interlace passes (0 step 8, 4 step 8, 2 step 4, 1 step 2).
  const pass = { start: [0, 4, 2, 1], step: [8, 8, 4, 2] };
  let passNo = 0;
  let step = frame.interlaced ? 8 : 1;
  let y = 0;
  let x = 0;
  let done = false;
  let rowBase = (frame.top + y) * h.width + frame.left;
  const put = (v: number): void => {
    canvas[rowBase + x] = v;
    if (++x < frame.width) return;
    x = 0;
    y += step;
    while (y >= frame.height) {
      if (!frame.interlaced || passNo === 3) {
        done = true;
        return;
      }
      passNo++;
      y = pass.start[passNo] as number;
      step = pass.step[passNo] as number;
    }
    rowBase = (frame.top + y) * h.width + frame.left;
  };

  // Bit reader over the data sub-blocks, least significant bit first.
  let at = frame.dataOffset;
  let blockLeft = 0;
  let bitBuf = 0;
  let bitCount = 0;
  const readCode = (size: number): number => {
    while (bitCount < size) {
      if (blockLeft === 0) {
        if (at >= b.length) throw truncated();
        blockLeft = b[at++] as number;
        if (blockLeft === 0) throw truncated(); // block terminator before the image is complete
        if (at + blockLeft > b.length) throw truncated();
      }
      bitBuf |= (b[at++] as number) << bitCount;
      blockLeft--;
      bitCount += 8;
    }
    const c = bitBuf & ((1 << size) - 1);
    bitBuf >>>= size;
    bitCount -= size;
    return c;
  };

  const TABLE = 4096;
  const clear = 1 << frame.minCodeSize;
  const end = clear + 1;
  const first = new Uint8Array(TABLE); // last byte added by each entry (Pillow's data[])
  const link = new Int32Array(TABLE); // prefix code of each entry
  const stack = new Uint8Array(TABLE + 1);
  let next = clear + 2;
  let codeSize = frame.minCodeSize + 1;
  let afterReset = true;
  let lastCode = 0;
  let lastFirst = 0; // first byte of the previous string (Pillow's lastdata)

  while (!done) {
    const code = readCode(codeSize);
    if (code === clear) {
      next = clear + 2;
      codeSize = frame.minCodeSize + 1;
      afterReset = true;
      continue;
    }
    if (code === end) throw truncated();
    if (afterReset) {
      if (code > clear) throw corrupt('GIF', 'bad first LZW code');
      afterReset = false;
      lastCode = lastFirst = code;
      put(code);
      continue;
    }
    if (code > next) throw corrupt('GIF', 'bad LZW code');
    let sp = 0;
    let c = code;
    if (c === next) {
      // KwKwK: the previous string plus its own first byte
      stack[sp++] = lastFirst;
      c = lastCode;
    }
    while (c >= clear) {
      if (sp >= TABLE || c >= TABLE) throw corrupt('GIF', 'bad LZW code');
      stack[sp++] = first[c] as number;
      c = link[c] as number;
    }
    lastFirst = c;
    put(c);
    while (sp > 0 && !done) put(stack[--sp] as number);
    if (next < TABLE) {
      first[next] = c;
      link[next] = lastCode;
      if (next === (1 << codeSize) - 1 && codeSize < 12) codeSize++;
      next++;
    }
    lastCode = code;
  }
  return canvas;
}

function truncated(): ImageError {
  return corrupt('GIF', 'image data ends before the frame is complete (truncated)');
}
