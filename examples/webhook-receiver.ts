// A minimal job webhook receiver (docs/webhooks.md): verifies each request
// with verifyWebhook, prints the verified event and answers 204; a request
// that does not verify gets 400. Outside this repository, import from
// 'imagereward-serve/webhooks' instead of the relative path.
//
// Run it from the repository root:
//
//   WEBHOOK_SECRET=whsec_… PORT=8790 node --import tsx examples/webhook-receiver.ts
//
// then create a job with {"webhook": {"url": "http://127.0.0.1:8790/hook",
// "secret": "<the same secret>"}} against an edge running with
// WEBHOOK_ALLOW_INSECURE_LOOPBACK=on (`wrangler dev`). Several secrets,
// comma-separated, are all accepted (rotation).
import http from 'node:http';
import { verifyWebhook, WebhookVerificationError } from '../contracts/webhooks.js';

const secrets = (process.env.WEBHOOK_SECRET ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '');
if (secrets.length === 0) {
  console.error('set WEBHOOK_SECRET to the job webhook secret ("whsec_…")');
  process.exit(1);
}
const port = Number(process.env.PORT ?? 8790);
/** Bodies larger than this are refused before verifying (a whole 1000-item job is well under it). */
const MAX_BODY_BYTES = 32 * 1024 * 1024;
// webhook-ids already handled: a delivery may arrive twice. A real receiver
// keeps these in its database, next to the work the event triggered.
const seen = new Set<string>();

function readBody(req: http.IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        resolve(null);
        req.destroy();
      } else chunks.push(c);
    });
    // The raw text, exactly as sent: the signature covers these bytes.
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const server = http.createServer((req, res) => {
  void (async () => {
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    const body = await readBody(req);
    if (body === null) {
      res.writeHead(413).end();
      return;
    }
    let id: string;
    try {
      ({ id } = await verifyWebhook(body, req.headers, secrets));
    } catch (err) {
      if (!(err instanceof WebhookVerificationError)) throw err;
      console.warn(`refused ${req.url ?? ''}: ${err.reason} (${err.message})`);
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`${err.reason}\n`);
      return;
    }
    if (seen.has(id)) {
      console.log(`${id}: already handled`);
    } else {
      seen.add(id);
      const event = JSON.parse(body) as { type: string; timestamp: string; data: { id: string; status: string; progress?: unknown } };
      console.log(`${id}: ${event.type} at ${event.timestamp} — job ${event.data.id} is ${event.data.status}`, event.data.progress ?? '');
    }
    // Answer fast; long work belongs in a queue of your own.
    res.writeHead(204).end();
  })().catch((err: unknown) => {
    console.error(err);
    if (!res.headersSent) res.writeHead(500).end();
  });
});

server.listen(port, () => console.log(`webhook receiver on http://127.0.0.1:${port}/ (any path)`));
