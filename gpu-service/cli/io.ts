// Output sinks and the error type of the CLI. Subcommands write through `Io`
// so tests can drive `main()` in-process as well as through the real binary.
import { writeSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
}

export function processIo(): Io {
  // Synchronous writes: output stays ordered and complete even when the
  // process exits right after (pipes to `head`, large --file runs).
  return {
    stdout: (t) => writeAll(1, t),
    stderr: (t) => writeAll(2, t),
  };
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') continue;
      if (code === 'EPIPE') return; // reader went away (e.g. `| head`): not an error
      throw err;
    }
  }
}

/** An expected failure: printed as one line, no stack, with this exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = 1,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Exit codes (sysexits-style where one fits). */
export const EXIT = { ok: 0, failure: 1, usage: 2, software: 70 } as const;

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * parseArgs with the CLI's conventions: positionals allowed, `--help`/`-h`
 * prints `help` (→ undefined: the command returns 0), a parse error is a
 * usage error (exit 2) followed by the help text.
 */
export function parseCommand<T extends Options>(
  argv: string[],
  options: T,
  help: string,
  io: Io,
): ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: T }>> | undefined {
  const end = argv.indexOf('--');
  const flags = end === -1 ? argv : argv.slice(0, end); // after `--`, "-h" is a prompt
  if (flags.includes('--help') || flags.includes('-h')) {
    io.stdout(help);
    return undefined;
  }
  try {
    return parseArgs({ args: argv, allowPositionals: true, options });
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${help}`, EXIT.usage);
  }
}

/** Commands that take flags only: any positional argument is a usage error (exit 2). */
export function rejectPositionals(positionals: readonly string[], help: string): void {
  if (positionals.length > 0) throw new CliError(`unexpected argument "${positionals[0]!}"\n\n${help}`, EXIT.usage);
}
