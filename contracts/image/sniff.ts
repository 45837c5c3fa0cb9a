// Which file format the bytes are, from their magic numbers alone (never the file name).
// Decoded: PNG, JPEG, GIF, WEBP, TIFF, AVIF. Recognised but refused: everything in
// KNOWN_UNSUPPORTED, so the error can say what the file was.

export type SupportedFormat = 'PNG' | 'JPEG' | 'GIF' | 'WEBP' | 'TIFF' | 'AVIF';

export type Sniffed = { supported: true; format: SupportedFormat } | { supported: false; format: string | null };

function startsWith(b: Uint8Array, sig: ArrayLike<number> | string, at = 0): boolean {
  const bytes = typeof sig === 'string' ? Array.from(sig, (ch) => ch.charCodeAt(0)) : Array.from(sig);
  if (b.length < at + bytes.length) return false;
  return bytes.every((v, i) => b[at + i] === v);
}

/** ISO-BMFF brands (major + compatible) of an `ftyp` box at the start, or null. */
function ftypBrands(b: Uint8Array): string[] | null {
  if (b.length < 16 || !startsWith(b, 'ftyp', 4)) return null;
  const size = ((b[0] as number) << 24) | ((b[1] as number) << 16) | ((b[2] as number) << 8) | (b[3] as number);
  const end = Math.min(b.length, size >>> 0, 16 + 4 * 64); // major, minor, up to 64 compatible brands
  const brand = (at: number): string => String.fromCharCode(...b.subarray(at, at + 4));
  const brands = [brand(8)];
  for (let at = 16; at + 4 <= end; at += 4) brands.push(brand(at));
  return brands;
}

const KNOWN_UNSUPPORTED: Array<[string, (b: Uint8Array) => boolean]> = [
  ['BMP', (b) => startsWith(b, 'BM') && b.length >= 14],
  ['PDF', (b) => startsWith(b, '%PDF')],
  ['PostScript/EPS', (b) => startsWith(b, '%!PS') || startsWith(b, [0xc5, 0xd0, 0xd3, 0xc6])],
  ['JPEG 2000', (b) => startsWith(b, [0, 0, 0, 0x0c, 0x6a, 0x50, 0x20, 0x20]) || startsWith(b, [0xff, 0x4f, 0xff, 0x51])],
  ['JPEG XL', (b) => startsWith(b, [0xff, 0x0a]) || startsWith(b, [0, 0, 0, 0x0c, 0x4a, 0x58, 0x4c, 0x20])],
  ['BigTIFF', (b) => startsWith(b, [0x49, 0x49, 0x2b, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2b])],
  ['ICO/CUR', (b) => startsWith(b, [0, 0, 1, 0]) || startsWith(b, [0, 0, 2, 0])],
  ['PSD', (b) => startsWith(b, '8BPS')],
  ['QOI', (b) => startsWith(b, 'qoif')],
  ['DDS', (b) => startsWith(b, 'DDS ')],
  ['SVG/XML', (b) => /^\s*(<\?xml|<svg)/i.test(String.fromCharCode(...b.subarray(0, 64)))],
  ['PNM', (b) => b.length >= 3 && b[0] === 0x50 && (b[1] as number) >= 0x31 && (b[1] as number) <= 0x37 && /\s/.test(String.fromCharCode(b[2] as number))],
];

export function sniff(b: Uint8Array): Sniffed {
  if (startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return { supported: true, format: 'PNG' };
  if (startsWith(b, [0xff, 0xd8, 0xff])) return { supported: true, format: 'JPEG' };
  if (startsWith(b, 'GIF87a') || startsWith(b, 'GIF89a')) return { supported: true, format: 'GIF' };
  if (startsWith(b, 'RIFF') && startsWith(b, 'WEBP', 8)) return { supported: true, format: 'WEBP' };
  if (startsWith(b, [0x49, 0x49, 0x2a, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2a])) return { supported: true, format: 'TIFF' };
  const brands = ftypBrands(b);
  if (brands) {
    if (brands.includes('avif') || brands.includes('avis')) return { supported: true, format: 'AVIF' };
    return { supported: false, format: `ISO-BMFF (${brands[0]}, e.g. HEIC)` };
  }
  for (const [name, test] of KNOWN_UNSUPPORTED) if (test(b)) return { supported: false, format: name };
  return { supported: false, format: null };
}
