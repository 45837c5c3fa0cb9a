// Runs in Node (from the workers project's global setup): a loopback HTTP
// server that plays a job's webhook receiver. It records every webhook call
// exactly as it arrived (method, path, headers, raw body) so tests can verify
// signatures, and answers in the mode a test sets, to drive each outcome of
// the edge's sender (edge/jobs/webhook-sender.ts):
//
//   POST /__control {"mode": M, "seconds"?: N}   set how webhooks are answered:
//        ok           204
//        fail500      500 "receiver failed"
//        gone         410 "gone"
//        retry_after  503 + Retry-After: N (default 1)
//        hang         no answer at all until the client goes
//        redirect     307 to /redirected
//        huge         200 + a chunked body of 64 MiB (the sender reads 4 KiB)
//        stall_body   200 + headers + a few bytes, then nothing until the client goes
//   POST /__reset                                 mode ok, log emptied
//   GET  /__log                                   JSON: the recorded calls, oldest first
//   anything else                                 a webhook endpoint (recorded)
import http, { type IncomingMessage, type ServerResponse } from 'node:http';

export type ReceiverMode = 'ok' | 'fail500' | 'gone' | 'retry_after' | 'hang' | 'redirect' | 'huge' | 'stall_body';
const MODES: readonly ReceiverMode[] = ['ok', 'fail500', 'gone', 'retry_after', 'hang', 'redirect', 'huge', 'stall_body'];

export interface ReceivedWebhook {
  method: string;
  /** Path and query as requested. */
  path: string;
  /** Lowercase names; repeated headers joined with ", " (as Node does). */
  headers: Record<string, string>;
  /** The raw body, as UTF-8 text. */
  body: string;
  /** Receiver clock, ms since the epoch. */
  at: number;
  /** The mode it was answered in. */
  mode: ReceiverMode;
  /** 'huge' only: bytes of the answer written so far, and whether the client hung up before the end. */
  answer?: { sent: number; closedEarly: boolean };
}

const HUGE_BYTES = 64 * 1024 * 1024;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)), ...headers });
  res.end(body);
}

export async function startWebhookReceiver(): Promise<{ url: string; close(): Promise<void> }> {
  let mode: ReceiverMode = 'ok';
  let seconds = 1;
  let log: ReceivedWebhook[] = [];

  const server = http.createServer((req, res) => {
    void (async () => {
      const path = req.url ?? '/';
      const body = await readBody(req);
      if (path === '/__control' && req.method === 'POST') {
        const cmd = JSON.parse(body || '{}') as { mode?: string; seconds?: number };
        if (!MODES.includes(cmd.mode as ReceiverMode)) return send(res, 400, `unknown mode ${String(cmd.mode)}`);
        mode = cmd.mode as ReceiverMode;
        seconds = typeof cmd.seconds === 'number' ? cmd.seconds : 1;
        return send(res, 204, '');
      }
      if (path === '/__reset' && req.method === 'POST') {
        mode = 'ok';
        seconds = 1;
        log = [];
        return send(res, 204, '');
      }
      if (path === '/__log' && req.method === 'GET') {
        const json = JSON.stringify(log);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(json)) });
        return res.end(json);
      }

      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      const entry: ReceivedWebhook = { method: req.method ?? '', path, headers, body, at: Date.now(), mode };
      log.push(entry);

      switch (mode) {
        case 'ok':
          return send(res, 204, '');
        case 'fail500':
          return send(res, 500, 'receiver failed');
        case 'gone':
          return send(res, 410, 'gone');
        case 'retry_after':
          return send(res, 503, 'busy', { 'retry-after': String(seconds) });
        case 'hang':
          return; // closed by the client's timeout, or by close()
        case 'redirect':
          return send(res, 307, '', { location: '/redirected' });
        case 'stall_body':
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('received');
          return; // the rest never comes
        case 'huge': {
          res.writeHead(200, { 'content-type': 'text/plain' }); // chunked: no Content-Length
          const chunk = Buffer.alloc(64 * 1024, 'x');
          const answer = { sent: 0, closedEarly: false };
          entry.answer = answer;
          res.on('close', () => {
            if (answer.sent < HUGE_BYTES) answer.closedEarly = true;
          });
          const pump = (): void => {
            while (answer.sent < HUGE_BYTES && !res.destroyed) {
              answer.sent += chunk.length;
              if (!res.write(chunk)) return void res.once('drain', pump);
            }
            if (!res.destroyed) res.end();
          };
          return pump();
        }
      }
    })().catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, `receiver error: ${String(err)}`);
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        // 'hang' and 'stall_body' hold connections open: drop them, or close() waits forever.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
