// The native preprocessing addon (native/) against independent ground truth:
//   - Pillow 9.4 itself: test/fixtures/native (generate.py) holds stored inputs,
//     Pillow's resize outputs for 1..4 bands, both filters, down/up/one-axis/1xN
//     cases, SHA-256s of Pillow's output for large formula-generated images, and
//     torchvision ToTensor+Normalize tensors for cropNormalize;
//   - a step-by-step float32 (Math.fround) evaluation of ToTensor + Normalize;
//   - argument validation (throws/rejects, never crashes), async == sync,
//     concurrency, and the TypeScript reference resampler when it exists.
// With CI=true or IMAGEREWARD_NATIVE_REQUIRED=1 a missing addon is a failure;
// otherwise the native tests are skipped with the load error as the reason.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { native, nativeLoadError } from '../../native/index.js';
import type { NativeAddon, ResampleFilter, Triple } from '../../native/index.js';
import { resizeSync as referenceResize } from '../../gpu-service/preprocess/reference/resample.js';
import { rng } from '../support/rng.js';

const REQUIRED = process.env.CI === 'true' || process.env.IMAGEREWARD_NATIVE_REQUIRED === '1';
const ROOT = join(import.meta.dirname, '..', '..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'native');
const MEAN: Triple = [0.48145466, 0.4578275, 0.40821073];
const STD: Triple = [0.26862954, 0.26130258, 0.27577711];

interface StoredInput { width: number; height: number; channels: number; offset: number; length: number }
interface ResizeCase { input: string; outWidth: number; outHeight: number; filter: ResampleFilter; offset: number; length: number }
interface PatternCase { pattern: 'v1'; width: number; height: number; channels: number; outWidth: number; outHeight: number; filter: ResampleFilter; sha256: string }
interface CropCase { input: string; left: number; top: number; size: number; mean: number[]; std: number[]; offset: number; length: number }
interface Manifest { inputs: Record<string, StoredInput>; resize: ResizeCase[]; pattern_resize: PatternCase[]; crop_normalize: CropCase[] }

const manifest = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as Manifest;
const inputsBin = readFileSync(join(FIXTURES, 'inputs.bin'));
const expectedBin = readFileSync(join(FIXTURES, 'expected.bin'));

function storedInput(name: string): StoredInput & { data: Uint8Array } {
  const meta = manifest.inputs[name];
  if (!meta) throw new Error(`fixture input ${name} missing from manifest`);
  return { ...meta, data: new Uint8Array(inputsBin.subarray(meta.offset, meta.offset + meta.length)) };
}

/** generate.py's pattern_v1, bit for bit. */
function patternV1(w: number, h: number, c: number): Uint8Array {
  const out = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < c; ch++) {
        const i = (y * w + x) * c + ch;
        const noise = ((Math.imul(i, 2654435761) >>> 0) >>> 16) % 32;
        const v = Math.floor((x * (ch + 2) * 255) / w) + Math.floor((y * 255) / h) + 96 * ((Math.floor(x / 16) + Math.floor(y / 16)) % 2) + noise;
        out[i] = v % 256;
      }
    }
  }
  return out;
}

/** Where two byte arrays first differ, for readable failures. */
function firstMismatch(a: Uint8Array, b: Uint8Array): string | null {
  if (a.length !== b.length) return `length ${a.length} != ${b.length}`;
  let count = 0;
  let first = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      count++;
      if (first < 0) first = i;
    }
  }
  return count === 0 ? null : `${count} of ${a.length} bytes differ, first at ${first}: ${a[first]} != ${b[first]}`;
}

function randomBytes(n: number, next: () => number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(next() * 256);
  return a;
}

/** torchvision ToTensor + Normalize, one float32 rounding per operation. */
function cropNormalizeF32(rgb: Uint8Array, w: number, left: number, top: number, size: number, mean: Triple, std: Triple): Float32Array {
  const out = new Float32Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(mean[c] ?? NaN);
    const s = Math.fround(std[c] ?? NaN);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const v = rgb[((top + y) * w + left + x) * 3 + c] ?? NaN;
        const t = Math.fround(v / 255);
        out[c * size * size + y * size + x] = Math.fround(Math.fround(t - m) / s);
      }
    }
  }
  return out;
}

describe('native addon', () => {
  it(`is loaded${REQUIRED ? ' (required: CI / IMAGEREWARD_NATIVE_REQUIRED=1)' : ''}`, (ctx) => {
    if (!native && !REQUIRED) ctx.skip(`native addon not loaded: ${nativeLoadError ?? 'unknown reason'}`);
    expect(nativeLoadError).toBeNull();
    expect(native).not.toBeNull();
  });
});

