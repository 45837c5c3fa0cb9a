// Worker-thread side of PreprocessPool: decodes and preprocesses one image per
// message with preprocessImageRgb and transfers the 224x224x3 RGB bytes back. Loaded by
// preprocess-pool.ts via `new Worker(...)`; not meant to be imported.
import { parentPort } from 'node:worker_threads';
import { ImageError, preprocessImageRgb } from '../preprocess/index.js';
import type { PoolReply, PoolRequest } from './preprocess-pool.js';

const port = parentPort;
if (!port) throw new Error('preprocess-worker.ts must run in a worker thread');

async function handle(msg: PoolRequest): Promise<void> {
  if (msg.op === 'exit') {
    // Test hook: a worker that dies mid-task (the pool must replace it).
    process.exit(msg.code);
  }
  try {
    let rgb = await preprocessImageRgb(msg.bytes, msg.opts);
    if (rgb.byteOffset !== 0 || rgb.byteLength !== rgb.buffer.byteLength || !(rgb.buffer instanceof ArrayBuffer)) rgb = rgb.slice();
    const reply: PoolReply = { id: msg.id, ok: true, rgb };
    port!.postMessage(reply, [rgb.buffer as ArrayBuffer]);
  } catch (err) {
    const reply: PoolReply =
      err instanceof ImageError
        ? { id: msg.id, ok: false, error: { name: err.name, message: err.message, code: err.code } }
        : { id: msg.id, ok: false, error: { name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? err.message : String(err) } };
    port!.postMessage(reply);
  }
}

port.on('message', (msg: PoolRequest) => void handle(msg));
port.postMessage({ ready: true });
