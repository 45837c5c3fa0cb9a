// Atomic model directories: a directory is written in full beside its target
// (`<out>.tmp-<pid>-<random>`), fsynced, then renamed into place; an existing
// target is moved aside (`<out>.old-…`) first and deleted only after the new one
// is in, so readers see the old directory or the new one, never a mix (convert.ts,
// random-model.ts).
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export function tempSibling(target: string, tag: string): string {
  return `${target}.${tag}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

function processRuns(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Deletes `<out>.tmp-<pid>-<hex>` siblings whose process no longer runs: what a
 * killed or crashed writer (SIGKILL, power loss mid-conversion) left behind. Such
 * a directory is never read (only `out` is), so this is about disk space, which a
 * half-written 1.8 GB model wastes. `.old-` siblings are left alone: after a crash
 * between installDir's two renames one may be the only complete copy. Returns the
 * paths removed.
 */
export async function removeStaleTemps(out: string): Promise<string[]> {
  const base = basename(out);
  const names = await readdir(dirname(out)).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(`${base}.tmp-`)) continue;
    const m = /^(\d+)-[0-9a-f]+$/.exec(name.slice(base.length + 5));
    if (!m || processRuns(Number(m[1]))) continue;
    const path = join(dirname(out), name);
    await rm(path, { recursive: true, force: true }).catch(() => {});
    removed.push(path);
  }
  return removed;
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
