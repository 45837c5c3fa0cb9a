// The native addon's JS surface, typed once. Everything native/ exports is
// described here; gpu-service imports only this file, never the .node binary.
//
// CONTRACT (implemented by native/src; later issues add load/forward/dispose/info
// for the CUDA engine):
//   preprocess.resize        Pillow 9.4 Image.resize on an interleaved 8-bit image
//                            with 1..4 bands and the full source box; 'bicubic' is
//                            ImagingResample (two separable passes, support scaled by
//                            the reduction factor, 8bpc fixed point), 'nearest' is
//                            Pillow's NEAREST (affine transform path). Same output size
//                            as input → a copy. Runs on the libuv pool (AsyncWorker).
//   preprocess.resizeSync    Same, on the calling thread (tests, CLI).
//   preprocess.cropNormalize Crop size×size at (left, top) from interleaved RGB and
//                            apply torchvision ToTensor + Normalize in float32,
//                            CHW layout (what the model consumes).
//   buildInfo()              What was compiled in.

export type ResampleFilter = 'nearest' | 'bicubic';
export type Triple = readonly [number, number, number];

export interface NativePreprocess {
  resize(src: Uint8Array, width: number, height: number, channels: number, outWidth: number, outHeight: number, filter: ResampleFilter): Promise<Uint8Array>;
  resizeSync(src: Uint8Array, width: number, height: number, channels: number, outWidth: number, outHeight: number, filter: ResampleFilter): Uint8Array;
  cropNormalize(rgb: Uint8Array, width: number, height: number, left: number, top: number, size: number, mean: Triple, std: Triple): Float32Array;
}

export interface NativeBuildInfo {
  version: string;
  cuda: boolean;
  compiler: string;
}

export interface NativeAddon {
  preprocess: NativePreprocess;
  buildInfo(): NativeBuildInfo;
}

// PLACEHOLDER loader — replaced by the native work.
export const native: NativeAddon | null = null;
export const nativeLoadError: string | null = 'native addon not built yet';
