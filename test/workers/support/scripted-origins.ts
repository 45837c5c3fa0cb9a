// Scripted GPU-service origins for the workers tests. They run in Node (the
// vitest global setup starts them) as real HTTP servers on loopback, because
// the edge under test must meet real sockets: resets, hangs, slow answers and
// garbage are exactly what its origin pool exists to survive. Each origin
// speaks enough of the GPU service's API to be scored against, with rewards
// that depend only on (prompt, image bytes) — like real replicas, every
// origin gives the same answer — and a control server lets a test switch an
// origin's behaviour and read what each origin received. POST /v1/score takes
// JSON {prompt, images: [{data: base64}]} or, like the real service,
// multipart/form-data (a "prompt" text field and image file fields in order).
//
// Control API (JSON in, JSON out):
//   POST /mode  {origin: i, mode, delayMs?, modelId?}   mode: ok | refuse | fail500 | fail503 | hang | slow | garbage | model
//   POST /reset                                          every origin back to ok, logs cleared, hung requests dropped
//   GET  /log   → {origins: [[entries of origin 0], …]}  entry: {method, path, authorization, requestId, images, prompt}
import http from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { rankRewards } from '../../../contracts/api/ranking.js';
import { apiProblem } from '../../../contracts/api/errors.js';

export const SCRIPTED_ORIGIN_SECRET = 'test-origin-secret';
const DEFAULT_MODEL = 'ImageReward-v1.0';
const MODES = ['ok', 'refuse', 'fail500', 'fail503', 'hang', 'slow', 'garbage', 'model'] as const;
type Mode = (typeof MODES)[number];

export interface LogEntry {
  method: string;
  path: string;
  authorization: string | null;
  requestId: string | null;
  /** Number of images of a /v1/score body, null when the body has none (or is not JSON). */
  images: number | null;
  prompt: string | null;
}

interface OriginBehaviour {
  mode: Mode;
  delayMs: number;
  modelId: string;
}

interface Origin {
  index: number;
  behaviour: OriginBehaviour;
  log: LogEntry[];
  /** Requests held open by "hang" (and not yet answered "slow" ones): destroyed on reset/close. */
  held: Set<http.ServerResponse>;
  server: http.Server;
}

export interface ScriptedOrigins {
  urls: string[];
  controlUrl: string;
  close(): Promise<void>;
}

export async function startScriptedOrigins(n: number): Promise<ScriptedOrigins> {
  const origins: Origin[] = [];
  for (let index = 0; index < n; index++) {
    const origin: Origin = { index, behaviour: okBehaviour(), log: [], held: new Set(), server: http.createServer() };
    origin.server.on('request', (req, res) => {
      handleOrigin(origin, req, res).catch((err: unknown) => {
        if (!res.headersSent) send(res, origin, 500, problemBody('internal', String(err)));
        else res.destroy();
      });
    });
    origins.push(origin);
  }
  const control = http.createServer((req, res) => {
    handleControl(origins, req, res).catch((err: unknown) => sendJson(res, 500, { error: String(err) }));
  });

  const servers = [...origins.map((o) => o.server), control];
  const ports = await Promise.all(servers.map(listen));
  const urls = ports.slice(0, n).map((p) => `http://127.0.0.1:${p}`);
  const controlUrl = `http://127.0.0.1:${ports[n] ?? 0}`;

  return {
    urls,
    controlUrl,
    close: async () => {
      for (const o of origins) dropHeld(o);
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              // Keep-alive sockets (and anything hung) would keep close() waiting forever.
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}

function okBehaviour(): OriginBehaviour {
  return { mode: 'ok', delayMs: 0, modelId: DEFAULT_MODEL };
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function dropHeld(origin: Origin): void {
  for (const res of origin.held) res.destroy();
  origin.held.clear();
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function parseJson(buf: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(buf.toString('utf8')) };
  } catch {
    return { ok: false };
  }
}

// ---- the origins --------------------------------------------------------------

async function handleOrigin(origin: Origin, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const body = await readBody(req);
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const parsed = await parseScoreBody(req, body);
  const score = parsed.kind === 'ok' ? parsed.input : undefined;
  origin.log.push({
    method: req.method ?? 'GET',
    path,
    authorization: req.headers.authorization ?? null,
    requestId: header(req, 'x-request-id'),
    images: score?.images.length ?? null,
    prompt: score?.prompt ?? null,
  });

  const { mode, delayMs } = origin.behaviour;
  switch (mode) {
    case 'refuse':
      // Like a dead host behind a load balancer: the connection just dies.
      req.socket.destroy();
      return;
    case 'hang':
      origin.held.add(res);
      res.on('close', () => origin.held.delete(res));
      return;
    case 'fail500':
      send(res, origin, 500, problemBody('internal', 'scripted failure'));
      return;
    case 'fail503':
      send(res, origin, 503, problemBody('queue_full', 'scripted: the scoring queue is full'), { 'retry-after': '2' });
      return;
    case 'garbage':
      res.writeHead(200, { 'content-type': 'application/json', 'x-origin-index': String(origin.index) });
      res.end('<html>this is not JSON');
      return;
    case 'slow':
      origin.held.add(res);
      res.on('close', () => origin.held.delete(res));
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      origin.held.delete(res);
      if (res.destroyed) return;
      break;
    case 'ok':
    case 'model':
      break;
  }
  route(origin, req, res, path, parsed);
}

function route(origin: Origin, req: http.IncomingMessage, res: http.ServerResponse, path: string, parsed: ParsedScore): void {
  const model = origin.behaviour.mode === 'model' ? origin.behaviour.modelId : DEFAULT_MODEL;
  if (path === '/healthz' && req.method === 'GET') return send(res, origin, 200, { status: 'ok' });

  const guarded = path === '/readyz' || path.startsWith('/v1/');
  if (guarded && req.headers.authorization !== `Bearer ${SCRIPTED_ORIGIN_SECRET}`) {
    return send(res, origin, 401, problemBody('unauthorized', 'missing or wrong origin secret'), { 'www-authenticate': 'Bearer' });
  }
  if (path === '/readyz' && req.method === 'GET') return send(res, origin, 200, { status: 'ready', model });
  if (path === '/v1/models' && req.method === 'GET') {
    return send(res, origin, 200, {
      object: 'list',
      data: [{ id: model, object: 'model', backend: 'ort', ready: true, skipped_backends: [], limits: {} }],
    });
  }
  if (path === '/v1/score' && req.method === 'POST') return scoreRoute(origin, res, parsed, model);
  send(res, origin, 404, problemBody('not_found', `No route for ${req.method ?? 'GET'} ${path}`));
}

/** A score request as either body format carries it: decoded bytes, or a URL the origin will not fetch. */
interface ScoreInput {
  prompt: string;
  images: ({ bytes: Buffer } | { url: string })[];
}

type ParsedScore =
  | { kind: 'ok'; input: ScoreInput }
  | { kind: 'problem'; code: 'invalid_json' | 'invalid_request' | 'invalid_multipart'; detail: string };

async function parseScoreBody(req: http.IncomingMessage, body: Buffer): Promise<ParsedScore> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type === 'multipart/form-data') return parseMultipart(req.headers['content-type'] ?? '', body);
  const json = parseJson(body);
  if (!json.ok) return { kind: 'problem', code: 'invalid_json', detail: 'The body is not valid JSON.' };
  const input = jsonInput(json.value);
  return input === undefined ? { kind: 'problem', code: 'invalid_request', detail: 'Expected {prompt: string, images: [{data}|{url}, …]}' } : { kind: 'ok', input };
}

