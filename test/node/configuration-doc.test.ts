// docs/configuration.md is the configuration reference: every setting, with its
// default. This suite keeps it honest by reading the settings out of the code, so a
// new one cannot land undocumented:
//   - every IMAGEREWARD_* / HF_* name in the Node, native, script, bench and client
//     sources (minus a short, checked list of code identifiers that only look like
//     settings), and every other variable those sources read from the environment;
//   - every CMake cache option of native/CMakeLists.txt;
//   - every flag in every `imagereward <command> --help` text (in that command's section);
//   - every member of the edge's Env interface (edge/env.ts) and every wrangler.toml
//     [vars] entry, with its wrangler.toml default on the same line;
//   - every request limit (DEFAULT_LIMITS) and job limit (JOB_LIMITS), with its value.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../contracts/api/limits.js';
import { JOB_LIMITS } from '../../contracts/api/jobs.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DOC_PATH = join(ROOT, 'docs', 'configuration.md');
const doc = readFileSync(DOC_PATH, 'utf8');

// Where settings are read. Build outputs and dependencies are skipped.
const SCAN_DIRS = ['gpu-service', 'native', 'scripts', 'bench', 'bin', 'client'];
const SKIP_DIRS = new Set(['node_modules', 'build', 'build-gpu', 'dist', 'out']);
const SOURCE_EXT = /\.(ts|js|mjs|cjs|cc|cu|cuh|h|hpp|sh|py|cmake)$|CMakeLists\.txt$/;

/** Names that look like settings but are code identifiers; each must never be read from the environment. */
const NOT_SETTINGS: Record<string, string> = {
  IMAGEREWARD_CONFIG: 'TS constant: ImageReward-v1.0 architecture (gpu-service/model/architecture.ts)',
  IMAGEREWARD_REPO: 'TS constant: the Hub repository id (gpu-service/model/fetch.ts)',
  IMAGEREWARD_FILES: 'TS constant: the files fetch-model downloads',
  IMAGEREWARD_V1_SHA256: 'TS constant: sha256 of the released checkpoint',
  IMAGEREWARD_VERSION: 'CMake variable / compile definition: the package version',
  IMAGEREWARD_COMPILER: 'compile definition: the compiler id reported by buildInfo()',
  IMAGEREWARD_ENGINE_SOURCES: 'CMake variable: the engine source list',
  IMAGEREWARD_WITH_CUDA: 'compile definition computed by CMake (reported by `imagereward info`)',
  IMAGEREWARD_WITH_JPEG: 'compile definition computed by CMake',
  IMAGEREWARD_WITH_PNG: 'compile definition computed by CMake',
  IMAGEREWARD_WITH_WEBP: 'compile definition computed by CMake',
};

function sourceFiles(dir: string, out: string[] = []): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out; // a scanned folder that does not exist (yet)
  }
  for (const name of names) {
    if (SKIP_DIRS.has(name) || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sourceFiles(path, out);
    else if (SOURCE_EXT.test(name)) out.push(path);
  }
  return out;
}

const files = SCAN_DIRS.flatMap((d) => sourceFiles(join(ROOT, d)));
const sources = new Map(files.map((f) => [relative(ROOT, f), readFileSync(f, 'utf8')]));

/** name → files it appears in. */
function collect(pattern: RegExp): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  for (const [file, text] of sources) {
    for (const m of text.matchAll(pattern)) {
      const name = m[1]!;
      if (!found.has(name)) found.set(name, new Set());
      found.get(name)!.add(file);
    }
  }
  return found;
}

