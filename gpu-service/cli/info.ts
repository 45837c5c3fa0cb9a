// imagereward info — what this installation can do: versions, whether the
// native addon loaded (and why not), and which preprocessing path is in use.
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import type { Io } from './io.js';
import { native, nativeLoadError } from '../../native/index.js';
import { packageVersion } from '../package-root.js';

export async function infoCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' } } });
  const info = {
    version: packageVersion(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    sharp: sharp.versions,
    native: native ? { loaded: true, ...native.buildInfo() } : { loaded: false, reason: nativeLoadError },
    preprocessing: native ? 'native (C++ Pillow-exact resampler)' : 'reference (TypeScript)',
  };
  if (values.json) {
    io.stdout(JSON.stringify(info, null, 2) + '\n');
    return 0;
  }
  io.stdout(
    [
      `imagereward-serve ${info.version} (node ${info.node}, ${info.platform})`,
      `sharp ${info.sharp.sharp ?? '?'} (libvips ${info.sharp.vips})`,
      `native addon: ${native ? `loaded, cuda=${String(info.native.loaded && native.buildInfo().cuda)}` : `not loaded (${nativeLoadError ?? 'unknown'})`}`,
      `preprocessing: ${info.preprocessing}`,
      '',
    ].join('\n'),
  );
  return 0;
}
