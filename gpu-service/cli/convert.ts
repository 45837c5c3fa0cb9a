// imagereward convert <ImageReward.pt> --out <dir> [--force]
// Converts the upstream torch checkpoint into a model directory
// (model.safetensors + config.json + vocab.txt). Progress goes to stderr; the
// directory is printed on stdout.
import { readFile } from 'node:fs/promises';
import { CliError, EXIT, parseCommand, type Io } from './io.js';
import { CheckpointValidationError, checkConfig, type ImageRewardConfig } from '../model/architecture.js';
import { CheckpointError } from '../model/checkpoint.js';
import { ConvertError, convertCheckpoint, type ConvertProgress } from '../model/convert.js';
import { SafetensorsError } from '../model/safetensors.js';
import { PickleError } from '../model/pickle.js';
import { ZipFormatError } from '../model/zip.js';

const HELP = `Usage:
  imagereward convert <ImageReward.pt> --out <dir> [--force]

Converts ImageReward's torch checkpoint into a model directory:
  model.safetensors   the tensors the scoring pass needs (float32, upstream names)
  config.json         architecture, reward normalization, source file sha256
  vocab.txt           the BERT vocab

Every needed tensor is checked (name, shape, dtype) before anything is written,
and the directory appears atomically or not at all. Re-running on the same
checkpoint is a no-op; a directory holding something else is only replaced
with --force.

Options:
  --out <dir>        the model directory to create (required)
  --force            replace <dir> if it holds a different conversion
  --vocab <path>     a BERT vocab.txt other than the bundled bert-base-uncased one
  --model-id <id>    the model id to record (default: ImageReward-v1.0 for the
                     released checkpoint, recognised by its sha256; otherwise the
                     checkpoint's file name)
  --config <json>    advanced, for tests and custom sizes: architecture
                     hyper-parameters ({vision, text, mlp}, or a file with a
                     "config" key holding them) instead of ImageReward-v1.0's

Prints the directory on stdout.
`;

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

async function readConfig(path: string): Promise<ImageRewardConfig> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new CliError(`cannot read --config ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const obj = (typeof parsed === 'object' && parsed !== null && 'config' in parsed ? (parsed as { config: unknown }).config : parsed) as Partial<ImageRewardConfig> | null;
  if (typeof obj !== 'object' || obj === null || typeof obj.vision !== 'object' || typeof obj.text !== 'object' || !Array.isArray(obj.mlp)) {
    throw new CliError(`--config ${path} must hold {"vision": {...}, "text": {...}, "mlp": [...]}`);
  }
  const config = { vision: obj.vision, text: obj.text, mlp: obj.mlp } as ImageRewardConfig;
  try {
    checkConfig(config);
  } catch (err) {
    throw new CliError(`--config ${path}: ${(err as Error).message}`);
  }
  return config;
}

export async function convertCommand(argv: string[], io: Io): Promise<number> {
  const parsed = parseCommand(
    argv,
    { out: { type: 'string' }, force: { type: 'boolean' }, vocab: { type: 'string' }, config: { type: 'string' }, 'model-id': { type: 'string' } },
    HELP,
    io,
  );
  if (!parsed) return EXIT.ok;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new CliError(`give exactly one checkpoint path\n\n${HELP}`, EXIT.usage);
  if (values.out === undefined || values.out === '') throw new CliError(`--out <dir> is required\n\n${HELP}`, EXIT.usage);
  const checkpoint = positionals[0]!;
  const config = values.config !== undefined ? await readConfig(values.config) : undefined;
  if (values['model-id'] !== undefined && !/^[\w.:@+-]{1,128}$/.test(values['model-id'])) {
    throw new CliError(`--model-id must be 1-128 characters of letters, digits and . : @ + - _ (got "${values['model-id']}")`, EXIT.usage);
  }

  const onProgress = (p: ConvertProgress): void => {
    switch (p.phase) {
      case 'hashing':
        io.stderr(`hashing ${p.file} (${mib(p.bytes)})\n`);
        break;
      case 'up-to-date':
        io.stderr(`${p.dir} already holds this checkpoint's conversion; nothing to do\n`);
        break;
      case 'validating':
        io.stderr(`validating ${p.tensors} tensors\n`);
        break;
      case 'writing':
        io.stderr(`writing ${p.tensors} tensors (${mib(p.bytes)})\n`);
        break;
      case 'tensor':
        break;
      case 'done':
        io.stderr(`done\n`);
        break;
    }
  };

  let dir: string;
  try {
    ({ dir } = await convertCheckpoint({
      checkpoint,
      out: values.out,
      force: values.force === true,
      onProgress,
      ...(config !== undefined ? { config } : {}),
      ...(values.vocab !== undefined ? { vocab: values.vocab } : {}),
      ...(values['model-id'] !== undefined ? { modelId: values['model-id'] } : {}),
    }));
  } catch (err) {
    if (err instanceof CheckpointValidationError) throw new CliError(`${checkpoint} does not match the ImageReward architecture: ${err.message}`, EXIT.failure, 'convert_invalid');
    if (err instanceof ConvertError) throw new CliError(err.message, EXIT.failure, err.code);
    if (err instanceof CheckpointError || err instanceof ZipFormatError || err instanceof PickleError) {
      throw new CliError(err.message, EXIT.failure, 'convert_bad_checkpoint');
    }
    if (err instanceof SafetensorsError) throw new CliError(err.message, EXIT.failure);
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string') throw new CliError(`cannot write ${values.out}: ${code} (${(err as Error).message})`, EXIT.failure);
    throw err;
  }
  io.stdout(`${dir}\n`);
  return EXIT.ok;
}
