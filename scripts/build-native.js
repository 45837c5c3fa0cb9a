#!/usr/bin/env node
// Builds the native addon (native/) with cmake-js at install time.
// The CPU part (Pillow-exact preprocessing) always builds; CUDA parts are
// added by later issues when a toolkit is found. A failed build is reported
// loudly but does not fail `npm install`: the TypeScript reference
// implementation takes over and `imagereward info` says why.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const force = process.argv.includes('--force');
const strict = force || process.env.IMAGEREWARD_NATIVE_REQUIRED === '1';
const built = join(root, 'native', 'build', 'Release', 'imagereward_native.node');

if (process.env.IMAGEREWARD_SKIP_NATIVE === '1') {
  console.log('[native] IMAGEREWARD_SKIP_NATIVE=1: not building the addon');
  process.exit(0);
}
if (!existsSync(join(root, 'native', 'CMakeLists.txt'))) {
  console.log('[native] no native/CMakeLists.txt yet: nothing to build');
  process.exit(0);
}
if (existsSync(built) && !force) {
  console.log(`[native] ${built} exists (npm run build:native rebuilds)`);
  process.exit(0);
}
const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--directory', join(root, 'native'), '--out', join(root, 'native', 'build')], {
  stdio: 'inherit',
  env: process.env,
});
if (r.status !== 0) {
  const msg = `[native] addon build failed (exit ${r.status}); the TypeScript reference path will be used`;
  if (strict) {
    console.error(msg);
    process.exit(r.status ?? 1);
  }
  console.warn(msg);
}
