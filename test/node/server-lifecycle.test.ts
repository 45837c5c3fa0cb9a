// The HTTP server's life cycle over a real socket (listen.ts) with a fake
// scoring service whose timing the tests control: slow clients, clients that
// go away, bodies refused from their Content-Length, graceful shutdown.
// The same paths with the real service: server.test.ts.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogEntry } from '../../gpu-service/server/app.js';
import { listen, type ServerHandle } from '../../gpu-service/server/listen.js';
import { fakeScoreService, type FakeService } from '../support/fake-score-service.js';

const TIMEOUT_MS = 1_000;
let svc: FakeService;
let server: ServerHandle<FakeService>;
const logs: LogEntry[] = [];
const printed: string[] = [];

beforeAll(async () => {
  svc = fakeScoreService();
  server = await listen(svc, {
    port: 0,
    httpLimits: { requestTimeoutMs: TIMEOUT_MS, maxBodyBytes: 64 * 1024 },
    logger: (e) => logs.push(e),
    print: (l) => printed.push(l),
  });
});
afterAll(async () => {
  await server.close();
});

const scoreBody = (prompt: string) => JSON.stringify({ prompt, images: [{ data: Buffer.from('x'.repeat(50)).toString('base64') }] });

function rawRequest(port: number, head: string, body: string, end = true): Promise<{ status: number; text: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let data = '';
    sock.on('data', (d) => (data += d.toString('latin1')));
    sock.on('error', (err) => (data ? undefined : reject(err)));
    sock.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      resolve({ status: m ? Number(m[1]) : 0, text: data, ms: performance.now() - t0 });
    });
    sock.write(head + body);
    if (end) sock.end();
  });
}

describe('HTTP server life cycle (fake service)', () => {
  it('prints the ready line and one line per skipped backend', () => {
    expect(printed).toEqual([`imagereward serve: listening on ${server.url} (model fake-model, backend ort)`, 'imagereward serve: backend native not used: no GPU in the fake']);
  });

  it('refuses a body over the limit from its Content-Length (413) without reading it', async () => {
    const r = await rawRequest(server.port, `POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n`, '{"prompt":');
    expect(r.status).toBe(413);
    expect(r.text).toContain('application/problem+json');
    expect(r.text).toContain('"code":"payload_too_large"');
  });

  it('a chunked body over the limit is 413 too', async () => {
    const big = JSON.stringify({ prompt: 'p', images: [{ data: 'A'.repeat(100 * 1024) }] });
    const res = await fetch(`${server.url}/v1/score`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(big));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { code: string }).code).toBe('payload_too_large');
  });

  it('a client that stalls mid-body gets 408 request_timeout; others are served meanwhile', async () => {
    const slow = rawRequest(server.port, `POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`, '{"prompt":"p",', false);
    await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: scoreBody('p') })).status).toBe(200);
    const r = await slow;
    expect(r.status).toBe(408);
    expect(r.text).toContain('"code":"request_timeout"');
    expect(r.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(r.ms).toBeLessThan(TIMEOUT_MS + 2_000);
  });

  it('a client going away aborts its service call', async () => {
    const before = svc.aborted;
    const ctrl = new AbortController();
    const p = fetch(`${server.url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: scoreBody('SLOW'), signal: ctrl.signal });
    for (let i = 0; i < 100 && svc.calls.filter((c) => c.prompt === 'SLOW').length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    ctrl.abort();
    await expect(p).rejects.toThrow();
    for (let i = 0; i < 100 && svc.aborted === before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(svc.aborted).toBe(before + 1);
    await new Promise((r) => setTimeout(r, 20));
    expect(logs.at(-1)).toMatchObject({ path: '/v1/score', status: 499, code: 'canceled' });
  });

  it('close(): in-flight requests complete, then the port closes and the service is drained', async () => {
    const s2svc = fakeScoreService();
    s2svc.slowMs = 400;
    const s2 = await listen(s2svc, { port: 0, print: () => {}, logger: () => {} });
    const inflight = Array.from({ length: 4 }, () => fetch(`${s2.url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: scoreBody('SLOW') }));
    for (let i = 0; i < 100 && s2svc.calls.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
    expect(s2svc.calls).toHaveLength(4);
    const closed = s2.close();
    const answers = await Promise.all(inflight);
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    await closed;
    expect(s2svc.closed).toBe(true);
    await expect(fetch(`${s2.url}/healthz`)).rejects.toThrow();
  });

  it('close() while a request body is still uploading: that request completes too', async () => {
    const s3svc = fakeScoreService();
    const s3 = await listen(s3svc, { port: 0, print: () => {}, logger: () => {} });
    const body = scoreBody('p');
    const half = Math.floor(body.length / 2);
    const t0 = performance.now();
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const sock = connect(s3.port, '127.0.0.1');
      let data = '';
      sock.on('data', (d) => (data += d.toString('latin1')));
      sock.on('error', reject);
      sock.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0), text: data }));
      sock.write(`POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, half)}`);
      setTimeout(() => sock.write(body.slice(half)), 200);
    });
    await new Promise((r) => setTimeout(r, 50));
    const closed = s3.close();
    const r = await answer;
    expect(r.status).toBe(200);
    expect(r.text).toContain('"rewards":[0.05]');
    await closed;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    expect(s3svc.closed).toBe(true);
  });
});
