// Runs in Node (from the workers project's global setup): a loopback HTTP
// server that the URL-fetch tests (test/workers/fetch-image.test.ts) point the
// edge's fetchImage at. Each route plays one situation a real image host can
// put us in — a good image, a page that is not one, bodies over the cap with
// and without Content-Length, a host that stalls, redirect chains, errors.
//
//   /png                 a real 2×2 PNG, built here (zlib + CRC-32)
//   /jpeg                a real JPEG (test/fixtures/preprocess/images)
//   /text?bytes=N        an HTML page (padded to N bytes)
//   /big?bytes=N         Content-Length N (default 64 KiB), PNG signature + zeros
//   /big-chunked?bytes=N&id=X  no Content-Length, streams N bytes (default 64 MiB)
//                        in 16 KiB chunks; /probe?id=X says how far it got
//   /slow                200 + headers + 8 PNG bytes, then nothing until the client goes
//   /stall               no answer at all until the client goes
//   /redirect?n=K&to=U&status=S   K redirects (S, default 302) ending at U (default /png)
//   /no-location         a 302 without Location
//   /status/CODE         that status, short text body
//   /empty               200 image/png with zero bytes
import { readFileSync } from 'node:fs';
import http, { type ServerResponse } from 'node:http';
import { deflateSync } from 'node:zlib';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = (CRC_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A 2×2 8-bit RGB PNG: red, green / blue, white. */
export function tinyPng(): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(2, 0);
  ihdr.writeUInt32BE(2, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // bit depth 8, colour type RGB, deflate, filter 0, no interlace
  // Each scanline starts with its filter type (0: none).
  const raw = Buffer.from([0, 255, 0, 0, 0, 255, 0, 0, 0, 0, 255, 255, 255, 255]);
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND', Buffer.alloc(0))]);
}

const PNG = tinyPng();
const JPEG = readFileSync(new URL('../../fixtures/preprocess/images/l_230x250.jpg', import.meta.url));

interface StreamProbe {
  sent: number;
  finished: boolean;
  closedEarly: boolean;
}

export async function startImageServer(): Promise<{ url: string; close(): Promise<void> }> {
  const probes = new Map<string, StreamProbe>();

  const send = (res: ServerResponse, status: number, type: string, body: Buffer | string): void => {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    res.writeHead(status, { 'content-type': type, 'content-length': String(bytes.length), 'cache-control': 'no-store' });
    res.end(bytes);
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://images.test');
    const num = (name: string, fallback: number): number => {
      const v = Number(url.searchParams.get(name) ?? fallback);
      return Number.isSafeInteger(v) && v >= 0 ? v : fallback;
    };
    const path = url.pathname;

    if (path === '/png') return send(res, 200, 'image/png', PNG);
    if (path === '/jpeg') return send(res, 200, 'image/jpeg', JPEG);
    if (path === '/text') {
      const page = '<!doctype html><html><head><title>not an image</title></head><body>hello</body></html>';
      return send(res, 200, 'text/html; charset=utf-8', page.padEnd(num('bytes', page.length), ' '));
    }
    if (path === '/big') {
      const body = Buffer.alloc(num('bytes', 64 * 1024));
      PNG_SIGNATURE.copy(body);
      return send(res, 200, 'image/png', body);
    }
    if (path === '/big-chunked') {
      const total = num('bytes', 64 * 1024 * 1024);
      const probe: StreamProbe = { sent: 0, finished: false, closedEarly: false };
      probes.set(url.searchParams.get('id') ?? '', probe);
      res.writeHead(200, { 'content-type': 'image/png', 'cache-control': 'no-store' }); // chunked: no Content-Length
      const chunk = Buffer.alloc(16 * 1024);
      PNG_SIGNATURE.copy(chunk);
      res.on('close', () => {
        if (!probe.finished) probe.closedEarly = true;
      });
      const pump = (): void => {
        while (probe.sent < total && !res.destroyed) {
          const piece = chunk.subarray(0, Math.min(chunk.length, total - probe.sent));
          probe.sent += piece.length;
          if (!res.write(piece)) return void res.once('drain', pump);
        }
        if (!res.destroyed) {
          probe.finished = true;
          res.end();
        }
      };
      return pump();
    }
    if (path === '/probe') return send(res, 200, 'application/json', JSON.stringify(probes.get(url.searchParams.get('id') ?? '') ?? null));
    if (path === '/slow') {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(PNG.length) });
      res.write(PNG.subarray(0, 8));
      return; // the rest never comes
    }
    if (path === '/stall') return; // not even headers
    if (path === '/redirect') {
      const n = num('n', 1);
      const status = num('status', 302);
      const to = url.searchParams.get('to') ?? '/png';
      const next = new URLSearchParams(url.searchParams);
      next.set('n', String(n - 1));
      res.writeHead(status, { location: n > 1 ? `/redirect?${next.toString()}` : to, 'content-length': '0' });
      return res.end();
    }
    if (path === '/no-location') {
      res.writeHead(302, { 'content-length': '0' });
      return res.end();
    }
    const status = /^\/status\/(\d{3})$/.exec(path);
    if (status) return send(res, Number(status[1]), 'text/plain', `status ${status[1]}`);
    if (path === '/empty') return send(res, 200, 'image/png', Buffer.alloc(0));
    return send(res, 404, 'text/plain', 'no such route');
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        // /slow and /stall hold connections open: drop them, or close() waits forever.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
