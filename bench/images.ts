// Benchmark inputs: deterministic 512² and 1024² photos-like images (smooth
// gradients + texture + edges, so codecs and resamplers do real work), encoded
// as JPEG (q90), PNG and WebP (q90) into bench/out/. Both our pipeline and the
// Pillow + torchvision baseline read the same files.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';

export interface BenchImage {
  name: string;
  size: number;
  format: 'jpeg' | 'png' | 'webp';
  path: string;
}

function synth(size: number): Buffer {
  const px = Buffer.alloc(size * size * 3);
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) / 65536;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 3;
      const u = x / size;
      const v = y / size;
      const ring = Math.sin(40 * Math.hypot(u - 0.5, v - 0.5)) * 40;
      const edge = (x >> 5) % 2 === (y >> 5) % 2 ? 30 : 0;
      const n = (rand() - 0.5) * 24;
      px[i] = clamp(255 * u + ring + n);
      px[i + 1] = clamp(255 * v - ring + edge + n);
      px[i + 2] = clamp(128 + ring + edge - n);
    }
  }
  return px;
}

const clamp = (v: number) => Math.max(0, Math.min(255, Math.round(v)));

export async function writeBenchImages(dir: string): Promise<BenchImage[]> {
  await mkdir(dir, { recursive: true });
  const out: BenchImage[] = [];
  for (const size of [512, 1024]) {
    const raw = sharp(synth(size), { raw: { width: size, height: size, channels: 3 } });
    for (const format of ['jpeg', 'png', 'webp'] as const) {
      const buf =
        format === 'jpeg'
          ? await raw.clone().jpeg({ quality: 90 }).toBuffer()
          : format === 'png'
            ? await raw.clone().png({ compressionLevel: 6 }).toBuffer()
            : await raw.clone().webp({ quality: 90 }).toBuffer();
      const path = join(dir, `${size}.${format === 'jpeg' ? 'jpg' : format}`);
      await writeFile(path, buf);
      out.push({ name: `${size}² ${format.toUpperCase()}`, size, format, path });
    }
  }
  return out;
}
