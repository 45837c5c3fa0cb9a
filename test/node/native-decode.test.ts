// The native image decoders (native/src/decode_{jpeg,png,webp}.cc: system libjpeg-turbo,
// libpng, libwebp) against sharp, which the committed parity fixtures already prove
// exact: every fixture image of those formats must decode to identical samples either
// way (preprocess-parity.test.ts then proves both against Pillow's outputs). Also:
// bad input rejects with a coded Error (never crashes), the pixel limit is checked
// before decoding, the work runs off the event loop, and with CI=true all three
// decoders must be compiled in.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { native, type NativeAddon, type NativeDecodeFormat } from '../../native/index.js';
import { decodeImage, nativeDecoders } from '../../gpu-service/preprocess/decode.js';
import { readPngHeader } from '../../gpu-service/preprocess/formats/png.js';
import { readWebpHeader } from '../../gpu-service/preprocess/formats/webp.js';
import { DEFAULT_MAX_PIXELS, preprocessImage } from '../../gpu-service/preprocess/index.js';

const CI = process.env.CI === 'true' || process.env.IMAGEREWARD_NATIVE_REQUIRED === '1';
const IMAGES = join(import.meta.dirname, '..', 'fixtures', 'preprocess', 'images');
const KIND: Record<string, NativeDecodeFormat> = { jpg: 'jpeg', png: 'png', webp: 'webp' };
const available = nativeDecoders();
const fixtures = readdirSync(IMAGES)
  .map((name) => ({ name, kind: KIND[name.split('.').pop() as string] }))
  .filter((f): f is { name: string; kind: NativeDecodeFormat } => f.kind !== undefined)
  .sort((a, b) => a.name.localeCompare(b.name));
const fixture = (name: string): Buffer => readFileSync(join(IMAGES, name));

async function rejection(p: Promise<unknown>): Promise<{ code: unknown; message: string } | 'resolved'> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    return { code: (err as { code?: unknown }).code, message: (err as Error).message };
  }
}

describe('native decoders are built', () => {
  it.runIf(CI)('with CI=true buildInfo().decoders includes jpeg, png and webp', () => {
    expect(native).not.toBeNull();
    const decoders = (native as NativeAddon).buildInfo().decoders;
    expect(decoders).toEqual(expect.arrayContaining(['jpeg', 'png', 'webp']));
    expect(available).toEqual(expect.arrayContaining(['jpeg', 'png', 'webp']));
  });

  it('nativeDecoders() mirrors buildInfo().decoders (empty without the addon)', () => {
    expect(available).toEqual(native ? native.buildInfo().decoders : []);
  });
});

