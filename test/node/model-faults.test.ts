// Model faults on start (issue 8): a corrupt model must stop `imagereward serve`
// and `imagereward stack` at once with one clear line naming the file (no stack
// trace, no wrangler started), and a disk that fills up while a checkpoint is
// converted must never leave a half-written model directory that anything
// would use. "Disk full" is simulated with a file-size limit (ulimit -f, SIGXFSZ
// ignored): write() then fails with EFBIG mid-file, which is what a full disk
// (ENOSPC) looks like to the writer — an I/O error part-way through a file.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { convertCheckpoint, strayTempDirs } from '../../gpu-service/model/convert.js';
import { freePort } from '../support/wrangler-dev.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'imagereward.js');
const DIST = join(ROOT, 'dist', 'gpu-service', 'cli', 'main.js');
const TINY224 = join(ROOT, 'test', 'fixtures', 'checkpoint', 'tiny224.pt');
const fixture = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'model', 'tiny224-e2e.json'), 'utf8')) as { config: ImageRewardConfig };
const HAS_BASH = spawnSync('bash', ['-c', 'ulimit -f 1']).status === 0;

let work: string;
let good: string;
let configFile: string;

interface Run {
  code: number | null;
  out: string;
  err: string;
  ms: number;
}

/** Runs the CLI to completion (bounded), with IMAGEREWARD_HOME in the work dir. */
function cli(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  const t0 = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env, IMAGEREWARD_HOME: join(work, 'home'), IMAGEREWARD_OFFLINE: '1', ...opts.env };
  delete env.IMAGEREWARD_MODEL;
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err, ms: Date.now() - t0 });
    }),
  );
}

/** `imagereward convert` with writes limited to `kib` KiB per file (SIGXFSZ ignored → EFBIG). */
function convertWithFileLimit(kib: number, args: string[]): Run {
  const t0 = Date.now();
  const quoted = [BIN, 'convert', ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  const r = spawnSync('bash', ['-c', `trap "" XFSZ; ulimit -f ${kib}; exec '${process.execPath}' ${quoted}`], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr, ms: Date.now() - t0 };
}

/** One line of error, naming what is wrong, no stack trace. */
function expectOneClearLine(text: string, ...mustContain: (string | RegExp)[]): void {
  const lines = text.trim().split('\n');
  expect(lines, text).toHaveLength(1);
  expect(text).not.toMatch(/^\s+at /m);
  expect(text).not.toMatch(/unexpected error/);
  for (const m of mustContain) expect(text).toMatch(m);
}

beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} missing: run \`npm run build\` (npm test does)`);
  work = await mkdtemp(join(tmpdir(), 'ir-model-faults-'));
  good = join(work, 'good');
  await convertCheckpoint({ checkpoint: TINY224, out: good, config: fixture.config });
  configFile = join(work, 'tiny224-config.json');
  writeFileSync(configFile, JSON.stringify({ config: fixture.config }));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** A copy of the good model dir with its weights damaged by `damage`. */
async function damagedCopy(name: string, damage: (weights: string) => Promise<void> | void): Promise<string> {
  const dir = join(work, name);
  cpSync(good, dir, { recursive: true });
  await damage(join(dir, 'model.safetensors'));
  return dir;
}

describe('a corrupt model on start', () => {
  const cases: [string, (weights: string) => Promise<void> | void, RegExp][] = [
    ['truncated inside the header', (w) => truncate(w, 5_000), /header length \d+ exceeds the file size/],
    ['truncated inside the tensors', (w) => truncate(w, 1_000_000), /out of bounds/],
    [
      'a garbled header',
      (w) => {
        const b = readFileSync(w);
        b.write('XXXXXXXX', 20, 'latin1');
        writeFileSync(w, b);
      },
      /not valid JSON/,
    ],
    [
      'garbage instead of safetensors',
      (w) => {
        const b = Buffer.alloc(50_000);
        for (let i = 0; i < b.length; i++) b[i] = (i * 7919 + 13) & 0xff;
        writeFileSync(w, b);
      },
      /header length|header does not start/,
    ],
  ];

  it.each(cases)('serve: model.safetensors %s → exit 1 with one clear line', async (name, damage, what) => {
    const dir = await damagedCopy(`serve-${name.replaceAll(' ', '-')}`, damage);
    const r = await cli(['serve', '--model', dir, '--port', '0']);
    expect(r.code, r.err).toBe(1);
    expect(r.out).not.toMatch(/listening on/);
    expectOneClearLine(r.err, 'corrupt model file', join(dir, 'model.safetensors'), what);
    expect(r.ms).toBeLessThan(15_000);
  });

  it('serve: a model dir missing its weights → exit 1 naming the missing file', async () => {
    const dir = await damagedCopy('serve-missing', (w) => rm(w));
    const r = await cli(['serve', '--model', dir, '--port', '0']);
    expect(r.code).toBe(1);
    expectOneClearLine(r.err, 'model file missing', join(dir, 'model.safetensors'));
  });

  it('serve: a garbage ImageReward.pt → exit 1 with one clear line, nothing converted', async () => {
    const pt = join(work, 'garbage', 'ImageReward.pt');
    await mkdir(join(work, 'garbage'), { recursive: true });
    writeFileSync(pt, Buffer.from('this is not a torch checkpoint, just some bytes\n'.repeat(2000)));
    const r = await cli(['serve', '--model', pt, '--port', '0']);
    expect(r.code).toBe(1);
    expectOneClearLine(r.err, 'corrupt checkpoint', pt, /not a zip archive/);
  });

  it('serve: a truncated ImageReward.pt → exit 1 with one clear line', async () => {
    const pt = join(work, 'truncated', 'ImageReward.pt');
    await mkdir(join(work, 'truncated'), { recursive: true });
    writeFileSync(pt, readFileSync(TINY224).subarray(0, 1_000_000));
    const r = await cli(['serve', '--model', pt, '--port', '0']);
    expect(r.code).toBe(1);
    expectOneClearLine(r.err, 'corrupt checkpoint', pt, /truncated or not a zip/);
  });

  it('stack: a corrupt model dir or .pt → exit 1 before the GPU service or wrangler starts', async () => {
    const dir = await damagedCopy('stack-truncated', (w) => truncate(w, 1_000_000));
    const pt = join(work, 'garbage', 'ImageReward.pt'); // written by the test above
    if (!existsSync(pt)) writeFileSync(pt, 'not a checkpoint');
    const edgePort = await freePort();
    for (const model of [dir, pt]) {
      const r = await cli(['stack', '--model', model, '--edge-port', String(edgePort)]);
      expect(r.code, r.err).toBe(1);
      expect(r.err).toMatch(model === dir ? /corrupt model file: .*model\.safetensors/ : /corrupt checkpoint: .*ImageReward\.pt/);
      expect(r.err).not.toMatch(/^\s+at /m);
      expect(r.err).not.toContain('wrangler');
      expect(r.err).not.toContain('[gpu]');
      expect(r.out).not.toContain('ready');
      expect(r.ms).toBeLessThan(20_000);
    }
  });
});

