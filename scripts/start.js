#!/usr/bin/env node
// `npm start`: the whole system locally — the GPU service on the best backend and
// the edge under `wrangler dev`, wired together (`imagereward stack`; see
// gpu-service/stack/run-stack.ts). Arguments after `npm start --` are passed on
// (e.g. `npm start -- --demo`). This shim only checks that the build exists, then
// runs the compiled CLI in this process, so Ctrl-C reaches the stack directly.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'gpu-service', 'cli', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write(
    `npm start: ${entry} is missing. Run \`npm install\` first (it compiles the TypeScript), or \`npm run build\` after changing the sources.\n`,
  );
  process.exit(1);
}
if (!existsSync(join(root, 'node_modules', 'wrangler'))) {
  process.stderr.write('npm start: wrangler is not installed; run `npm install` (it installs the dev dependencies too).\n');
  process.exit(1);
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(['stack', ...process.argv.slice(2)]);
