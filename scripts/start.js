#!/usr/bin/env node
// `npm start`: runs the local stack. Today that is the edge worker under
// `wrangler dev` (health + tokenization); the GPU service and the wiring
// between them join when they exist (issues 5 and 8). Offline by design:
// wrangler's metrics and cf-fetch are off.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const wrangler = require.resolve('wrangler/bin/wrangler.js');
const port = process.env.EDGE_PORT ?? '8787';
const env = { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' };

console.log(`[start] edge: wrangler dev on http://127.0.0.1:${port}`);
console.log(`[start] try:  curl -s http://127.0.0.1:${port}/v1/tokenize -H 'content-type: application/json' -d '{"prompt":"a painting of an ocean"}'`);
const child = spawn(process.execPath, [wrangler, 'dev', '--ip', '127.0.0.1', '--port', port], { stdio: 'inherit', env });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code) => process.exit(code ?? 0));
