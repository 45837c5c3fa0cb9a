// Atomic model directories: a directory is written in full beside its target
// (`<out>.tmp-<pid>-<random>`), fsynced, then renamed into place; an existing
// target is moved aside (`<out>.old-…`) first and deleted only after the new one
// is in, so readers see the old directory or the new one, never a mix (convert.ts,
// random-model.ts).
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export function tempSibling(target: string, tag: string): string {
  return `${target}.${tag}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } catch (err) {
    // Some filesystems refuse fsync on directories; file data is what matters.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw err;
  } finally {
    await fh.close();
  }
}

/**
 * fsyncs `files` in `tmp` and `tmp` itself, then puts `tmp` at `out`: a plain rename,
 * or (when `replace`) old aside → new in → old deleted, restoring the old one if the
 * second rename fails. On return `tmp` no longer exists.
 */
export async function installDir(tmp: string, out: string, files: readonly string[], replace: boolean): Promise<void> {
  for (const f of files) await fsyncPath(join(tmp, f));
  await fsyncPath(tmp);
  if (replace) {
    const old = tempSibling(out, 'old');
    await rename(out, old);
    try {
      await rename(tmp, out);
    } catch (err) {
      await rename(old, out).catch(() => {});
      throw err;
    }
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(tmp, out);
  }
  await fsyncPath(dirname(out));
}
