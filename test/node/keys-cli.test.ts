// `imagereward keys` end to end: the CLI (in-process, through main()) against
// the edge under `wrangler dev` (workerd, local KV) with an ADMIN_SECRET — create
// a key, see it listed (never the key itself), use it on /v1/*, revoke it; and
// the CLI's exit codes for a wrong secret, an unreachable edge, usage errors.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../gpu-service/cli/main.js';
import type { Io } from '../../gpu-service/cli/io.js';
import { freePort, startWranglerDev, type WranglerDev } from '../support/wrangler-dev.js';

const ADMIN_SECRET = randomBytes(24).toString('base64url');

interface Run {
  code: number;
  out: string;
  err: string;
}

async function cli(args: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const io: Io = { stdout: (s) => (out += s), stderr: (s) => (err += s) };
  const code = await main(['keys', ...args], io);
  return { code, out, err };
}

interface Record {
  id: string;
  tenant: string;
  name: string;
  tier: string;
  created_at: string;
  revoked_at?: string;
}

let edge: WranglerDev | undefined;
/** `--edge <url> --admin-secret <secret>` */
let target: string[] = [];

beforeAll(async () => {
  edge = await startWranglerDev({ vars: { ADMIN_SECRET, AUTH: 'required' } });
  target = ['--edge', edge.url, '--admin-secret', ADMIN_SECRET];
}, 120_000);

afterAll(async () => {
  await edge?.stop();
});

