// imagereward keys create|list|revoke — manages the edge's API keys through its
// admin API (/admin/keys, behind ADMIN_SECRET), so the same command works
// against `wrangler dev` on this machine and against a deployed edge. The edge
// keeps only a key's SHA-256: `create` prints the key once and never again.
import { CliError, EXIT, parseCommand, type Io } from './io.js';

const TIERS = ['trial', 'standard', 'high'] as const;
const DEFAULT_EDGE = 'http://127.0.0.1:8787';
const TIMEOUT_MS = 30_000;

const HELP = `Usage:
  imagereward keys create --tenant <tenant> [--name <name>] [--tier trial|standard|high]
  imagereward keys list [--tenant <tenant>] [--all]
  imagereward keys revoke <id>

Manages the API keys of the edge through its admin API (/admin/keys).

Commands:
  create           make a key; it is printed ONCE (the edge stores only its
                   SHA-256) — store it right away
  list             the keys (id, tenant, name, tier, dates); never the keys
  revoke <id>      revoke a key by the id \`list\` shows; edge locations may
                   still accept it for up to ~60 s (KV caching)

Options:
  --edge <url>           the edge's base URL (default $IMAGEREWARD_EDGE_URL,
                         else ${DEFAULT_EDGE}, the \`wrangler dev\` default)
  --admin-secret <s>     the edge's ADMIN_SECRET (default $IMAGEREWARD_ADMIN_SECRET;
                         required)
  --tenant <tenant>      create: the key's tenant (1-64 of A-Z a-z 0-9 . _ -);
                         list: only this tenant's keys
  --name <name>          create: a label for the key, 1-128 printable ASCII
                         characters (default: the tenant)
  --tier <tier>          create: trial (10 requests / 10 s), standard (600 / min,
                         the default) or high (6000 / min)
  --all                  list: include revoked keys
  --json                 machine-readable output (the admin API's JSON)

Exit status: 0 ok, 1 the edge refused or could not be reached, 2 usage.
`;

interface KeyRecord {
  id: string;
  tenant: string;
  name: string;
  tier: string;
  created_at: string;
  revoked_at?: string;
}

interface Target {
  base: string;
  secret: string;
}

