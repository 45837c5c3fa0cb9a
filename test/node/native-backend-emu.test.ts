// The JS side of the CUDA engine against a working engine, without a GPU: the addon
// built over the engine's CPU emulation (native/build/Release/imagereward_native_emu.node:
// the same addon, engine binding and engine host code, over host reference ops — see
// native/tests/emu/ops_emu.cc), loaded through IMAGEREWARD_NATIVE_ADDON. Covered here:
// native/index.ts → engine_binding.cc (AsyncWorker, typed arrays, typed rejections) →
// gpu-service NativeBackend → the score service's batching and its ENGINE_OOM back-off →
// `imagereward serve --backend native` over HTTP, each compared with ONNX Runtime on the
// same small model. The kernels themselves are the GPU check's (native/scripts/gpu-check.sh).
import { EMU_ADDON, clearEmuAddonEnv } from '../support/emu-addon-env.js'; // first: see the file
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRandomModel } from '../../gpu-service/model/random-model.js';
import { FIXTURE_IMAGES, SMALL_ENGINE_CONFIG as SMALL } from '../support/small-engine-model.js';
import { OrtBackend } from '../../gpu-service/scorer/ort-backend.js';
import { normalizeRgb, MEAN, STD, preprocessImage } from '../../gpu-service/preprocess/index.js';
import { native } from '../../native/index.js';
import { NativeBackend, NativeBackendError } from '../../gpu-service/scorer/native-backend.js';
import { startServeProcess, type ServeProcess } from '../support/serve-process.js';

clearEmuAddonEnv();
const mustBuild = process.env.IMAGEREWARD_CUDA === 'ON';
const present = mustBuild || existsSync(EMU_ADDON);
const skipWhy = present ? '' : ' — skipped: imagereward_native_emu.node was not built (no CUDA headers on this machine)';

const IMG_DIR = FIXTURE_IMAGES;
const IMAGES = ['rgb_lossy_300x280.webp', 'rgb_900x700.jpg', 'p_300x250.png', 'gif_trns_230x240.gif', 'rgba_premultiplied_300x260.png', 'l_230x250.jpg'];
const S = 224;
const PER = 3 * S * S;
/** bf16 storage vs ORT fp32 (the emulated engine's parity bar; see native-engine-emu.test.ts). */
const BAR = 5e-3;

let work: string;
let modelDir: string;
let pixels: Float32Array;
let ort: OrtBackend;

beforeAll(async () => {
  if (!present) return;
  work = await mkdtemp(join(tmpdir(), 'ir-native-emu-'));
  modelDir = (await writeRandomModel({ out: join(work, 'model'), config: SMALL, seed: 4242 })).dir;
  pixels = new Float32Array(IMAGES.length * PER);
  for (let i = 0; i < IMAGES.length; i++) pixels.set(await preprocessImage(await readFile(join(IMG_DIR, IMAGES[i]!))), i * PER);
  ort = await OrtBackend.load(modelDir);
}, 120_000);

