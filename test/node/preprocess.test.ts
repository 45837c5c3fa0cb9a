// Unit tests for gpu-service/preprocess: the Pillow resampler against Pillow itself
// (resample_cases.json), torchvision's geometry, the mode conversions, and bad input.
// End-to-end parity over real files is in preprocess-parity.test.ts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { native } from '../../native/index.js';
import {
  DEFAULT_MAX_PIXELS,
  IMAGE_ERROR_CODES,
  IMAGE_SIZE,
  ImageError,
  MEAN,
  STD,
  preprocessImage,
  preprocessImageDetailed,
} from '../../gpu-service/preprocess/index.js';
import { centerCropOffsets, pyRound, resizedSize } from '../../gpu-service/preprocess/geometry.js';
import { premultiply, toRgb, unpremultiply } from '../../gpu-service/preprocess/modes.js';
import { cropNormalize, normalizeTable } from '../../gpu-service/preprocess/reference/normalize.js';
import {
  nearestIndices,
  resizeRegion,
  resizeRegionInt32,
  resizeSync,
  type ResampleFilter,
} from '../../gpu-service/preprocess/reference/resample.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'preprocess');
const fixture = (name: string): Buffer => readFileSync(join(FIXTURES, 'images', name));

interface ResampleCase {
  mode: string;
  channels: number;
  size: [number, number];
  out: [number, number];
  filter: ResampleFilter;
  input: number[];
  expected: number[];
}
const { cases } = JSON.parse(readFileSync(join(FIXTURES, 'resample_cases.json'), 'utf8')) as { cases: ResampleCase[] };
const label = (c: ResampleCase): string => `${c.mode} ${c.size.join('x')} -> ${c.out.join('x')} ${c.filter}`;

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): string {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `at ${i}: ${a[i]} vs ${b[i]}`;
  return 'equal';
}

function resizeCase(c: ResampleCase): Uint8Array | Int32Array {
  const [w, h] = c.size;
  const [ow, oh] = c.out;
  if (c.mode === 'I') return resizeRegionInt32(Int32Array.from(c.input), w, h, ow, oh, c.filter, { left: 0, top: 0, width: ow, height: oh });
  return resizeSync(Uint8Array.from(c.input), w, h, c.channels, ow, oh, c.filter);
}

