// PLACEHOLDER (origins helper replaces): scripted GPU-service origins for the workers tests.
import http from 'node:http';
export async function startScriptedOrigins(n: number): Promise<{ urls: string[]; controlUrl: string; close(): Promise<void> }> {
  const servers: http.Server[] = [];
  const urls: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ status: 'ok', origin: i })); });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    servers.push(s);
    urls.push(`http://127.0.0.1:${(s.address() as { port: number }).port}`);
  }
  return { urls, controlUrl: urls[0]!, close: async () => { await Promise.all(servers.map((s) => new Promise((r) => s.close(r)))); } };
}
