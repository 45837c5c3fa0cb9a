// What a scorer needs from a backend: the two halves of the forward pass.
// Implemented by OrtBackend (ONNX Runtime, CPU, worker thread) and
// NativeBackend (the CUDA engine in native/). Backend choice lives in
// select-backend.ts.
import type { TextScores } from './ort-backend.js';

export type { TextScores } from './ort-backend.js';

export type BackendName = 'ort' | 'native';

export interface ScoringBackend {
  readonly name: BackendName;
  readonly imageSize: number;
  readonly textLength: number;
  /** image_embeds per image: [embedTokens, embedWidth]. */
  readonly embedTokens: number;
  readonly embedWidth: number;
  /** Batches this backend runs at once (the CUDA engine: one per stream). Default 1. */
  readonly concurrency?: number;
  /** pixels [B,3,S,S] → image embeds [B,embedTokens,embedWidth]. The buffer may be transferred (unusable after). */
  encodeImages(pixels: Float32Array, batch: number): Promise<Float32Array>;
  /**
   * The 224×224 crops after convert('RGB') ([B,S,S,3] uint8, preprocessImageRgb) → image
   * embeds: the backend applies ToTensor + Normalize where it runs (the ORT worker; the
   * CUDA engine on the GPU, 4× less host→device traffic), bit-identical to encodeImages of
   * preprocessImage's tensors. The buffer may be transferred (unusable after).
   */
  encodeImagesRgb(rgb: Uint8Array, batch: number): Promise<Float32Array>;
  /** ids/mask [B,textLength] and image embeds → normalized reward and raw head output [B]. */
  scoreText(ids: BigInt64Array, mask: BigInt64Array, embeds: Float32Array, batch: number): Promise<TextScores>;
  dispose(): Promise<void>;
}
