// Downloads ImageReward's weights and config from the Hugging Face Hub into a
// local cache: resumable (`<dest>.part` + Range), redirect-aware (the Hub sends
// large files to a CDN host; the token never follows it there), retried with
// bounded backoff, streamed to disk while hashing, verified (size + sha256) and
// renamed into place atomically. No dependencies beyond node:http(s)/crypto/fs.
import { IMAGEREWARD_V1_SHA256 } from './model-dir.js';
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export type FetchErrorCode = 'fetch_offline' | 'fetch_http_error' | 'fetch_integrity' | 'fetch_aborted';

/** A download failure with a stable `code` (see FetchErrorCode). */
export class FetchError extends Error {
  constructor(
    readonly code: FetchErrorCode,
    message: string,
    readonly details: { url?: string; status?: number; cause?: unknown } = {},
  ) {
    super(message);
    this.name = 'FetchError';
  }
  get url(): string | undefined {
    return this.details.url;
  }
  get status(): number | undefined {
    return this.details.status;
  }
}

export interface FetchProgress {
  /** File label (the file name by default). */
  file: string;
  /** Bytes on disk so far, resumed bytes included. */
  received: number;
  /** Total size when known (expected size, Content-Length or Content-Range). */
  total: number | undefined;
}

export interface FetchFileOptions {
  url: string;
  dest: string;
  expectedSize?: number;
  /** Lower-case hex sha256 of the whole file. */
  expectedSha256?: string;
  /** Sent as `Authorization: Bearer` to the URL's own host only. */
  token?: string;
  onProgress?: (p: FetchProgress) => void;
  signal?: AbortSignal;
  /** Retries after a connection drop / 5xx / 429 without progress (default 5). */
  maxRetries?: number;
  /** First backoff delay; doubles per retry, capped at 30 s (default 1000). */
  retryDelayMs?: number;
  /** Socket idle timeout (default 60 s). */
  timeoutMs?: number;
  /** Label used in progress reports (default: the last path segment of dest). */
  label?: string;
  /** Extra text appended to fetch_offline messages (how to proceed offline). */
  offlineHint?: string;
}

export interface FetchFileResult {
  path: string;
  size: number;
  sha256: string;
  /** false when the file was already present and verified (no request made). */
  downloaded: boolean;
}

const MAX_REDIRECTS = 5;
const MAX_BACKOFF_MS = 30_000;
/** Hard cap on attempts, progress-making ones included. */
const MAX_ATTEMPTS = 100;
const OFFLINE_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN']);

export const DEFAULT_OFFLINE_HINT =
  'To proceed offline, set IMAGEREWARD_MODEL to a local copy of the model files or copy them into the cache dir ' +
  '(IMAGEREWARD_HOME, default ~/.cache/imagereward); or set HF_ENDPOINT to a reachable Hugging Face mirror.';

/** Signals a retryable failure of one attempt. */
class RetryableError extends Error {
  constructor(
    message: string,
    readonly kind: 'network' | 'http',
    readonly status?: number,
    readonly retryAfterMs?: number,
    readonly netCode?: string,
  ) {
    super(message);
  }
}

