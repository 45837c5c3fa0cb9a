// `wrangler deploy --dry-run`: the edge bundles for Cloudflare (every binding in
// wrangler.toml valid, every import resolvable by wrangler's esbuild) and stays
// under the Workers free-plan size limit (3 MiB gzip-compressed), so a change
// that breaks the deploy cannot land. The size is printed for docs/benchmarks.md.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const out = mkdtempSync(join(tmpdir(), 'ir-edge-bundle-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('edge bundle', () => {
  it('bundles with wrangler deploy --dry-run under 3 MiB gzipped', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js'), 'deploy', '--dry-run', '--outdir', out], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1' },
      timeout: 120_000,
    });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/--dry-run: exiting now/);
    // Every binding the code relies on is declared (wrangler lists them in the dry run).
    for (const b of ['API_KEYS', 'RESULTS', 'ORIGIN_STATE', 'RATE_LIMIT_TRIAL', 'RATE_LIMIT_STANDARD', 'RATE_LIMIT_HIGH']) expect(r.stdout).toContain(b);
    const files = readdirSync(out).filter((f) => /\.(m?js|txt|wasm)$/.test(f));
    const raw = files.reduce((s, f) => s + statSync(join(out, f)).size, 0);
    const gz = files.reduce((s, f) => s + gzipSync(readFileSync(join(out, f))).length, 0);
    console.log(`edge bundle: ${files.join(', ')} — ${(raw / 1024).toFixed(0)} KiB, ${(gz / 1024).toFixed(0)} KiB gzip`);
    expect(raw).toBeGreaterThan(0);
    expect(gz).toBeLessThan(3 * 1024 * 1024);
  });
});
