// PLACEHOLDER (cache/fetch helper replaces): loopback image server for the URL-fetch tests.
import http from 'node:http';
export async function startImageServer(): Promise<{ url: string; close(): Promise<void> }> {
  const s = http.createServer((_req, res) => { res.writeHead(404); res.end(); });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(s.address() as { port: number }).port}`, close: () => new Promise((r) => s.close(() => r())) };
}