export async function keysCommand(argv: string[], io: Io, environment: NodeJS.ProcessEnv = process.env): Promise<number> {
  const parsed = parseCommand(
    argv,
    {
      edge: { type: 'string' },
      'admin-secret': { type: 'string' },
      tenant: { type: 'string' },
      name: { type: 'string' },
      tier: { type: 'string' },
      all: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    HELP,
    io,
  );
  if (!parsed) return EXIT.ok;
  const { values, positionals } = parsed;
  const [sub, ...args] = positionals;
  const usage = (message: string): CliError => new CliError(`${message}\n\n${HELP}`, EXIT.usage);
  const only = (allowed: readonly string[]): void => {
    const used = (['tenant', 'name', 'tier', 'all'] as const).filter((k) => values[k] !== undefined && !allowed.includes(k));
    if (used.length > 0) throw usage(`keys ${sub ?? ''}: --${used.join(', --')} ${used.length > 1 ? 'do' : 'does'} not apply here`);
  };

  if (sub === undefined) throw usage('give a command: create, list or revoke');
  if (sub !== 'create' && sub !== 'list' && sub !== 'revoke') throw usage(`unknown keys command "${sub}"`);
  if (sub === 'revoke' ? args.length !== 1 : args.length !== 0) {
    throw usage(sub === 'revoke' ? 'keys revoke takes exactly one key id' : `keys ${sub} takes no arguments (got ${JSON.stringify(args.join(' '))})`);
  }

  if (sub === 'create') {
    only(['tenant', 'name', 'tier']);
    if (values.tenant === undefined || values.tenant === '') throw usage('keys create needs --tenant');
    if (values.tier !== undefined && !(TIERS as readonly string[]).includes(values.tier)) throw usage(`--tier must be one of ${TIERS.join(', ')} (got "${values.tier}")`);
  } else if (sub === 'list') {
    only(['tenant', 'all']);
  } else {
    only([]);
  }
  const target = resolveTarget(values.edge, values['admin-secret'], environment, usage);
  const json = values.json === true;

  if (sub === 'create') {
    const body = { tenant: values.tenant, ...(values.name !== undefined ? { name: values.name } : {}), ...(values.tier !== undefined ? { tier: values.tier } : {}) };
    const created = (await call(target, 'POST', '/admin/keys', body)) as KeyRecord & { key: string };
    if (json) {
      io.stdout(`${JSON.stringify(created)}\n`);
      io.stderr('imagereward keys: the key above is shown only this once; store it now.\n');
    } else {
      io.stdout(
        [
          `Created key ${created.id} for tenant "${created.tenant}" (name "${created.name}", tier ${created.tier}):`,
          '',
          `  ${created.key}`,
          '',
          'Store it now: it cannot be shown again (the edge keeps only its SHA-256).',
          `Use it as: Authorization: Bearer ${created.key.slice(0, 8)}…`,
          '',
        ].join('\n'),
      );
    }
    return EXIT.ok;
  }

  if (sub === 'list') {
    const query = new URLSearchParams();
    if (values.tenant !== undefined) query.set('tenant', values.tenant);
    if (values.all === true) query.set('include_revoked', '1');
    const q = query.toString();
    const listed = (await call(target, 'GET', `/admin/keys${q ? `?${q}` : ''}`)) as { keys: KeyRecord[] };
    if (json) io.stdout(`${JSON.stringify(listed)}\n`);
    else io.stdout(listed.keys.length === 0 ? 'no keys\n' : table(listed.keys, values.all === true));
    return EXIT.ok;
  }

  const id = args[0] ?? '';
  const revoked = (await call(target, 'DELETE', `/admin/keys/${encodeURIComponent(id)}`)) as KeyRecord;
  if (json) io.stdout(`${JSON.stringify(revoked)}\n`);
  else {
    io.stdout(
      `Revoked key ${revoked.id} (tenant "${revoked.tenant}", name "${revoked.name}") at ${revoked.revoked_at ?? '?'}.\n` +
        'Edge locations may still accept it for up to ~60 s (KV caching).\n',
    );
  }
  return EXIT.ok;
}

function resolveTarget(edge: string | undefined, secret: string | undefined, environment: NodeJS.ProcessEnv, usage: (m: string) => CliError): Target {
  const raw = edge ?? (environment.IMAGEREWARD_EDGE_URL || DEFAULT_EDGE);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw usage(`--edge must be an http(s) URL (got "${raw}")`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usage(`--edge must be an http(s) URL (got "${raw}")`);
  const adminSecret = secret ?? environment.IMAGEREWARD_ADMIN_SECRET;
  if (adminSecret === undefined || adminSecret === '') throw usage('the admin secret is required: --admin-secret or $IMAGEREWARD_ADMIN_SECRET');
  return { base: url.href.replace(/\/+$/, ''), secret: adminSecret };
}

/** One admin API call: the parsed JSON body of a 2xx answer, or a CliError (exit 1) naming the problem. */
async function call(target: Target, method: string, path: string, body?: unknown): Promise<unknown> {
  const url = target.base + path;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${target.secret}`,
        accept: 'application/json',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (err) {
    throw new CliError(`cannot reach the edge at ${target.base}: ${networkReason(err)} (is it running? set --edge or $IMAGEREWARD_EDGE_URL)`, EXIT.failure, 'unreachable');
  }
  const text = await res.text().catch(() => '');
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : (JSON.parse(text) as unknown);
  } catch {
    parsed = undefined;
  }
  if (res.ok) {
    if (parsed === undefined) throw new CliError(`error bad_response: ${method} ${url} answered ${res.status} without a JSON body`, EXIT.failure, 'bad_response');
    return parsed;
  }
  const p = parsed as { code?: unknown; detail?: unknown } | undefined;
  const code = typeof p?.code === 'string' ? p.code : `http_${res.status}`;
  let detail = typeof p?.detail === 'string' ? p.detail : `${method} ${url} answered ${res.status} ${res.statusText}`.trim();
  if (code === 'not_found' && /^no route for /.test(detail)) detail += ' (this edge has no admin API: is ADMIN_SECRET set on it?)';
  throw new CliError(`error ${code}: ${detail}`, EXIT.failure, code);
}

function networkReason(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${TIMEOUT_MS / 1000} s`;
  const cause = err instanceof Error ? (err.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (cause?.code === 'ECONNREFUSED') return 'connection refused';
  if (cause?.code === 'ENOTFOUND') return 'host not found';
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return err instanceof Error ? err.message : String(err);
}

function table(keys: readonly KeyRecord[], withRevoked: boolean): string {
  const header = ['ID', 'TENANT', 'NAME', 'TIER', 'CREATED', ...(withRevoked ? ['REVOKED'] : [])];
  const rows = keys.map((k) => [k.id, k.tenant, k.name, k.tier, k.created_at, ...(withRevoked ? [k.revoked_at ?? '-'] : [])]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(header), ...rows.map(line), ''].join('\n');
}