afterAll(async () => {
  await ort?.dispose();
  if (work) await rm(work, { recursive: true, force: true });
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** `n` copies of one prompt's ids/mask (a 9-token prompt, rest padding). */
function prompt(n: number): { ids: BigInt64Array; mask: BigInt64Array } {
  const ids = new BigInt64Array(n * 35);
  const mask = new BigInt64Array(n * 35);
  const toks = [101, 1037, 4937, 4147, 1037, 4714, 10276, 6045, 102];
  for (let b = 0; b < n; b++)
    toks.forEach((t, j) => {
      ids[b * 35 + j] = BigInt(t);
      mask[b * 35 + j] = 1n;
    });
  return { ids, mask };
}

describe(`NativeBackend over the emulated engine (imagereward_native_emu.node)${skipWhy}`, () => {
  it.skipIf(!present)('the addon reports a CUDA build and the emulated device', async () => {
    expect(native?.buildInfo().cuda).toBe(true);
    const b = await NativeBackend.load(modelDir);
    try {
      expect(b.deviceInfo().name).toMatch(/CPU emulation/);
      expect(b.deviceInfo().weightBytes).toBeGreaterThan(0);
      expect([b.imageSize, b.embedTokens, b.embedWidth, b.textLength]).toEqual([224, 197, 128, 35]);
    } finally {
      await b.dispose();
    }
  });

  it.skipIf(!present)('encodeImages and scoreText agree with ONNX Runtime fp32 (6 images, one batch)', async () => {
    const b = await NativeBackend.load(modelDir);
    try {
      const n = IMAGES.length;
      const [mine, ref] = await Promise.all([b.encodeImages(pixels.slice(), n), ort.encodeImages(pixels.slice(), n)]);
      expect(mine.length).toBe(n * 197 * 128);
      const embDiff = maxAbsDiff(mine, ref);
      expect(embDiff).toBeGreaterThan(0); // bf16 storage: identical would mean ORT scored itself
      expect(embDiff).toBeLessThan(5e-2);
      const { ids, mask } = prompt(n);
      const s1 = await b.scoreText(ids, mask, mine, n);
      const s2 = await ort.scoreText(ids.slice(), mask.slice(), ref.slice(), n);
      expect(maxAbsDiff(s1.reward, s2.reward)).toBeLessThanOrEqual(BAR);
      expect(maxAbsDiff(s1.raw, s2.raw)).toBeLessThanOrEqual(BAR * 1.1);
    } finally {
      await b.dispose();
    }
  });

  it.skipIf(!present)('fp16 weights, one stream, no CUDA graphs: the same rewards within 1e-3', async () => {
    const b = await NativeBackend.load(modelDir, { dtype: 'fp16', streams: 1, cudaGraphs: false });
    try {
      const n = 3;
      const px = pixels.slice(0, n * PER);
      const mine = await b.encodeImages(px, n);
      const ref = await ort.encodeImages(px.slice(), n);
      const { ids, mask } = prompt(n);
      const r1 = (await b.scoreText(ids, mask, mine, n)).reward;
      const r2 = (await ort.scoreText(ids.slice(), mask.slice(), ref, n)).reward;
      expect(maxAbsDiff(r1, r2)).toBeLessThanOrEqual(1e-3);
    } finally {
      await b.dispose();
    }
  });

  it.skipIf(!present)('bad inputs reject with typed codes and the engine keeps working; dispose → ENGINE_DISPOSED', async () => {
    const b = await NativeBackend.load(modelDir, { maxBatch: 4 });
    try {
      const cases: [string, () => Promise<unknown>][] = [
        ['batch over maxBatch', () => b.encodeImages(new Float32Array(5 * PER), 5)],
        ['pixels of the wrong length', () => b.encodeImages(new Float32Array(PER - 1), 1)],
        ['token id past the vocab', async () => {
          const { ids, mask } = prompt(1);
          ids[3] = 40_000n;
          return b.scoreText(ids, mask, new Float32Array(197 * 128), 1);
        }],
        ['mask value 2', async () => {
          const { ids, mask } = prompt(1);
          mask[0] = 2n;
          return b.scoreText(ids, mask, new Float32Array(197 * 128), 1);
        }],
      ];
      for (const [what, call] of cases) {
        const err = await call().then(() => null, (e: unknown) => e);
        expect(err, what).toBeInstanceOf(NativeBackendError);
        expect((err as InstanceType<typeof NativeBackendError>).code, what).toBe('ENGINE_BAD_INPUT');
      }
      // still serving
      const e1 = await b.encodeImages(pixels.slice(0, PER), 1);
      expect(e1.length).toBe(197 * 128);
    } finally {
      await b.dispose();
    }
    const after = await b.encodeImages(pixels.slice(0, PER), 1).then(() => null, (e: unknown) => e);
    expect((after as { code?: string } | null)?.code).toBe('ENGINE_DISPOSED');
  });

  it.skipIf(!present)("NativeBackend.encodeImagesRgb (the service's path: 3 bytes a pixel) equals encodeImages of normalizeRgb, bit for bit; ORT's agrees", async () => {
    const b = await NativeBackend.load(modelDir);
    try {
      const B = 2;
      const rgb = Uint8Array.from({ length: B * S * S * 3 }, (_, i) => (i * 2654435761) >>> 24);
      const [viaRgb, viaF32] = [await b.encodeImagesRgb(rgb.slice(), B), await b.encodeImages(normalizeRgb(rgb, B, S), B)];
      expect(Buffer.from(viaRgb.buffer).equals(Buffer.from(viaF32.buffer))).toBe(true);
      const ref = await ort.encodeImagesRgb(rgb.slice(), B);
      const { ids, mask } = prompt(B);
      const r1 = (await b.scoreText(ids, mask, viaRgb, B)).reward;
      const r2 = (await ort.scoreText(ids.slice(), mask.slice(), ref, B)).reward;
      expect(maxAbsDiff(r1, r2)).toBeLessThanOrEqual(BAR);
    } finally {
      await b.dispose();
    }
  });

  it.skipIf(!present)('encodeImagesU8 (normalized on the device) equals encodeImages of the CPU-normalized pixels, bit for bit', async () => {
    const engine = await native!.engine!.load({ modelDir, maxBatch: 4 });
    try {
      const B = 3;
      const u8 = new Uint8Array(B * S * S * 3);
      let x = 12345;
      for (let i = 0; i < u8.length; i++) u8[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
      const px = new Float32Array(B * PER);
      for (let b = 0; b < B; b++) px.set(native!.preprocess.cropNormalize(u8.subarray(b * S * S * 3, (b + 1) * S * S * 3), S, S, 0, 0, S, MEAN, STD), b * PER);
      const [fromU8, fromF32] = [await engine.encodeImagesU8(u8, B), await engine.encodeImages(px, B)];
      expect(fromU8.length).toBe(B * 197 * 128);
      expect(Buffer.from(fromU8.buffer).equals(Buffer.from(fromF32.buffer))).toBe(true);
      // the whole pass in one call equals its two halves
      const { ids, mask } = prompt(B);
      const ids32 = Int32Array.from(ids, Number);
      const mask32 = Int32Array.from(mask, Number);
      const whole = await engine.forward(px, ids32, mask32, B);
      const halves = await engine.scoreText(ids32, mask32, fromF32, B);
      expect(maxAbsDiff(whole.reward, halves.reward)).toBeLessThanOrEqual(1e-6);
    } finally {
      await engine.dispose();
    }
  });

  it.skipIf(!present)('dispose while calls are in flight: every call settles, later calls reject ENGINE_DISPOSED, no crash', async () => {
    const engine = await native!.engine!.load({ modelDir, maxBatch: 8, streams: 2 });
    const calls = [engine.encodeImages(new Float32Array(8 * PER), 8), engine.encodeImages(new Float32Array(4 * PER), 4)];
    await engine.dispose();
    const settled = await Promise.allSettled(calls);
    for (const r of settled) {
      if (r.status === 'fulfilled') expect(r.value.length).toBeGreaterThan(0);
      else expect((r.reason as { code?: string }).code).toBe('ENGINE_DISPOSED');
    }
    // a promise, never a synchronous throw: .then / .catch see every failure
    const later = await engine.encodeImages(new Float32Array(PER), 1).then(() => null, (e: unknown) => e);
    expect((later as { code?: string } | null)?.code).toBe('ENGINE_DISPOSED');
  });

  it.skipIf(!present)('bad arguments to the engine itself reject (TypeError / RangeError with code ENGINE_BAD_INPUT), never throw', async () => {
    const engine = await native!.engine!.load({ modelDir, maxBatch: 2 });
    try {
      const bad: [string, () => Promise<unknown>, ErrorConstructor][] = [
        ['pixels not a Float32Array', () => engine.encodeImages(new Float64Array(PER) as unknown as Float32Array, 1), TypeError],
        ['batch 0', () => engine.encodeImages(new Float32Array(PER), 0), RangeError],
        ['batch over maxBatch', () => engine.encodeImagesU8(new Uint8Array(3 * S * S * 3), 3), RangeError],
        ['ids too short', () => engine.scoreText(new Int32Array(34), new Int32Array(35), new Float32Array(197 * 128), 1), RangeError],
        ['mask value 2', () => engine.forward(new Float32Array(PER), new Int32Array(35), new Int32Array(35).fill(2), 1), RangeError],
      ];
      for (const [what, call, cls] of bad) {
        let promise: Promise<unknown> | undefined;
        expect(() => (promise = call()), what).not.toThrow();
        const err = await promise!.then(() => null, (e: unknown) => e);
        expect(err, what).toBeInstanceOf(cls);
        expect((err as { code?: string }).code, what).toBe('ENGINE_BAD_INPUT');
      }
    } finally {
      await engine.dispose();
    }
  });

  it.skipIf(!present)('device memory too small for the weights: load rejects with ENGINE_OOM', async () => {
    // The emulated device's size is read once per process: a child process with a tiny one.
    const { execFile } = await import('node:child_process');
    const script = `
      const { NativeBackend } = await import(${JSON.stringify(join(import.meta.dirname, '..', '..', 'gpu-service', 'scorer', 'native-backend.ts'))});
      try { await NativeBackend.load(${JSON.stringify(modelDir)}); console.log('loaded'); }
      catch (e) { console.log('code=' + e.code); }`;
    const out = await new Promise<string>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        env: { ...process.env, IMAGEREWARD_NATIVE_ADDON: EMU_ADDON, IMAGEREWARD_EMU_MEMORY: String(4 << 20) },
      }, (_err, stdout, stderr) => resolve(stdout + stderr));
    });
    expect(out).toMatch(/code=ENGINE_OOM/);
  });
});

