// Decompression bombs for test/e2e/abuse.test.ts: images whose headers declare
// far more pixels than the 40 M limit while the files stay tiny. Five are
// written by hand (only the header is real — a server that decoded before
// checking would fail differently), two are real images made with sharp
// (a one-colour PNG and JPEG compress to almost nothing).
import sharp from 'sharp';

export interface Bombs {
  pngHeader: Buffer;
  jpegHeader: Buffer;
  gifHeader: Buffer;
  webpLossless: Buffer;
  webpExtended: Buffer;
  pngReal: Buffer;
  jpegReal: Buffer;
}

// CRC-32 (IEEE, reflected 0xEDB88320), as PNG chunks need.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(b: Buffer): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** PNG: signature, IHDR of width × height RGB8, a token IDAT, IEND. */
function pngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', Buffer.from([0x78, 0x9c, 0x63, 0, 0, 0, 1, 0, 1])), pngChunk('IEND', Buffer.alloc(0))]);
}

/** Baseline JPEG: SOI, APP0 JFIF, SOF0 declaring width × height with 3 components, EOI. */
function jpegHeader(width: number, height: number): Buffer {
  const app0 = [0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0];
  const sof0 = [0xff, 0xc0, 0, 17, 8, height >> 8, height & 0xff, width >> 8, width & 0xff, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1];
  return Buffer.from([0xff, 0xd8, ...app0, ...sof0, 0xff, 0xd9]);
}

/** GIF89a: a logical screen and one image descriptor of width × height, a token LZW stream. */
function gifHeader(width: number, height: number): Buffer {
  const le = (v: number) => [v & 0xff, v >> 8];
  return Buffer.from([
    ...Buffer.from('GIF89a', 'latin1'),
    ...le(width), ...le(height), 0x80, 0, 0, // global colour table of 2
    0, 0, 0, 255, 255, 255,
    0x2c, 0, 0, 0, 0, ...le(width), ...le(height), 0,
    2, 2, 0x4c, 0x01, 0, // LZW minimum code size 2, one tiny sub-block
    0x3b,
  ]);
}

/** A RIFF/WEBP file of the given chunks. */
function riffWebp(...chunks: Buffer[]): Buffer {
  const body = Buffer.concat(chunks);
  const size = Buffer.alloc(4);
  size.writeUInt32LE(4 + body.length);
  return Buffer.concat([Buffer.from('RIFF', 'latin1'), size, Buffer.from('WEBP', 'latin1'), body]);
}

function webpChunk(fourcc: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(data.length);
  // RIFF chunks are padded to even sizes.
  return Buffer.concat([Buffer.from(fourcc, 'latin1'), len, data, data.length % 2 ? Buffer.alloc(1) : Buffer.alloc(0)]);
}

/** VP8L (lossless) header: signature 0x2f, then 14-bit width-1, 14-bit height-1, alpha bit, 3-bit version 0, and a few token bytes. */
function vp8l(width: number, height: number): Buffer {
  const bits = (width - 1) | ((height - 1) << 14);
  const b = Buffer.alloc(10);
  b[0] = 0x2f;
  b.writeUInt32LE(bits >>> 0, 1);
  return b;
}

/** WebP lossless declaring width × height (at most 16384 × 16384, the format's limit). */
function webpLossless(width: number, height: number): Buffer {
  return riffWebp(webpChunk('VP8L', vp8l(width, height)));
}

/** WebP extended format: a VP8X chunk declaring a width × height canvas, then a VP8L chunk of the same size. */
function webpExtended(width: number, height: number): Buffer {
  const vp8x = Buffer.alloc(10);
  vp8x.writeUIntLE(width - 1, 4, 3);
  vp8x.writeUIntLE(height - 1, 7, 3);
  return riffWebp(webpChunk('VP8X', vp8x), webpChunk('VP8L', vp8l(width, height)));
}

export async function bombs(): Promise<Bombs> {
  // sharp's own pixel limit guards what it creates too: lift it for the making only.
  const pngReal = await sharp({ create: { width: 8000, height: 6000, channels: 3, background: { r: 10, g: 200, b: 30 } }, limitInputPixels: false }).png({ compressionLevel: 9 }).toBuffer();
  const jpegReal = await sharp({ create: { width: 7000, height: 7000, channels: 3, background: { r: 200, g: 20, b: 90 } }, limitInputPixels: false }).jpeg({ quality: 10 }).toBuffer();
  return {
    pngHeader: pngHeader(100_000, 100_000),
    jpegHeader: jpegHeader(65_500, 65_500),
    gifHeader: gifHeader(65_535, 65_535),
    webpLossless: webpLossless(16_384, 16_384),
    webpExtended: webpExtended(16_384, 16_384),
    pngReal,
    jpegReal,
  };
}