describe.skipIf(!HAS_BASH)('disk full while converting', () => {
  it('fails with a clear error, leaves no directory and no temp dir, and serve refuses the path', async () => {
    const out = join(work, 'full', 'model');
    // 512 KiB per file: model.safetensors (2.1 MiB) cannot be written in full.
    const r = convertWithFileLimit(512, [TINY224, '--out', out, '--config', configFile]);
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(/EFBIG/);
    expect(r.err).not.toMatch(/^\s+at /m);
    expect(r.err).not.toMatch(/^done$/m);
    expect(existsSync(out)).toBe(false);
    expect(await strayTempDirs(out)).toEqual([]);

    const serve = await cli(['serve', '--model', out, '--port', '0']);
    expect(serve.code).toBe(1);
    expectOneClearLine(serve.err, `no model at ${out}`);

    // With room again, the same command succeeds.
    const ok = await cli(['convert', TINY224, '--out', out, '--config', configFile]);
    expect(ok.code, ok.err).toBe(0);
    expect(readFileSync(join(out, 'config.json'), 'utf8')).toContain('"model_id": "tiny224"');
  });

  it('leaves the previous good directory untouched when a replacing conversion runs out of space', async () => {
    const out = join(work, 'replace', 'model');
    cpSync(good, out, { recursive: true });
    const before = { weights: await readFile(join(out, 'model.safetensors')), config: await readFile(join(out, 'config.json'), 'utf8') };
    // A different model id → not the same conversion → --force replaces, or would.
    const r = convertWithFileLimit(1024, [TINY224, '--out', out, '--config', configFile, '--model-id', 'tiny224-v2', '--force']);
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(/EFBIG/);
    expect(await readFile(join(out, 'config.json'), 'utf8')).toBe(before.config);
    expect((await readFile(join(out, 'model.safetensors'))).equals(before.weights)).toBe(true);
    expect(await strayTempDirs(out)).toEqual([]);
    // And it still serves.
    const edgeless = spawn(process.execPath, [BIN, 'serve', '--model', out, '--port', '0', '--backend', 'ort', '--threads', '1', '--preprocess-workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const ready = await new Promise<string>((resolve) => {
      let text = '';
      edgeless.stdout.on('data', (d: Buffer) => {
        text += d.toString();
        if (/listening on/.test(text)) resolve(text);
      });
      edgeless.once('exit', () => resolve(text));
    });
    edgeless.kill('SIGTERM');
    expect(ready).toMatch(/listening on .*\(model tiny224,/);
  });

  it('a temp dir left by a killed conversion is never used and is cleaned up by the next one', async () => {
    const out = join(work, 'killed', 'model');
    await mkdir(join(work, 'killed'), { recursive: true });
    // A pid that surely ran and exited: a finished child's.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    const stale = `${out}.tmp-${dead}-0123456789ab`;
    cpSync(good, stale, { recursive: true });
    await truncate(join(stale, 'model.safetensors'), 100_000);
    const serve = await cli(['serve', '--model', out, '--port', '0']);
    expect(serve.code).toBe(1); // `out` does not exist: the temp dir is not picked up
    const ok = await cli(['convert', TINY224, '--out', out, '--config', configFile]);
    expect(ok.code, ok.err).toBe(0);
    expect(existsSync(stale)).toBe(false);
    expect(await strayTempDirs(out)).toEqual([]);
  });
});
