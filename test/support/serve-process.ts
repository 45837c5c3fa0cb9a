// `imagereward serve` (the built CLI, dist/) as a child process for the end-to-end
// tests: ONNX Runtime (or the native backend), one thread, one preprocess worker, the given API key (the
// edge's origin secret), on a given or free loopback port. Resolves once the
// service prints its ready line; rejects with its output if it exits first.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'imagereward.js');

export interface ServeProcess {
  child: ChildProcess;
  /** http://127.0.0.1:<port> */
  url: string;
  exited: Promise<void>;
  /** SIGKILL (a crash, as the fault tests want it) and wait for the exit. */
  kill(): Promise<void>;
}

export interface ServeProcessOptions {
  modelDir: string;
  apiKey: string;
  /** Default 0: a free port. */
  port?: number;
  /** More `serve` flags (e.g. --trust-tenant-header). */
  extraArgs?: readonly string[];
  /** Default 'ort'. */
  backend?: 'ort' | 'native' | 'auto';
  /** More environment for the child (e.g. IMAGEREWARD_NATIVE_ADDON). */
  env?: NodeJS.ProcessEnv;
  /** Called with the child as soon as it is spawned (leak tracking). */
  onSpawn?: (child: ChildProcess) => void;
}

/** Output kept for the error message when the service exits before it listens. */
const MAX_OUTPUT = 64 * 1024;

export function startServeProcess(opts: ServeProcessOptions): Promise<ServeProcess> {
  const args = [BIN, 'serve', '--model', opts.modelDir, '--host', '127.0.0.1', '--port', String(opts.port ?? 0), '--backend', opts.backend ?? 'ort', '--threads', '1', '--preprocess-workers', '1', ...(opts.extraArgs ?? [])];
  const child = spawn(process.execPath, args, { env: { ...process.env, ...opts.env, IMAGEREWARD_API_KEYS: opts.apiKey }, stdio: ['ignore', 'pipe', 'pipe'] });
  opts.onSpawn?.(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      if (out.length < MAX_OUTPUT) out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ child, url: m[1]!, exited, kill });
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (out.length < MAX_OUTPUT) out += d.toString();
    });
    child.once('exit', (code, signal) => reject(new Error(`imagereward serve (port ${opts.port ?? 0}) exited (${code ?? signal}) before listening:\n${out}`)));
  });
}