function jsonInput(value: unknown): ScoreInput | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { prompt, images } = value as { prompt?: unknown; images?: unknown };
  if (typeof prompt !== 'string' || !Array.isArray(images) || images.length === 0) return undefined;
  const out: ScoreInput['images'] = [];
  for (const im of images as unknown[]) {
    const { data, url } = (typeof im === 'object' && im !== null ? im : {}) as { data?: unknown; url?: unknown };
    if (typeof data === 'string' && url === undefined) out.push({ bytes: decodeData(data) });
    else if (typeof url === 'string' && data === undefined) out.push({ url });
    else return undefined;
  }
  return { prompt, images: out };
}

async function parseMultipart(contentType: string, body: Buffer): Promise<ParsedScore> {
  let form: FormData;
  try {
    // Node's own fetch implementation parses multipart for us.
    form = await new Response(body, { headers: { 'content-type': contentType } }).formData();
  } catch (err) {
    return { kind: 'problem', code: 'invalid_multipart', detail: `the multipart/form-data body cannot be parsed: ${String(err)}` };
  }
  let prompt: string | undefined;
  const images: ScoreInput['images'] = [];
  // Typed by hand: this file is also checked against the Workers types, whose FormData differs from Node's.
  const fields = form.entries() as unknown as Iterable<[string, string | Blob]>;
  for (const [name, value] of fields) {
    if (name === 'prompt' && typeof value === 'string') prompt = value;
    else if (typeof value !== 'string') images.push({ bytes: Buffer.from(await value.arrayBuffer()) });
    else return { kind: 'problem', code: 'invalid_request', detail: `field "${name}" must be an image file` };
  }
  if (prompt === undefined || images.length === 0) return { kind: 'problem', code: 'invalid_multipart', detail: 'a "prompt" field and at least one image file are required' };
  return { kind: 'ok', input: { prompt, images } };
}

/**
 * "Corrupt" images are marked by the ASCII text CORRUPT at the start of their
 * bytes, or right after a format signature (so a test image can still sniff
 * as PNG at the edge and only fail at the origin's "decode"): within the first 16 bytes.
 */
export function isScriptedCorrupt(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.subarray(0, 16)).toString('latin1').includes('CORRUPT');
}

/** The deterministic stand-in for the model: same (prompt, bytes) → same reward, on every origin. */
export function scriptedReward(prompt: string, bytes: Uint8Array): number {
  const digest = createHash('sha256').update(Buffer.from(prompt, 'utf8')).update(Buffer.from([0])).update(bytes).digest();
  return (digest.readUInt32BE(0) / 2 ** 32) * 4 - 2;
}

