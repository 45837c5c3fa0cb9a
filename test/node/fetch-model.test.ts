// fetch-model against local HTTP servers on 127.0.0.1 that mimic the Hub
// (resolve → 302 → "CDN" on another port) — no real host is ever contacted.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FetchError, fetchFile, fetchModel, repoCacheDir, resolveUrl, type ModelFile } from '../../gpu-service/model/fetch.js';
import { fetchModelCommand } from '../../gpu-service/cli/fetch-model.js';
import { CliError, type Io } from '../../gpu-service/cli/io.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

// Deterministic pseudo-random "checkpoint": 3 MB from a seeded xorshift.
function deterministic(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

const PT = deterministic(3 * 1024 * 1024, 42);
const MED = Buffer.from(JSON.stringify({ architectures: ['BertModel'], hidden_size: 768 }, null, 2));
const VOCAB = Buffer.from('[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n');
const FILES: ModelFile[] = [
  { repo: 'THUDM/ImageReward', file: 'ImageReward.pt', size: PT.length, sha256: sha(PT) },
  { repo: 'THUDM/ImageReward', file: 'med_config.json', sha256: sha(MED) },
  { repo: 'bert-base-uncased', file: 'vocab.txt', sha256: sha(VOCAB), revision: 'main' },
];
const CONTENT: Record<string, Buffer> = { 'ImageReward.pt': PT, 'med_config.json': MED, 'vocab.txt': VOCAB };

interface Seen { url: string; auth: string | undefined; range: string | undefined }
type Handler = (req: IncomingMessage, res: ServerResponse) => boolean | void;

/** Serves `body` honouring `Range: bytes=N-` with 206 (416 past the end). */
function serveBody(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (m) {
    const start = Number(m[1]);
    if (start >= body.length) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      return;
    }
    res.writeHead(206, {
      'content-range': `bytes ${start}-${body.length - 1}/${body.length}`,
      'content-length': body.length - start,
    });
    res.end(body.subarray(start));
    return;
  }
  res.writeHead(200, { 'content-length': body.length });
  res.end(body);
}

class TestServer {
  server: Server;
  seen: Seen[] = [];
  handler: Handler | undefined;
  constructor(fallback: (req: IncomingMessage, res: ServerResponse) => void) {
    this.server = createServer((req, res) => {
      this.seen.push({ url: req.url ?? '', auth: req.headers.authorization, range: req.headers.range });
      if (this.handler?.(req, res) === true) return;
      fallback(req, res);
    });
  }
  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
  }
  get origin(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

// The CDN serves /files/<name>; the Hub redirects resolve URLs of ImageReward.pt there
// and serves the small files itself (as the real Hub does for non-LFS files).
const cdn = new TestServer((req, res) => {
  const name = (req.url ?? '').replace(/^\/files\//, '').split('?')[0] ?? '';
  const body = CONTENT[name];
  if (!body) return void res.writeHead(404).end();
  serveBody(req, res, body);
});
const hub = new TestServer((req, res) => {
  const m = /^\/(.+)\/resolve\/([^/]+)\/(.+)$/.exec(req.url ?? '');
  const file = m?.[3] ?? '';
  if (file === 'ImageReward.pt') {
    return void res.writeHead(302, { location: `${cdn.origin}/files/${file}?X-Amz-Signature=abc` }).end();
  }
  const body = CONTENT[file];
  if (!body) return void res.writeHead(404).end('Entry not found');
  serveBody(req, res, body);
});

let tmp: string;
beforeAll(async () => {
  await Promise.all([cdn.listen(), hub.listen()]);
  tmp = await mkdtemp(join(tmpdir(), 'imagereward-fetch-'));
});
afterAll(async () => {
  await Promise.all([cdn.close(), hub.close()]);
  await rm(tmp, { recursive: true, force: true });
});
afterEach(() => {
  hub.handler = cdn.handler = undefined;
  hub.seen = [];
  cdn.seen = [];
});

let n = 0;
const freshHome = (): string => join(tmp, `home-${n++}`);
const fast = { maxRetries: 3, retryDelayMs: 10 };
const ptUrl = (): string => resolveUrl(hub.origin, 'THUDM/ImageReward', 'main', 'ImageReward.pt');

async function codeOf(p: Promise<unknown>): Promise<FetchError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(FetchError);
    return err as FetchError;
  }
  throw new Error('expected a FetchError');
}

