// One progress line for long steps (download, conversion). On a terminal it is
// redrawn in place (\r + erase line) at most ~10 times a second; into a pipe or a
// log file it prints a whole line at most once a second, so `npm start > log`
// stays readable and a 1.8 GB download does not write a million lines.
export interface ProgressLineOptions {
  write: (text: string) => void;
  /** Redraw in place (a terminal) or print throttled lines. */
  isTTY: boolean;
  /** Minimum time between two non-TTY lines (default 1000 ms). */
  intervalMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export class ProgressLine {
  private last = -Infinity;
  private drawn = false;
  private pending: string | undefined;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: ProgressLineOptions) {
    this.intervalMs = opts.intervalMs ?? (opts.isTTY ? 100 : 1000);
    this.now = opts.now ?? Date.now;
  }

  /** Shows `text` if enough time has passed since the last line; otherwise keeps it for done(). */
  update(text: string): void {
    const t = this.now();
    if (t - this.last < this.intervalMs) {
      this.pending = text;
      return;
    }
    this.last = t;
    this.pending = undefined;
    this.show(text);
  }

  /** Ends the line: prints `text` (or the last suppressed update) as a final, whole line. */
  done(text?: string): void {
    const final = text ?? this.pending;
    this.pending = undefined;
    if (final !== undefined) this.show(final);
    if (this.drawn) this.opts.write('\n');
    this.drawn = false;
    this.last = -Infinity;
  }

  /** Erases an in-place line without printing anything (before an error message). */
  clear(): void {
    if (this.drawn) this.opts.write('\r\x1b[2K');
    this.drawn = false;
    this.pending = undefined;
    this.last = -Infinity;
  }

  private show(text: string): void {
    if (this.opts.isTTY) {
      this.opts.write(`\r\x1b[2K${text}`);
      this.drawn = true;
    } else {
      this.opts.write(`${text}\n`);
    }
  }
}
