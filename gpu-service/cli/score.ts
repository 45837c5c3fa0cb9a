// imagereward score --model <dir|ImageReward.pt> --prompt "…" <image>... [--json]
// Scores images against a prompt with the ONNX Runtime backend (CPU by
// default), the images in batched forwards (64 a batch on the CUDA engine, 8 on ONNX Runtime).
import { CliError, EXIT, parseCommand, type Io } from './io.js';
import { ConvertError } from '../model/convert.js';
import { ModelDirError } from '../model/model-dir.js';
import { CheckpointValidationError } from '../model/architecture.js';
import { locateModel, noModelMessage } from '../model/locate.js';
import { ImageError } from '../preprocess/index.js';
import { NativeBackendError } from '../scorer/native-backend.js';
import { OrtBackendError } from '../scorer/ort-backend.js';
import { ScorerError, createScorer, type Scorer } from '../scorer/scorer.js';

const HELP = `Usage:
  imagereward score [--model <dir|ImageReward.pt>] --prompt <text> <image>... [--json]

Scores each image against the prompt (ImageReward's normalized reward; higher
is better). Any number of images; they go through the model in batches.

Options:
  --model <path>     a model directory (from \`imagereward convert\`), or an
                     ImageReward.pt checkpoint (default: $IMAGEREWARD_MODEL, else
                     the one \`imagereward fetch-model\` downloaded), converted on first use into
                     $IMAGEREWARD_HOME/models/<name>-<path hash> (or
                     <name>.model beside it)
  --prompt <text>    the prompt the images were generated from (required)
  --backend <name>   auto (default: the CUDA engine when it can run here, else
                     ONNX Runtime on CPU), native, or ort (fp32, same numbers
                     on every machine)
  --threads <n>      onnxruntime intra-op threads (default: one per core)
  --int8             ONNX Runtime with int8 weights (dynamic quantization):
                     ~2.5-4x faster on CPU, rewards within ~0.05 of fp32, near-ties
                     may swap; builds model.int8.bin once. Opt-in, never default
  --json             print {"model", "model_dir", "backend", "images", "rewards", "ranking"}
                     as JSON (model: the model id; ranking[i] is image i's
                     place, 1 = best)

Prints one line per image: "<reward>  <path>". Exit status 1 with
"error <code>: ..." for an unreadable or unsupported image.
`;

function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) throw new CliError(`${flag} must be a positive integer (got "${text}")`, EXIT.usage);
  return n;
}

/** Maps scorer-path errors to CLI errors (shared with verify-published). */
export function scoreFailure(err: unknown): never {
  if (err instanceof CliError) throw err;
  if (err instanceof ImageError) throw new CliError(`error ${err.code}: ${err.message}`, EXIT.failure, err.code);
  if (err instanceof ScorerError) {
    throw new CliError(err.code === 'image_unreadable' ? `error ${err.code}: ${err.message}` : err.message, EXIT.failure, err.code);
  }
  if (err instanceof ConvertError) throw new CliError(err.message, EXIT.failure, err.code);
  if (err instanceof CheckpointValidationError) throw new CliError(`the checkpoint does not match the ImageReward architecture: ${err.message}`, EXIT.failure);
  if (err instanceof ModelDirError || err instanceof OrtBackendError) throw new CliError(err.message, EXIT.failure);
  if (err instanceof NativeBackendError) throw new CliError(`the CUDA engine cannot run: ${err.message} (use --backend ort)`, EXIT.failure, err.code);
  throw err;
}

export async function scoreCommand(argv: string[], io: Io, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const parsed = parseCommand(
    argv,
    { model: { type: 'string' }, prompt: { type: 'string' }, json: { type: 'boolean' }, threads: { type: 'string' }, backend: { type: 'string' }, int8: { type: 'boolean' } },
    HELP,
    io,
  );
  if (!parsed) return EXIT.ok;
  const { values, positionals: images } = parsed;
  if (values.model === '') throw new CliError(`--model needs a path\n\n${HELP}`, EXIT.usage);
  if (values.prompt === undefined) throw new CliError(`--prompt <text> is required\n\n${HELP}`, EXIT.usage);
  if (images.length === 0) throw new CliError(`give at least one image\n\n${HELP}`, EXIT.usage);
  const model = values.model ?? locateModel(env)?.path;
  if (model === undefined) throw new CliError(noModelMessage(env), EXIT.failure, 'model_not_found');
  const threads = values.threads !== undefined ? positiveInt('--threads', values.threads) : undefined;
  const backend = values.backend ?? 'auto';
  if (backend !== 'auto' && backend !== 'ort' && backend !== 'native') throw new CliError(`--backend must be auto, native or ort (got "${backend}")`, EXIT.usage);

  let scorer: Scorer | undefined;
  try {
    const ort = { ...(threads !== undefined ? { intraOpNumThreads: threads } : {}), ...(values.int8 === true ? { precision: 'int8' as const } : {}) };
    scorer = await createScorer({ model, backend: values.int8 === true && backend === 'auto' ? 'ort' : backend, ort });
    const { rewards, ranking } = await scorer.rank(values.prompt, images);
    if (values.json === true) {
      io.stdout(`${JSON.stringify({ model: scorer.modelId, model_dir: scorer.modelDir, backend: scorer.backend, images, rewards, ranking })}\n`);
    } else {
      rewards.forEach((r, i) => io.stdout(`${r.toFixed(6)}  ${images[i]!}\n`));
    }
    return EXIT.ok;
  } catch (err) {
    return scoreFailure(err);
  } finally {
    await scorer?.dispose();
  }
}
