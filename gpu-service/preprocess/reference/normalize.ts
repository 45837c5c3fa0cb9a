// torchvision 0.14 ToTensor() + Normalize(mean, std) in float32, the reference for
// native.preprocess.cropNormalize.
//
//   ToTensor:  ByteTensor HWC → float32 CHW, .div(255)      → fround(v / 255)
//   Normalize: mean, std as float32 tensors; x.sub_(mean).div_(std)
//              → fround(fround(x - fround(mean)) / fround(std))
//
// Each step is one IEEE float32 operation. Doing it in double and rounding to float32
// gives the same result (a double holds more than 2·24+2 bits, so the double rounding
// is innocuous for a single +, -, × or ÷). There are only 256 inputs per channel, so
// the result is a table lookup.

export type Triple = readonly [number, number, number];

/** The 256 float32 values of channel c: lut[v] = Normalize(ToTensor(v)). */
export function normalizeTable(mean: number, std: number): Float32Array {
  const m = Math.fround(mean);
  const s = Math.fround(std);
  const lut = new Float32Array(256);
  for (let v = 0; v < 256; v++) {
    const x = Math.fround(v / 255);
    lut[v] = Math.fround(Math.fround(x - m) / s);
  }
  return lut;
}

/**
 * Crop size×size at (left, top) from an interleaved RGB image and return the
 * normalised float32 tensor in CHW layout (3 × size × size).
 */
export function cropNormalize(
  rgb: Uint8Array,
  width: number,
  height: number,
  left: number,
  top: number,
  size: number,
  mean: Triple,
  std: Triple,
): Float32Array {
  if (rgb.length !== width * height * 3) throw new RangeError(`rgb has ${rgb.length} bytes, expected ${width}x${height}x3`);
  if (left < 0 || top < 0 || size < 1 || left + size > width || top + size > height) {
    throw new RangeError(`crop ${size}x${size}+${left}+${top} is not inside ${width}x${height}`);
  }
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const lut = normalizeTable(mean[c] as number, std[c] as number);
    const base = c * plane;
    for (let y = 0; y < size; y++) {
      let s = ((top + y) * width + left) * 3 + c;
      const d = base + y * size;
      for (let x = 0; x < size; x++, s += 3) out[d + x] = lut[rgb[s] as number] as number;
    }
  }
  return out;
}
