// startServer: loads the model through createScoreService and serves the
// scoring API on it (listen.ts): one ready line, one line per skipped backend,
// graceful shutdown on SIGTERM/SIGINT when handleSignals is set.
import { resolveLimits } from '../../contracts/api/index.js';
import { safeFetchImage } from '../net/safe-fetch.js';
import { createScoreService, type ScoreService, type ScoreServiceOptions } from '../service/score-service.js';
import type { FetchImage } from './app.js';
import { listen, type ListenOptions, type ServerHandle } from './listen.js';

export { readApiKeysFile, type ServerHandle } from './listen.js';

export interface StartServerOptions extends ScoreServiceOptions, Omit<ListenOptions, 'fetchImage'> {
  /** Fetch {url} images through safeFetchImage (public addresses only; default true). */
  urlFetch?: boolean;
  /**
   * Exceptions to safeFetchImage's address rules, for on-prem image stores: host names
   * ("*.example.internal" for subdomains), IPs or CIDRs that may be private.
   */
  urlAllow?: string[];
}

const LISTEN_KEYS = ['host', 'port', 'apiKeysFile', 'apiKeys', 'metricsPublic', 'trustTenantHeader', 'httpLimits', 'drainMs', 'handleSignals', 'print', 'logger', 'env', 'urlFetch', 'urlAllow'] as const;

export async function startServer(opts: StartServerOptions): Promise<ServerHandle<ScoreService>> {
  const http = resolveLimits(opts.httpLimits);
  const serviceOpts: Record<string, unknown> = { ...opts };
  for (const k of LISTEN_KEYS) delete serviceOpts[k];
  const service = await createScoreService({
    ...(serviceOpts as unknown as ScoreServiceOptions),
    // The service checks the same per-request limits as the HTTP layer (which checks first) unless told otherwise.
    limits: {
      maxImagesPerRequest: http.maxImagesPerRequest,
      maxImageBytes: http.maxImageBytes,
      maxImagePixels: http.maxImagePixels,
      maxPromptChars: http.maxPromptChars,
      ...opts.limits,
    },
  });
  const fetchImage: FetchImage | false =
    opts.urlFetch === false
      ? false
      : (url, o) =>
          safeFetchImage(url, {
            maxBytes: o.maxBytes,
            timeoutMs: o.timeoutMs,
            ...(o.signal ? { signal: o.signal } : {}),
            ...(opts.urlAllow ? { allow: opts.urlAllow } : {}),
          });
  try {
    return await listen(service, { ...opts, fetchImage });
  } catch (err) {
    await service.close({ drainMs: 0 });
    throw err;
  }
}
