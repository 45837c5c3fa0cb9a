// PLACEHOLDER — replaced by the preprocessing work. Contract:
export const IMAGE_SIZE = 224;
export const MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const STD = [0.26862954, 0.26130258, 0.27577711] as const;
export interface PreprocessOptions { maxPixels?: number; maxBytes?: number; backend?: 'native' | 'reference' | 'auto' }
/** bytes of an image file → float32 CHW 3×224×224 exactly as upstream ImageReward computes it. */
export async function preprocessImage(_bytes: Uint8Array, _opts: PreprocessOptions = {}): Promise<Float32Array> {
  throw new Error('not implemented');
}