describe('reference resampler vs Pillow 9.4 Image.resize', () => {
  it.each(cases.map((c) => [label(c), c] as const))('%s', (_l, c) => {
    const got = resizeCase(c);
    expect(firstDiff(got, c.expected)).toBe('equal');
  });

  it.each(cases.filter((c) => c.out[0] * c.out[1] > 4).map((c) => [label(c), c] as const))('any region of %s equals the crop of the full resize', (_l, c) => {
    const full = resizeCase(c);
    const [ow, oh] = c.out;
    const ch = c.mode === 'I' ? 1 : c.channels;
    for (const [left, top, width, height] of [
      [0, 0, 1, 1],
      [ow - 1, oh - 1, 1, 1],
      [Math.floor(ow / 3), Math.floor(oh / 4), Math.ceil(ow / 2), Math.ceil(oh / 2)],
      [1 % ow, 0, ow - (1 % ow), oh],
    ] as const) {
      const region = { left, top, width, height };
      const part =
        c.mode === 'I'
          ? resizeRegionInt32(Int32Array.from(c.input), c.size[0], c.size[1], ow, oh, c.filter, region)
          : resizeRegion(Uint8Array.from(c.input), c.size[0], c.size[1], ch, ow, oh, c.filter, region);
      const want: number[] = [];
      for (let y = top; y < top + height; y++) for (let x = left; x < left + width; x++) for (let b = 0; b < ch; b++) want.push(full[(y * ow + x) * ch + b] as number);
      expect(firstDiff(part, want)).toBe('equal');
    }
  });

  it('same size is a copy (no resampling, a new buffer)', () => {
    const src = Uint8Array.from({ length: 5 * 4 * 3 }, (_, i) => (i * 91) & 255);
    for (const f of ['bicubic', 'nearest'] as const) {
      const out = resizeSync(src, 5, 4, 3, 5, 4, f);
      expect(out).toEqual(src);
      expect(out).not.toBe(src);
    }
  });

  it('1x1 upscales to a constant image, and constant images stay constant', () => {
    expect([...new Set(resizeSync(Uint8Array.of(77), 1, 1, 1, 224, 224, 'bicubic'))]).toEqual([77]);
    const flat = new Uint8Array(37 * 23 * 4).fill(255);
    for (const [ow, oh] of [[224, 149], [5, 3], [37, 224]] as const) {
      expect([...new Set(resizeSync(flat, 37, 23, 4, ow, oh, 'bicubic'))]).toEqual([255]);
    }
  });

  it('bicubic overshoots and is clipped at a hard edge; nearest picks source pixels', () => {
    const step = Uint8Array.from({ length: 8 }, (_, i) => (i < 4 ? 0 : 255));
    const up = resizeSync(step, 8, 1, 1, 32, 1, 'bicubic');
    expect(Math.min(...up)).toBe(0);
    expect(Math.max(...up)).toBe(255);
    expect(up.filter((v) => v === 0).length).toBeGreaterThan(10); // clipped undershoot
    const near = resizeSync(Uint8Array.of(10, 20, 30), 3, 1, 1, 7, 1, 'nearest');
    expect([...near]).toEqual([10, 10, 20, 20, 20, 30, 30]);
    expect([...nearestIndices(3, 7)]).toEqual([0, 0, 1, 1, 1, 2, 2]);
  });

  it('rejects bad arguments', () => {
    expect(() => resizeSync(new Uint8Array(12), 2, 2, 3, 0, 4, 'bicubic')).toThrow(RangeError);
    expect(() => resizeSync(new Uint8Array(12), 2, 2, 5, 4, 4, 'bicubic')).toThrow(/channels/);
    expect(() => resizeSync(new Uint8Array(11), 2, 2, 3, 4, 4, 'bicubic')).toThrow(/samples/);
    expect(() => resizeRegion(new Uint8Array(12), 2, 2, 3, 4, 4, 'bicubic', { left: 3, top: 0, width: 2, height: 1 })).toThrow(/region/);
  });
});