describe(`imagereward serve --backend native over the emulated engine${skipWhy}`, () => {
  const KEY = 'native-emu-test-key';
  const servers: ServeProcess[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.kill()));
  });

  async function score(url: string, names: string[]): Promise<{ status: number; body: { rewards?: number[]; ranking?: number[]; backend?: string } }> {
    const images = await Promise.all(names.map(async (n) => ({ data: (await readFile(join(IMG_DIR, n))).toString('base64') })));
    const res = await fetch(`${url}/v1/score`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ prompt: 'a cat wearing a tiny wizard hat', images }),
    });
    return { status: res.status, body: (await res.json()) as { rewards?: number[]; ranking?: number[] } };
  }

  async function metric(url: string, name: string): Promise<number> {
    const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    expect(line, `${name} in /metrics`).toBeDefined();
    return Number(line!.split(' ').pop());
  }

  it.skipIf(!present)('answers /v1/score with the rewards and ranking ONNX Runtime gives; a device too small for batch 6 backs off and still answers', async () => {
    const [nat, ortServe, small] = await Promise.all([
      startServeProcess({ modelDir, apiKey: KEY, backend: 'native', env: { IMAGEREWARD_NATIVE_ADDON: EMU_ADDON } }),
      startServeProcess({ modelDir, apiKey: KEY }),
      // 28 MiB: the weights (~10 MB) + about 2.5 MB of buffers per image — bucket 8 (6 images) cannot fit, bucket 4 can
      startServeProcess({ modelDir, apiKey: KEY, backend: 'native', env: { IMAGEREWARD_NATIVE_ADDON: EMU_ADDON, IMAGEREWARD_EMU_MEMORY: String(28 << 20) } }),
    ]);
    servers.push(nat, ortServe, small);

    const a = await score(nat.url, IMAGES);
    const b = await score(ortServe.url, IMAGES);
    expect(a.status, JSON.stringify(a.body)).toBe(200);
    expect(b.status).toBe(200);
    expect(maxAbsDiff(a.body.rewards!, b.body.rewards!)).toBeLessThanOrEqual(BAR);
    expect(a.body.ranking).toEqual(b.body.ranking);

    expect(await metric(small.url, 'imagereward_oom_backoffs_total')).toBe(0);
    const c = await score(small.url, IMAGES);
    expect(c.status, JSON.stringify(c.body)).toBe(200);
    expect(maxAbsDiff(c.body.rewards!, a.body.rewards!)).toBeLessThanOrEqual(1e-6); // same math, smaller batches
    expect(await metric(small.url, 'imagereward_oom_backoffs_total')).toBeGreaterThanOrEqual(1);
    expect(await metric(small.url, 'imagereward_batch_cap')).toBeLessThan(IMAGES.length);
    // the lowered cap stays: a second request needs no new back-off
    const before = await metric(small.url, 'imagereward_oom_backoffs_total');
    const d = await score(small.url, IMAGES.slice(0, 4));
    expect(d.status).toBe(200);
    expect(await metric(small.url, 'imagereward_oom_backoffs_total')).toBe(before);
  }, 120_000);

  it.skipIf(!present)('--streams 2 runs two batches at once on one engine; --dtype fp16 is within 1e-3 of ONNX Runtime', async () => {
    const [two, fp16, ortServe] = await Promise.all([
      startServeProcess({ modelDir, apiKey: KEY, backend: 'native', extraArgs: ['--streams', '2', '--max-batch', '2', '--max-wait-ms', '0'], env: { IMAGEREWARD_NATIVE_ADDON: EMU_ADDON } }),
      startServeProcess({ modelDir, apiKey: KEY, backend: 'native', extraArgs: ['--dtype', 'fp16'], env: { IMAGEREWARD_NATIVE_ADDON: EMU_ADDON } }),
      startServeProcess({ modelDir, apiKey: KEY }),
    ]);
    servers.push(two, fp16, ortServe);
    const answers = await Promise.all([0, 1, 2, 3].map((k) => score(two.url, IMAGES.slice(k, k + 2))));
    for (const a of answers) expect(a.status, JSON.stringify(a.body)).toBe(200);
    expect(await metric(two.url, 'imagereward_batches_in_flight_peak')).toBe(2);
    const [h, r] = [await score(fp16.url, IMAGES), await score(ortServe.url, IMAGES)];
    expect(h.status).toBe(200);
    expect(maxAbsDiff(h.body.rewards!, r.body.rewards!)).toBeLessThanOrEqual(1e-3);
    expect(h.body.ranking).toEqual(r.body.ranking);
  }, 120_000);

  it.skipIf(!present)('a sticky device error: that batch 500, then backend_failed 503 on every call and /healthz, then exit 75 for a restart', async () => {
    // The emulated device is lost after 7 stream synchronizations: the load's self-check
    // forward takes 3 (its staging buffer grows once), the first request 4 (encode + score).
    const s = await startServeProcess({ modelDir, apiKey: KEY, backend: 'native', extraArgs: ['--streams', '1'], env: { IMAGEREWARD_NATIVE_ADDON: EMU_ADDON, IMAGEREWARD_EMU_STICKY_AFTER: '7' } });
    servers.push(s);
    const first = await score(s.url, IMAGES.slice(0, 1));
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    const hit = await score(s.url, IMAGES.slice(1, 2));
    expect(hit.status).toBe(500);
    expect(JSON.stringify(hit.body)).toMatch(/cudaErrorIllegalAddress/);
    for (const path of ['/healthz', '/readyz']) {
      const r = await fetch(`${s.url}${path}`);
      expect(r.status, path).toBe(503);
      const p = (await r.json()) as { code: string; detail: string };
      expect(p.code, path).toBe('backend_failed');
      expect(p.detail).toMatch(/ENGINE_DEVICE_LOST.*restart the service/);
    }
    const after = await score(s.url, IMAGES.slice(2, 3));
    expect(after.status).toBe(503);
    expect((after.body as { code?: string }).code).toBe('backend_failed');
    // no crash: it answers, then stops on its own with EX_TEMPFAIL so a supervisor restarts it
    expect(s.child.exitCode).toBeNull();
    await s.exited;
    expect(s.child.exitCode).toBe(75);
  }, 60_000);

  it.skipIf(!present)('an engine that loads but cannot run: --backend auto falls back to ONNX Runtime and says why; --backend native refuses to start', async () => {
    // The emulated device is lost at the first stream synchronization: the engine loads
    // (weights upload synchronously), then its self-check forward fails.
    const env = { IMAGEREWARD_NATIVE_ADDON: EMU_ADDON, IMAGEREWARD_EMU_STICKY_AFTER: '0' };
    const auto = await startServeProcess({ modelDir, apiKey: KEY, backend: 'auto', env });
    servers.push(auto);
    const models = (await (await fetch(`${auto.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { data?: { backend?: string }[]; backend?: string };
    expect(JSON.stringify(models)).toMatch(/"backend":"ort"/);
    const r = await score(auto.url, IMAGES.slice(0, 2));
    expect(r.status).toBe(200);
    const err = await startServeProcess({ modelDir, apiKey: KEY, backend: 'native', env }).then(
      (s) => {
        servers.push(s);
        return '';
      },
      (e: unknown) => (e as Error).message,
    );
    expect(err).toMatch(/first forward failed.*cudaErrorIllegalAddress/s);
  }, 60_000);

  it.skipIf(!present)('refuses bad engine flags with a usage error', async () => {
    const { execFile } = await import('node:child_process');
    const bin = join(import.meta.dirname, '..', '..', 'bin', 'imagereward.js');
    for (const [flag, value, msg] of [['--dtype', 'fp8', /--dtype must be bf16 or fp16/], ['--streams', '9', /--streams must be 1\.\.8/], ['--streams', '0', /--streams must be a positive integer/]] as const) {
      const r = await new Promise<{ code: number; err: string }>((resolve) => {
        execFile(process.execPath, [bin, 'serve', '--model', modelDir, flag, value], (err, _o, stderr) => resolve({ code: (err as { code?: number } | null)?.code ?? 0, err: stderr }));
      });
      expect(r.code, `${flag} ${value}`).toBe(2);
      expect(r.err).toMatch(msg);
    }
  });
});

describe(`imagereward score --backend native over the emulated engine${skipWhy}`, () => {
  it.skipIf(!present)('prints the rewards and ranking ONNX Runtime gives for the same files', async () => {
    const { execFile } = await import('node:child_process');
    const bin = join(import.meta.dirname, '..', '..', 'bin', 'imagereward.js');
    const files = IMAGES.slice(0, 4).map((n) => join(IMG_DIR, n));
    const cli = (backend: string) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) => {
        execFile(process.execPath, [bin, 'score', '--model', modelDir, '--prompt', 'a cat wearing a tiny wizard hat', ...files, '--json', '--backend', backend], {
          env: { ...process.env, IMAGEREWARD_NATIVE_ADDON: EMU_ADDON },
        }, (err, stdout, stderr) => resolve({ code: (err as { code?: number } | null)?.code ?? 0, out: stdout, err: stderr }));
      });
    const [nat, ref] = await Promise.all([cli('native'), cli('ort')]);
    expect(nat.code, nat.err).toBe(0);
    expect(ref.code, ref.err).toBe(0);
    const a = JSON.parse(nat.out) as { backend: string; rewards: number[]; ranking: number[] };
    const b = JSON.parse(ref.out) as { backend: string; rewards: number[]; ranking: number[] };
    expect([a.backend, b.backend]).toEqual(['native', 'ort']);
    expect(maxAbsDiff(a.rewards, b.rewards)).toBeLessThanOrEqual(BAR);
    expect(a.ranking).toEqual(b.ranking);
  }, 120_000);

  it.skipIf(!present)('scores more files than the engine takes in one batch (300 > maxBatch 256), in chunks', async () => {
    const { execFile } = await import('node:child_process');
    const bin = join(import.meta.dirname, '..', '..', 'bin', 'imagereward.js');
    const files = Array.from({ length: 300 }, (_, i) => join(IMG_DIR, IMAGES[i % 2]!));
    const r = await new Promise<{ code: number; out: string; err: string }>((resolve) => {
      execFile(process.execPath, [bin, 'score', '--model', modelDir, '--prompt', 'a cat wearing a tiny wizard hat', ...files, '--json', '--backend', 'native'], {
        env: { ...process.env, IMAGEREWARD_NATIVE_ADDON: EMU_ADDON },
        maxBuffer: 16 << 20,
      }, (err, stdout, stderr) => resolve({ code: (err as { code?: number } | null)?.code ?? 0, out: stdout, err: stderr }));
    });
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out) as { backend: string; rewards: number[]; ranking: number[] };
    expect(out.backend).toBe('native');
    expect(out.rewards).toHaveLength(300);
    // the same two files alternate: every chunk (64 + … + 44) gives each file the same reward
    const [r0, r1] = [out.rewards[0]!, out.rewards[1]!];
    expect(r0).not.toBeCloseTo(r1, 6);
    out.rewards.forEach((v, i) => expect(Math.abs(v - (i % 2 === 0 ? r0 : r1)), `image ${i}`).toBeLessThanOrEqual(1e-6));
  }, 180_000);
});
