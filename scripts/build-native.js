#!/usr/bin/env node
// Builds the native addon (native/) with cmake-js at install time.
//
//   node scripts/build-native.js           build unless native/build/Release/imagereward_native.node exists
//   node scripts/build-native.js --force   (npm run build:native) always (re)build, fail loudly
//
// The CPU part (Pillow-exact preprocessing) always builds; the CUDA engine is
// added when a CUDA compiler is found (IMAGEREWARD_CUDA=AUTO, the default; a
// failed CUDA build then falls back to a CPU-only addon, loudly). A failed build is reported
// loudly but does not fail `npm install`: the TypeScript reference
// implementation takes over and `imagereward info` says why. With --force or
// IMAGEREWARD_NATIVE_REQUIRED=1 a failed build is an error (exit status != 0).
//
// Headers: native/package.json declares `binary.napi_versions`, so cmake-js
// builds in Node-API mode against node_modules/node-api-headers and
// node_modules/node-addon-api. cmake-js then never downloads Node.js headers;
// the only network this needs is npm's (to install those two packages).
// IMAGEREWARD_SKIP_NATIVE=1 skips the build; IMAGEREWARD_CUDA=OFF|AUTO|ON (default
// AUTO; ON fails without CUDA — CI uses it), IMAGEREWARD_CUDA_ARCHS (e.g. "80;90", the
// default) and IMAGEREWARD_DECODERS=ON|OFF (default ON: the
// JPEG/PNG/WebP decoders whose system libraries are found) are passed to CMake.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const force = process.argv.includes('--force');
const strict = force || process.env.IMAGEREWARD_NATIVE_REQUIRED === '1';
const nativeDir = join(root, 'native');
const buildDir = join(nativeDir, 'build');
const built = join(buildDir, 'Release', 'imagereward_native.node');

function fail(msg, status = 1) {
  if (strict) {
    console.error(`[native] ${msg}`);
    process.exit(status);
  }
  console.warn(`[native] ${msg}; the TypeScript reference path will be used`);
  process.exit(0);
}

if (process.env.IMAGEREWARD_SKIP_NATIVE === '1') {
  console.log('[native] IMAGEREWARD_SKIP_NATIVE=1: not building the addon');
  process.exit(0);
}
if (!existsSync(join(nativeDir, 'CMakeLists.txt'))) {
  console.log('[native] no native/CMakeLists.txt yet: nothing to build');
  process.exit(0);
}
if (existsSync(built) && !force) {
  console.log(`[native] ${built} exists (npm run build:native rebuilds)`);
  process.exit(0);
}
if (!existsSync(join(nativeDir, 'package.json'))) {
  // Without it cmake-js would not be in Node-API mode and would try to download Node.js headers.
  fail('native/package.json (binary.napi_versions) is missing');
}

const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
if (!existsSync(cmakeJs)) fail(`cmake-js not installed (${cmakeJs})`);
const which = spawnSync('cmake', ['--version'], { encoding: 'utf8' });
if (which.status !== 0) fail('cmake not found on PATH (apt-get install cmake, or see https://cmake.org)');

// configure (re-runs CMake on an existing build dir, so option changes apply and
// object files stay), then build.
const common = ['--directory', nativeDir, '--out', buildDir];
// IMAGEREWARD_CUDA is passed on every configure (default AUTO) so a value left in
// CMakeCache.txt by an earlier run never sticks.
const cuda = (process.env.IMAGEREWARD_CUDA ?? 'AUTO').toUpperCase();
if (!['OFF', 'AUTO', 'ON'].includes(cuda)) fail(`IMAGEREWARD_CUDA must be OFF, AUTO or ON (got ${cuda})`, 2);

function build(cudaMode) {
  const options = [`--CDIMAGEREWARD_CUDA=${cudaMode}`, `--CDIMAGEREWARD_DECODERS=${process.env.IMAGEREWARD_DECODERS ?? 'ON'}`];
  // The GPU architectures to compile for (default in CMakeLists.txt: "80;90"), e.g. "90" for H100 only.
  if (process.env.IMAGEREWARD_CUDA_ARCHS) options.push(`--CDIMAGEREWARD_CUDA_ARCHS=${process.env.IMAGEREWARD_CUDA_ARCHS}`);
  // The engine's CPU emulation (tests): OFF in production images (deploy/gpu/Dockerfile).
  if (process.env.IMAGEREWARD_ENGINE_EMU) options.push(`--CDIMAGEREWARD_ENGINE_EMU=${process.env.IMAGEREWARD_ENGINE_EMU}`);
  if (process.env.IMAGEREWARD_KERNEL_SIM) options.push(`--CDIMAGEREWARD_KERNEL_SIM=${process.env.IMAGEREWARD_KERNEL_SIM}`);
  console.log(`[native] building ${built} (IMAGEREWARD_CUDA=${cudaMode})`);
  for (const args of [
    ['configure', ...common, ...options],
    ['build', ...common, '--parallel', String(availableParallelism())],
  ]) {
    const r = spawnSync(process.execPath, [cmakeJs, ...args], { stdio: 'inherit', env: process.env, cwd: root });
    if (r.status !== 0) return `cmake-js ${args[0]} exited with ${r.status ?? r.signal}`;
  }
  return null;
}

let error = build(cuda);
if (error && cuda === 'AUTO') {
  // The CPU part (preprocessing, decoders) must not be lost to a CUDA toolchain problem.
  console.warn(`[native] the build with the CUDA engine failed (${error}); building the CPU-only addon (IMAGEREWARD_CUDA=ON makes this an error)`);
  error = build('OFF');
}
if (error) fail(`addon build failed: ${error}`, 1);
if (!existsSync(built)) fail(`build finished but ${built} is missing`);
console.log(`[native] built ${built}`);
