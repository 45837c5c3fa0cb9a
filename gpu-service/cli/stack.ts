// imagereward stack [--edge-port n] [--gpu-port n] [--model path] [--demo] [--offline]
// The whole system on this machine (what `npm start` runs): the GPU service on
// the best backend and the edge under `wrangler dev`, wired together, until
// Ctrl-C (SIGINT) or SIGTERM stops both; see gpu-service/stack/run-stack.ts.
import { CliError, EXIT, type Io, parseCommand, rejectPositionals } from './io.js';
import { runStack, StackError } from '../stack/run-stack.js';

const HELP = `Usage:
  imagereward stack [--edge-port <n>] [--gpu-port <n>] [--model <dir|ImageReward.pt>] [--demo] [--offline]

Runs the whole stack locally: the GPU service (\`imagereward serve\`, best
backend, a random origin key, a free loopback port) and the edge in front of it
(\`wrangler dev\`, AUTH off: for local use only), then prints the URLs and
ready-to-paste curl lines. Ctrl-C stops both (the GPU service drains) and exits 0.

The model, in this order: --model / $IMAGEREWARD_MODEL (a model dir, or an
ImageReward.pt converted once into $IMAGEREWARD_HOME/models/); the checkpoint
\`imagereward fetch-model\` put in the cache; a download from the Hub (with
progress; HF_ENDPOINT honoured); else a DEMO model of random weights (scores
meaningless) in $IMAGEREWARD_HOME/demo-model.

Options:
  --edge-port <n>   the edge's port (default $EDGE_PORT, else 8787)
  --gpu-port <n>    the GPU service's port (default $GPU_PORT, else a free one)
  --model <path>    a model directory or ImageReward.pt
  --demo            serve the demo model (random weights) whatever is available
  --offline         never download (also IMAGEREWARD_OFFLINE=1)

Environment:
  IMAGEREWARD_HOME       cache and state (default ~/.cache/imagereward): models,
                         demo-model/, edge-state/ (the edge's local KV, queues, jobs)
  IMAGEREWARD_DEMO_SIZE  tiny (default; starts in seconds) or full (1.8 GB of random weights)
`;

function port(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw new CliError(`${flag} must be a port number 1-65535 (got "${text}")`, EXIT.usage);
  return n;
}

export async function stackCommand(argv: string[], io: Io, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const s = { type: 'string' } as const;
  const parsed = parseCommand(
    argv,
    { 'edge-port': s, 'gpu-port': s, model: s, demo: { type: 'boolean' }, offline: { type: 'boolean' } },
    HELP,
    io,
  );
  if (!parsed) return EXIT.ok;
  const { values: v, positionals } = parsed;
  rejectPositionals(positionals, HELP);
  if (v.model === '') throw new CliError(`--model needs a path\n\n${HELP}`, EXIT.usage);
  if (v.model !== undefined && v.demo === true) throw new CliError('--model and --demo exclude each other', EXIT.usage);
  const edgePort = port('--edge-port', v['edge-port']);
  const gpuPort = port('--gpu-port', v['gpu-port']);

  // First Ctrl-C: stop in order (edge, then the GPU service drains). A second one
  // while that runs: the children are killed by the process 'exit' hook, exit 130.
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      io.stderr(`\n[stack] ${signal}: stopping (again to force)\n`);
      controller.abort();
    } else {
      io.stderr(`[stack] ${signal} again: killing everything\n`);
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await runStack({
      env,
      out: (t) => io.stdout(t),
      log: (t) => io.stderr(t),
      isTTY: Boolean(process.stderr.isTTY),
      stop: controller.signal,
      ...(edgePort !== undefined ? { edgePort } : {}),
      ...(gpuPort !== undefined ? { gpuPort } : {}),
      ...(v.model !== undefined ? { model: v.model } : {}),
      ...(v.demo === true ? { demo: true } : {}),
      ...(v.offline === true ? { offline: true } : {}),
    });
  } catch (err) {
    if (err instanceof StackError) throw new CliError(err.message, EXIT.failure);
    throw err;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
