// `npm start` end to end (issue 8): scripts/start.js → `imagereward stack` runs
// the GPU service and `wrangler dev` wired together. Offline with an empty
// IMAGEREWARD_HOME it must start on the labelled demo model; with
// IMAGEREWARD_MODEL it serves that model. Each run: score through the printed
// edge URL (MISS, then HIT), run a job (and the printed curl lines, when curl is
// here), then SIGINT → exit 0 and no process of the stack left (the GPU service,
// wrangler and every member of wrangler's process group, i.e. workerd).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageRewardConfig } from '../../gpu-service/model/architecture.js';
import { convertCheckpoint } from '../../gpu-service/model/convert.js';
import { ProgressLine } from '../../gpu-service/stack/progress-line.js';
import { resolveStackModel } from '../../gpu-service/stack/resolve-stack-model.js';
import http from 'node:http';
import { freePort } from '../support/wrangler-dev.js';

const ROOT = join(import.meta.dirname, '..', '..');
const START = join(ROOT, 'scripts', 'start.js');
const DIST = join(ROOT, 'dist', 'gpu-service', 'cli', 'main.js');
const SHARED_IMAGE = join(ROOT, '..', 'shared', 'images', '1.webp');
const fixture = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'model', 'tiny224-e2e.json'), 'utf8')) as { config: ImageRewardConfig };
const HAS_CURL = spawnSync('curl', ['--version']).status === 0;

interface Stack {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: () => string;
  edgeUrl: string;
  gpuPid: number;
  edgePid: number;
  /** Every pid in wrangler's process group at ready time (wrangler, its node, workerd). */
  groupPids: number[];
}

const started: Stack[] = [];
const temps: string[] = [];

/** pids whose process group is `pgid` (Linux /proc). */
function groupMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after the ")" closing the command name: state ppid pgrp …
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) pids.push(Number(name));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

