// imagereward serve --model <dir|ImageReward.pt> [--host 127.0.0.1] [--port 8080] ...
// Runs the scoring HTTP API (gpu-service/server) until SIGTERM/SIGINT, then
// drains in-flight work and exits 0.
import type { ApiLimits } from '../../contracts/api/index.js';
import { DEFAULT_LIMITS } from '../../contracts/api/index.js';
import { locateModel, noModelMessage } from '../model/locate.js';
import { startServer, type StartServerOptions } from '../server/serve.js';
import { describeModelError } from '../stack/describe-model-error.js';
import { CliError, EXIT, type Io, parseCommand, rejectPositionals } from './io.js';
import { scoreFailure } from './score.js';

const HELP = `Usage:
  imagereward serve [--model <dir|ImageReward.pt>] [--host 127.0.0.1] [--port 8080] [options]

Serves the scoring API: POST /v1/score, POST /v1/score:batch, GET /v1/models,
/healthz, /readyz, /metrics, /openapi.json, /docs. Prints one line when ready.
SIGTERM/SIGINT: stop accepting, answer in-flight requests, exit 0.

Options:
  --model <path>          a model directory or ImageReward.pt (default: $IMAGEREWARD_MODEL,
                          else the checkpoint \`imagereward fetch-model\` downloaded)
  --host <addr>           address to listen on (default 127.0.0.1)
  --port <n>              port (default 8080; 0 = any free port)
  --backend <name>        auto (default), native (CUDA engine) or ort (ONNX Runtime, CPU)
  --api-keys-file <file>  accept only "Authorization: Bearer <key>" with a key from this
                          file (one per line; "sha256:<hex>" for a hashed key). Without it,
                          $IMAGEREWARD_API_KEYS (comma-separated) is used when set
  --metrics-public        /metrics needs no key even when keys are set
  --trust-tenant-header   behind the edge: X-Imagereward-Tenant on an authenticated request
                          names its tenant for fair batching (only when every key is an edge's)
  --max-batch <n>         most images per forward pass (default 64 on the CUDA engine, 8 on ORT)
  --devices <i,j,…>       CUDA engine: one engine per listed GPU, batches run side by side
                          (default: GPU 0)
  --streams <n>           CUDA engine: batches in flight per GPU, each on its own stream
                          (default 2)
  --dtype <bf16|fp16>     CUDA engine: storage type of weights and activations (default
                          bf16; fp32 accumulation either way; fp16 is closer to fp32)
  --replicas <n>          ONNX Runtime: n sessions running batches side by side (each
                          holds its own weights; default 1)
  --max-wait-ms <n>       how long a batch waits to fill up (default 5)
  --max-queued-images <n> queue bound (beyond it: 503 queue_full + Retry-After; default 256)
  --cache-mb <n>          image-embedding cache size in MiB (default 512)
  --preprocess-workers <n> image decode/preprocess workers (default min(4, cores))
  --threads <n>           ONNX Runtime intra-op threads (default: one per core)
  --max-image-pixels <n>  pixels per image (default ${DEFAULT_LIMITS.maxImagePixels})
  --max-images <n>        images per request (default ${DEFAULT_LIMITS.maxImagesPerRequest})
  --max-image-bytes <n>   bytes per image (default ${DEFAULT_LIMITS.maxImageBytes})
  --max-body-bytes <n>    request body bytes (default ${DEFAULT_LIMITS.maxBodyBytes})
  --max-prompt-chars <n>  prompt length (default ${DEFAULT_LIMITS.maxPromptChars})
  --request-timeout-ms <n> budget of one call (default ${DEFAULT_LIMITS.requestTimeoutMs})
  --no-url-fetch          refuse {"url": …} images (default: fetched from public addresses)
  --url-allow <h,…>       hosts (*.domain ok), IPs or CIDRs URL images may come from even
                          though private (on-prem stores); others must be public
  --drain-ms <n>          how long shutdown waits for in-flight requests, then again for
                          queued work (default 30000; up to twice this in all)
`;

function positiveInt(flag: string, text: string | undefined, allowZero = false): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || (n === 0 && !allowZero)) {
    throw new CliError(`${flag} must be a ${allowZero ? 'non-negative' : 'positive'} integer (got "${text}")`, EXIT.usage);
  }
  return n;
}