describe.skipIf(!native)('native resize vs Pillow 9.4 (the same cases)', () => {
  const eight = cases.filter((c) => c.mode !== 'I');
  it.each(eight.map((c) => [label(c), c] as const))('%s', async (_l, c) => {
    const n = native?.preprocess;
    if (!n) return;
    const src = Uint8Array.from(c.input);
    expect(firstDiff(n.resizeSync(src, c.size[0], c.size[1], c.channels, c.out[0], c.out[1], c.filter), c.expected)).toBe('equal');
    expect(firstDiff(await n.resize(src, c.size[0], c.size[1], c.channels, c.out[0], c.out[1], c.filter), c.expected)).toBe('equal');
  });

  it('equals the reference on random sizes, band counts and filters', () => {
    const n = native?.preprocess;
    if (!n) return;
    let seed = 7;
    const rand = (k: number): number => Math.floor(((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * k);
    for (let i = 0; i < 40; i++) {
      const [w, h, ch] = [1 + rand(300), 1 + rand(120), 1 + rand(4)];
      const [ow, oh] = [1 + rand(400), 1 + rand(300)];
      const filter: ResampleFilter = rand(4) === 0 ? 'nearest' : 'bicubic';
      const src = Uint8Array.from({ length: w * h * ch }, () => (rand(3) === 0 ? 255 * rand(2) : rand(256)));
      const label = `${w}x${h}x${ch} -> ${ow}x${oh} ${filter}`;
      expect(`${label}: ${firstDiff(n.resizeSync(src, w, h, ch, ow, oh, filter), resizeSync(src, w, h, ch, ow, oh, filter))}`).toBe(`${label}: equal`);
    }
  });

  it('cropNormalize equals the reference', () => {
    const n = native?.preprocess;
    if (!n) return;
    const rgb = Uint8Array.from({ length: 230 * 228 * 3 }, (_, i) => (i * 7919) & 255);
    const want = cropNormalize(rgb, 230, 228, 3, 2, 224, MEAN, STD);
    const got = n.cropNormalize(rgb, 230, 228, 3, 2, 224, MEAN, STD);
    expect(new Uint32Array(got.buffer, got.byteOffset, got.length)).toEqual(new Uint32Array(want.buffer));
  });
});

describe('torchvision geometry', () => {
  it("Python's round(): half to even", () => {
    expect([0.5, 1.5, 2.5, 3.5, 4.5, -0.5, -1.5, 1.4999, 2.5000001].map(pyRound)).toEqual([0, 2, 2, 4, 4, 0, -2, 1, 3]);
  });

  it('CenterCrop offsets round both ways', () => {
    expect(centerCropOffsets(224, 227, 224)).toEqual({ left: 0, top: 2 }); // 1.5 → 2
    expect(centerCropOffsets(224, 229, 224)).toEqual({ left: 0, top: 2 }); // 2.5 → 2
    expect(centerCropOffsets(231, 224, 224)).toEqual({ left: 4, top: 0 }); // 3.5 → 4
    expect(centerCropOffsets(225, 233, 224)).toEqual({ left: 0, top: 4 }); // 0.5 → 0, 4.5 → 4
    expect(centerCropOffsets(224, 224, 224)).toEqual({ left: 0, top: 0 });
    expect(() => centerCropOffsets(223, 300, 224)).toThrow(RangeError);
  });

  it('Resize(224): short side 224, long side int(224 * long / short)', () => {
    expect(resizedSize(1000, 3, 224)).toEqual([74666, 224]);
    expect(resizedSize(3, 700, 224)).toEqual([224, 52266]);
    expect(resizedSize(50, 80, 224)).toEqual([224, 358]);
    expect(resizedSize(300, 301, 224)).toEqual([224, 224]); // 224.746 truncates
    expect(resizedSize(224, 300, 224)).toEqual([224, 300]); // no-op
    expect(resizedSize(512, 512, 224)).toEqual([224, 224]);
    expect(resizedSize(1, 1, 224)).toEqual([224, 224]);
    expect(resizedSize(900, 700, 224)).toEqual([288, 224]);
  });
});

describe('mode conversions (Convert.c)', () => {
  it('premultiply / unpremultiply use MULDIV255 and truncating division', () => {
    // MULDIV255(200, 128) = 100; 255 * 100 / 128 = 199.2 → 199; alpha 0 and 255 keep the colour
    expect([...premultiply(Uint8Array.of(200, 10, 255, 128, 9, 9, 9, 0), 4)]).toEqual([100, 5, 128, 128, 0, 0, 0, 0]);
    expect([...unpremultiply(Uint8Array.of(100, 5, 128, 128, 9, 8, 7, 0, 1, 2, 3, 255), 4)]).toEqual([199, 9, 255, 128, 9, 8, 7, 0, 1, 2, 3, 255]);
    expect([...unpremultiply(Uint8Array.of(200, 100), 2)]).toEqual([255, 100]); // CLIP8
    expect([...premultiply(Uint8Array.of(255, 1), 2)]).toEqual([1, 1]);
  });

  it("convert('RGB') per mode", () => {
    expect([...toRgb('L', Uint8Array.of(7), 1)]).toEqual([7, 7, 7]);
    expect([...toRgb('LA', Uint8Array.of(7, 0), 1)]).toEqual([7, 7, 7]);
    expect([...toRgb('1', Uint8Array.of(0, 255), 2)]).toEqual([0, 0, 0, 255, 255, 255]);
    expect([...toRgb('RGBA', Uint8Array.of(1, 2, 3, 0), 1)]).toEqual([1, 2, 3]);
    expect([...toRgb('I', Int32Array.of(-5, 0, 128, 255, 256, 65535), 6)]).toEqual([0, 0, 0, 0, 0, 0, 128, 128, 128, 255, 255, 255, 255, 255, 255, 255, 255, 255]);
    // cmyk2rgb: nk = 255 - K; R = nk - MULDIV255(C, nk)
    expect([...toRgb('CMYK', Uint8Array.of(0, 0, 0, 0, 255, 255, 255, 0, 0, 0, 0, 255, 100, 50, 0, 55), 4)]).toEqual([
      255, 255, 255, 0, 0, 0, 0, 0, 0, 122, 161, 200,
    ]);
  });
});

describe('ToTensor + Normalize', () => {
  it('float32 step by step, CHW layout, crop offsets', () => {
    const lut = normalizeTable(MEAN[0], STD[0]);
    expect(lut[0]).toBe(Math.fround(Math.fround(0 - Math.fround(MEAN[0])) / Math.fround(STD[0])));
    const rgb = new Uint8Array(3 * 2 * 3);
    rgb.set([10, 20, 30], (1 * 3 + 2) * 3); // pixel (x=2, y=1) of a 3x2 image
    const t = cropNormalize(rgb, 3, 2, 2, 1, 1, MEAN, STD);
    expect([...t]).toEqual([10, 20, 30].map((v, c) => normalizeTable(MEAN[c] as number, STD[c] as number)[v]));
  });
});

// --- bad input ------------------------------------------------------------------------

async function codeOf(bytes: Uint8Array, opts = {}): Promise<string> {
  try {
    await preprocessImage(bytes, opts);
    return 'ok';
  } catch (err) {
    if (err instanceof ImageError) return err.code;
    throw err;
  }
}

function pngChunk(type: string, body: Uint8Array): Buffer {
  const t = Buffer.concat([Buffer.from(type, 'latin1'), body]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(t));
  return Buffer.concat([len, t, crc]);
}

function pngHeaderOnly(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from('89504e470d0a1a0a', 'hex'),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(64))),
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}