describe.skipIf(!native)(`native preprocessing${native ? '' : ` — skipped: ${nativeLoadError ?? ''}`}`, () => {
  const addon = native as NativeAddon;
  const p = addon?.preprocess;

  it('buildInfo reports version, whether the CUDA engine is in, and the compiler', () => {
    const info = addon.buildInfo();
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(info.version).toBe(pkg.version);
    // cuda is true exactly when the engine's JS surface is there (CI builds it: IMAGEREWARD_CUDA=ON).
    expect(info.cuda).toBe(typeof addon.engine?.load === 'function');
    if (process.env.IMAGEREWARD_CUDA === 'ON') expect(info.cuda).toBe(true);
    if (process.env.IMAGEREWARD_CUDA === 'OFF') expect(info.cuda).toBe(false);
    expect(typeof info.compiler).toBe('string');
    expect(info.compiler.length).toBeGreaterThan(0);
  });

  describe('resizeSync == Pillow 9.4 (stored fixtures)', () => {
    it.each(manifest.resize.map((c) => [`${c.input} → ${c.outWidth}x${c.outHeight} ${c.filter}`, c] as const))('%s', (_name, c) => {
      const src = storedInput(c.input);
      const want = expectedBin.subarray(c.offset, c.offset + c.length);
      const got = p.resizeSync(src.data, src.width, src.height, src.channels, c.outWidth, c.outHeight, c.filter);
      expect(got).toBeInstanceOf(Uint8Array);
      expect(firstMismatch(got, want)).toBeNull();
    });
  });

  describe('resizeSync == Pillow 9.4 (large generated images, SHA-256)', () => {
    it.each(manifest.pattern_resize.map((c) => [`${c.width}x${c.height}x${c.channels} → ${c.outWidth}x${c.outHeight} ${c.filter}`, c] as const))('%s', (_name, c) => {
      const src = patternV1(c.width, c.height, c.channels);
      const got = p.resizeSync(src, c.width, c.height, c.channels, c.outWidth, c.outHeight, c.filter);
      expect(got.length).toBe(c.outWidth * c.outHeight * c.channels);
      expect(createHash('sha256').update(got).digest('hex')).toBe(c.sha256);
    });
  });

  // The addon picks AVX2 kernels at run time where the CPU has them; the tests
  // above check whichever path this machine takes. This one runs every Pillow
  // case again in a child process with IMAGEREWARD_NATIVE_SIMD=0 (portable kernels).
  it('portable kernels (IMAGEREWARD_NATIVE_SIMD=0) == Pillow 9.4 too', () => {
    const script = `
      import { createRequire } from 'node:module';
      import { createHash } from 'node:crypto';
      import { readFileSync } from 'node:fs';
      const [addonPath, dir] = process.argv.slice(1);
      const { preprocess } = createRequire(import.meta.url)(addonPath);
      const manifest = JSON.parse(readFileSync(dir + '/manifest.json', 'utf8'));
      const inputs = readFileSync(dir + '/inputs.bin');
      const patternV1 = ${patternV1.toString()};
      const sha = (b) => createHash('sha256').update(b).digest('hex');
      const resize = manifest.resize.map((c) => {
        const i = manifest.inputs[c.input];
        const src = new Uint8Array(inputs.subarray(i.offset, i.offset + i.length));
        return sha(preprocess.resizeSync(src, i.width, i.height, i.channels, c.outWidth, c.outHeight, c.filter));
      });
      const pattern = manifest.pattern_resize.map((c) =>
        sha(preprocess.resizeSync(patternV1(c.width, c.height, c.channels), c.width, c.height, c.channels, c.outWidth, c.outHeight, c.filter)));
      console.log(JSON.stringify({ resize, pattern }));
    `;
    const addonPath = join(ROOT, 'native', 'build', 'Release', 'imagereward_native.node');
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, addonPath, FIXTURES], {
      env: { ...process.env, IMAGEREWARD_NATIVE_SIMD: '0' },
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    });
    const got = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { resize: string[]; pattern: string[] };
    const want = {
      resize: manifest.resize.map((c) => createHash('sha256').update(expectedBin.subarray(c.offset, c.offset + c.length)).digest('hex')),
      pattern: manifest.pattern_resize.map((c) => c.sha256),
    };
    const bad = [
      ...manifest.resize.flatMap((c, i) => (got.resize[i] === want.resize[i] ? [] : [`${c.input} → ${c.outWidth}x${c.outHeight} ${c.filter}`])),
      ...manifest.pattern_resize.flatMap((c, i) => (got.pattern[i] === want.pattern[i] ? [] : [`pattern ${c.width}x${c.height}x${c.channels} → ${c.outWidth}x${c.outHeight} ${c.filter}`])),
    ];
    expect(got.resize.length).toBe(manifest.resize.length);
    expect(bad).toEqual([]);
  });

  it('same size returns an equal copy, not the input', () => {
    const src = storedInput('rgb_noise_41x29');
    for (const filter of ['bicubic', 'nearest'] as const) {
      const got = p.resizeSync(src.data, 41, 29, 3, 41, 29, filter);
      expect(got).not.toBe(src.data);
      expect(got.buffer).not.toBe(src.data.buffer);
      expect(firstMismatch(got, src.data)).toBeNull();
    }
  });

  it('accepts Buffers and subarrays with a byteOffset', () => {
    const src = storedInput('rgb_noise_41x29');
    const want = p.resizeSync(src.data, 41, 29, 3, 17, 11, 'bicubic');
    const big = new Uint8Array(src.length + 13);
    big.set(src.data, 7);
    expect(firstMismatch(p.resizeSync(big.subarray(7, 7 + src.length), 41, 29, 3, 17, 11, 'bicubic'), want)).toBeNull();
    expect(firstMismatch(p.resizeSync(Buffer.from(src.data), 41, 29, 3, 17, 11, 'bicubic'), want)).toBeNull();
  });

  describe('cropNormalize', () => {
    it.each(manifest.crop_normalize.map((c) => [`${c.input} crop ${c.size} at (${c.left}, ${c.top})`, c] as const))('== torchvision ToTensor+Normalize: %s', (_name, c) => {
      const src = storedInput(c.input);
      const mean = c.mean as unknown as Triple;
      const std = c.std as unknown as Triple;
      const got = p.cropNormalize(src.data, src.width, src.height, c.left, c.top, c.size, mean, std);
      expect(got).toBeInstanceOf(Float32Array);
      expect(got.length).toBe(3 * c.size * c.size);
      const want = new Float32Array(expectedBin.buffer.slice(expectedBin.byteOffset + c.offset, expectedBin.byteOffset + c.offset + c.length));
      expect(firstMismatch(new Uint8Array(got.buffer, got.byteOffset, got.byteLength), new Uint8Array(want.buffer))).toBeNull();
    });

    it('== step-by-step float32 evaluation (random images, crops, mean/std)', () => {
      const next = rng(7);
      for (let trial = 0; trial < 40; trial++) {
        const w = 1 + Math.floor(next() * 60);
        const h = 1 + Math.floor(next() * 60);
        const size = 1 + Math.floor(next() * Math.min(w, h));
        const left = Math.floor(next() * (w - size + 1));
        const top = Math.floor(next() * (h - size + 1));
        const rgb = randomBytes(w * h * 3, next);
        const mean: Triple = trial === 0 ? MEAN : [next(), next() - 0.5, next() * 3];
        const std: Triple = trial === 0 ? STD : [0.01 + next(), 0.1 + next() * 4, -(0.05 + next())];
        const got = p.cropNormalize(rgb, w, h, left, top, size, mean, std);
        const want = cropNormalizeF32(rgb, w, left, top, size, mean, std);
        expect(got.length).toBe(want.length);
        for (let i = 0; i < want.length; i++) {
          if (!Object.is(got[i], want[i])) expect.fail(`trial ${trial} element ${i}: ${got[i]} != ${want[i]}`);
        }
      }
    });

    it('covers all 256 values per channel exactly', () => {
      const rgb = new Uint8Array(16 * 16 * 3);
      for (let i = 0; i < 256; i++) rgb.fill(i, i * 3, i * 3 + 3);
      const got = p.cropNormalize(rgb, 16, 16, 0, 0, 16, MEAN, STD);
      const want = cropNormalizeF32(rgb, 16, 0, 0, 16, MEAN, STD);
      expect(firstMismatch(new Uint8Array(got.buffer), new Uint8Array(want.buffer))).toBeNull();
    });
  });

  describe('argument validation throws JS errors', () => {
    const src = new Uint8Array(4 * 3 * 3);
    const detached = (): Uint8Array => {
      const a = new Uint8Array(36);
      structuredClone(a.buffer, { transfer: [a.buffer] });
      return a;
    };
    type Args = Parameters<typeof p.resizeSync>;
    const ok: Args = [src, 4, 3, 3, 2, 2, 'bicubic'];
    const bad = (i: number, v: unknown): Args => ok.map((a, j) => (j === i ? v : a)) as unknown as Args;
    const cases: Array<[string, Args, ErrorConstructor, RegExp]> = [
      ['src is an Array', bad(0, [1, 2, 3]), TypeError, /src must be a Uint8Array/],
      ['src is a Uint16Array', bad(0, new Uint16Array(36)), TypeError, /src must be a Uint8Array/],
      ['src is a Uint8ClampedArray', bad(0, new Uint8ClampedArray(36)), TypeError, /src must be a Uint8Array/],
      ['src is undefined', bad(0, undefined), TypeError, /src must be a Uint8Array/],
      ['src is an ArrayBuffer', bad(0, new ArrayBuffer(36)), TypeError, /src must be a Uint8Array/],
      ['src too short', bad(0, new Uint8Array(35)), RangeError, /src has 35 bytes, expected .* = 36/],
      ['src too long', bad(0, new Uint8Array(37)), RangeError, /src has 37 bytes/],
      ['src detached (transferred)', bad(0, detached()), RangeError, /src has 0 bytes/],
      ['width is a string', bad(1, '4'), TypeError, /width must be a number/],
      ['width 0', bad(1, 0), RangeError, /width must be an integer in \[1, /],
      ['width negative', bad(1, -4), RangeError, /width must be an integer/],
      ['width fractional', bad(1, 4.5), RangeError, /width must be an integer/],
      ['width NaN', bad(1, NaN), RangeError, /width must be an integer/],
      ['height Infinity', bad(2, Infinity), RangeError, /height must be an integer/],
      ['channels 0', bad(3, 0), RangeError, /channels must be an integer in \[1, 4\]/],
      ['channels 5', bad(3, 5), RangeError, /channels must be an integer in \[1, 4\]/],
      ['outWidth 0', bad(4, 0), RangeError, /outWidth must be an integer/],
      ['outHeight missing', bad(5, undefined), TypeError, /outHeight must be a number/],
      ['output too large', [src, 4, 3, 3, 2 ** 24, 2 ** 24, 'bicubic'], RangeError, /output of \d+ bytes exceeds the 2147483647-byte limit/],
      ['outWidth beyond 2^24', bad(4, 2 ** 24 + 1), RangeError, /outWidth must be an integer/],
      ['unknown filter', bad(6, 'bilinear'), TypeError, /filter must be 'nearest' or 'bicubic', got 'bilinear'/],
      ['filter is a number', bad(6, 3), TypeError, /filter must be 'nearest' or 'bicubic'/],
    ];
    it.each(cases)('resizeSync: %s', (_name, args, type, msg) => {
      expect(() => p.resizeSync(...args)).toThrow(type);
      expect(() => p.resizeSync(...args)).toThrow(msg);
    });
    it.each(cases)('resize rejects (does not throw): %s', async (_name, args, type, msg) => {
      let promise: Promise<Uint8Array> | undefined;
      expect(() => {
        promise = p.resize(...args);
      }).not.toThrow();
      await expect(promise).rejects.toThrow(type);
      await expect(promise).rejects.toThrow(msg);
    });
    it('resizeSync with no arguments', () => {
      expect(() => (p.resizeSync as unknown as () => void)()).toThrow(TypeError);
    });

    const rgb = new Uint8Array(10 * 8 * 3);
    type CArgs = Parameters<typeof p.cropNormalize>;
    const cok: CArgs = [rgb, 10, 8, 1, 2, 6, MEAN, STD];
    const cbad = (i: number, v: unknown): CArgs => cok.map((a, j) => (j === i ? v : a)) as unknown as CArgs;
    it.each([
      ['rgb is a Float32Array', cbad(0, new Float32Array(240)), TypeError, /rgb must be a Uint8Array/],
      ['rgb length not w*h*3', cbad(0, new Uint8Array(239)), RangeError, /rgb has 239 bytes, expected width\*height\*3/],
      ['crop past the right edge', cbad(3, 5), RangeError, /crop 6x6 at \(5, 2\) does not fit in the 10x8 image/],
      ['crop past the bottom edge', cbad(4, 3), RangeError, /does not fit/],
      ['left negative', cbad(3, -1), RangeError, /left must be an integer in \[0, /],
      ['size 0', cbad(5, 0), RangeError, /size must be an integer in \[1, /],
      ['size larger than the image', cbad(5, 11), RangeError, /does not fit/],
      ['mean of 2 numbers', cbad(6, [0.5, 0.5]), TypeError, /mean must be an array of 3 numbers/],
      ['mean not an array', cbad(6, 0.5), TypeError, /mean must be an array of 3 numbers/],
      ['mean with a string', cbad(6, [0.5, '0.5', 0.5]), TypeError, /mean\[1\] must be a number/],
      ['std with NaN', cbad(7, [0.5, 0.5, NaN]), RangeError, /std\[2\] must be finite/],
      ['std with 0', cbad(7, [0.5, 0, 0.5]), RangeError, /std\[1\] must not be 0/],
    ] as Array<[string, CArgs, ErrorConstructor, RegExp]>)('cropNormalize: %s', (_name, args, type, msg) => {
      expect(() => p.cropNormalize(...args)).toThrow(type);
      expect(() => p.cropNormalize(...args)).toThrow(msg);
    });
    it('cropNormalize accepts typed-array mean/std', () => {
      const a = p.cropNormalize(rgb, 10, 8, 1, 2, 6, MEAN, STD);
      const b = p.cropNormalize(rgb, 10, 8, 1, 2, 6, Float64Array.from(MEAN) as unknown as Triple, Float32Array.from(STD) as unknown as Triple);
      expect(firstMismatch(new Uint8Array(a.buffer), new Uint8Array(b.buffer))).toBeNull();
    });
  });

  describe('async resize', () => {
    it('equals resizeSync for every stored fixture case', async () => {
      for (const c of manifest.resize) {
        const src = storedInput(c.input);
        const got = await p.resize(src.data, src.width, src.height, src.channels, c.outWidth, c.outHeight, c.filter);
        expect(got).toBeInstanceOf(Uint8Array);
        expect(firstMismatch(got, expectedBin.subarray(c.offset, c.offset + c.length))).toBeNull();
      }
    });

    it('copies its input: mutating it after the call does not change the result', async () => {
      const src = patternV1(512, 384, 3);
      const want = p.resizeSync(src, 512, 384, 3, 298, 224, 'bicubic');
      const promise = p.resize(src, 512, 384, 3, 298, 224, 'bicubic');
      src.fill(0);
      expect(firstMismatch(await promise, want)).toBeNull();
    });

    it('runs off the JS thread (a setImmediate fires before it resolves)', async () => {
      // ~10 ms of pool work: far longer than one turn of the event loop.
      const src = new Uint8Array(3072 * 3072 * 3);
      for (let i = 0; i < src.length; i += 97) src[i] = i & 255;
      const order: string[] = [];
      const done = p.resize(src, 3072, 3072, 3, 224, 224, 'bicubic').then(() => order.push('resize'));
      await new Promise<void>((r) => setImmediate(() => {
        order.push('immediate');
        r();
      }));
      await done;
      expect(order).toEqual(['immediate', 'resize']);
    });

    it('many concurrent calls (mixed sizes, bands, filters) all match resizeSync', async () => {
      const next = rng(11);
      const jobs = Array.from({ length: 300 }, () => {
        const w = 1 + Math.floor(next() * 90);
        const h = 1 + Math.floor(next() * 90);
        const c = 1 + Math.floor(next() * 4);
        const ow = 1 + Math.floor(next() * 120);
        const oh = 1 + Math.floor(next() * 120);
        const filter: ResampleFilter = next() < 0.7 ? 'bicubic' : 'nearest';
        const src = randomBytes(w * h * c, next);
        return { args: [src, w, h, c, ow, oh, filter] as const, want: p.resizeSync(src, w, h, c, ow, oh, filter) };
      });
      const results = await Promise.all(jobs.map((j) => p.resize(...j.args)));
      results.forEach((got, i) => {
        const mismatch = firstMismatch(got, jobs[i]?.want ?? new Uint8Array());
        if (mismatch) expect.fail(`job ${i} (${jobs[i]?.args.slice(1).join(', ')}): ${mismatch}`);
      });
    });
  });

  describe('vs the TypeScript reference resampler', () => {
    it('randomized cross-check', () => {
      const next = rng(23);
      for (let trial = 0; trial < 150; trial++) {
        const w = 1 + Math.floor(next() * 80);
        const h = 1 + Math.floor(next() * 80);
        const c = 1 + Math.floor(next() * 4);
        const ow = 1 + Math.floor(next() * 100);
        const oh = 1 + Math.floor(next() * 100);
        const filter: ResampleFilter = next() < 0.75 ? 'bicubic' : 'nearest';
        const src = next() < 0.5 ? randomBytes(w * h * c, next) : patternV1(w, h, c);
        const want = referenceResize(src, w, h, c, ow, oh, filter);
        const got = p.resizeSync(src, w, h, c, ow, oh, filter);
        const mismatch = firstMismatch(got, want);
        if (mismatch) expect.fail(`${w}x${h}x${c} → ${ow}x${oh} ${filter}: ${mismatch}`);
      }
    });
  });
});