describe.skipIf(available.length === 0)('native decoders', () => {
  const addon = native as NativeAddon;

  describe('same samples as sharp on every fixture image of their formats', () => {
    const cases = fixtures.filter((f) => available.includes(f.kind));
    it.each(cases.map((f) => [f.name, f] as const))('%s', async (_name, f) => {
      const bytes = fixture(f.name);
      const viaSharp = await decodeImage(bytes, { maxPixels: DEFAULT_MAX_PIXELS, decoder: 'sharp' });
      const viaNative = await decodeImage(bytes, { maxPixels: DEFAULT_MAX_PIXELS, decoder: 'auto' });
      expect([viaNative.mode, viaNative.width, viaNative.height]).toEqual([viaSharp.mode, viaSharp.width, viaSharp.height]);
      expect(viaNative.data.constructor).toBe(viaSharp.data.constructor);
      expect(viaNative.data.length).toBe(viaSharp.data.length);
      expect(Buffer.from(viaNative.data.buffer, viaNative.data.byteOffset, viaNative.data.byteLength)
        .equals(Buffer.from(viaSharp.data.buffer, viaSharp.data.byteOffset, viaSharp.data.byteLength))).toBe(true);
    });

    it('the native decoder really handles the files it is meant to', async () => {
      let handled = 0;
      for (const f of cases) {
        const bytes = fixture(f.name);
        let expectHandled = true;
        let alpha = false;
        if (f.kind === 'png') expectHandled = readPngHeader(bytes).bitDepth <= 8;
        if (f.kind === 'webp') {
          const h = readWebpHeader(bytes);
          expectHandled = !h.animated;
          alpha = h.mode === 'RGBA';
        }
        const r = addon.decode(bytes, f.kind, { maxPixels: DEFAULT_MAX_PIXELS, alpha });
        if (expectHandled) {
          const d = await r;
          expect(d.data).toBeInstanceOf(Uint8Array);
          expect(d.data.length, f.name).toBe(d.width * d.height * d.channels);
          handled++;
        } else {
          expect(await rejection(r), f.name).toMatchObject({ code: 'ERR_DECODE_UNSUPPORTED' });
        }
      }
      expect(handled).toBeGreaterThan(20);
    });
  });

  describe('bad input rejects with a coded Error, never crashes', () => {
    it.each(available.map((k) => [k] as const))('%s: zero-length, garbage, truncated and mangled data', async (kind) => {
      const name = fixtures.find((f) => f.kind === kind && !f.name.startsWith('anim') && !f.name.includes('16'))?.name as string;
      const orig = fixture(name);
      const opts = { maxPixels: DEFAULT_MAX_PIXELS };
      expect(await rejection(addon.decode(new Uint8Array(0), kind, opts))).toMatchObject({ code: 'ERR_DECODE_CORRUPT' });
      expect(await rejection(addon.decode(Buffer.from('not an image at all'), kind, opts))).toMatchObject({ code: 'ERR_DECODE_CORRUPT' });
      for (const frac of [0.01, 0.05, 0.3, 0.5, 0.9, 0.97]) {
        const cut = orig.subarray(0, Math.floor(orig.length * frac));
        expect(await rejection(addon.decode(cut, kind, opts)), `${name}@${frac}`).toMatchObject({ code: 'ERR_DECODE_CORRUPT' });
      }
      let seed = 99;
      const rand = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
      for (let i = 0; i < 40; i++) {
        const b = Buffer.from(orig.subarray(0, 16 + Math.floor(rand() * orig.length)));
        for (let k = 0; k < 1 + Math.floor(rand() * 8); k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
        const r = await rejection(addon.decode(b, kind, opts));
        if (r !== 'resolved') expect(['ERR_DECODE_CORRUPT', 'ERR_DECODE_UNSUPPORTED']).toContain(r.code);
      }
    });

    it('truncated files through preprocessImage → image_decode_failed with the native decoders', async () => {
      for (const name of ['rgb_900x700.jpg', 'rgb_progressive_320x240.jpg', 'rgb_300x301.png', 'p_300x250.png', 'rgb_lossy_300x280.webp', 'rgba_lossless_260x250.webp']) {
        const b = fixture(name);
        for (const frac of [0.5, 0.97]) {
          const err = await preprocessImage(b.subarray(0, Math.floor(b.length * frac)), { decoder: 'auto' }).catch((e: unknown) => e);
          expect(`${name}@${frac}: ${(err as { code?: string }).code}`).toBe(`${name}@${frac}: image_decode_failed`);
        }
      }
    });

    it.runIf(available.includes('png'))('a bad IDAT CRC is ignored, as Pillow 9.4 skips IDAT CRCs', async () => {
      const orig = fixture('rgb_300x301.png');
      const want = await addon.decode(orig, 'png', { maxPixels: DEFAULT_MAX_PIXELS });
      const b = Buffer.from(orig);
      const idat = b.indexOf('IDAT', 8, 'latin1') - 4;
      const end = idat + 8 + b.readUInt32BE(idat);
      b[end] = (b[end] as number) ^ 0xff; // first CRC byte
      const got = await addon.decode(b, 'png', { maxPixels: DEFAULT_MAX_PIXELS });
      expect(Buffer.from(got.data).equals(Buffer.from(want.data))).toBe(true);
    });

    it('the pixel limit is checked from the header before decoding', async () => {
      for (const f of [{ name: 'rgb_900x700.jpg', kind: 'jpeg' }, { name: 'rgb_300x301.png', kind: 'png' }, { name: 'rgb_lossy_300x280.webp', kind: 'webp' }] as const) {
        if (!available.includes(f.kind)) continue;
        const r = await rejection(addon.decode(fixture(f.name), f.kind, { maxPixels: 1000 }));
        expect(r, f.name).toMatchObject({ code: 'ERR_DECODE_TOO_LARGE' });
      }
    });

    it('bad arguments reject with TypeError / RangeError', async () => {
      const kind = available[0] as NativeDecodeFormat;
      await expect(addon.decode('x' as unknown as Uint8Array, kind, { maxPixels: 10 })).rejects.toThrow(TypeError);
      await expect(addon.decode(new Uint8Array(4), 'gif' as NativeDecodeFormat, { maxPixels: 10 })).rejects.toThrow(TypeError);
      await expect(addon.decode(new Uint8Array(4), kind, null as unknown as { maxPixels: number })).rejects.toThrow(TypeError);
      await expect(addon.decode(new Uint8Array(4), kind, { maxPixels: 0 })).rejects.toThrow(RangeError);
      await expect(addon.decode(new Uint8Array(4), kind, { maxPixels: 1.5 })).rejects.toThrow(RangeError);
    });
  });

  it.runIf(available.includes('jpeg'))('decodes on the libuv pool: the event loop keeps turning, the input may be reused at once', async () => {
    const big = await sharp({ create: { width: 4000, height: 3000, channels: 3, background: '#336699' } })
      .composite([{ input: Buffer.alloc(400 * 300 * 3, 7), raw: { width: 400, height: 300, channels: 3 }, tile: true }])
      .jpeg({ quality: 95 })
      .toBuffer();
    const want = await addon.decode(big, 'jpeg', { maxPixels: DEFAULT_MAX_PIXELS });
    const input = Buffer.from(big);
    const t0 = performance.now();
    const pending = addon.decode(input, 'jpeg', { maxPixels: DEFAULT_MAX_PIXELS });
    const callMs = performance.now() - t0;
    input.fill(0); // the addon copied it before returning
    let settled = false;
    void pending.finally(() => { settled = true; });
    let turns = 0;
    while (!settled) {
      await new Promise((r) => setImmediate(r));
      turns++;
    }
    const totalMs = performance.now() - t0;
    const got = await pending;
    expect(Buffer.from(got.data).equals(Buffer.from(want.data))).toBe(true);
    expect(turns, `event loop turned ${turns} times in ${totalMs.toFixed(1)} ms (call took ${callMs.toFixed(1)} ms)`).toBeGreaterThan(3);
    expect(callMs).toBeLessThan(totalMs / 2);
  });

  it("decoder 'native' and 'sharp' agree end to end; an unknown decoder is a TypeError", async () => {
    const b = fixture('rgb_422_261x229.jpg');
    const a = await preprocessImage(b, { decoder: 'sharp' });
    const n = await preprocessImage(b, { decoder: available.includes('jpeg') ? 'native' : 'auto' });
    expect(Buffer.from(n.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    await expect(preprocessImage(b, { decoder: 'pillow' as 'auto' })).rejects.toThrow(TypeError);
  });
});