function decodeData(data: string): Buffer {
  // Standard or URL-safe base64, optionally a data: URL (Node's decoder takes both alphabets).
  const comma = data.startsWith('data:') ? data.indexOf(',') : -1;
  return Buffer.from(comma >= 0 ? data.slice(comma + 1) : data, 'base64');
}

interface ScoreItemError {
  index: number;
  code: string;
  message: string;
  status: number;
}

function scoreRoute(origin: Origin, res: http.ServerResponse, parsed: ParsedScore, model: string): void {
  if (parsed.kind === 'problem') return send(res, origin, 400, problemBody(parsed.code, parsed.detail));
  const shape = parsed.input;

  const rewards: (number | null)[] = [];
  const errors: ScoreItemError[] = [];
  shape.images.forEach((image, index) => {
    if (!('bytes' in image)) {
      // Like a GPU service with URL fetching off: the edge resolves URLs itself.
      errors.push({ index, code: 'url_forbidden', message: 'URL images are off on this origin', status: 422 });
      rewards.push(null);
      return;
    }
    const { bytes } = image;
    if (isScriptedCorrupt(bytes)) {
      errors.push({ index, code: 'image_decode_failed', message: 'scripted: corrupt image', status: 422 });
      rewards.push(null);
      return;
    }
    rewards.push(scriptedReward(shape.prompt, bytes));
  });

  if (errors.length === shape.images.length) {
    const allDecode = errors.every((e) => e.code === 'image_decode_failed');
    const code = allDecode ? 'image_decode_failed' : (errors[0]?.code ?? 'internal');
    return send(res, origin, 422, problemBody(code, 'No image could be scored', { status: 422, errors }));
  }

  // Rank among the scored images only; a failed image has no place.
  const scored = rewards.flatMap((r, i) => (r === null ? [] : [{ r, i }]));
  const places = rankRewards(scored.map((x) => x.r));
  const ranking: (number | null)[] = rewards.map(() => null);
  scored.forEach((x, k) => {
    ranking[x.i] = places[k] ?? null;
  });

  const body: Record<string, unknown> = {
    model,
    rewards,
    ranking,
    cached: rewards.map(() => false),
    timings: { queue_ms: 0, preprocess_ms: 0, inference_ms: 0, total_ms: 0 },
  };
  if (errors.length > 0) body.errors = errors;
  send(res, origin, 200, body);
}

function problemBody(code: string, detail: string, extra: { status?: number; errors?: ScoreItemError[] } = {}): ReturnType<typeof apiProblem> {
  return apiProblem(code, detail, extra);
}

function header(req: http.IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
}

function send(res: http.ServerResponse, origin: Origin, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const isProblem = typeof body === 'object' && body !== null && 'code' in body && status >= 400;
  res.writeHead(status, {
    'content-type': isProblem ? 'application/problem+json' : 'application/json',
    'x-origin-index': String(origin.index),
    ...headers,
  });
  res.end(JSON.stringify(body));
}

// ---- the control server -------------------------------------------------------

async function handleControl(origins: Origin[], req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const body = await readBody(req);
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/log' && req.method === 'GET') return sendJson(res, 200, { origins: origins.map((o) => o.log) });
  if (path === '/reset' && req.method === 'POST') {
    for (const o of origins) {
      o.behaviour = okBehaviour();
      o.log = [];
      dropHeld(o);
    }
    return sendJson(res, 200, { ok: true });
  }
  if (path === '/mode' && req.method === 'POST') {
    const parsed = parseJson(body);
    const v = (parsed.ok ? parsed.value : null) as { origin?: unknown; mode?: unknown; delayMs?: unknown; modelId?: unknown } | null;
    const target = typeof v?.origin === 'number' ? origins[v.origin] : undefined;
    if (v === null || target === undefined) return sendJson(res, 400, { error: `"origin" must be 0…${origins.length - 1}` });
    if (typeof v.mode !== 'string' || !(MODES as readonly string[]).includes(v.mode)) {
      return sendJson(res, 400, { error: `"mode" must be one of ${MODES.join(', ')}` });
    }
    if (v.delayMs !== undefined && (typeof v.delayMs !== 'number' || v.delayMs < 0)) return sendJson(res, 400, { error: '"delayMs" must be a number ≥ 0' });
    if (v.modelId !== undefined && typeof v.modelId !== 'string') return sendJson(res, 400, { error: '"modelId" must be a string' });
    // A mode change releases what the previous mode held (a hung request would otherwise linger).
    if (target.behaviour.mode === 'hang') dropHeld(target);
    target.behaviour = {
      mode: v.mode as Mode,
      delayMs: typeof v.delayMs === 'number' ? v.delayMs : 0,
      modelId: typeof v.modelId === 'string' ? v.modelId : DEFAULT_MODEL,
    };
    return sendJson(res, 200, { ok: true, origin: target.index, ...target.behaviour });
  }
  sendJson(res, 404, { error: `no control route ${req.method ?? 'GET'} ${path ?? '/'}` });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