const prefixed = collect(/\b((?:IMAGEREWARD|HF)_[A-Z0-9_]*[A-Z0-9])\b/g);
// Reads from the environment: process.env.X, process.env['X'], <something>env.X (a
// NodeJS.ProcessEnv passed around), getenv("X"), CMake's ENV X / $ENV{X}.
const envReads = collect(/(?:\benv\.|process\.env\[['"]|getenv\(\s*"|\$ENV\{|\bENV\s+)([A-Z][A-Z0-9_]*[A-Z0-9])\b/g);
// Shell scripts (native/scripts/gpu-check.sh …): ${X:-default} and ${X:=default}.
for (const [name, where] of collect(/\$\{([A-Z][A-Z0-9_]*[A-Z0-9]):[-=]/g)) {
  if (!envReads.has(name)) envReads.set(name, new Set());
  for (const f of where) envReads.get(name)!.add(f);
}
const cmakeText = readFileSync(join(ROOT, 'native', 'CMakeLists.txt'), 'utf8');
const cmakeOptions = [
  ...[...cmakeText.matchAll(/^\s*option\(\s*([A-Z][A-Z0-9_]+)/gm)].map((m) => m[1]!),
  ...[...cmakeText.matchAll(/^\s*set\(\s*([A-Z][A-Z0-9_]+)\s+"[^"]*"\s+CACHE\b/gm)].map((m) => m[1]!),
  ...[...cmakeText.matchAll(/^\s*find_path\(\s*(IMAGEREWARD_[A-Z0-9_]+)/gm)].map((m) => m[1]!),
];

const mentioned = (name: string) => doc.includes(`\`${name}\``);
const where = (m: Map<string, Set<string>>, name: string) => [...(m.get(name) ?? [])].join(', ');

describe('docs/configuration.md', () => {
  it('scans the sources (sanity: the scan finds the settings it must)', () => {
    expect(files.length).toBeGreaterThan(50);
    for (const n of ['IMAGEREWARD_HOME', 'IMAGEREWARD_CUDA', 'HF_ENDPOINT', 'IMAGEREWARD_CUBLASLT']) expect(prefixed.has(n), n).toBe(true);
    for (const n of ['IMAGEREWARD_NATIVE', 'IMAGEREWARD_NATIVE_SIMD', 'HF_TOKEN', 'IMAGEREWARD_SKIP_NATIVE']) expect(envReads.has(n), n).toBe(true);
    expect(cmakeOptions).toEqual(expect.arrayContaining(['IMAGEREWARD_ADDON', 'IMAGEREWARD_CUDA', 'IMAGEREWARD_CUDA_ARCHS', 'IMAGEREWARD_DECODERS']));
  });

  it('the not-a-setting list holds only names that are never read from the environment', () => {
    for (const name of Object.keys(NOT_SETTINGS)) {
      expect(envReads.has(name), `${name} is read from the environment in ${where(envReads, name)}: document it instead`).toBe(false);
      expect(cmakeOptions, `${name} is a CMake cache option: document it instead`).not.toContain(name);
    }
  });

  it('documents every IMAGEREWARD_* and HF_* name in the sources', () => {
    const missing = [...prefixed.keys()].filter((n) => !(n in NOT_SETTINGS) && !mentioned(n));
    expect(missing.map((n) => `${n} (in ${where(prefixed, n)})`), 'add these to docs/configuration.md (or, for a code identifier, to NOT_SETTINGS here)').toEqual([]);
  });

  it('documents every environment variable the sources read', () => {
    const missing = [...envReads.keys()].filter((n) => !(n in NOT_SETTINGS) && !mentioned(n));
    expect(missing.map((n) => `${n} (in ${where(envReads, n)})`), 'add these to docs/configuration.md').toEqual([]);
  });

  it('documents every CMake cache option of native/CMakeLists.txt', () => {
    expect(cmakeOptions.filter((n) => !mentioned(n)), 'add these to docs/configuration.md').toEqual([]);
  });

  // Sections are "### `imagereward <command>`"; each command's flags must be in its own.
  const cliDir = join(ROOT, 'gpu-service', 'cli');
  const commands = readdirSync(cliDir)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => ({ name: f.replace(/\.ts$/, ''), text: readFileSync(join(cliDir, f), 'utf8') }))
    .map(({ name, text }) => ({ name, help: /const HELP = `([\s\S]*?)`;/.exec(text)?.[1] }))
    .filter((c): c is { name: string; help: string } => c.help !== undefined);

  function section(command: string): string | undefined {
    const parts = doc.split(/^### /m);
    return parts.find((p) => p.split('\n')[0]!.includes(`\`imagereward ${command}\``));
  }

  it('finds the usage text of the commands (sanity)', () => {
    expect(commands.map((c) => c.name)).toEqual(expect.arrayContaining(['serve', 'score', 'convert', 'fetch-model', 'keys', 'tokenize', 'preprocess', 'verify-published', 'demo-model']));
    const serve = commands.find((c) => c.name === 'serve')!.help;
    for (const f of ['--max-batch', '--drain-ms', '--api-keys-file', '--trust-tenant-header']) expect(serve).toContain(f);
  });

  for (const { name, help } of commands) {
    it(`documents every flag of imagereward ${name} in its section`, () => {
      const text = section(name);
      expect(text, `docs/configuration.md has no "### \`imagereward ${name}\`" section`).toBeDefined();
      const flags = [...new Set([...help.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!))].filter((f) => f !== '--help');
      expect(flags.filter((f) => !text!.includes(`\`${f}`)), `flags of imagereward ${name} missing from its section`).toEqual([]);
    });
  }

  it('documents every edge setting and binding (edge/env.ts Env)', () => {
    const envTs = readFileSync(join(ROOT, 'edge', 'env.ts'), 'utf8');
    const body = /export interface Env \{([\s\S]*?)\n\}/.exec(envTs)?.[1];
    expect(body).toBeDefined();
    const names = [...body!.matchAll(/^\s*([A-Z][A-Z0-9_]*)\??:/gm)].map((m) => m[1]!);
    expect(names).toEqual(expect.arrayContaining(['MODEL_ID', 'ORIGINS', 'ORIGIN_SECRET', 'API_KEYS', 'JOB_QUEUE']));
    expect(names.filter((n) => !mentioned(n)), 'add these to docs/configuration.md').toEqual([]);
  });

  it("states wrangler.toml's default of every [vars] entry", () => {
    const toml = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');
    const afterVars = toml.split(/^\[vars\]$/m)[1] ?? '';
    const vars = afterVars.split(/^\[/m)[0]!;
    const entries = [...vars.matchAll(/^([A-Z][A-Z0-9_]*)\s*=\s*"([^"]*)"/gm)].map((m) => [m[1]!, m[2]!] as const);
    expect(entries.length).toBeGreaterThan(5);
    for (const [name, value] of entries) {
      const line = doc.split('\n').find((l) => l.startsWith(`| \`${name}\``));
      expect(line, `no table row for ${name}`).toBeDefined();
      if (value !== '') expect(line, `${name}: wrangler.toml says "${value}"`).toContain(`\`${value}\``);
    }
  });

  it('states every request limit and job limit with its value', () => {
    const rows = doc.split('\n');
    for (const [key, value] of [...Object.entries(DEFAULT_LIMITS), ...Object.entries(JOB_LIMITS)]) {
      const line = rows.find((l) => l.startsWith(`| \`${key}\``));
      expect(line, `no table row for ${key}`).toBeDefined();
      expect(line, `${key} = ${value}`).toContain(`\`${value}\``);
    }
  });
});
