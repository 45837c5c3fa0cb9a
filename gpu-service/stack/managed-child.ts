// A child process of the stack in its own process group: its output is
// forwarded line by line with a prefix ("[gpu] ", "[edge] ") and the last lines
// are kept for the error report when it dies; stop() signals the whole group
// (wrangler starts workerd, which must not outlive it), waits, and escalates to
// SIGKILL after a grace period. Its own group also means a terminal's Ctrl-C
// reaches only the stack, which then stops the children in order.
import { spawn, type ChildProcess } from 'node:child_process';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedChild {
  readonly name: string;
  readonly pid: number;
  /** Resolves once the child has exited (never rejects). */
  readonly exited: Promise<ChildExit>;
  hasExited(): boolean;
  /** The last lines it printed (stdout and stderr interleaved). */
  tail(lines?: number): string;
  /** Called with every complete output line (after forwarding). */
  onLine(listener: (line: string) => void): void;
  /** Signal the group, wait up to graceMs, then SIGKILL the group. Idempotent. */
  stop(signal: NodeJS.Signals, graceMs: number): Promise<ChildExit>;
  /** SIGKILL the group now (synchronous; for process 'exit' hooks). */
  killNow(): void;
}

export interface ManagedChildOptions {
  name: string;
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Where forwarded lines go (already prefixed); omit to keep output only for tail(). */
  forward?: (line: string) => void;
  /** Prefix for forwarded lines, e.g. "[gpu] ". */
  prefix: string;
  /** Lines kept for tail() (default 60). */
  keepLines?: number;
}

/** Signals the child's whole process group (it was spawned detached), else the child alone. */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export function startManagedChild(opts: ManagedChildOptions): ManagedChild {
  const child = spawn(opts.command, opts.args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = opts.keepLines ?? 60;
  const recent: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  let exitInfo: ChildExit | undefined;

  const lineReader = () => {
    let partial = '';
    return (chunk: Buffer) => {
      partial += chunk.toString('utf8');
      const parts = partial.split(/\r?\n/);
      partial = parts.pop() ?? '';
      for (const raw of parts) {
        const line = raw.replace(ANSI, '');
        recent.push(line);
        if (recent.length > keep) recent.shift();
        if (line.trim() !== '') opts.forward?.(`${opts.prefix}${line}`);
        for (const l of listeners) l(line);
      }
    };
  };
  child.stdout!.on('data', lineReader());
  child.stderr!.on('data', lineReader());

  const exited = new Promise<ChildExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
    child.once('error', (err) => {
      recent.push(`[spawn error] ${err.message}`);
      exitInfo = { code: null, signal: null };
      resolve(exitInfo);
    });
  });

  let stopping: Promise<ChildExit> | undefined;
  return {
    name: opts.name,
    pid: child.pid ?? -1,
    exited,
    hasExited: () => exitInfo !== undefined,
    tail: (lines = 20) => recent.slice(-lines).join('\n'),
    onLine: (l) => listeners.push(l),
    stop(signal, graceMs) {
      stopping ??= (async () => {
        if (exitInfo === undefined) {
          signalGroup(child, signal);
          const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
          await exited;
          clearTimeout(timer);
        }
        // Grandchildren (workerd) may outlive the leader for a moment: end the rest of the group.
        signalGroup(child, 'SIGKILL');
        return exitInfo ?? (await exited);
      })();
      return stopping;
    },
    killNow: () => signalGroup(child, 'SIGKILL'),
  };
}
