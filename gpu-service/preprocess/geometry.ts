// torchvision 0.14's geometry for Resize(224) + CenterCrop(224) on a PIL image.

/**
 * Python 3's round() for a float: nearest integer, ties to even
 * (round(0.5) == 0, round(1.5) == 2, round(2.5) == 2, round(-0.5) == -0).
 */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const diff = x - f; // exact for the halves we care about
  if (diff < 0.5) return f;
  if (diff > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * transforms.Resize(size) with an int size (functional._compute_resized_output_size):
 * the short side becomes `size`, the long side `int(size * long / short)` (float
 * division, truncated). Returns [width, height]; equal to the input when the short side
 * already is `size` (then torchvision returns the image untouched).
 */
export function resizedSize(width: number, height: number, size: number): [number, number] {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newShort = size;
  const newLong = Math.trunc((size * long) / short);
  return width <= height ? [newShort, newLong] : [newLong, newShort];
}

/**
 * transforms.CenterCrop(size) offsets: left = int(round((w - size) / 2.0)),
 * top = int(round((h - size) / 2.0)). The image is never smaller than `size` here
 * (Resize made its short side `size`), so torchvision's padding branch never runs.
 */
export function centerCropOffsets(width: number, height: number, size: number): { left: number; top: number } {
  if (width < size || height < size) throw new RangeError(`center crop ${size} of ${width}x${height} would pad`);
  return { left: pyRound((width - size) / 2), top: pyRound((height - size) / 2) };
}
