// The `imagereward` CLI through the real binary (bin/imagereward.js → dist/):
// output format, exit codes and error messages are a contract for scripts.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preprocessImage } from '../../gpu-service/preprocess/index.js';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'imagereward.js');
const DIST = join(import.meta.dirname, '..', '..', 'dist', 'gpu-service', 'cli', 'main.js');
const SHARED_IMAGE = join(import.meta.dirname, '..', '..', '..', 'shared', 'images', '1.webp');

interface Result { code: number; stdout: string; stderr: string }
async function cli(args: string[], input?: string): Promise<Result> {
  const child = run(process.execPath, [BIN, ...args], { maxBuffer: 1 << 26, encoding: 'utf8' });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let dir: string;
beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} missing: run \`npm run build\` (npm test does)`);
  dir = await mkdtemp(join(tmpdir(), 'imagereward-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('imagereward tokenize', () => {
  it('prints 35 ids and mask for one prompt, matching HF tokenizers (Rust)', async () => {
    const prompt = 'a painting of an ocean with clouds and birds, day time, low depth field effect';
    const r = await cli(['tokenize', prompt]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0] ?? '') as { input_ids: number[]; attention_mask: number[] };
    expect(Object.keys(out)).toEqual(['input_ids', 'attention_mask']);
    expect(out.input_ids).toHaveLength(35);
    expect(out.input_ids[0]).toBe(101);
    const n = out.attention_mask.filter((m) => m === 1).length;
    expect(out.input_ids[n - 1]).toBe(102);
    expect(out.input_ids.slice(n).every((id) => id === 0)).toBe(true);
    // Ids are vocab line numbers (0-based) in bert-base-uncased: a, painting, of, an, ocean.
    expect(out.input_ids.slice(1, 6)).toEqual([1037, 4169, 1997, 2019, 4153]);
    expect(n).toBe(19); // [CLS] + 15 words + 2 commas + [SEP]
  });

  it('reads --file with CRLF line endings, one JSON line per prompt, and stdin via -', async () => {
    const file = join(dir, 'prompts.txt');
    await writeFile(file, 'a cat\r\n\r\nA CAT on [SEP] mars\r\n');
    const r = await cli(['tokenize', '--file', file]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { input_ids: number[] });
    expect(lines).toHaveLength(3);
    expect(lines[0]?.input_ids.slice(0, 4)).toEqual([101, 1037, 4937, 102]);
    expect(lines[1]?.input_ids.slice(0, 3)).toEqual([101, 102, 0]); // empty line → [CLS][SEP]
    // "A CAT" lowercases; the literal [SEP] stays one special token.
    expect(lines[2]?.input_ids.slice(0, 7)).toEqual([101, 1037, 4937, 2006, 102, 7733, 102]);
    const viaStdin = await cli(['tokenize', '--file', '-'], 'a cat\r\n\r\nA CAT on [SEP] mars\r\n');
    expect(viaStdin.stdout).toBe(r.stdout);
  });

  it('fails with usage (exit 2) without a prompt, and exit 1 for a missing file', async () => {
    const none = await cli(['tokenize']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/exactly one prompt/);
    const missing = await cli(['tokenize', '--file', join(dir, 'nope.txt')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ENOENT/);
  });
});

describe('imagereward preprocess', () => {
  it.skipIf(!existsSync(SHARED_IMAGE))('writes the 602,112-byte float32 tensor, equal to the library (needs ../shared/images)', async () => {
    const out = join(dir, '1.f32');
    const r = await cli(['preprocess', SHARED_IMAGE, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const bytes = await readFile(out);
    expect(bytes.length).toBe(602_112);
    const got = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    const want = await preprocessImage(await readFile(SHARED_IMAGE), { backend: 'reference' });
    let maxDiff = 0;
    for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs((got[i] ?? NaN) - (want[i] ?? NaN)));
    expect(maxDiff).toBeLessThanOrEqual(1e-6);
  });

  it.each([
    ['zero bytes', Buffer.alloc(0), 'image_empty'],
    ['random bytes', Buffer.from('this is not an image at all, just text'), 'unsupported_image_format'],
    ['truncated PNG', Buffer.from('89504e470d0a1a0a0000000d49484452000000100000', 'hex'), 'image_decode_failed'],
  ])('exits 1 with a stable code for %s, writing nothing', async (_name, content, code) => {
    const input = join(dir, `bad-${code}`);
    const out = join(dir, `bad-${code}.f32`);
    await writeFile(input, content);
    const r = await cli(['preprocess', input, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error ${code}:`);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses images over --max-pixels before decoding', async () => {
    const input = join(dir, 'big.png');
    const sharp = (await import('sharp')).default;
    await writeFile(input, await sharp({ create: { width: 300, height: 300, channels: 3, background: '#808080' } }).png().toBuffer());
    const r = await cli(['preprocess', input, '--out', join(dir, 'big.f32'), '--max-pixels', '1000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error image_too_large:');
  });

  it('rejects bad usage with exit 2', async () => {
    expect((await cli(['preprocess'])).code).toBe(2);
    expect((await cli(['preprocess', 'x.png', '--out', 'y', '--backend', 'gpu'])).code).toBe(2);
    expect((await cli(['nonsense'])).code).toBe(2);
  });
});

describe('imagereward info', () => {
  it('reports versions and native status as JSON', async () => {
    const r = await cli(['info', '--json']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as { version: string; native: { loaded: boolean } };
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(typeof info.native.loaded).toBe('boolean');
  });
});
