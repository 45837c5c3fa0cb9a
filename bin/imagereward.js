#!/usr/bin/env node
// The `imagereward` CLI. The TypeScript sources compile into dist/ (npm
// install runs `prepare`, or `npm run build`); this shim only finds them.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const entry = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'gpu-service', 'cli', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write(`imagereward: ${entry} is missing; run \`npm run build\` first\n`);
  process.exit(70);
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv.slice(2));
