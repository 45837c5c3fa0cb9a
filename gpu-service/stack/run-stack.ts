// runStack: the whole system on this machine, wired together — what `npm start`
// (`imagereward stack`) runs:
//   model (resolveStackModel) → `imagereward serve` on a free loopback port with
//   a random origin key → `wrangler dev` in front of it (ORIGINS, ORIGIN_SECRET,
//   MODEL_ID = what the GPU service reports, AUTH off) → GET /healthz 200 → the
//   summary with ready-to-paste curl lines.
// Then it waits: a stop request (SIGINT/SIGTERM, wired by the CLI) stops the
// edge, then lets the GPU service drain, and returns 0; a child that dies on its
// own takes the other one down and returns 1 with its last output.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { defaultHome, FetchError } from '../model/fetch.js';
import { packageRoot } from '../package-root.js';
import { demoBanner } from './demo-banner.js';
import { describeModelError } from './describe-model-error.js';
import { freePort, portInUse } from './free-port.js';
import { startManagedChild, type ChildExit, type ManagedChild } from './managed-child.js';
import { ProgressLine } from './progress-line.js';
import { resolveStackModel, StackModelError, type StackModel } from './resolve-stack-model.js';
import { sampleImage } from './sample-image.js';
import { stackSummary } from './stack-summary.js';

export interface StackOptions {
  /** Default env EDGE_PORT, else 8787. */
  edgePort?: number;
  /** Default env GPU_PORT, else a free port. */
  gpuPort?: number;
  /** A model dir or ImageReward.pt (default env IMAGEREWARD_MODEL, then the cache, the Hub, the demo model). */
  model?: string;
  demo?: boolean;
  offline?: boolean;
  env?: NodeJS.ProcessEnv;
  /** The summary (stdout). */
  out: (text: string) => void;
  /** Progress, the children's output, messages (stderr). */
  log: (text: string) => void;
  /** Progress redrawn in place (a terminal). */
  isTTY: boolean;
  /** Aborted = stop everything (the CLI aborts it on SIGINT/SIGTERM). */
  stop: AbortSignal;
  /** How long to wait for GET /healthz on the edge (default 120 s). */
  edgeTimeoutMs?: number;
}

/** An expected failure: one message, exit 1 (the CLI prints it without a stack). */
export class StackError extends Error {
  override name = 'StackError';
}

const GPU_GRACE_MS = 35_000; // serve drains for up to 30 s by default
const EDGE_GRACE_MS = 10_000;

function describeExit(e: ChildExit): string {
  return e.signal ? `signal ${e.signal}` : `exit code ${e.code ?? 'unknown'}`;
}

function aborted(signal: AbortSignal): Promise<'stop'> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve('stop');
    else signal.addEventListener('abort', () => resolve('stop'), { once: true });
  });
}

/** Resolves with the GPU service's ready line fields, or the reason it will not come. */
function serveReady(gpu: ManagedChild): Promise<{ url: string; modelId: string; backend: string } | ChildExit> {
  return new Promise((resolve) => {
    gpu.onLine((line) => {
      const m = /listening on (http:\/\/\S+) \(model (\S+), backend (\S+)\)/.exec(line);
      if (m) resolve({ url: m[1]!, modelId: m[2]!, backend: m[3]! });
    });
    void gpu.exited.then(resolve);
  });
}

async function modelsInfo(gpuUrl: string, secret: string): Promise<{ id: string; backend: string; skipped: string[] } | undefined> {
  try {
    const res = await fetch(`${gpuUrl}/v1/models`, { headers: { authorization: `Bearer ${secret}` }, signal: AbortSignal.timeout(5_000) });
    if (!res.ok) return undefined;
    const body = (await res.json()) as { data?: { id: string; backend: string; skipped_backends?: { name: string; reason: string }[] }[] };
    const m = body.data?.[0];
    return m ? { id: m.id, backend: m.backend, skipped: (m.skipped_backends ?? []).map((s) => `${s.name}: ${s.reason}`) } : undefined;
  } catch {
    return undefined;
  }
}

