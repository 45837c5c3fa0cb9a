// `imagereward serve` (the built CLI) as a child process for the benchmarks that
// need a real GPU service on loopback: ORT, one thread, a free port, the given
// API key; resolves with its URL once it prints its ready line.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

export function startServeChild(modelDir: string, apiKey: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [resolve('bin', 'imagereward.js'), 'serve', '--model', modelDir, '--port', '0', '--backend', 'ort', '--threads', '1'], {
    env: { ...process.env, IMAGEREWARD_API_KEYS: apiKey },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((res, rej) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) res({ child, url: m[1]! });
    });
    child.once('exit', (code) => rej(new Error(`serve exited ${code}`)));
  });
}
