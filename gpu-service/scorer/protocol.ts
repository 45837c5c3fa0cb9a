// Messages between OrtBackend (main thread) and ort-worker (worker thread).
// Tensors travel as typed arrays whose ArrayBuffers are transferred, not copied.

export interface OrtInit {
  modelDir: string;
  vision: string;
  text: string;
  /** Which graphs `vision` / `text` are (fp32, or the opt-in int8 ones). */
  precision: 'fp32' | 'int8';
  /** Image side S of pixel_values [B,3,S,S]. */
  imageSize: number;
  /** Tokens per embedded image (patches + 1) and vision width: image_embeds is [B, tokens, width]. */
  embedTokens: number;
  embedWidth: number;
  /** Fixed text length L of input_ids / attention_mask. */
  textLength: number;
  intraOpNumThreads?: number;
  executionProviders: string[];
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'layout' | 'all';
}

export type OrtRequest =
  | { id: number; op: 'encode'; pixels: Float32Array; batch: number }
  | { id: number; op: 'encodeRgb'; rgb: Uint8Array; batch: number }
  | { id: number; op: 'score'; ids: BigInt64Array; mask: BigInt64Array; embeds: Float32Array; batch: number }
  | { id: number; op: 'dispose' }
  // Tests: the worker exits at once, as a crash would. Terminating a worker while
  // onnxruntime-node has a run in flight can abort the whole process (its completion
  // throws into the torn-down environment), so tests simulate death this way, with
  // the worker idle and later requests queued behind this message.
  | { id: number; op: 'exit'; code: number };

export type OrtResponse =
  | { id: number; ok: true; embeds: Float32Array }
  | { id: number; ok: true; reward: Float32Array; raw: Float32Array }
  | { id: number; ok: true }
  | { id: number; ok: false; error: { name: string; message: string } };

/** First message from the worker: loaded (sessions created and warmed up) or failed. */
export type OrtReady = { ready: true } | { ready: false; error: { name: string; message: string } };

/** The ArrayBuffer of `a` when it can be transferred without losing data (a whole, non-shared buffer). */
export function transferable(a: ArrayBufferView): ArrayBuffer | undefined {
  const buf = a.buffer;
  if (!(buf instanceof ArrayBuffer)) return undefined;
  return a.byteOffset === 0 && a.byteLength === buf.byteLength ? buf : undefined;
}

/** `a` itself when its buffer can be transferred, else a compact copy (which can). */
export function compact<T extends Float32Array | BigInt64Array | Uint8Array>(a: T): T {
  return transferable(a) ? a : (a.slice() as T);
}
