// Native bicubic resize speed: RGB images to torchvision Resize(224)'s size
// (shorter side 224, longer side int(224 * long / short)), one thread (resizeSync
// on the calling thread; the kernels themselves are single-threaded).
//
//   node --import tsx bench/preprocess-native.ts     → markdown table, with Pillow 9.4's
//                                                      Image.resize for comparison when
//                                                      /usr/bin/python3 has PIL
//   BENCH_SECONDS=2 ...                               → time per case (default 1 s)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { native, nativeLoadError } from '../native/index.js';

export interface ResizeBenchResult {
  image: string;
  width: number;
  height: number;
  outWidth: number;
  outHeight: number;
  /** median milliseconds per resize */
  medianMs: number;
  /** fastest observed resize, milliseconds */
  minMs: number;
  /** 1000 / medianMs */
  perSecond: number;
  iterations: number;
}

const SIZES: ReadonlyArray<readonly [number, number]> = [
  [512, 512],
  [1024, 1024],
  [1024, 768],
];
const PYTHON = '/usr/bin/python3';

/** torchvision Resize(224) output size for a width x height image. */
export function resize224(width: number, height: number): [number, number] {
  if (width <= height) return [224, Math.floor((224 * height) / width)];
  return [Math.floor((224 * width) / height), 224];
}

/** Deterministic RGB content with edges and noise (speed does not depend on it). */
function image(width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < out.length; i++) {
    const p = Math.floor(i / 3);
    const x = p % width;
    const y = Math.floor(p / width);
    out[i] = ((x ^ y) + ((Math.imul(i, 2654435761) >>> 0) >>> 27) + ((x >> 5) & 1) * 90) & 255;
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

export async function benchNativeResize(seconds = Number(process.env.BENCH_SECONDS ?? 1)): Promise<ResizeBenchResult[]> {
  if (!native) throw new Error(`native addon not loaded: ${nativeLoadError ?? 'unknown reason'}`);
  const { resizeSync } = native.preprocess;
  const results: ResizeBenchResult[] = [];
  for (const [width, height] of SIZES) {
    const [outWidth, outHeight] = resize224(width, height);
    const src = image(width, height);
    for (let i = 0; i < 10; i++) resizeSync(src, width, height, 3, outWidth, outHeight, 'bicubic'); // warm-up
    const times: number[] = [];
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000 || times.length < 20) {
      const t = performance.now();
      resizeSync(src, width, height, 3, outWidth, outHeight, 'bicubic');
      times.push(performance.now() - t);
    }
    const med = median(times);
    results.push({
      image: `${width}x${height} RGB`,
      width,
      height,
      outWidth,
      outHeight,
      medianMs: med,
      minMs: Math.min(...times),
      perSecond: 1000 / med,
      iterations: times.length,
    });
    await new Promise((r) => setImmediate(r));
  }
  return results;
}

/** Pillow 9.4 Image.resize(BICUBIC) on the same sizes, median ms, or an error string. */
export function benchPillowResize(seconds = Number(process.env.BENCH_SECONDS ?? 1)): Record<string, number> | { error: string } {
  if (!existsSync(PYTHON)) return { error: `${PYTHON} not found` };
  const script = `
import json, sys, time
import numpy as np
from PIL import Image
seconds = float(sys.argv[1])
out = {}
for w, h, ow, oh in json.loads(sys.argv[2]):
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
    for _ in range(10): im.resize((ow, oh), Image.BICUBIC)
    ts, t0 = [], time.perf_counter()
    while time.perf_counter() - t0 < seconds or len(ts) < 20:
        t = time.perf_counter(); im.resize((ow, oh), Image.BICUBIC); ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    out["%dx%d" % (w, h)] = ts[len(ts) // 2]
print(json.dumps(out))
`;
  const cases = SIZES.map(([w, h]) => [w, h, ...resize224(w, h)]);
  const r = spawnSync(PYTHON, ['-c', script, String(seconds), JSON.stringify(cases)], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  if (r.status !== 0) return { error: (r.stderr || `exit ${r.status}`).trim().split('\n').slice(-1).join(' ') };
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, number>;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await benchNativeResize();
  const pillow = benchPillowResize();
  console.log(`# native bicubic resize → Resize(224) size, one thread — ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}, ${native?.buildInfo().compiler ?? ''}\n`);
  if ('error' in pillow) console.log(`(Pillow comparison skipped: ${String(pillow.error)})\n`);
  console.log('| image | output | native ms (median) | native ms (min) | resizes/s | Pillow 9.4 ms (median) | speed-up |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const p = 'error' in pillow ? NaN : (pillow[`${r.width}x${r.height}`] ?? NaN);
    console.log(`| ${r.image} | ${r.outWidth}x${r.outHeight} | ${r.medianMs.toFixed(3)} | ${r.minMs.toFixed(3)} | ${r.perSecond.toFixed(0)} | ${Number.isFinite(p) ? p.toFixed(3) : 'n/a'} | ${Number.isFinite(p) ? (p / r.medianMs).toFixed(1) + '×' : 'n/a'} |`);
  }
}
