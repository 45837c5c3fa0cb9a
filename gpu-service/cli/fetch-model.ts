// imagereward fetch-model [--home <dir>] [--revision <rev>] [--endpoint <url>]
// Downloads (or verifies) ImageReward.pt, med_config.json and bert-base-uncased's
// vocab.txt into the cache and prints the model dir on stdout. Progress goes to
// stderr: a live bar when stderr is a terminal, else one line per finished file.
import { CliError, EXIT, type Io, parseCommand, rejectPositionals } from './io.js';
import {
  DEFAULT_ENDPOINT,
  FetchError,
  fetchModel,
  type FetchedFile,
  type FetchModelOptions,
  type FetchProgress,
} from '../model/fetch.js';

const HELP = `Usage:
  imagereward fetch-model [--home <dir>] [--revision <rev>] [--endpoint <url>]

Downloads ImageReward.pt and med_config.json (THUDM/ImageReward) and vocab.txt
(bert-base-uncased) from the Hugging Face Hub, verifies their size and sha256,
and prints the model dir. Interrupted downloads resume on the next run; files
already in place are only verified.

Options:
  --home <dir>       cache root (default: $IMAGEREWARD_HOME or ~/.cache/imagereward);
                     files land in <home>/hub/<org>--<repo>/<revision>/
  --revision <rev>   THUDM/ImageReward revision (default: main)
  --endpoint <url>   Hub endpoint (default: $HF_ENDPOINT or ${DEFAULT_ENDPOINT})

Environment:
  HF_TOKEN           sent as a Bearer token to the Hub (never to the CDN it redirects to)
  HF_ENDPOINT        a Hub mirror
  IMAGEREWARD_HOME   the cache root
`;

export interface FetchModelCommandDeps {
  /** Draw a live progress bar (default: process.stderr.isTTY). */
  isTTY?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Extra fetchModel options (tests: files, retry timing). */
  fetchOptions?: Partial<FetchModelOptions>;
}

export async function fetchModelCommand(argv: string[], io: Io, deps: FetchModelCommandDeps = {}): Promise<number> {
  const parsed = parseCommand(
    argv,
    { home: { type: 'string' }, revision: { type: 'string' }, endpoint: { type: 'string' } },
    HELP,
    io,
  );
  if (!parsed) return EXIT.ok;
  const { values, positionals } = parsed;
  rejectPositionals(positionals, HELP);
  for (const key of ['home', 'revision', 'endpoint'] as const) {
    if (values[key] === '') throw new CliError(`--${key} must not be empty\n\n${HELP}`, EXIT.usage);
  }
  if (values.endpoint !== undefined && !/^https?:\/\//i.test(values.endpoint)) {
    throw new CliError(`--endpoint must be an http(s) URL, got "${values.endpoint}"`, EXIT.usage);
  }

  const tty = deps.isTTY ?? Boolean(process.stderr.isTTY);
  const progress = tty ? new ProgressBar(io) : undefined;
  const started = new Map<string, { at: number; from: number }>();

  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    const result = await fetchModel({
      ...(values.home !== undefined ? { home: values.home } : {}),
      ...(values.revision !== undefined ? { revision: values.revision } : {}),
      ...(values.endpoint !== undefined ? { endpoint: values.endpoint } : {}),
      ...(deps.env ? { env: deps.env } : {}),
      signal: controller.signal,
      onProgress: (p: FetchProgress) => {
        if (!started.has(p.file)) started.set(p.file, { at: Date.now(), from: p.received });
        progress?.update(p, started.get(p.file)!);
      },
      onFileDone: (f: FetchedFile) => {
        progress?.clear();
        const s = started.get(f.file);
        const secs = s ? (Date.now() - s.at) / 1000 : 0;
        const rate = f.downloaded && s && secs > 0 ? `, ${formatBytes((f.size - s.from) / secs)}/s` : '';
        io.stderr(`${f.file}  ${formatBytes(f.size)}  ${f.downloaded ? `downloaded${rate}` : 'already present'}  sha256 ok\n`);
      },
      ...deps.fetchOptions,
    });
    io.stdout(`${result.dir}\n`);
    return EXIT.ok;
  } catch (err) {
    progress?.clear();
    if (err instanceof FetchError) throw new CliError(err.message, EXIT.failure, err.code);
    throw err;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

/** One-line progress bar redrawn in place (\r) at most ~10 times a second. */
class ProgressBar {
  private last = 0;
  private drawn = false;
  constructor(private readonly io: Io) {}

  update(p: FetchProgress, start: { at: number; from: number }): void {
    const now = Date.now();
    const done = p.total !== undefined && p.received >= p.total;
    if (!done && now - this.last < 100) return;
    this.last = now;
    const secs = (now - start.at) / 1000;
    const rate = secs > 0.05 ? `${formatBytes((p.received - start.from) / secs)}/s` : '';
    let line: string;
    if (p.total !== undefined && p.total > 0) {
      const frac = Math.min(1, p.received / p.total);
      const width = 24;
      const fill = Math.round(frac * width);
      line = `${p.file} [${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${(frac * 100).toFixed(1).padStart(5)}%  ` +
        `${formatBytes(p.received)} / ${formatBytes(p.total)}  ${rate}`;
    } else {
      line = `${p.file}  ${formatBytes(p.received)}  ${rate}`;
    }
    this.io.stderr(`\r\x1b[2K${line}`);
    this.drawn = true;
  }

  clear(): void {
    if (this.drawn) this.io.stderr('\r\x1b[2K');
    this.drawn = false;
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2)} ${units[i]}`;
}
