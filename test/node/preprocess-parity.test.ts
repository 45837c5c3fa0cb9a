// Parity with upstream ImageReward's preprocessing (torchvision 0.14 + Pillow 9.4), over
// the corpus written by test/fixtures/preprocess/generate.py. For every image: the mode
// Pillow opens it as, the resize/crop geometry, the uint8 224x224 RGB crop (exact), and
// the float32 tensor (max abs diff <= 1e-6, in practice 0) — with every backend we have,
// and with each decoder for JPEG/PNG/WebP samples (sharp, and the addon's native ones).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../../native/index.js';
import { MEAN, STD, preprocessImageDetailed } from '../../gpu-service/preprocess/index.js';
import { normalizeTable } from '../../gpu-service/preprocess/reference/normalize.js';
import { nativeDecoders } from '../../gpu-service/preprocess/decode.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'preprocess');
const SHARED = join(import.meta.dirname, '..', '..', '..', 'shared');

interface Entry {
  name: string;
  source: 'corpus' | 'shared';
  file: string;
  bytes: number;
  sha256: string;
  format: string;
  mode: string;
  size: [number, number];
  resized: [number, number];
  resample: string;
  crop: [number, number];
  expected: string;
  tensor?: string;
}
interface Manifest {
  _comment: string;
  pillow: string;
  torchvision: string;
  images: Entry[];
}

const manifest = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as Manifest;
const normalize = JSON.parse(readFileSync(join(FIXTURES, 'normalize.json'), 'utf8')) as { mean: number[]; std: number[]; values: number[][] };
const table = normalize.values.map((v) => Float32Array.from(v));
const SIZE = 224;

function inputPath(e: Entry): string {
  return e.source === 'shared' ? join(SHARED, e.file) : join(FIXTURES, 'images', e.file);
}

/** expected/<name>.rgb.gz: gzip of HWC bytes with PNG's Sub filter on each row. */
function expectedRgb(e: Entry): Uint8Array {
  const d = new Uint8Array(gunzipSync(readFileSync(join(FIXTURES, e.expected))));
  expect(d.length).toBe(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++) {
    const row = y * SIZE * 3;
    for (let i = 3; i < SIZE * 3; i++) d[row + i] = ((d[row + i] as number) + (d[row + i - 3] as number)) & 0xff;
  }
  return d;
}

/** torch's ToTensor+Normalize through the generator's table (exact by construction). */
function tensorFromTable(rgb: Uint8Array): Float32Array {
  const out = new Float32Array(3 * SIZE * SIZE);
  for (let c = 0; c < 3; c++) {
    const lut = table[c] as Float32Array;
    for (let p = 0; p < SIZE * SIZE; p++) out[c * SIZE * SIZE + p] = lut[rgb[p * 3 + c] as number] as number;
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; count: number } {
  let max = 0;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number));
    if (d > 0) count++;
    if (d > max || Number.isNaN(d)) max = Number.isNaN(d) ? Infinity : d;
  }
  return { max, count };
}

describe('fixtures', () => {
  it('manifest header and versions', () => {
    expect(manifest._comment).toBe('regenerate with /usr/bin/python3 test/fixtures/preprocess/generate.py');
    expect(manifest.pillow).toBe('9.4.0');
    expect(manifest.torchvision.startsWith('0.14')).toBe(true);
    expect(manifest.images.length).toBeGreaterThan(40);
  });

  it('normalize.json equals our float32 ToTensor+Normalize for all 256 values per channel', () => {
    expect(normalize.mean).toEqual([...MEAN]);
    expect(normalize.std).toEqual([...STD]);
    for (let c = 0; c < 3; c++) {
      const ours = normalizeTable(MEAN[c] as number, STD[c] as number);
      const theirs = table[c] as Float32Array;
      expect(new Uint32Array(ours.buffer)).toEqual(new Uint32Array(theirs.buffer));
    }
  });
});

const backends: Array<'reference' | 'native'> = native ? ['reference', 'native'] : ['reference'];
// 'native' needs all three native decoders; with only some compiled in, 'auto' uses those.
const nativeDecoding = nativeDecoders();
const decoders: Array<'sharp' | 'native' | 'auto'> =
  nativeDecoding.length === 3 ? ['sharp', 'native'] : nativeDecoding.length > 0 ? ['sharp', 'auto'] : ['sharp'];
const combos = backends.flatMap((backend) => decoders.map((decoder) => [backend, decoder] as const));
const summary: string[] = [];

describe.each(combos)('parity with Pillow 9.4 + torchvision 0.14, backend %s, decoder %s', (backend, decoder) => {
  it.for(manifest.images.map((e) => [e.name, e] as const))('%s', async ([, e], ctx) => {
    const path = inputPath(e);
    if (!existsSync(path)) {
      ctx.skip(`${path} is absent (the ../shared images are not part of this checkout)`);
      return;
    }
    const bytes = readFileSync(path);
    expect(createHash('sha256').update(bytes).digest('hex'), 'input differs from the one the expected output was made from').toBe(e.sha256);

    const r = await preprocessImageDetailed(bytes, { backend, decoder });
    expect(r.backend).toBe(backend);
    expect(r.format).toBe(e.format);
    expect(r.mode, 'Pillow mode').toBe(e.mode);
    expect([r.width, r.height], 'size').toEqual(e.size);
    expect(r.resized, 'size after Resize(224)').toEqual(e.resized);
    expect([r.crop.left, r.crop.top], 'CenterCrop offsets').toEqual(e.crop);

    const want = expectedRgb(e);
    const rgbDiff = maxAbsDiff(r.rgb, want);
    const wantTensor = tensorFromTable(want);
    const tDiff = maxAbsDiff(r.tensor, wantTensor);
    summary.push(`${backend.padEnd(9)} ${decoder.padEnd(6)} ${e.name.padEnd(42)} ${e.mode.padEnd(4)} uint8 max diff ${rgbDiff.max} (${rgbDiff.count} samples), tensor max diff ${tDiff.max}`);
    expect(rgbDiff.max, `uint8 crop: max diff ${rgbDiff.max} in ${rgbDiff.count} samples`).toBe(0);
    expect(r.tensor.length).toBe(3 * SIZE * SIZE);
    expect(tDiff.max).toBeLessThanOrEqual(1e-6);
    if (e.tensor) {
      const raw = gunzipSync(readFileSync(join(FIXTURES, e.tensor)));
      const full = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
      expect(maxAbsDiff(r.tensor, full).max, 'vs the stored torch tensor').toBeLessThanOrEqual(1e-6);
      expect(maxAbsDiff(wantTensor, full).max, 'table reproduces the stored tensor').toBe(0);
    }
  });
});

afterAll(() => {
  if (process.env.PREPROCESS_PARITY_REPORT) console.log(summary.join('\n'));
});