describe('fetchModel', () => {
  it('downloads all files into the cache layout; token goes to the Hub only, never to the CDN', async () => {
    const home = freshHome();
    const progress: number[] = [];
    const r = await fetchModel({
      home,
      endpoint: hub.origin + '/',
      token: 'hf_secret',
      files: FILES,
      onProgress: (p) => p.file === 'ImageReward.pt' && progress.push(p.received),
      ...fast,
    });
    expect(r.dir).toBe(join(home, 'hub', 'THUDM--ImageReward', 'main'));
    expect(sha(await readFile(join(r.dir, 'ImageReward.pt')))).toBe(sha(PT));
    expect(sha(await readFile(join(r.dir, 'med_config.json')))).toBe(sha(MED));
    const vocab = join(home, 'hub', 'bert-base-uncased', 'main', 'vocab.txt');
    expect(sha(await readFile(vocab))).toBe(sha(VOCAB));
    expect(r.files.map((f) => [f.file, f.path, f.downloaded])).toEqual([
      ['ImageReward.pt', join(r.dir, 'ImageReward.pt'), true],
      ['med_config.json', join(r.dir, 'med_config.json'), true],
      ['vocab.txt', vocab, true],
    ]);
    expect(existsSync(join(r.dir, 'ImageReward.pt.part'))).toBe(false);

    expect(hub.seen.map((s) => s.url)).toEqual([
      '/THUDM/ImageReward/resolve/main/ImageReward.pt',
      '/THUDM/ImageReward/resolve/main/med_config.json',
      '/bert-base-uncased/resolve/main/vocab.txt',
    ]);
    expect(hub.seen.every((s) => s.auth === 'Bearer hf_secret')).toBe(true);
    expect(cdn.seen).toHaveLength(1);
    expect(cdn.seen[0]!.auth).toBeUndefined();
    expect(progress.at(-1)).toBe(PT.length);
    expect(progress.length).toBeGreaterThan(2);

    // Second run: everything verified on disk, no request at all.
    hub.seen = [];
    cdn.seen = [];
    const again = await fetchModel({ home, endpoint: hub.origin, files: FILES, ...fast });
    expect(again.files.every((f) => !f.downloaded)).toBe(true);
    expect(hub.seen).toHaveLength(0);
    expect(cdn.seen).toHaveLength(0);
  });

  it('honours HF_ENDPOINT, HF_TOKEN, IMAGEREWARD_HOME and --revision from the environment', async () => {
    const home = freshHome();
    const r = await fetchModel({
      env: { HF_ENDPOINT: hub.origin, HF_TOKEN: 'hf_env', IMAGEREWARD_HOME: home },
      revision: 'v1.0',
      files: FILES.slice(1),
      ...fast,
    });
    expect(r.dir).toBe(repoCacheDir(home, 'THUDM/ImageReward', 'v1.0'));
    expect(hub.seen.map((s) => [s.url, s.auth])).toEqual([
      ['/THUDM/ImageReward/resolve/v1.0/med_config.json', 'Bearer hf_env'],
      ['/bert-base-uncased/resolve/main/vocab.txt', 'Bearer hf_env'], // pinned revision
    ]);
  });

  it('a 404 is fetch_http_error naming the URL and status', async () => {
    const err = await codeOf(
      fetchModel({ home: freshHome(), endpoint: hub.origin, files: [{ repo: 'THUDM/ImageReward', file: 'missing.bin' }], ...fast }),
    );
    expect(err.code).toBe('fetch_http_error');
    expect(err.status).toBe(404);
    expect(err.message).toContain(`${hub.origin}/THUDM/ImageReward/resolve/main/missing.bin`);
    expect(err.message).toContain('404');
    expect(hub.seen).toHaveLength(1); // not retried
  });

  it('401/403 mention HF_TOKEN', async () => {
    hub.handler = (_req, res) => {
      res.writeHead(401).end();
      return true;
    };
    const err = await codeOf(fetchModel({ home: freshHome(), endpoint: hub.origin, files: FILES.slice(1, 2), ...fast }));
    expect(err.code).toBe('fetch_http_error');
    expect(err.message).toContain('401');
    expect(err.message).toContain('HF_TOKEN');
  });

  it('connection refused is fetch_offline with the offline guidance', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const home = freshHome();
    const err = await codeOf(fetchModel({ home, endpoint: `http://127.0.0.1:${port}`, files: FILES, ...fast }));
    expect(err.code).toBe('fetch_offline');
    expect(err.message).toContain('ECONNREFUSED');
    expect(err.message).toContain('IMAGEREWARD_MODEL');
    expect(err.message).toContain('HF_ENDPOINT');
    expect(err.message).toContain(repoCacheDir(home, 'THUDM/ImageReward'));
  });
});