export async function serveCommand(argv: string[], io: Io, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const s = { type: 'string' } as const;
  const parsed = parseCommand(
    argv,
    {
      model: s,
      host: s,
      port: s,
      backend: s,
      'api-keys-file': s,
      'metrics-public': { type: 'boolean' },
      'trust-tenant-header': { type: 'boolean' },
      'max-batch': s,
      devices: s,
      streams: s,
      dtype: s,
      replicas: s,
      'max-wait-ms': s,
      'max-queued-images': s,
      'cache-mb': s,
      'preprocess-workers': s,
      threads: s,
      'max-image-pixels': s,
      'max-images': s,
      'max-image-bytes': s,
      'max-body-bytes': s,
      'max-prompt-chars': s,
      'request-timeout-ms': s,
      'no-url-fetch': { type: 'boolean' },
      'url-allow': s,
      'drain-ms': s,
    },
    HELP,
    io,
  );
  if (!parsed) return EXIT.ok;
  const { values: v, positionals } = parsed;
  rejectPositionals(positionals, HELP);
  if (v.model === '') throw new CliError(`--model needs a path\n\n${HELP}`, EXIT.usage);
  const backend = v.backend ?? 'auto';
  if (backend !== 'auto' && backend !== 'ort' && backend !== 'native') throw new CliError(`--backend must be auto, native or ort (got "${backend}")`, EXIT.usage);
  const port = positiveInt('--port', v.port, true) ?? 8080;
  if (port > 65535) throw new CliError(`--port must be at most 65535 (got ${port})`, EXIT.usage);

  const httpLimits: Partial<ApiLimits> = {};
  const setLimit = (key: keyof ApiLimits, flag: string, text: string | undefined) => {
    const n = positiveInt(flag, text);
    if (n !== undefined) httpLimits[key] = n;
  };
  setLimit('maxImagesPerRequest', '--max-images', v['max-images']);
  setLimit('maxImageBytes', '--max-image-bytes', v['max-image-bytes']);
  setLimit('maxImagePixels', '--max-image-pixels', v['max-image-pixels']);
  setLimit('maxBodyBytes', '--max-body-bytes', v['max-body-bytes']);
  setLimit('maxPromptChars', '--max-prompt-chars', v['max-prompt-chars']);
  setLimit('requestTimeoutMs', '--request-timeout-ms', v['request-timeout-ms']);

  const num = (flag: string, text: string | undefined) => positiveInt(flag, text);
  const maxBatch = num('--max-batch', v['max-batch']);
  const replicas = num('--replicas', v.replicas);
  const devices = v.devices?.split(',').map((d) => {
    const n = Number(d.trim());
    if (!Number.isSafeInteger(n) || n < 0) throw new CliError(`--devices takes GPU indices like 0,1 (got "${v.devices ?? ''}")`, EXIT.usage);
    return n;
  });
  const streams = num('--streams', v.streams);
  if (streams !== undefined && streams > 8) throw new CliError(`--streams must be 1..8 (got ${streams})`, EXIT.usage);
  const dtype = v.dtype;
  if (dtype !== undefined && dtype !== 'bf16' && dtype !== 'fp16') throw new CliError(`--dtype must be bf16 or fp16 (got "${dtype}")`, EXIT.usage);
  const maxWaitMs = positiveInt('--max-wait-ms', v['max-wait-ms'], true);
  const maxQueuedImages = num('--max-queued-images', v['max-queued-images']);
  const cacheMb = positiveInt('--cache-mb', v['cache-mb'], true);
  const preprocessWorkers = num('--preprocess-workers', v['preprocess-workers']);
  const drainMs = positiveInt('--drain-ms', v['drain-ms'], true);
  const threads = num('--threads', v.threads);

  // Flags first (usage errors exit 2), then the model.
  const model = v.model ?? locateModel(env)?.path;
  if (model === undefined) throw new CliError(noModelMessage(env), EXIT.failure, 'model_not_found');

  const opts: StartServerOptions = {
    model,
    backend,
    host: v.host ?? '127.0.0.1',
    port,
    httpLimits,
    urlFetch: v['no-url-fetch'] !== true,
    handleSignals: true,
    env,
    print: (line) => io.stdout(`${line}\n`),
    ...(v['api-keys-file'] !== undefined ? { apiKeysFile: v['api-keys-file'] } : {}),
    ...(v['metrics-public'] === true ? { metricsPublic: true } : {}),
    ...(v['trust-tenant-header'] === true ? { trustTenantHeader: true } : {}),
    ...(v['url-allow'] !== undefined ? { urlAllow: v['url-allow'].split(',').map((h) => h.trim()).filter(Boolean) } : {}),
    ...(maxBatch !== undefined ? { maxBatch } : {}),
    ...(replicas !== undefined ? { replicas } : {}),
    ...(devices !== undefined ? { devices } : {}),
    ...(maxWaitMs !== undefined ? { maxWaitMs } : {}),
    ...(maxQueuedImages !== undefined ? { maxQueuedImages } : {}),
    ...(cacheMb !== undefined ? { cacheBytes: cacheMb * 1024 * 1024 } : {}),
    ...(preprocessWorkers !== undefined ? { preprocessWorkers } : {}),
    ...(drainMs !== undefined ? { drainMs } : {}),
    ...(threads !== undefined ? { ort: { intraOpNumThreads: threads } } : {}),
    ...(streams !== undefined || dtype !== undefined ? { native: { ...(streams !== undefined ? { streams } : {}), ...(dtype !== undefined ? { dtype } : {}) } } : {}),
  };
  try {
    await startServer(opts);
  } catch (err) {
    if (err instanceof Error && /API keys file/.test(err.message)) throw new CliError(err.message, EXIT.failure);
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new CliError(`port ${port} on ${opts.host!} is in use`, EXIT.failure);
    // A corrupt, truncated or incomplete model is the user's file, not a bug: one line, no stack trace.
    const described = describeModelError(err, model);
    if (described !== undefined) throw new CliError(described, EXIT.failure, 'model_invalid');
    return scoreFailure(err);
  }
  // Runs until a signal: startServer's handler drains and exits the process.
  return new Promise<number>(() => {});
}
