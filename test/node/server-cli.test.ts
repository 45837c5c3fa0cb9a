// `imagereward serve` as users run it: the real binary (dist/), the tiny224 test
// model, ONNX Runtime. One ready line; SIGTERM while a request is still being
// uploaded: that request is answered, then the process exits 0.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { convertCheckpoint } from '../../gpu-service/model/convert.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'imagereward.js');
const DIST = join(ROOT, 'dist', 'gpu-service', 'cli', 'main.js');
const fixture = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'model', 'tiny224-e2e.json'), 'utf8')) as {
  config: ImageRewardConfig;
  images: string[];
  cases: { prompt: string; rewards: number[] }[];
};

let work: string;
let modelDir: string;
beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} missing: run \`npm run build\` (npm test does)`);
  work = await mkdtemp(join(tmpdir(), 'ir-serve-cli-'));
  modelDir = join(work, 'model');
  await convertCheckpoint({ checkpoint: join(ROOT, 'test', 'fixtures', 'checkpoint', 'tiny224.pt'), out: modelDir, config: fixture.config });
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function startCli(args: string[]): { child: ChildProcessWithoutNullStreams; out: string[]; ready: Promise<string>; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { env: { ...process.env, IMAGEREWARD_API_KEYS: '' } });
  const out: string[] = [];
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  let buf = '';
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        out.push(line);
        const m = /listening on (http:\/\/\S+)/.exec(line);
        if (m) resolve(m[1]!);
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out.join('\n')}\n${err}`)));
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out, ready, exit };
}

describe('imagereward serve (binary)', () => {
  it('usage errors exit 2; no model exits 1 with the way to get one', async () => {
    for (const args of [['--port', 'abc'], ['--backend', 'gpu'], ['--max-images', '0'], ['extra']]) {
      const { exit, ready } = startCli(args);
      ready.catch(() => {});
      expect(await exit, args.join(' ')).toBe(2);
    }
    const child = spawn(process.execPath, [BIN, 'serve'], { env: { ...process.env, IMAGEREWARD_MODEL: '', IMAGEREWARD_HOME: join(work, 'empty-home') } });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(err).toMatch(/no model given: pass --model/);
  });

  it('serves, and on SIGTERM answers the request in flight, then exits 0', async () => {
    const { child, out, ready, exit } = startCli(['--model', modelDir, '--port', '0', '--backend', 'ort', '--threads', '1']);
    const url = new URL(await ready);
    expect(out[0]).toMatch(/^imagereward serve: listening on http:\/\/127\.0\.0\.1:\d+ \(model tiny224, backend ort\)$/);
    const c = fixture.cases[0]!;
    const body = JSON.stringify({ prompt: c.prompt, images: [{ data: readFileSync(join(ROOT, fixture.images[0]!)).toString('base64') }] });
    const half = Math.floor(body.length / 2);
    const answer = new Promise<string>((resolve, reject) => {
      const sock = connect(Number(url.port), url.hostname);
      let data = '';
      sock.on('data', (d) => (data += d.toString('utf8')));
      sock.on('error', reject);
      sock.on('close', () => resolve(data));
      sock.write(`POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body.slice(0, half)}`);
      setTimeout(() => child.kill('SIGTERM'), 100);
      setTimeout(() => sock.write(body.slice(half)), 400);
    });
    const res = await answer;
    expect(res).toMatch(/^HTTP\/1\.1 200/);
    const json = JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4)) as { rewards: number[] };
    expect(Math.abs(json.rewards[0]! - c.rewards[0]!)).toBeLessThanOrEqual(1e-4);
    expect(await exit).toBe(0);
    expect(out.some((l) => /SIGTERM: draining/.test(l))).toBe(true);
    expect(out.at(-1)).toBe('imagereward serve: stopped');
  });
});