/** Downloads `url` to `dest` (see the module comment). Resolves once `dest` holds verified bytes. */
export async function fetchFile(opts: FetchFileOptions): Promise<FetchFileResult> {
  const { url, dest, expectedSize, signal } = opts;
  const expectedSha = opts.expectedSha256?.toLowerCase();
  const label = opts.label ?? dest.split(/[\\/]/).pop() ?? dest;
  const maxRetries = opts.maxRetries ?? 5;
  const baseDelay = opts.retryDelayMs ?? 1000;
  const hint = opts.offlineHint ?? DEFAULT_OFFLINE_HINT;
  const part = `${dest}.part`;
  const report = (received: number, total: number | undefined): void => opts.onProgress?.({ file: label, received, total });

  checkAborted(signal, url);

  // Already present and verified → nothing to do.
  const existing = await fileSize(dest);
  if (existing !== undefined && (expectedSize === undefined || existing === expectedSize)) {
    if (expectedSha === undefined) return { path: dest, size: existing, sha256: await hashFile(dest), downloaded: false };
    const sha = await hashFile(dest);
    if (sha === expectedSha) {
      report(existing, existing);
      return { path: dest, size: existing, sha256: sha, downloaded: false };
    }
  }
  await mkdir(dirname(dest), { recursive: true });

  let failures = 0; // consecutive attempts that made no progress
  let gotResponse = false;
  for (let attempt = 0; ; attempt++) {
    checkAborted(signal, url);
    if (attempt >= MAX_ATTEMPTS) {
      throw new FetchError('fetch_http_error', `GET ${url} failed: gave up after ${MAX_ATTEMPTS} attempts`, { url });
    }
    let offset = (await fileSize(part)) ?? 0;
    if (expectedSize !== undefined && offset > expectedSize) {
      await unlink(part);
      offset = 0;
    }
    if (expectedSize !== undefined && offset === expectedSize && offset > 0) {
      return finish(part, dest, url, expectedSize, expectedSha, undefined, offset, report);
    }
    const before = offset;
    try {
      const res = await openFollowingRedirects(url, opts.token, offset, signal, opts.timeoutMs ?? 60_000, () => {
        gotResponse = true;
      });
      const status = res.statusCode ?? 0;

      if (status === 416 && offset > 0) {
        res.resume();
        const total = parseContentRange(res.headers['content-range'])?.total;
        if (total === undefined || total === offset) {
          return finish(part, dest, url, expectedSize, expectedSha, undefined, offset, report);
        }
        await unlink(part); // the partial is longer than the file: start over
        continue;
      }
      if (status === 429 || status === 408 || status >= 500) {
        res.resume();
        throw new RetryableError(`HTTP ${status}`, 'http', status, retryAfter(res.headers['retry-after']));
      }
      if (status !== 200 && status !== 206) {
        res.resume();
        throw httpError(url, status);
      }

      let total: number | undefined;
      let hash: Hash;
      let append: boolean;
      if (status === 206) {
        const range = parseContentRange(res.headers['content-range']);
        if (!range || range.start !== offset) {
          // Not the range we asked for: drop the partial and restart from 0.
          res.destroy();
          await unlink(part).catch(() => undefined);
          continue;
        }
        total = range.total;
        hash = createHash('sha256');
        await hashInto(part, hash, offset, signal, url); // hash the resumed bytes first
        append = true;
      } else {
        // 200: either a fresh download or the server ignored Range → restart from 0.
        offset = 0;
        const cl = res.headers['content-length'];
        total = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
        hash = createHash('sha256');
        append = false;
      }
      if (expectedSize !== undefined && total !== undefined && total !== expectedSize) {
        res.destroy();
        await unlink(part).catch(() => undefined);
        throw new FetchError(
          'fetch_integrity',
          `${url}: server reports ${total} bytes, expected ${expectedSize} (wrong file or revision?)`,
          { url },
        );
      }
      total ??= expectedSize;

      const cl = res.headers['content-length'];
      const bodyLength = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : total !== undefined ? total - offset : undefined;
      let received = offset;
      report(received, total);
      const fh = await open(part, append ? 'a' : 'w');
      try {
        let thisResponse = 0;
        for await (const chunk of res as AsyncIterable<Buffer>) {
          hash.update(chunk);
          await fh.write(chunk);
          received += chunk.length;
          thisResponse += chunk.length;
          if (expectedSize !== undefined && received > expectedSize) {
            res.destroy();
            throw new FetchError('fetch_integrity', `${url}: received more than the expected ${expectedSize} bytes`, { url });
          }
          report(received, total);
        }
        if (bodyLength !== undefined && thisResponse < bodyLength) {
          throw new RetryableError(`connection closed after ${received} of ${total} bytes`, 'network', undefined, undefined, 'ECONNRESET');
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      return finish(part, dest, url, expectedSize, expectedSha, hash.digest('hex'), received, report);
    } catch (err) {
      if (err instanceof FetchError) {
        if (err.code === 'fetch_integrity') await unlink(part).catch(() => undefined);
        throw err;
      }
      if (signal?.aborted) throw abortedError(url);
      const progressed = ((await fileSize(part)) ?? 0) > before;
      const retryable = toRetryable(err);
      if (!retryable) throw err;
      if (retryable.netCode && OFFLINE_CODES.has(retryable.netCode) && !gotResponse) {
        throw new FetchError(
          'fetch_offline',
          `cannot reach ${hostOf(url)} (${retryable.netCode}) to download ${url}. ${hint}`,
          { url, cause: err },
        );
      }
      failures = progressed ? 0 : failures + 1;
      if (failures > maxRetries || attempt + 1 >= MAX_ATTEMPTS) {
        if (retryable.kind === 'http') throw httpError(url, retryable.status ?? 0, `after ${attempt + 1} attempts`);
        throw new FetchError(
          'fetch_offline',
          `download of ${url} kept failing (${retryable.message}) after ${attempt + 1} attempts; ` +
            `the partial download is kept and the next run resumes it. ${hint}`,
          { url, cause: err },
        );
      }
      const delay = retryable.retryAfterMs ?? Math.min(MAX_BACKOFF_MS, baseDelay * 2 ** Math.max(0, failures - 1));
      await sleep(delay * (0.75 + Math.random() * 0.5), signal, url);
    }
  }
}

async function finish(
  part: string,
  dest: string,
  url: string,
  expectedSize: number | undefined,
  expectedSha: string | undefined,
  sha: string | undefined,
  size: number,
  report: (r: number, t: number | undefined) => void,
): Promise<FetchFileResult> {
  const onDisk = (await fileSize(part)) ?? 0;
  if (onDisk !== size) size = onDisk;
  if (expectedSize !== undefined && size !== expectedSize) {
    await unlink(part).catch(() => undefined);
    throw new FetchError('fetch_integrity', `${url}: got ${size} bytes, expected ${expectedSize}; the partial download was deleted`, { url });
  }
  const digest = sha ?? (await hashFile(part));
  if (expectedSha !== undefined && digest !== expectedSha) {
    await unlink(part).catch(() => undefined);
    throw new FetchError(
      'fetch_integrity',
      `${url}: sha256 mismatch (got ${digest}, expected ${expectedSha}); the download was deleted, run again to retry`,
      { url },
    );
  }
  await rename(part, dest);
  report(size, size);
  return { path: dest, size, sha256: digest, downloaded: true };
}

function httpError(url: string, status: number, suffix?: string): FetchError {
  let msg = `GET ${url} failed: HTTP ${status}${suffix ? ` ${suffix}` : ''}`;
  if (status === 401 || status === 403) {
    msg += ' (access denied: set HF_TOKEN to a Hugging Face token with access to this repository, or check the one set)';
  } else if (status === 404) {
    msg += ' (not found: check the repository, revision and HF_ENDPOINT)';
  }
  return new FetchError('fetch_http_error', msg, { url, status });
}

function abortedError(url: string): FetchError {
  return new FetchError('fetch_aborted', `download of ${url} aborted (the partial download is kept and resumed next time)`, { url });
}

function checkAborted(signal: AbortSignal | undefined, url: string): void {
  if (signal?.aborted) throw abortedError(url);
}

function toRetryable(err: unknown): RetryableError | undefined {
  if (err instanceof RetryableError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  if (!e || typeof e !== 'object') return undefined;
  const code = typeof e.code === 'string' ? e.code : undefined;
  if (code && (OFFLINE_CODES.has(code) || /^(ECONNRESET|ETIMEDOUT|EPIPE|ECONNABORTED|ERR_STREAM_PREMATURE_CLOSE|UND_ERR)/.test(code))) {
    return new RetryableError(`${code}: ${e.message}`, 'network', undefined, undefined, code);
  }
  if (e.message === 'aborted' || /socket hang up/i.test(e.message ?? '')) {
    return new RetryableError(e.message, 'network', undefined, undefined, 'ECONNRESET');
  }
  return undefined;
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** GET with manual redirects; Authorization only ever goes to the first URL's host (and never https → http). */
async function openFollowingRedirects(
  url: string,
  token: string | undefined,
  offset: number,
  signal: AbortSignal | undefined,
  timeoutMs: number,
  onResponse: () => void,
): Promise<IncomingMessage> {
  const origin = new URL(url);
  let current = origin;
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'user-agent': 'imagereward-serve', 'accept-encoding': 'identity' };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const sameHost = current.host === origin.host && !(origin.protocol === 'https:' && current.protocol !== 'https:');
    if (token && sameHost) headers.authorization = `Bearer ${token}`;
    const res = await get(current, headers, signal, timeoutMs);
    onResponse();
    const status = res.statusCode ?? 0;
    if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
      res.resume();
      if (hop >= MAX_REDIRECTS) {
        throw new FetchError('fetch_http_error', `GET ${url} failed: more than ${MAX_REDIRECTS} redirects`, { url, status });
      }
      current = new URL(res.headers.location, current);
      if (current.protocol !== 'http:' && current.protocol !== 'https:') {
        throw new FetchError('fetch_http_error', `GET ${url} redirected to unsupported ${current.protocol} URL`, { url, status });
      }
      continue;
    }
    return res;
  }
}

function get(url: URL, headers: Record<string, string>, signal: AbortSignal | undefined, timeoutMs: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, { method: 'GET', headers, ...(signal ? { signal } : {}) });
    req.setTimeout(timeoutMs, () => {
      req.destroy(Object.assign(new Error(`no data for ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    });
    req.once('response', resolve);
    req.once('error', reject);
    req.end();
  });
}

function parseContentRange(h: string | undefined): { start?: number; end?: number; total?: number } | undefined {
  if (!h) return undefined;
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/i.exec(h.trim());
  if (!m) return undefined;
  const r: { start?: number; end?: number; total?: number } = {};
  if (m[1] !== undefined && m[2] !== undefined) {
    r.start = Number(m[1]);
    r.end = Number(m[2]);
  }
  if (m[3] !== undefined && m[3] !== '*') r.total = Number(m[3]);
  return r;
}

function retryAfter(h: string | undefined): number | undefined {
  if (!h) return undefined;
  const s = Number(h);
  if (Number.isFinite(s) && s >= 0) return Math.min(s * 1000, MAX_BACKOFF_MS);
  const t = Date.parse(h);
  return Number.isNaN(t) ? undefined : Math.min(Math.max(0, t - Date.now()), MAX_BACKOFF_MS);
}

function sleep(ms: number, signal: AbortSignal | undefined, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedError(url));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortedError(url));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? s.size : undefined;
  } catch {
    return undefined;
  }
}

async function hashInto(path: string, hash: Hash, length: number, signal: AbortSignal | undefined, url: string): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1 << 20 })) {
    checkAborted(signal, url);
    hash.update(chunk as Buffer);
  }
}

/** sha256 (hex) of a whole file. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

// ---------------------------------------------------------------------------
// The ImageReward file set.

export interface ModelFile {
  /** Hub repository, e.g. "THUDM/ImageReward". */
  repo: string;
  /** Path inside the repository. */
  file: string;
  size?: number;
  sha256?: string;
  /** Pinned revision; files without one use fetchModel's `revision` (default "main"). */
  revision?: string;
}

export const IMAGEREWARD_REPO = 'THUDM/ImageReward';

/** What `imagereward fetch-model` downloads by default. */
export const IMAGEREWARD_FILES: readonly ModelFile[] = [
  {
    repo: IMAGEREWARD_REPO,
    file: 'ImageReward.pt',
    size: 1_786_880_927,
    sha256: IMAGEREWARD_V1_SHA256,
  },
  {
    repo: IMAGEREWARD_REPO,
    file: 'med_config.json',
    sha256: 'd8b5029cc3c0124313d17009d043f0701bbe497f3721fa4ceb818720fe665326',
  },
  {
    repo: 'bert-base-uncased',
    file: 'vocab.txt',
    sha256: '07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3',
    revision: 'main',
  },
];

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** IMAGEREWARD_HOME, default ~/.cache/imagereward. */
export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.IMAGEREWARD_HOME || join(homedir(), '.cache', 'imagereward');
}

/** `<home>/hub/<repo with / → -->/<revision>`: where a repository's files are cached. */
export function repoCacheDir(home: string, repo: string, revision = 'main'): string {
  return join(home, 'hub', repo.replaceAll('/', '--'), revision.replaceAll('/', '--'));
}

/** `${endpoint}/{repo}/resolve/{revision}/{file}` */
export function resolveUrl(endpoint: string, repo: string, revision: string, file: string): string {
  const base = endpoint.replace(/\/+$/, '');
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `${base}/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

export interface FetchModelOptions {
  /** Cache root (default: IMAGEREWARD_HOME or ~/.cache/imagereward). */
  home?: string;
  /** Hub endpoint (default: HF_ENDPOINT or https://huggingface.co). */
  endpoint?: string;
  /** Hub token (default: HF_TOKEN, then HUGGING_FACE_HUB_TOKEN). */
  token?: string;
  /** Revision for files without a pinned one (default "main"). */
  revision?: string;
  onProgress?: (p: FetchProgress) => void;
  /** Called once per file when it is in place (downloaded or already present). */
  onFileDone?: (f: FetchedFile) => void;
  files?: readonly ModelFile[];
  signal?: AbortSignal;
  maxRetries?: number;
  retryDelayMs?: number;
  timeoutMs?: number;
  /** Environment to read the defaults from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface FetchedFile extends FetchFileResult {
  repo: string;
  file: string;
  revision: string;
  url: string;
}

export interface FetchModelResult {
  /** Cache dir of the first file's repository (the ImageReward checkpoint dir). */
  dir: string;
  files: FetchedFile[];
}

/** Downloads (or verifies) every file of `files` into the cache; sequential, resumable. */
export async function fetchModel(opts: FetchModelOptions = {}): Promise<FetchModelResult> {
  const env = opts.env ?? process.env;
  const home = opts.home ?? defaultHome(env);
  const endpoint = opts.endpoint ?? (env.HF_ENDPOINT || DEFAULT_ENDPOINT);
  const token = opts.token ?? (env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined);
  const files = opts.files ?? IMAGEREWARD_FILES;
  if (files.length === 0) throw new Error('fetchModel: empty file list');

  const placed = files.map((f) => {
    const revision = f.revision ?? opts.revision ?? 'main';
    return { f, revision, dir: repoCacheDir(home, f.repo, revision) };
  });
  const where = [...new Set(placed.map((p) => p.dir))]
    .map((d) => `${placed.filter((p) => p.dir === d).map((p) => p.f.file).join(', ')} into ${d}`)
    .join('; ');
  const offlineHint =
    `To proceed offline, set IMAGEREWARD_MODEL to a local copy of the model files, or copy ${where} ` +
    `(the cache dir is IMAGEREWARD_HOME, now ${home}); or set HF_ENDPOINT to a reachable Hugging Face mirror.`;

  const out: FetchedFile[] = [];
  for (const { f, revision, dir } of placed) {
    const url = resolveUrl(endpoint, f.repo, revision, f.file);
    const res = await fetchFile({
      url,
      dest: join(dir, ...f.file.split('/')),
      expectedSize: f.size,
      expectedSha256: f.sha256,
      token,
      label: f.file,
      offlineHint,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.maxRetries !== undefined ? { maxRetries: opts.maxRetries } : {}),
      ...(opts.retryDelayMs !== undefined ? { retryDelayMs: opts.retryDelayMs } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    });
    const done: FetchedFile = { ...res, repo: f.repo, file: f.file, revision, url };
    opts.onFileDone?.(done);
    out.push(done);
  }
  return { dir: placed[0]!.dir, files: out };
}
