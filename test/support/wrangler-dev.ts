// `wrangler dev` as a child process for end-to-end tests and benchmarks: the
// edge exactly as a user runs it locally (workerd, local KV, the rate-limit
// bindings), on a free loopback port, with --var overrides. Ready once GET
// /healthz answers 200. The child gets its own process group so stop() can end
// wrangler and the workerd it starts together; any process still running when
// the test process exits is killed, so a failing test leaks nothing.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signalGroup } from '../../gpu-service/stack/managed-child.js';

const ROOT = join(import.meta.dirname, '..', '..');
const WRANGLER = join(ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
/** Output kept for error messages (the tail). */
const MAX_OUTPUT = 256 * 1024;

export interface WranglerDevOptions {
  /** `--var K:V` overrides of wrangler.toml's [vars] (and secrets such as ADMIN_SECRET). */
  vars?: Record<string, string>;
  /** Local state (KV, …); default a fresh temporary directory, removed by stop(). */
  persistTo?: string;
  /** Default: a free port. */
  port?: number;
  /** How long to wait for GET /healthz → 200 (default 60 s). */
  timeoutMs?: number;
}

export interface WranglerDev {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  pid: number;
  /** Ends wrangler and workerd (the whole process group) and waits for the exit. Idempotent. */
  stop(): Promise<void>;
  /** Everything wrangler printed so far (stdout and stderr, interleaved). */
  output(): string;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort: the test process is exiting with wrangler still up (a test
  // failed before its afterAll, or forgot stop()). Only synchronous work here.
  process.on('exit', () => {
    for (const child of live) signalGroup(child, 'SIGKILL');
  });
}

/** wrangler colours some warnings even with NO_COLOR. */
function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
}

/** A port nothing listens on right now (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not find a free port'))));
    });
  });
}

export async function startWranglerDev(opts: WranglerDevOptions = {}): Promise<WranglerDev> {
  const port = opts.port ?? (await freePort());
  const inspectorPort = await freePort();
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const ownState = opts.persistTo === undefined;
  const persistTo = opts.persistTo ?? (await mkdtemp(join(tmpdir(), 'imagereward-wrangler-')));
  const args = [
    WRANGLER,
    'dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--inspector-port',
    String(inspectorPort),
    '--persist-to',
    persistTo,
    '--show-interactive-dev-session=false',
    '--log-level',
    'warn',
  ];
  for (const [k, v] of Object.entries(opts.vars ?? {})) args.push('--var', `${k}:${v}`);

  installExitHook();
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  live.add(child);
  let out = '';
  const capture = (chunk: Buffer) => {
    out += chunk.toString('utf8');
    if (out.length > MAX_OUTPUT) out = out.slice(-MAX_OUTPUT);
  };
  child.stdout?.on('data', capture);
  child.stderr?.on('data', capture);

  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      live.delete(child);
      resolve();
    });
    child.once('error', (err) => {
      capture(Buffer.from(`\n[spawn error] ${err.message}\n`));
      exited = true;
      live.delete(child);
      resolve();
    });
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!exited) {
        signalGroup(child, 'SIGTERM');
        const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), 10_000);
        await exit;
        clearTimeout(timer);
      }
      // workerd may outlive wrangler's node process for a moment: end the rest of the group.
      signalGroup(child, 'SIGKILL');
      if (ownState) await rm(persistTo, { recursive: true, force: true });
    })();
    return stopping;
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (exited) throw new Error(`wrangler dev exited before it was ready (exit code ${child.exitCode ?? 'none'}, signal ${child.signalCode ?? 'none'})`);
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status === 200) break;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) throw new Error(`wrangler dev did not answer GET /healthz with 200 within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n--- wrangler output ---\n${stripAnsi(out)}`);
  }

  return { url, port, pid: child.pid ?? -1, stop, output: () => stripAnsi(out) };
}