describe('fetchFile', () => {
  it('retries a 500 and then succeeds', async () => {
    let calls = 0;
    cdn.handler = (_req, res) => {
      if (calls++ > 0) return false;
      res.writeHead(500).end('oops');
      return true;
    };
    const dest = join(freshHome(), 'ImageReward.pt');
    const r = await fetchFile({ url: ptUrl(), dest, expectedSize: PT.length, expectedSha256: sha(PT), ...fast });
    expect(r.downloaded).toBe(true);
    expect(cdn.seen).toHaveLength(2);
    expect(sha(await readFile(dest))).toBe(sha(PT));
  });

  it('gives up on a persistent 500 after maxRetries (fetch_http_error)', async () => {
    hub.handler = (_req, res) => {
      res.writeHead(503).end();
      return true;
    };
    const err = await codeOf(fetchFile({ url: ptUrl(), dest: join(freshHome(), 'x.pt'), ...fast }));
    expect(err.code).toBe('fetch_http_error');
    expect(err.status).toBe(503);
    expect(err.message).toContain(ptUrl());
    expect(hub.seen).toHaveLength(fast.maxRetries + 1);
  });

  it('resumes with Range after the connection drops mid-file', async () => {
    let calls = 0;
    cdn.handler = (req, res) => {
      if (calls++ > 0) return false;
      res.writeHead(200, { 'content-length': PT.length });
      res.write(PT.subarray(0, 1024 * 1024), () => setTimeout(() => req.socket.destroy(), 20));
      return true;
    };
    const dest = join(freshHome(), 'ImageReward.pt');
    const r = await fetchFile({ url: ptUrl(), dest, expectedSize: PT.length, expectedSha256: sha(PT), ...fast });
    expect(r.downloaded).toBe(true);
    expect(cdn.seen).toHaveLength(2);
    expect(cdn.seen[0]!.range).toBeUndefined();
    const m = /^bytes=(\d+)-$/.exec(cdn.seen[1]!.range ?? '');
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(sha(await readFile(dest))).toBe(sha(PT));
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  it('retries a stalled connection after the idle timeout', async () => {
    let calls = 0;
    cdn.handler = (_req, res) => {
      if (calls++ > 0) return false;
      res.writeHead(200, { 'content-length': PT.length });
      res.write(PT.subarray(0, 1000)); // then silence
      return true;
    };
    const dest = join(freshHome(), 'ImageReward.pt');
    const r = await fetchFile({ url: ptUrl(), dest, expectedSize: PT.length, expectedSha256: sha(PT), timeoutMs: 150, ...fast });
    expect(r.downloaded).toBe(true);
    expect(cdn.seen.map((x) => x.range)).toEqual([undefined, 'bytes=1000-']);
  });

  it('restarts from 0 when the server ignores Range (200)', async () => {
    cdn.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': PT.length }).end(PT);
      return true;
    };
    const dest = join(freshHome(), 'ImageReward.pt');
    await mkdir(join(dest, '..'), { recursive: true });
    await writeFile(`${dest}.part`, Buffer.alloc(5000, 7)); // a stale, wrong partial
    const r = await fetchFile({ url: ptUrl(), dest, expectedSize: PT.length, expectedSha256: sha(PT), ...fast });
    expect(r.downloaded).toBe(true);
    expect(cdn.seen[0]!.range).toBe('bytes=5000-');
    expect(sha(await readFile(dest))).toBe(sha(PT));
  });

  it('a complete partial answered with 416 is verified and moved into place', async () => {
    const dest = join(freshHome(), 'ImageReward.pt');
    await mkdir(join(dest, '..'), { recursive: true });
    await writeFile(`${dest}.part`, PT);
    const r = await fetchFile({ url: ptUrl(), dest, expectedSha256: sha(PT), ...fast }); // size unknown → asks
    expect(cdn.seen.map((s) => s.range)).toEqual([`bytes=${PT.length}-`]);
    expect(r.downloaded).toBe(true);
    expect(sha(await readFile(dest))).toBe(sha(PT));
  });

  it('wrong content is fetch_integrity and leaves neither the file nor the partial', async () => {
    const dest = join(freshHome(), 'ImageReward.pt');
    const err = await codeOf(fetchFile({ url: ptUrl(), dest, expectedSize: PT.length, expectedSha256: sha(MED), ...fast }));
    expect(err.code).toBe('fetch_integrity');
    expect(err.message).toContain('sha256');
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  it('a size mismatch is fetch_integrity', async () => {
    const dest = join(freshHome(), 'ImageReward.pt');
    const err = await codeOf(fetchFile({ url: ptUrl(), dest, expectedSize: PT.length + 1, ...fast }));
    expect(err.code).toBe('fetch_integrity');
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  it('replaces a present file whose hash is wrong', async () => {
    const dest = join(freshHome(), 'ImageReward.pt');
    await mkdir(join(dest, '..'), { recursive: true });
    await writeFile(dest, Buffer.alloc(PT.length));
    const r = await fetchFile({ url: ptUrl(), dest, expectedSize: PT.length, expectedSha256: sha(PT), ...fast });
    expect(r.downloaded).toBe(true);
    expect(sha(await readFile(dest))).toBe(sha(PT));
  });

  it('stops after 5 redirects', async () => {
    hub.handler = (req, res) => {
      res.writeHead(302, { location: req.url ?? '/' }).end();
      return true;
    };
    const err = await codeOf(fetchFile({ url: ptUrl(), dest: join(freshHome(), 'x'), ...fast }));
    expect(err.code).toBe('fetch_http_error');
    expect(err.message).toContain('redirects');
    expect(hub.seen).toHaveLength(6);
  });

  it('an abort signal stops the download with fetch_aborted and keeps the partial', async () => {
    cdn.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': PT.length });
      res.write(PT.subarray(0, 64 * 1024)); // then stall
      return true;
    };
    const ac = new AbortController();
    const dest = join(freshHome(), 'ImageReward.pt');
    const err = await codeOf(
      fetchFile({
        url: ptUrl(),
        dest,
        expectedSize: PT.length,
        signal: ac.signal,
        onProgress: (p) => p.received > 0 && ac.abort(),
        ...fast,
      }),
    );
    expect(err.code).toBe('fetch_aborted');
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.part`)).toBe(true);

    // The next run resumes the kept partial and still verifies the whole file.
    cdn.handler = undefined;
    cdn.seen = [];
    const partSize = (await readFile(`${dest}.part`)).length;
    const r = await fetchFile({ url: ptUrl(), dest, expectedSize: PT.length, expectedSha256: sha(PT), ...fast });
    expect(r.downloaded).toBe(true);
    expect(cdn.seen.map((x) => x.range)).toEqual([`bytes=${partSize}-`]);
    expect(sha(await readFile(dest))).toBe(sha(PT));

    const pre = new AbortController();
    pre.abort();
    expect((await codeOf(fetchFile({ url: ptUrl(), dest, signal: pre.signal }))).code).toBe('fetch_aborted');
  });
});

describe('imagereward fetch-model (CLI)', () => {
  const io = (): Io & { out: string; err: string } => {
    const o = { out: '', err: '', stdout: (t: string) => void (o.out += t), stderr: (t: string) => void (o.err += t) };
    return o;
  };

  it('--help', async () => {
    const o = io();
    expect(await fetchModelCommand(['--help'], o)).toBe(0);
    expect(o.out).toContain('--revision');
  });

  it('prints the model dir; one line per file when stderr is not a TTY', async () => {
    const home = freshHome();
    const o = io();
    const code = await fetchModelCommand(['--home', home, '--endpoint', hub.origin], o, {
      isTTY: false,
      env: {},
      fetchOptions: { files: FILES, ...fast },
    });
    expect(code).toBe(0);
    expect(o.out).toBe(`${join(home, 'hub', 'THUDM--ImageReward', 'main')}\n`);
    const lines = o.err.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^ImageReward\.pt .*downloaded/);
    expect(o.err).not.toContain('\r');

    const tty = io();
    expect(await fetchModelCommand(['--home', home, '--endpoint', hub.origin], tty, { isTTY: true, env: {}, fetchOptions: { files: FILES } })).toBe(0);
    expect(tty.err).toContain('already present');
  });

  it('draws a progress bar on a TTY', async () => {
    const o = io();
    const code = await fetchModelCommand(['--home', freshHome(), '--endpoint', hub.origin], o, {
      isTTY: true,
      env: {},
      fetchOptions: { files: FILES.slice(0, 1), ...fast },
    });
    expect(code).toBe(0);
    expect(o.err).toContain('\r');
    expect(o.err).toContain('100.0%');
  });

  it('a failure is a CliError (exit 1) carrying the fetch code', async () => {
    const o = io();
    const p = fetchModelCommand(['--home', freshHome(), '--endpoint', hub.origin], o, {
      isTTY: false,
      env: {},
      fetchOptions: { files: [{ repo: 'x/y', file: 'nope' }], ...fast },
    });
    await expect(p).rejects.toBeInstanceOf(CliError);
    await expect(p).rejects.toMatchObject({ exitCode: 1, code: 'fetch_http_error' });
  });

  it('rejects a stray argument as a usage error', async () => {
    await expect(fetchModelCommand(['extra'], io(), { env: {} })).rejects.toMatchObject({ exitCode: 2 });
  });
});