async function edgeHealthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer().catch(() => undefined);
    return res.status === 200;
  } catch {
    return false;
  }
}

function parsePort(name: string, text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw new StackError(`${name} must be a port number 1-65535 (got "${text}")`);
  return n;
}

export async function runStack(opts: StackOptions): Promise<number> {
  const env = opts.env ?? process.env;
  const log = (line: string) => opts.log(`[stack] ${line}\n`);
  const home = resolve(defaultHome(env));
  const edgePort = opts.edgePort ?? parsePort('EDGE_PORT', env.EDGE_PORT) ?? 8787;
  const gpuPortWanted = opts.gpuPort ?? parsePort('GPU_PORT', env.GPU_PORT) ?? 0;

  const root = packageRoot();
  const wrangler = join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
  if (!existsSync(wrangler)) throw new StackError(`wrangler is not installed (${wrangler} is missing): run \`npm install\` in ${root}`);
  const bin = join(root, 'bin', 'imagereward.js');
  if (await portInUse(edgePort)) throw new StackError(`port ${edgePort} is in use (another \`npm start\`?): stop it, or pick another with EDGE_PORT=<port>`);
  if (gpuPortWanted !== 0 && (await portInUse(gpuPortWanted))) throw new StackError(`GPU_PORT ${gpuPortWanted} is in use: pick another, or leave GPU_PORT unset for a free one`);
  await mkdir(home, { recursive: true });

  // ---- the model
  const progress = new ProgressLine({ write: opts.log, isTTY: opts.isTTY });
  let model: StackModel;
  try {
    model = await resolveStackModel({
      home,
      env,
      log,
      progress,
      signal: opts.stop,
      ...(opts.model !== undefined ? { model: opts.model } : {}),
      ...(opts.demo === true ? { demo: true } : {}),
      ...(opts.offline === true ? { offline: true } : {}),
    });
  } catch (err) {
    progress.clear();
    if (err instanceof FetchError && err.code === 'fetch_aborted') {
      log('stopped during the download (the partial file is kept; the next start resumes it)');
      return 0;
    }
    if (err instanceof StackModelError) throw new StackError(err.message);
    const described = describeModelError(err, opts.model ?? env.IMAGEREWARD_MODEL ?? 'the model');
    if (described !== undefined) throw new StackError(described);
    throw err;
  }
  if (opts.stop.aborted) return 0;
  if (model.demo) opts.log(`\n${demoBanner(model.demoReason ?? 'the model has random weights (made by `imagereward demo-model`)')}\n\n`);
  else log(`model: ${model.modelId} (${model.dir}, from ${model.source})`);

  // ---- the GPU service
  const secret = randomBytes(24).toString('hex');
  const children: ManagedChild[] = [];
  const killAll = () => children.forEach((c) => c.killNow());
  process.once('exit', killAll); // last resort if the stack itself dies

  try {
    log(`GPU service: starting (backend auto, model ${model.dir})`);
    const gpu = startManagedChild({
      name: 'GPU service',
      command: process.execPath,
      args: [bin, 'serve', '--model', model.dir, '--host', '127.0.0.1', '--port', String(gpuPortWanted), '--backend', 'auto', '--trust-tenant-header'],
      cwd: root,
      env: { ...env, IMAGEREWARD_API_KEYS: secret, IMAGEREWARD_HOME: home },
      prefix: '[gpu] ',
      forward: (line) => opts.log(`${line}\n`),
    });
    children.push(gpu);
    const ready = await Promise.race([serveReady(gpu), aborted(opts.stop)]);
    if (ready === 'stop') {
      await gpu.stop('SIGTERM', GPU_GRACE_MS);
      return 0;
    }
    if (!('url' in ready)) {
      throw new StackError(`the GPU service exited before it was ready (${describeExit(ready)}); the edge was not started. Its last output:\n${gpu.tail()}`);
    }
    const info = await modelsInfo(ready.url, secret);
    const modelId = info?.id ?? ready.modelId;
    const backend = info?.backend ?? ready.backend;

    // ---- the edge
    const stateDir = join(home, 'edge-state');
    const inspectorPort = await freePort();
    const edgeUrl = `http://127.0.0.1:${edgePort}`;
    log(`edge: starting wrangler dev on ${edgeUrl} (origin ${ready.url}, MODEL_ID ${modelId})`);
    const edge = startManagedChild({
      name: 'wrangler dev',
      command: process.execPath,
      args: [
        wrangler, 'dev',
        '--ip', '127.0.0.1',
        '--port', String(edgePort),
        '--inspector-port', String(inspectorPort),
        '--persist-to', stateDir,
        '--show-interactive-dev-session=false',
        '--var', `ORIGINS:${ready.url}`,
        '--var', `ORIGIN_SECRET:${secret}`,
        '--var', `MODEL_ID:${modelId}`,
        '--var', 'AUTH:off',
        '--var', 'WEBHOOK_ALLOW_INSECURE_LOOPBACK:on',
      ],
      cwd: root,
      env: { ...env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1', FORCE_COLOR: '0' },
      prefix: '[edge] ',
      forward: (line) => opts.log(`${line}\n`),
    });
    children.push(edge);

    const stopBoth = async () => {
      log('stopping: the edge, then the GPU service (it drains in-flight requests)');
      await edge.stop('SIGTERM', EDGE_GRACE_MS);
      await gpu.stop('SIGTERM', GPU_GRACE_MS);
      log('stopped');
    };
    const died = (c: ManagedChild) => c.exited.then((e) => ({ child: c, exit: e }));

    const deadline = Date.now() + (opts.edgeTimeoutMs ?? 120_000);
    for (;;) {
      if (opts.stop.aborted) {
        await stopBoth();
        return 0;
      }
      const dead = children.find((c) => c.hasExited());
      if (dead) {
        const other = dead === gpu ? edge : gpu;
        await other.stop('SIGTERM', dead === gpu ? EDGE_GRACE_MS : GPU_GRACE_MS);
        throw new StackError(`${dead.name} exited before the edge was ready; its last output:\n${dead.tail()}`);
      }
      if (await edgeHealthy(edgeUrl)) break;
      if (Date.now() > deadline) {
        await stopBoth();
        throw new StackError(`wrangler dev did not answer GET ${edgeUrl}/healthz within ${Math.round((opts.edgeTimeoutMs ?? 120_000) / 1000)} s; its last output:\n${edge.tail()}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }

    const image = await sampleImage(home, env);
    opts.out(
      stackSummary({
        edgeUrl,
        gpuUrl: ready.url,
        modelId,
        modelDir: model.dir,
        demo: model.demo,
        backend,
        skippedBackends: info?.skipped ?? [],
        stateDir,
        image,
        gpuPid: gpu.pid,
        edgePid: edge.pid,
      }),
    );
    if (model.demo) opts.out('DEMO MODEL: random weights, scores are meaningless — `npx imagereward fetch-model` (or IMAGEREWARD_MODEL=…) for the real one.\n');

    const first = await Promise.race([aborted(opts.stop), died(gpu), died(edge)]);
    if (first === 'stop') {
      await stopBoth();
      return 0;
    }
    const other = first.child === gpu ? edge : gpu;
    log(`${first.child.name} exited unexpectedly (${describeExit(first.exit)}); stopping ${other.name}`);
    await other.stop('SIGTERM', other === gpu ? GPU_GRACE_MS : EDGE_GRACE_MS);
    throw new StackError(`${first.child.name} exited unexpectedly (${describeExit(first.exit)}); its last output:\n${first.child.tail()}`);
  } catch (err) {
    // Whatever went wrong, no child outlives the stack.
    await Promise.all(children.map((c) => c.stop('SIGTERM', 5_000)));
    throw err;
  } finally {
    process.removeListener('exit', killAll);
  }
}
