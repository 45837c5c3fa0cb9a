// Worker-thread side of OrtBackend: owns the two onnxruntime-node sessions so a
// forward pass never blocks the main thread's event loop. Loaded by
// ort-backend.ts via `new Worker(...)`; not meant to be imported.
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { normalizeRgb } from '../preprocess/index.js';
import { compact, transferable, type OrtInit, type OrtReady, type OrtRequest, type OrtResponse } from './protocol.js';

const port = parentPort;
if (!port) throw new Error('ort-worker.ts must run in a worker thread');
const init = workerData as OrtInit;

function errorOf(err: unknown): { name: string; message: string } {
  return err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) };
}

function output(r: ort.InferenceSession.OnnxValueMapType, name: string): Float32Array {
  const t = r[name];
  if (!t || !(t.data instanceof Float32Array)) throw new Error(`the model produced no float32 "${name}" output`);
  return compact(t.data);
}

function check(cond: boolean, message: string): void {
  if (!cond) throw new RangeError(message);
}

let vision: ort.InferenceSession | undefined;
let text: ort.InferenceSession | undefined;

async function encode(pixels: Float32Array, batch: number): Promise<Float32Array> {
  const S = init.imageSize;
  check(Number.isInteger(batch) && batch > 0, `batch must be a positive integer (got ${batch})`);
  check(pixels.length === batch * 3 * S * S, `pixels must hold ${batch}x3x${S}x${S} = ${batch * 3 * S * S} floats (got ${pixels.length})`);
  const r = await vision!.run({ pixel_values: new ort.Tensor('float32', pixels, [batch, 3, S, S]) });
  return output(r, 'image_embeds');
}

async function score(ids: BigInt64Array, mask: BigInt64Array, embeds: Float32Array, batch: number): Promise<{ reward: Float32Array; raw: Float32Array }> {
  const L = init.textLength;
  const N = init.embedTokens;
  const W = init.embedWidth;
  check(Number.isInteger(batch) && batch > 0, `batch must be a positive integer (got ${batch})`);
  check(ids.length === batch * L, `input_ids must hold ${batch}x${L} ids (got ${ids.length})`);
  check(mask.length === batch * L, `attention_mask must hold ${batch}x${L} values (got ${mask.length})`);
  check(embeds.length === batch * N * W, `image embeds must hold ${batch}x${N}x${W} floats (got ${embeds.length})`);
  const r = await text!.run({
    input_ids: new ort.Tensor('int64', ids, [batch, L]),
    attention_mask: new ort.Tensor('int64', mask, [batch, L]),
    image_embeds: new ort.Tensor('float32', embeds, [batch, N, W]),
  });
  return { reward: output(r, 'reward'), raw: output(r, 'raw') };
}

async function load(): Promise<void> {
  const opts: ort.InferenceSession.SessionOptions = { executionProviders: init.executionProviders };
  if (init.intraOpNumThreads !== undefined) opts.intraOpNumThreads = init.intraOpNumThreads;
  if (init.graphOptimizationLevel !== undefined) opts.graphOptimizationLevel = init.graphOptimizationLevel;
  // By path: the graphs reference model.safetensors as external data beside them.
  vision = await ort.InferenceSession.create(init.vision, opts);
  text = await ort.InferenceSession.create(init.text, opts);
  // Warm-up (B=1): first-run allocations and kernel selection happen here, not on the first request.
  const embeds = await encode(new Float32Array(3 * init.imageSize * init.imageSize), 1);
  const ids = new BigInt64Array(init.textLength);
  const mask = new BigInt64Array(init.textLength);
  mask[0] = 1n;
  await score(ids, mask, embeds, 1);
}

const inFlight = new Set<Promise<void>>();

async function handle(msg: OrtRequest): Promise<void> {
  try {
    switch (msg.op) {
      case 'encode': {
        const embeds = await encode(msg.pixels, msg.batch);
        const reply: OrtResponse = { id: msg.id, ok: true, embeds };
        port!.postMessage(reply, [transferable(embeds)!]);
        return;
      }
      case 'encodeRgb': {
        // ToTensor + Normalize here, off the service's thread, exactly as preprocessImage does
        const embeds = await encode(normalizeRgb(msg.rgb, msg.batch, init.imageSize), msg.batch);
        const reply: OrtResponse = { id: msg.id, ok: true, embeds };
        port!.postMessage(reply, [transferable(embeds)!]);
        return;
      }
      case 'score': {
        const { reward, raw } = await score(msg.ids, msg.mask, msg.embeds, msg.batch);
        const reply: OrtResponse = { id: msg.id, ok: true, reward, raw };
        port!.postMessage(reply, [transferable(reward)!, transferable(raw)!]);
        return;
      }
      case 'exit':
        process.exit(msg.code);
      // falls through (never reached)
      case 'dispose': {
        const v = vision;
        const t = text;
        vision = text = undefined;
        await v?.release();
        await t?.release();
        const reply: OrtResponse = { id: msg.id, ok: true };
        port!.postMessage(reply);
        return;
      }
    }
  } catch (err) {
    const reply: OrtResponse = { id: msg.id, ok: false, error: errorOf(err) };
    port!.postMessage(reply);
  }
}

load().then(
  () => {
    port.on('message', (msg: OrtRequest) => {
      // Runs may overlap (ORT has its own pool); dispose waits for every run in
      // flight, so sessions are never released under a running inference.
      if (msg.op === 'dispose') {
        void Promise.allSettled([...inFlight]).then(() => handle(msg));
        return;
      }
      const p = handle(msg);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    });
    const ready: OrtReady = { ready: true };
    port.postMessage(ready);
  },
  (err: unknown) => {
    const ready: OrtReady = { ready: false, error: errorOf(err) };
    port.postMessage(ready);
  },
);
