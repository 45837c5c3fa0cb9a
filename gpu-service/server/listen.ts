// The HTTP server's life cycle over a scoring service that already exists:
// listen (@hono/node-server), print the ready line, and close gracefully (stop
// accepting, /readyz → 503, let in-flight requests finish, drain the service).
// serve.ts creates the real service and calls this.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { ApiLimits } from '../../contracts/api/index.js';
import { createApp, type FetchImage, type LogEntry, type ScoringService } from './app.js';

/** Exit status of `imagereward serve` after every backend failed for good (EX_TEMPFAIL). */
export const EXIT_BACKEND_FAILED = 75;
const FAILED_EXIT_DELAY_MS = 5_000;

export interface ClosableService extends ScoringService {
  close(opts?: { drainMs?: number }): Promise<void>;
}

export interface ListenOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8080; 0 picks a free port (see the handle's url). */
  port?: number;
  /** A file of API keys: one per line ("sha256:<hex>" for a hashed key), blank lines and "#" comments ignored. */
  apiKeysFile?: string;
  /** Keys given directly (added to the file's). Without either, IMAGEREWARD_API_KEYS (comma-separated) is read. */
  apiKeys?: string[];
  /** /metrics needs no key even when keys are set. */
  metricsPublic?: boolean;
  /** See AppOptions.trustTenantHeader. */
  trustTenantHeader?: boolean;
  /** HTTP request limits (contracts/api/limits.ts). */
  httpLimits?: Partial<ApiLimits>;
  /** Enables {url} images. */
  fetchImage?: FetchImage | false;
  /** How long close() waits for in-flight requests, then for the service's queue (default 30 s each). */
  drainMs?: number;
  /** Exit the process on SIGTERM/SIGINT after a graceful close (default false; the CLI sets it). */
  handleSignals?: boolean;
  /** Where the ready line and shutdown lines go (default stdout). */
  print?: (line: string) => void;
  /** One JSON object per request (default: a JSON line on stdout). */
  logger?: (entry: LogEntry) => void;
  env?: NodeJS.ProcessEnv;
}

export interface ServerHandle<S extends ClosableService = ClosableService> {
  url: string;
  port: number;
  service: S;
  /** HTTP requests being answered now. */
  inFlight(): number;
  /** Graceful: stop accepting, answer in-flight requests, drain the service. Idempotent. */
  close(): Promise<void>;
}

/** Reads an API key file: one key per line; blank lines and lines starting with "#" are skipped. */
export function readApiKeysFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the API keys file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const keys = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
  if (keys.length === 0) throw new Error(`the API keys file ${path} holds no key`);
  return keys;
}

function collectApiKeys(opts: ListenOptions): string[] {
  const keys = [...(opts.apiKeys ?? [])];
  if (opts.apiKeysFile !== undefined) keys.push(...readApiKeysFile(opts.apiKeysFile));
  if (opts.apiKeys === undefined && opts.apiKeysFile === undefined) {
    const env = (opts.env ?? process.env).IMAGEREWARD_API_KEYS;
    if (env) keys.push(...env.split(',').map((k) => k.trim()).filter((k) => k.length > 0));
  }
  return keys;
}

export async function listen<S extends ClosableService>(service: S, opts: ListenOptions = {}): Promise<ServerHandle<S>> {
  const host = opts.host ?? '127.0.0.1';
  const print = opts.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const apiKeys = collectApiKeys(opts);

  let draining = false;
  let inFlight = 0;
  let idle: (() => void) | undefined;
  const app = createApp({
    service,
    apiKeys,
    ...(opts.metricsPublic !== undefined ? { metricsPublic: opts.metricsPublic } : {}),
    ...(opts.trustTenantHeader !== undefined ? { trustTenantHeader: opts.trustTenantHeader } : {}),
    ...(opts.httpLimits !== undefined ? { limits: opts.httpLimits } : {}),
    ...(opts.fetchImage !== undefined ? { fetchImage: opts.fetchImage } : {}),
    ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
    isDraining: () => draining,
  });

  const fetch = async (req: Request, env: unknown): Promise<Response> => {
    inFlight++;
    try {
      return await app.fetch(req, env);
    } finally {
      inFlight--;
      if (inFlight === 0) idle?.();
    }
  };

  const server: ServerType = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch, hostname: host, port: opts.port ?? 8080 }, () => resolve(s));
    s.once('error', reject);
  });
  const requestTimeoutMs = opts.httpLimits?.requestTimeoutMs;
  if ('requestTimeout' in server && requestTimeoutMs !== undefined) {
    // Node's own limit on receiving a whole request stays above the app's (which answers 408 itself).
    server.requestTimeout = requestTimeoutMs + 5_000;
  }
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost}:${port}`;
  print(`imagereward serve: listening on ${url} (model ${service.modelId}, backend ${service.backend})`);
  for (const s of service.skippedBackends) print(`imagereward serve: backend ${s.name} not used: ${s.reason}`);

  const drainMs = opts.drainMs ?? 30_000;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      if ('closeIdleConnections' in server) server.closeIdleConnections();
      // In-flight requests finish normally: the service keeps running until they are answered.
      if (inFlight > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([new Promise<void>((resolve) => (idle = resolve)), new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs)))]);
        clearTimeout(timer);
      }
      await service.close({ drainMs });
      if ('closeAllConnections' in server) server.closeAllConnections();
      await closed;
    })();
    return closing;
  };

  if (opts.handleSignals) {
    const onSignal = (signal: NodeJS.Signals) => {
      print(`imagereward serve: ${signal}: draining (up to ${Math.round(drainMs / 1000)} s)`);
      close().then(
        () => {
          print('imagereward serve: stopped');
          process.exit(0);
        },
        (err: unknown) => {
          print(`imagereward serve: shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);

    // Every backend failed for good (a lost GPU needs a new process and CUDA context): keep
    // answering 503 backend_failed for a few seconds so callers and the edge see why, then
    // stop and exit 75 (EX_TEMPFAIL) so the supervisor (systemd Restart=on-failure, a
    // container restart policy) starts a fresh process.
    const watch = setInterval(() => {
      const failed = service.failure?.();
      if (!failed) return;
      clearInterval(watch);
      print(`imagereward serve: ${failed}; exiting in ${FAILED_EXIT_DELAY_MS / 1000} s (exit ${EXIT_BACKEND_FAILED}) for a restart`);
      setTimeout(() => {
        close().finally(() => process.exit(EXIT_BACKEND_FAILED));
      }, FAILED_EXIT_DELAY_MS).unref();
    }, 1_000);
    watch.unref();
  }

  return { url, port, service, inFlight: () => inFlight, close };
}
