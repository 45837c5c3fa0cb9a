// imagereward demo-model --out <dir> [--size tiny|full] [--seed N] [--force]
// Writes a model directory with random (untrained) weights in ImageReward's
// layout: for demos, benchmarks and parity tests without the real checkpoint.
// Its scores mean nothing (config.json: model_id "random-demo", source.generated).
import { CliError, EXIT, type Io, parseCommand, rejectPositionals } from './io.js';
import { IMAGEREWARD_CONFIG } from '../model/architecture.js';
import { RandomModelError, TINY_RANDOM_CONFIG, writeRandomModel } from '../model/random-model.js';

const HELP = `Usage:
  imagereward demo-model --out <dir> [--size tiny|full] [--seed N] [--force]

Writes a model directory (model.safetensors + config.json + vocab.txt) holding
RANDOM, UNTRAINED weights in the ImageReward layout. Its rewards mean nothing:
use it for demos, benchmarks and parity tests when the real checkpoint is not
available. config.json says so (model_id "random-demo", source.generated).

The same seed and size give byte-identical weights on every machine; running
again with the same options is a no-op.

Options:
  --out <dir>        the model directory to create (required)
  --size <size>      tiny (default: 32-wide, 2 layers, 224-px images, the real
                     vocab; 4 MB) or full (ImageReward-v1.0's architecture; 1.8 GB)
  --seed <n>         non-negative integer (default 0)
  --force            replace <dir> if it holds something else

Prints the directory on stdout.
`;

export async function demoModelCommand(argv: string[], io: Io): Promise<number> {
  const parsed = parseCommand(
    argv,
    { out: { type: 'string' }, size: { type: 'string' }, seed: { type: 'string' }, force: { type: 'boolean' } },
    HELP,
    io,
  );
  if (!parsed) return EXIT.ok;
  const { values, positionals } = parsed;
  rejectPositionals(positionals, HELP);
  if (values.out === undefined || values.out === '') throw new CliError(`--out <dir> is required\n\n${HELP}`, EXIT.usage);
  const size = values.size ?? 'tiny';
  if (size !== 'tiny' && size !== 'full') throw new CliError(`--size must be tiny or full (got "${size}")`, EXIT.usage);
  let seed = 0;
  if (values.seed !== undefined) {
    seed = /^\d+$/.test(values.seed) ? Number(values.seed) : NaN;
    if (!Number.isSafeInteger(seed)) throw new CliError(`--seed must be a non-negative integer (got "${values.seed}")`, EXIT.usage);
  }

  let dir: string;
  try {
    ({ dir } = await writeRandomModel({
      out: values.out,
      config: size === 'full' ? IMAGEREWARD_CONFIG : TINY_RANDOM_CONFIG,
      seed,
      force: values.force === true,
      onProgress: (p) => {
        if (p.phase === 'up-to-date') io.stderr(`${p.dir} already holds this random model; nothing to do\n`);
        else if (p.phase === 'writing') io.stderr(`writing ${p.tensors ?? 0} random tensors (${((p.bytes ?? 0) / (1024 * 1024)).toFixed(1)} MiB, seed ${seed})\n`);
        else io.stderr('done (random weights: scores mean nothing)\n');
      },
    }));
  } catch (err) {
    if (err instanceof RandomModelError) throw new CliError(err.message, EXIT.failure, err.code);
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string') throw new CliError(`cannot write ${values.out}: ${code} (${(err as Error).message})`, EXIT.failure);
    throw err;
  }
  io.stdout(`${dir}\n`);
  return EXIT.ok;
}
