// One clear line for "the model cannot be loaded", shared by `imagereward serve`
// and `imagereward stack`: a corrupt or truncated model.safetensors, a garbage or
// truncated ImageReward.pt, a model directory missing a file, a disk that filled
// up while a checkpoint was converted. Such failures are the user's files, not
// bugs, so they get a sentence naming the file and what to do, never a stack
// trace. Anything not recognised returns undefined (the caller's generic path).
import { CheckpointValidationError } from '../model/architecture.js';
import { CheckpointError } from '../model/checkpoint.js';
import { ConvertError } from '../model/convert.js';
import { ModelDirError } from '../model/model-dir.js';
import { PickleError } from '../model/pickle.js';
import { SafetensorsError } from '../model/safetensors.js';
import { ZipFormatError } from '../model/zip.js';

/** Error codes of a full disk (or a file-size limit, which looks the same to a writer). */
const DISK_FULL = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

function withPath(message: string, path: string): string {
  return message.includes(path) ? message : `${path}: ${message}`;
}

export function describeModelError(err: unknown, model: string): string | undefined {
  if (err instanceof SafetensorsError) {
    return `corrupt model file: ${withPath(err.message, model)} — re-create the model directory (\`imagereward convert <ImageReward.pt> --out <dir> --force\`)`;
  }
  if (err instanceof CheckpointError || err instanceof ZipFormatError || err instanceof PickleError) {
    return `corrupt checkpoint: ${withPath(err.message, model)} — download it again (\`imagereward fetch-model\`)`;
  }
  if (err instanceof CheckpointValidationError) return `${model} does not match the ImageReward architecture: ${err.message}`;
  if (err instanceof ConvertError || err instanceof ModelDirError) return err.message;
  if (!(err instanceof Error)) return undefined;
  const e = err as NodeJS.ErrnoException;
  // Only file-system errors carry a path; a listen() error does not, and stays generic.
  if (typeof e.code === 'string' && typeof e.path === 'string') {
    if (DISK_FULL.has(e.code)) return `cannot write ${e.path}: ${e.code} (disk full or file too large); nothing was installed, the previous model (if any) is untouched`;
    if (e.code === 'ENOENT') return `model file missing: ${e.path} — the model directory is incomplete; re-create it with \`imagereward convert\``;
    return `cannot read ${e.path}: ${e.code}`;
  }
  // createScoreService's own plain errors about the --model path.
  if (/^no model at |is not a model directory/.test(err.message)) return err.message;
  return undefined;
}