function tiffHeader(entries: Array<[number, number]>): Buffer {
  const b = Buffer.alloc(8 + 2 + entries.length * 12 + 4 + 64);
  b.write('II*\0', 0, 'latin1');
  b.writeUInt32LE(8, 4);
  b.writeUInt16LE(entries.length, 8);
  entries.forEach(([tag, value], i) => {
    const e = 10 + i * 12;
    b.writeUInt16LE(tag, e);
    b.writeUInt16LE(4, e + 2); // LONG
    b.writeUInt32LE(1, e + 4);
    b.writeUInt32LE(value, e + 8);
  });
  return b;
}

/** Runs fn and reports how long it took and how much ArrayBuffer memory it grew. */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; grewMiB: number }> {
  const before = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0, grewMiB: (process.memoryUsage().arrayBuffers - before) / 2 ** 20 };
}

describe('bad input → typed errors', () => {
  it('exports the codes and an Error subclass with code and status', async () => {
    expect([...IMAGE_ERROR_CODES]).toEqual(['image_empty', 'image_too_large', 'unsupported_image_format', 'image_decode_failed']);
    const err = await preprocessImage(new Uint8Array(0)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect(err).toBeInstanceOf(Error);
    expect((err as ImageError).code).toBe('image_empty');
    expect((err as ImageError).status).toBe(400);
    expect((err as ImageError).name).toBe('ImageError');
  });

  it('zero bytes → image_empty', async () => {
    expect(await codeOf(new Uint8Array(0))).toBe('image_empty');
  });

  it('truncated PNG / JPEG / GIF / WebP / TIFF → image_decode_failed', async () => {
    for (const name of ['rgb_300x301.png', 'rgb_900x700.jpg', 'rgb_progressive_320x240.jpg', 'gif_trns_230x240.gif', 'rgb_lossy_300x280.webp', 'rgb_raw_150x160.tif', 'p_300x250.png']) {
      const b = fixture(name);
      for (const frac of [0.05, 0.5, 0.97]) {
        expect(`${name}@${frac}: ${await codeOf(b.subarray(0, Math.floor(b.length * frac)))}`).toBe(`${name}@${frac}: image_decode_failed`);
      }
    }
    expect(await codeOf(Buffer.from('89504e470d0a1a0a0000000d49484452000000100000', 'hex'))).toBe('image_decode_failed');
    // Frame 0 is all Pillow reads: an animated GIF cut inside frame 1 still opens.
    const anim = fixture('anim_250x230.gif');
    expect(await codeOf(anim.subarray(0, anim.length - 100))).toBe('ok');
  });

  it('random bytes and unknown formats → unsupported_image_format', async () => {
    expect(await codeOf(Buffer.from('this is not an image at all, just text'))).toBe('unsupported_image_format');
    const noise = Uint8Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24);
    expect(await codeOf(noise)).toBe('unsupported_image_format');
    expect(await codeOf(Uint8Array.of(0x89, 0x50))).toBe('unsupported_image_format');
  });

  it('formats we recognise but do not decode → unsupported_image_format naming them', async () => {
    const bmp = Buffer.alloc(70);
    bmp.write('BM', 0, 'latin1');
    const samples: Array<[string, Uint8Array]> = [
      ['BMP', bmp],
      ['PDF', Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n', 'latin1')],
      ['HEIC', Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from('ftypheic\0\0\0\0mif1heic', 'latin1')])],
      ['JPEG 2000', Buffer.from('0000000c6a5020200d0a870a', 'hex')],
      ['SVG', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')],
    ];
    for (const [name, bytes] of samples) {
      const err = (await preprocessImage(bytes).catch((e: unknown) => e)) as ImageError;
      expect(err.code, name).toBe('unsupported_image_format');
      expect(err.status).toBe(415);
      expect(err.message).toMatch(new RegExp(name.split(' ')[0] as string, 'i'));
    }
  });

  it('variants of supported formats that Pillow or we cannot match → unsupported_image_format', async () => {
    // 12-bit JPEG (Pillow: "cannot handle 12-bit layers")
    const sof12 = Buffer.from('ffd8ffc0000b0c001000100100110000ffd9', 'hex');
    expect(await codeOf(sof12)).toBe('unsupported_image_format');
    // CMYK TIFF (photometric 5) and 16-bit TIFF
    expect(await codeOf(tiffHeader([[256, 10], [257, 10], [258, 8], [262, 5], [277, 4]]))).toBe('unsupported_image_format');
    expect(await codeOf(tiffHeader([[256, 10], [257, 10], [258, 16], [262, 1]]))).toBe('unsupported_image_format');
  });

  it('a PNG header claiming 100000x100000 fails fast with image_too_large, without allocating', async () => {
    const bomb = pngHeaderOnly(100_000, 100_000);
    const r = await measured(() => codeOf(bomb));
    expect(r.value).toBe('image_too_large');
    expect(r.ms).toBeLessThan(1000);
    expect(r.grewMiB).toBeLessThan(16);
  });

  it('other decompression bombs fail from their headers: GIF, JPEG, WebP, TIFF', async () => {
    const gif = Buffer.from('474946383961ffffffff000000', 'hex'); // 65535x65535 screen, no palette
    const gifFull = Buffer.concat([gif, Buffer.from('2c00000000ffffffff0008', 'hex'), Buffer.from([2, 0x4c, 0x01, 0]), Buffer.from(';')]);
    const jpeg = Buffer.from('ffd8ffc0001108fde8fde803012200021101031101ffd9', 'hex'); // 65000x65000
    const webp = Buffer.from('52494646' + '16000000' + '57454250' + '56503858' + '0a000000' + '02000000' + 'ff3f00' + 'ff3f00', 'hex'); // animated VP8X 16384x16384
    const tiff = tiffHeader([[256, 50_000], [257, 50_000], [258, 8], [262, 1]]);
    for (const [name, bytes] of [['gif', gifFull], ['jpeg', jpeg], ['webp', webp], ['tiff', tiff]] as const) {
      const r = await measured(() => codeOf(bytes));
      expect(`${name}: ${r.value}`).toBe(`${name}: image_too_large`);
      expect(r.ms).toBeLessThan(1000);
      expect(r.grewMiB).toBeLessThan(16);
    }
  });

  it('maxBytes and maxPixels', async () => {
    const png = fixture('rgb_300x301.png');
    expect(await codeOf(png, { maxBytes: 1000 })).toBe('image_too_large');
    expect(await codeOf(png, { maxBytes: png.length })).toBe('ok');
    expect(await codeOf(png, { maxPixels: 300 * 301 - 1 })).toBe('image_too_large');
    expect(await codeOf(png, { maxPixels: 300 * 301 })).toBe('ok');
    expect(DEFAULT_MAX_PIXELS).toBe(89_478_485);
    // small limits still let small images through (every image resizes to >= 224x224)
    expect(await codeOf(fixture('rgb_50x80.png'), { maxPixels: 50 * 80 })).toBe('ok');
    // the resized image (before the crop) must fit the default limit: 1x2000 → 224x448000
    const strip = await sharp({ create: { width: 1, height: 2000, channels: 3, background: '#123456' } }).png().toBuffer();
    expect(await codeOf(strip)).toBe('image_too_large');
    const okStrip = await sharp({ create: { width: 1, height: 1500, channels: 3, background: '#123456' } }).png().toBuffer();
    expect(await codeOf(okStrip)).toBe('ok'); // 224x336000
    await expect(preprocessImage(png, { maxPixels: -1 })).rejects.toThrow(TypeError);
    await expect(preprocessImage(png, { backend: 'gpu' as 'auto' })).rejects.toThrow(TypeError);
  });

  it('corrupt LZW data in a GIF → image_decode_failed', async () => {
    const gif = Buffer.from(fixture('gif_trns_230x240.gif'));
    // header 13 + global palette 768 + graphic control extension 8 + descriptor 10, code size, block length
    const at = 13 + 768 + 8 + 10 + 1 + 1;
    expect(gif[at - 12]).toBe(0x2c);
    gif.fill(0xff, at, at + 40); // first code 511 > clear code 256
    expect(await codeOf(gif)).toBe('image_decode_failed');
  });

  it('mangled files never crash: every outcome is a tensor or an ImageError', async () => {
    let seed = 12345;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const codes = new Set<string>();
    for (const name of ['rgb_224x227.png', 'rgb_progressive_320x240.jpg', 'gif_offset_local_interlaced_260x240.gif', 'rgba_lossless_260x250.webp', 'rgba_deflate_240x230.tif', 'p_trns_120x100.png']) {
      const orig = fixture(name);
      for (let i = 0; i < 25; i++) {
        const b = Buffer.from(orig.subarray(0, 16 + Math.floor(rand() * orig.length)));
        for (let k = 0; k < 1 + Math.floor(rand() * 8); k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
        codes.add(await codeOf(b));
      }
    }
    expect([...codes].every((c) => c === 'ok' || (IMAGE_ERROR_CODES as readonly string[]).includes(c))).toBe(true);
  });

  it.skipIf(native !== null)("backend 'native' without the addon is an Error (not an ImageError)", async () => {
    const err = await preprocessImage(fixture('rgb_1x1.png'), { backend: 'native' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(ImageError);
  });
});

describe('other inputs', () => {
  it('AVIF (no Pillow 9.4 reader) decodes as RGB; lossless AVIF equals the same pixels as PNG', async () => {
    const w = 60;
    const h = 45;
    const px = Buffer.alloc(w * h * 3);
    for (let i = 0; i < px.length; i++) px[i] = (i * 37 + (i >> 7)) & 255;
    const avif = await sharp(px, { raw: { width: w, height: h, channels: 3 } }).avif({ lossless: true }).toBuffer();
    const png = await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
    const a = await preprocessImageDetailed(avif, { backend: 'reference' });
    const p = await preprocessImageDetailed(png, { backend: 'reference' });
    expect(a.format).toBe('AVIF');
    expect(a.mode).toBe('RGB');
    expect(a.tensor).toEqual(p.tensor);
  });

  it('concurrent calls do not interfere', async () => {
    const names = ['rgb_900x700.jpg', 'gif_trns_230x240.gif', 'i16_260x240.png', 'rgba_premultiplied_300x260.png'];
    const one = await Promise.all(names.map((n) => preprocessImage(fixture(n))));
    const again = await Promise.all([...names, ...names].map((n) => preprocessImage(fixture(n))));
    names.forEach((_, i) => {
      expect(again[i]).toEqual(one[i]);
      expect(again[i + names.length]).toEqual(one[i]);
    });
    expect(one[0]?.length).toBe(3 * IMAGE_SIZE * IMAGE_SIZE);
  });
});