describe('imagereward keys against wrangler dev', () => {
  let created: Record & { key: string };

  it('create prints the key once with a warning (table mode) and as JSON (--json)', async () => {
    const table = await cli(['create', '--tenant', 'acme', '--name', 'readable', '--tier', 'high', ...target]);
    expect(table.code, table.err).toBe(0);
    expect(table.out).toMatch(/Created key [0-9a-f]{16} for tenant "acme" \(name "readable", tier high\)/);
    expect(table.out).toMatch(/^ {2}irk_[A-Za-z0-9_-]{43}$/m);
    expect(table.out).toMatch(/cannot be shown again/);

    const json = await cli(['create', '--tenant', 'acme', '--name', 'ci', '--tier', 'trial', '--json', ...target]);
    expect(json.code, json.err).toBe(0);
    created = JSON.parse(json.out) as Record & { key: string };
    expect(created).toMatchObject({ tenant: 'acme', name: 'ci', tier: 'trial' });
    expect(created.key).toMatch(/^irk_[A-Za-z0-9_-]{43}$/);
    expect(created.id).toMatch(/^[0-9a-f]{16}$/);
    expect(json.err).toMatch(/only this once/);
  });

  it('list shows the key (never the key itself), as a table and as JSON, filtered by tenant', async () => {
    const other = await cli(['create', '--tenant', 'other-co', '--json', ...target]);
    expect(other.code, other.err).toBe(0);

    const table = await cli(['list', ...target]);
    expect(table.code, table.err).toBe(0);
    expect(table.out.split('\n')[0]).toMatch(/^ID\s+TENANT\s+NAME\s+TIER\s+CREATED$/);
    expect(table.out).toContain(created.id);
    expect(table.out).not.toContain(created.key);
    expect(table.out).not.toContain('irk_');

    const json = await cli(['list', '--tenant', 'acme', '--json', ...target]);
    expect(json.code, json.err).toBe(0);
    expect(json.out).not.toContain('irk_');
    const { keys } = JSON.parse(json.out) as { keys: Record[] };
    expect(keys.map((k) => k.tenant)).toEqual(['acme', 'acme']);
    expect(keys.find((k) => k.id === created.id)).toEqual({ id: created.id, tenant: 'acme', name: 'ci', tier: 'trial', created_at: created.created_at });

    const none = await cli(['list', '--tenant', 'nobody', ...target]);
    expect(none).toMatchObject({ code: 0, out: 'no keys\n' });
  });

  it('the key authenticates on /v1/* (and is rate limited by its tier)', async (ctx) => {
    const probe = await fetch(`${edge?.url}/v1/models`);
    if (probe.status === 404) ctx.skip(); // /v1 not mounted on this edge yet
    expect(probe.status).toBe(401);
    // With a key the request gets past auth: whatever /v1/models answers without origins, it is not 401.
    const withKey = await fetch(`${edge?.url}/v1/models`, { headers: { authorization: `Bearer ${created.key}` } });
    expect(withKey.status).not.toBe(401);
    const wrong = await fetch(`${edge?.url}/v1/models`, { headers: { authorization: `Bearer irk_${'A'.repeat(43)}` } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toBe('Bearer realm="imagereward", error="invalid_token"');
    // Trial tier: 10 requests per 10 s. The local limiter counts in fixed 10 s
    // windows; 30 quick requests cross at most one boundary, so one window sees > 10.
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${edge?.url}/v1/models`, { headers: { authorization: `Bearer ${created.key}` } });
      await res.arrayBuffer();
      statuses.push(res.status);
      if (res.status === 429) {
        expect(res.headers.get('retry-after')).toBe('10');
        break;
      }
    }
    expect(statuses).toContain(429);
  });

  it('revoke marks the key revoked; list --all shows revoked_at; the key stops working', async () => {
    const revoked = await cli(['revoke', created.id, ...target]);
    expect(revoked.code, revoked.err).toBe(0);
    expect(revoked.out).toMatch(new RegExp(`Revoked key ${created.id} \\(tenant "acme", name "ci"\\) at \\d{4}-`));

    const live = await cli(['list', '--json', ...target]);
    expect((JSON.parse(live.out) as { keys: Record[] }).keys.map((k) => k.id)).not.toContain(created.id);

    const all = await cli(['list', '--all', ...target]);
    expect(all.code, all.err).toBe(0);
    expect(all.out.split('\n')[0]).toMatch(/REVOKED$/);
    const row = all.out.split('\n').find((l) => l.startsWith(created.id));
    expect(row).toMatch(/\d{4}-\d\d-\d\dT[\d:.]+Z$/);

    const allJson = await cli(['list', '--all', '--json', ...target]);
    const rec = (JSON.parse(allJson.out) as { keys: Record[] }).keys.find((k) => k.id === created.id);
    expect(rec?.revoked_at).toMatch(/^\d{4}-/);

    const res = await fetch(`${edge?.url}/v1/models`, { headers: { authorization: `Bearer ${created.key}` } });
    // Auth runs before the rate limit; local KV (miniflare) does not cache reads, so
    // the revocation is immediate here (deployed: up to ~60 s, cacheTtl).
    expect(res.status).toBe(401);

    const again = await cli(['revoke', created.id, '--json', ...target]);
    expect(again.code).toBe(0);
    expect((JSON.parse(again.out) as Record).revoked_at).toBe(rec?.revoked_at);
  });

  it('revoke of an unknown id → exit 1 not_found', async () => {
    const r = await cli(['revoke', '0123456789abcdef', ...target]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error not_found: no API key with id 0123456789abcdef/);
    const bad = await cli(['revoke', 'xyz', ...target]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/error invalid_request:/);
  });

  it('a wrong admin secret → exit 1 forbidden; nothing is created', async () => {
    const r = await cli(['create', '--tenant', 'intruder', '--edge', edge?.url ?? '', '--admin-secret', 'wrong']);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/error forbidden: the admin secret is wrong/);
    const list = await cli(['list', '--tenant', 'intruder', '--all', '--json', ...target]);
    expect(JSON.parse(list.out)).toEqual({ keys: [] });
  });

  it('server-side validation errors → exit 1 with the problem code', async () => {
    const r = await cli(['create', '--tenant', 'bad tenant', ...target]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error invalid_request: tenant: /);
  });

  it('reads the edge URL and the secret from the environment', async () => {
    const saved = { url: process.env.IMAGEREWARD_EDGE_URL, secret: process.env.IMAGEREWARD_ADMIN_SECRET };
    process.env.IMAGEREWARD_EDGE_URL = edge?.url;
    process.env.IMAGEREWARD_ADMIN_SECRET = ADMIN_SECRET;
    try {
      const r = await cli(['list', '--json']);
      expect(r.code, r.err).toBe(0);
      expect((JSON.parse(r.out) as { keys: Record[] }).keys.length).toBeGreaterThan(0);
    } finally {
      for (const [k, v] of [['IMAGEREWARD_EDGE_URL', saved.url], ['IMAGEREWARD_ADMIN_SECRET', saved.secret]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

describe('imagereward keys without a reachable edge', () => {
  it('an unreachable edge → exit 1 with a clear message', async () => {
    const port = await freePort();
    const r = await cli(['list', '--edge', `http://127.0.0.1:${port}`, '--admin-secret', 'x']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`cannot reach the edge at http://127.0.0.1:${port}: connection refused`));
  });

  it('an edge without ADMIN_SECRET → exit 1 not_found with a hint', async () => {
    const bare = await startWranglerDev({ vars: { AUTH: 'required' } });
    try {
      const r = await cli(['list', '--edge', bare.url, '--admin-secret', 'anything']);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/error not_found: .*is ADMIN_SECRET set on it\?/);
    } finally {
      await bare.stop();
    }
  }, 120_000);
});

describe('startWranglerDev', () => {
  it('rejects with the captured output when the edge is not ready in time, and leaves no process behind', async () => {
    const port = await freePort();
    const err = await startWranglerDev({ port, timeoutMs: 300 }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/did not answer GET \/healthz with 200 within 300 ms/);
    expect(err?.message).toContain('--- wrangler output ---');
    const ps = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
    expect(ps.split('\n').filter((l) => l.includes(`--port ${port}`))).toEqual([]);
  }, 60_000);
});

describe('imagereward keys usage errors (exit 2)', () => {
  const withSecret = ['--admin-secret', 'x', '--edge', 'http://127.0.0.1:1'];
  it.each([
    ['no command', []],
    ['an unknown command', ['rotate', ...withSecret]],
    ['create without --tenant', ['create', ...withSecret]],
    ['create with an unknown tier', ['create', '--tenant', 't', '--tier', 'gold', ...withSecret]],
    ['create with --all', ['create', '--tenant', 't', '--all', ...withSecret]],
    ['list with --tier', ['list', '--tier', 'high', ...withSecret]],
    ['list with an argument', ['list', 'acme', ...withSecret]],
    ['revoke without an id', ['revoke', ...withSecret]],
    ['revoke with two ids', ['revoke', 'a', 'b', ...withSecret]],
    ['an unknown option', ['list', '--verbose', ...withSecret]],
    ['a bad --edge', ['list', '--admin-secret', 'x', '--edge', 'ftp://example.com']],
    ['a missing admin secret', ['list', '--edge', 'http://127.0.0.1:1']],
  ])('%s', async (_what, args) => {
    const saved = process.env.IMAGEREWARD_ADMIN_SECRET;
    delete process.env.IMAGEREWARD_ADMIN_SECRET;
    try {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/^imagereward keys: /);
      expect(r.err).toContain('Usage:');
    } finally {
      if (saved !== undefined) process.env.IMAGEREWARD_ADMIN_SECRET = saved;
    }
  });

  it('--help prints the usage and exits 0; the command is listed in `imagereward --help`', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/imagereward keys create --tenant/);
    let out = '';
    const code = await main(['--help'], { stdout: (s) => (out += s), stderr: () => {} });
    expect(code).toBe(0);
    expect(out).toMatch(/keys\s+Create, list and revoke the edge's API keys/);
  });
});
