// `imagereward` command dispatcher. Each subcommand lives in its own file and
// returns an exit code; later issues add serve, fetch-model, convert, score…
import { CliError, type Io, processIo } from './io.js';
import { tokenizeCommand } from './tokenize.js';
import { preprocessCommand } from './preprocess.js';
import { infoCommand } from './info.js';
import { fetchModelCommand } from './fetch-model.js';
import { convertCommand } from './convert.js';
import { scoreCommand } from './score.js';
import { demoModelCommand } from './demo-model.js';
import { verifyPublishedCommand } from './verify-published.js';
import { serveCommand } from './serve.js';
import { keysCommand } from './keys.js';
import { stackCommand } from './stack.js';
import { packageVersion } from '../package-root.js';

type Command = (argv: string[], io: Io) => Promise<number>;

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  tokenize: { run: tokenizeCommand, summary: 'Token ids + attention mask exactly as ImageReward sees a prompt' },
  preprocess: { run: preprocessCommand, summary: 'Write the model-ready 3x224x224 float32 tensor of an image' },
  'fetch-model': { run: fetchModelCommand, summary: 'Download ImageReward.pt, med_config.json and vocab.txt from the Hub (resumable, verified)' },
  score: { run: scoreCommand, summary: 'Score images against a prompt (ONNX Runtime on CPU); --json for rewards + ranking' },
  convert: { run: convertCommand, summary: 'Turn an ImageReward.pt checkpoint into a validated model directory (safetensors)' },
  'verify-published': { run: verifyPublishedCommand, summary: "Check the released weights reproduce upstream's published example rewards" },
  'demo-model': { run: demoModelCommand, summary: 'Write a model directory of random weights (demos, benchmarks; scores mean nothing)' },
  serve: { run: serveCommand, summary: 'Serve the scoring HTTP API (POST /v1/score, /healthz, /metrics, /openapi.json …)' },
  keys: { run: keysCommand, summary: 'Create, list and revoke the edge\'s API keys (through its admin API)' },
  stack: { run: stackCommand, summary: 'Run the whole stack locally: GPU service + edge (wrangler dev), wired together' },
  info: { run: infoCommand, summary: 'Versions, native addon status and backends' },
};

export function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(17)} ${c.summary}`);
  return [
    'Usage: imagereward <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `imagereward <command> --help` for a command\'s options.',
    '',
  ].join('\n');
}

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    io.stdout(`${packageVersion()}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr(`imagereward: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (err instanceof CliError) {
      io.stderr(`imagereward ${name}: ${err.message}\n`);
      return err.exitCode;
    }
    io.stderr(`imagereward ${name}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 70;
  }
}