/** Running = exists and is not a zombie (a reparented zombie is already dead). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function startStack(env: NodeJS.ProcessEnv, timeoutMs = 150_000): Promise<Stack> {
  const child = spawn(process.execPath, [START], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + timeoutMs;
  while (!/imagereward stack is ready/.test(out)) {
    if (done) throw new Error(`npm start exited before it was ready:\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGINT');
      throw new Error(`npm start was not ready within ${timeoutMs} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const edgeUrl = /edge \(use this\)\s+(http:\/\/\S+)/.exec(out)?.[1];
  const pids = /GPU service pid (\d+), wrangler pid (\d+)/.exec(out);
  if (!edgeUrl || !pids) throw new Error(`no edge URL / pids in the summary:\n${out}`);
  const edgePid = Number(pids[2]);
  const stack: Stack = { child, exited, output: () => out, edgeUrl, gpuPid: Number(pids[1]), edgePid, groupPids: groupMembers(edgePid) };
  started.push(stack);
  return stack;
}

/** SIGINT (Ctrl-C) → exit 0, and nothing of the stack left running. */
async function stopAndCheck(stack: Stack): Promise<void> {
  const t0 = Date.now();
  stack.child.kill('SIGINT');
  const { code, signal } = await stack.exited;
  expect({ code, signal }, stack.output()).toEqual({ code: 0, signal: null });
  expect(Date.now() - t0).toBeLessThan(45_000);
  expect(stack.output()).toMatch(/\[stack\] stopped/);
  expect(stack.groupPids.length).toBeGreaterThanOrEqual(2); // wrangler + workerd at least
  // workerd may take a moment to be reaped after its group's SIGKILL.
  const until = Date.now() + 5_000;
  const alive = () => [stack.gpuPid, stack.edgePid, ...stack.groupPids, ...groupMembers(stack.edgePid), ...groupMembers(stack.gpuPid)].filter(running);
  while (alive().length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  expect(alive()).toEqual([]);
  const res = await fetch(`${stack.edgeUrl}/healthz`).catch((e: Error) => e);
  expect(res).toBeInstanceOf(Error); // the port is closed
}

interface ScoreBody {
  model: string;
  rewards: (number | null)[];
  cached: boolean[];
}

async function imageBytes(): Promise<Buffer> {
  if (existsSync(SHARED_IMAGE)) return readFile(SHARED_IMAGE);
  return sharp({ create: { width: 96, height: 64, channels: 3, background: { r: 30, g: 120, b: 200 } } }).png().toBuffer();
}

/** Scores through the edge twice: MISS, then HIT with the same rewards. */
async function scoreTwice(edgeUrl: string, prompt: string): Promise<ScoreBody> {
  const img = await imageBytes();
  const send = () => {
    const form = new FormData();
    form.append('prompt', prompt);
    form.append('image', new Blob([img]), 'image.webp');
    return fetch(`${edgeUrl}/v1/score`, { method: 'POST', body: form });
  };
  const miss = await send();
  expect(miss.status).toBe(200);
  expect(miss.headers.get('x-cache')).toBe('MISS');
  const a = (await miss.json()) as ScoreBody;
  expect(a.rewards).toHaveLength(1);
  expect(typeof a.rewards[0]).toBe('number');
  const hit = await send();
  expect(hit.status).toBe(200);
  expect(hit.headers.get('x-cache')).toBe('HIT');
  const b = (await hit.json()) as ScoreBody;
  expect(b.rewards).toEqual(a.rewards);
  expect(b.cached).toEqual([true]);
  return a;
}

interface JobBody {
  id: string;
  status: string;
  items?: { id: string; status: string; result?: ScoreBody }[];
}

async function waitForJob(edgeUrl: string, id: string): Promise<JobBody> {
  const until = Date.now() + 60_000;
  for (;;) {
    const res = await fetch(`${edgeUrl}/v1/jobs/${id}`);
    expect(res.status).toBe(200);
    const job = (await res.json()) as JobBody;
    if (job.status === 'completed' || job.status === 'failed') return job;
    if (Date.now() > until) throw new Error(`job ${id} still ${job.status} after 60 s`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function runJob(edgeUrl: string, prompt: string): Promise<JobBody> {
  const img = await imageBytes();
  const res = await fetch(`${edgeUrl}/v1/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ items: [{ id: 'a', prompt, images: [{ data: img.toString('base64') }] }] }),
  });
  expect(res.status).toBe(202);
  const { id } = (await res.json()) as { id: string };
  return waitForJob(edgeUrl, id);
}

function baseEnv(home: string, edgePort: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, IMAGEREWARD_HOME: home, IMAGEREWARD_OFFLINE: '1', EDGE_PORT: String(edgePort) };
  delete env.IMAGEREWARD_MODEL;
  delete env.GPU_PORT;
  return env;
}

beforeAll(() => {
  if (!existsSync(DIST)) throw new Error(`${DIST} missing: run \`npm run build\` (npm test does)`);
});

afterAll(async () => {
  // A failed test must not leak a stack: kill whatever is left, group by group.
  for (const s of started) {
    for (const pid of [s.gpuPid, s.edgePid]) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
  }
  await Promise.all(temps.map((t) => rm(t, { recursive: true, force: true })));
});

describe('npm start', () => {
  it('offline with no model: starts on the labelled demo model, scores and runs jobs through the edge, Ctrl-C stops everything', async () => {
    const home = await mkdtemp(join(tmpdir(), 'ir-start-demo-'));
    temps.push(home);
    const stack = await startStack(baseEnv(home, await freePort()));
    const out = stack.output();
    expect(out).toContain('DEMO MODEL: random weights, scores are meaningless');
    expect(out).toContain('imagereward fetch-model');
    expect(out).toMatch(/model\s+random-demo/);
    expect(out).toMatch(/AUTH is off.*local use only/s);
    expect(out).toMatch(/curl -s -D - http:\/\/127\.0\.0\.1:\d+\/v1\/score /);
    expect(existsSync(join(home, 'demo-model', 'model.safetensors'))).toBe(true);

    const scored = await scoreTwice(stack.edgeUrl, 'a painting of an ocean with clouds and birds');
    expect(scored.model).toBe('random-demo');
    const job = await runJob(stack.edgeUrl, 'a lighthouse at dusk');
    expect(job.status).toBe('completed');
    expect(job.items?.[0]).toMatchObject({ id: 'a', status: 'succeeded', result: { model: 'random-demo' } });

    if (HAS_CURL) {
      // The printed lines work as pasted.
      const curlScore = /^ {3}(curl -s -D - .*\/v1\/score .*)$/m.exec(out)?.[1];
      const jobLines = /^ {3}(ID=\$\(.*)\n {3}(curl -s .*\/v1\/jobs\/\$ID)$/m.exec(out);
      expect(curlScore).toBeDefined();
      expect(jobLines).not.toBeNull();
      const s = spawnSync('bash', ['-c', curlScore!], { encoding: 'utf8', timeout: 30_000 });
      expect(s.stdout).toMatch(/x-cache: (MISS|HIT)/i);
      expect(s.stdout).toMatch(/"rewards":\[-?\d/);
      const j = spawnSync('bash', ['-c', `${jobLines![1]!}\necho "JOB=$ID"`], { encoding: 'utf8', timeout: 30_000 });
      const id = /JOB=(\S+)/.exec(j.stdout)?.[1];
      expect(id, j.stderr).toBeDefined();
      expect((await waitForJob(stack.edgeUrl, id!)).status).toBe('completed');
    }

    await stopAndCheck(stack);
  }, 240_000);

  it('IMAGEREWARD_MODEL: serves that model (no demo banner), then stops cleanly', async () => {
    const home = await mkdtemp(join(tmpdir(), 'ir-start-model-'));
    temps.push(home);
    const modelDir = join(home, 'tiny224');
    // tiny224 is not ImageReward-v1.0's architecture: the stack takes a converted directory.
    await convertCheckpoint({ checkpoint: join(ROOT, 'test', 'fixtures', 'checkpoint', 'tiny224.pt'), out: modelDir, config: fixture.config });
    const stack = await startStack({ ...baseEnv(home, await freePort()), IMAGEREWARD_MODEL: modelDir });
    const out = stack.output();
    expect(out).not.toContain('DEMO MODEL');
    expect(out).toMatch(/model\s+tiny224\n/);
    expect(existsSync(join(home, 'demo-model'))).toBe(false);
    expect((await scoreTwice(stack.edgeUrl, 'a red fox in the snow')).model).toBe('tiny224');
    await stopAndCheck(stack);
  }, 240_000);

  it('refuses a taken edge port with one sentence, before starting anything', async () => {
    const home = await mkdtemp(join(tmpdir(), 'ir-start-port-'));
    temps.push(home);
    const net = await import('node:net');
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = spawnSync(process.execPath, [START], { cwd: ROOT, env: baseEnv(home, port), encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`port ${port} is in use`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stderr).not.toContain('[gpu]');
    } finally {
      blocker.close();
    }
  });

  it('a child that dies takes the other down: exit 1 with its last output', async () => {
    const home = await mkdtemp(join(tmpdir(), 'ir-start-crash-'));
    temps.push(home);
    const stack = await startStack(baseEnv(home, await freePort()));
    process.kill(stack.gpuPid, 'SIGKILL');
    const { code } = await stack.exited;
    expect(code).toBe(1);
    expect(stack.output()).toMatch(/GPU service exited unexpectedly \(signal SIGKILL\)/);
    const until = Date.now() + 5_000;
    const alive = () => [stack.edgePid, ...stack.groupPids, ...groupMembers(stack.edgePid)].filter(running);
    while (alive().length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(alive()).toEqual([]);
  }, 240_000);
});

describe('resolveStackModel without a local model', () => {
  async function resolveWith(env: NodeJS.ProcessEnv) {
    const home = await mkdtemp(join(tmpdir(), 'ir-start-resolve-'));
    temps.push(home);
    const lines: string[] = [];
    const t0 = Date.now();
    const model = await resolveStackModel({
      home,
      env: { IMAGEREWARD_HOME: home, ...env },
      log: (l) => lines.push(l),
      progress: new ProgressLine({ write: (t) => lines.push(t.trimEnd()), isTTY: false }),
      probeTimeoutMs: 3_000,
    });
    return { model, lines, ms: Date.now() - t0, home };
  }

  it('falls back to the demo model in seconds when the Hub is unreachable', async () => {
    const closed = await freePort();
    const { model, ms, lines } = await resolveWith({ HF_ENDPOINT: `http://127.0.0.1:${closed}` });
    expect(model).toMatchObject({ demo: true, source: 'demo', modelId: 'random-demo' });
    expect(model.demoReason).toMatch(/offline: cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    expect(lines.join('\n')).toMatch(/trying http:\/\/127\.0\.0\.1/);
    expect(ms).toBeLessThan(15_000);
  });

  it('shows download progress (bytes / total, %) from HF_ENDPOINT, and a failed download falls back to the demo model', async () => {
    const TOTAL = 1_786_880_927;
    let gets = 0;
    const server = http.createServer((req, res) => {
      if (req.method === 'HEAD') return void res.writeHead(200).end();
      gets++;
      if (gets === 1 && req.url?.endsWith('/ImageReward.pt')) {
        // 3 MB of the "checkpoint", then the connection drops.
        res.writeHead(200, { 'content-length': String(TOTAL) });
        res.write(Buffer.alloc(3_000_000), () => setTimeout(() => res.destroy(), 50));
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const { model, lines, home } = await resolveWith({ HF_ENDPOINT: `http://127.0.0.1:${port}` });
      const text = lines.join('\n');
      expect(text).toMatch(/download: ImageReward\.pt {2}[\d.]+ [kM]B \/ 1\.79 GB +0%/);
      expect(model).toMatchObject({ demo: true, source: 'demo' });
      expect(model.demoReason).toMatch(/download failed: .*HTTP 404/);
      // The partial download is kept for the next try to resume.
      expect(existsSync(join(home, 'hub', 'THUDM--ImageReward', 'main', 'ImageReward.pt.part'))).toBe(true);
    } finally {
      server.close();
    }
  });
});

describe('ProgressLine', () => {
  it('prints at most one line a second into a pipe, and the last state at the end', () => {
    let t = 0;
    const out: string[] = [];
    const p = new ProgressLine({ write: (s) => out.push(s), isTTY: false, now: () => t });
    for (let i = 0; i <= 30; i++) {
      t = i * 100;
      p.update(`${i}`);
    }
    p.done();
    expect(out).toEqual(['0\n', '10\n', '20\n', '30\n']);
  });

  it('redraws in place on a terminal and ends with a newline', () => {
    let t = 0;
    const out: string[] = [];
    const p = new ProgressLine({ write: (s) => out.push(s), isTTY: true, now: () => t });
    p.update('a');
    t = 50;
    p.update('b'); // too soon: kept
    t = 200;
    p.update('c');
    p.done('done');
    expect(out).toEqual(['\r\x1b[2Ka', '\r\x1b[2Kc', '\r\x1b[2Kdone', '\n']);
  });
});
