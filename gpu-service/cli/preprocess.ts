// imagereward preprocess <image> --out <file> [--backend auto|native|reference]
// Writes the float32 little-endian 3×224×224 channel-major tensor (602,112 bytes)
// that the model consumes — byte-for-byte what upstream feeds BLIP, within 1e-6.
import { readFile, rename, writeFile, unlink } from 'node:fs/promises';
import { CliError, parseCommand, type Io } from './io.js';
import { preprocessImage, IMAGE_SIZE, type PreprocessOptions } from '../preprocess/index.js';

const HELP = `Usage:
  imagereward preprocess <image> --out <file> [options]

Options:
  --out <file>        where to write the tensor ("-" writes to stdout)
  --backend <name>    auto (default: native addon when built), native, reference
  --max-pixels <n>    refuse larger images (default 89478485, Pillow's limit)
  --max-bytes <n>     refuse larger files (default 33554432)

Output: float32 little-endian, shape 3x${IMAGE_SIZE}x${IMAGE_SIZE} (C, H, W), ${3 * IMAGE_SIZE * IMAGE_SIZE * 4} bytes:
Resize(${IMAGE_SIZE}, bicubic) -> CenterCrop(${IMAGE_SIZE}) -> RGB -> ToTensor -> Normalize (CLIP mean/std).
Exit status 1 with "error <code>: ..." on stderr for an unreadable or unsupported image.
`;

export async function preprocessCommand(argv: string[], io: Io): Promise<number> {
  const parsed = parseCommand(
    argv,
    {
      out: { type: 'string', short: 'o' },
      backend: { type: 'string', default: 'auto' },
      'max-pixels': { type: 'string' },
      'max-bytes': { type: 'string' },
    },
    HELP,
    io,
  );
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const input = positionals[0];
  if (positionals.length !== 1 || input === undefined || !values.out) {
    throw new CliError(`need one <image> and --out <file>\n\n${HELP}`, 2);
  }
  const backend = values.backend;
  if (backend !== 'auto' && backend !== 'native' && backend !== 'reference') {
    throw new CliError(`--backend must be auto, native or reference (got "${backend}")`, 2);
  }
  const opts: PreprocessOptions = { backend };
  if (values['max-pixels'] !== undefined) opts.maxPixels = positiveInt('--max-pixels', values['max-pixels']);
  if (values['max-bytes'] !== undefined) opts.maxBytes = positiveInt('--max-bytes', values['max-bytes']);

  let bytes: Buffer;
  try {
    bytes = await readFile(input);
  } catch (err) {
    throw new CliError(`cannot read ${input}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let tensor: Float32Array;
  try {
    tensor = await preprocessImage(bytes, opts);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') throw new CliError(`error ${code}: ${(err as Error).message}`, 1, code);
    throw err;
  }
  const out = Buffer.from(tensor.buffer, tensor.byteOffset, tensor.byteLength);
  if (!isLittleEndian()) throw new CliError('big-endian hosts are not supported', 1);
  if (values.out === '-') {
    process.stdout.write(out);
    return 0;
  }
  // Write beside the target and rename, so a reader never sees half a tensor.
  const tmp = `${values.out}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, out);
    await rename(tmp, values.out);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new CliError(`cannot write ${values.out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return 0;
}

function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) throw new CliError(`${flag} must be a positive integer (got "${text}")`, 2);
  return n;
}

function isLittleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}
