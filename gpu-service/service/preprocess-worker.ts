// Worker-thread side of PreprocessPool: decodes and preprocesses one image per
// message with preprocessImage and transfers the float32 tensor back. Loaded by
// preprocess-pool.ts via `new Worker(...)`; not meant to be imported.
import { parentPort } from 'node:worker_threads';
import { ImageError, preprocessImage } from '../preprocess/index.js';
import type { PoolReply, PoolRequest } from './preprocess-pool.js';

const port = parentPort;
if (!port) throw new Error('preprocess-worker.ts must run in a worker thread');

async function handle(msg: PoolRequest): Promise<void> {
  if (msg.op === 'exit') {
    // Test hook: a worker that dies mid-task (the pool must replace it).
    process.exit(msg.code);
  }
  try {
    let tensor = await preprocessImage(msg.bytes, msg.opts);
    if (tensor.byteOffset !== 0 || tensor.byteLength !== tensor.buffer.byteLength || !(tensor.buffer instanceof ArrayBuffer)) tensor = tensor.slice();
    const reply: PoolReply = { id: msg.id, ok: true, tensor };
    port!.postMessage(reply, [tensor.buffer as ArrayBuffer]);
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
