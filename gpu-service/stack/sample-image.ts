// The image the printed curl examples send: upstream's example 1.webp from
// ../shared (IMAGEREWARD_SHARED) when it is there, with the prompt upstream
// scored it with; otherwise a small gradient PNG written once into the state
// directory, so the examples work on any checkout.
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { packageRoot } from '../package-root.js';

export const SAMPLE_PROMPT = 'a painting of an ocean with clouds and birds, day time, low depth field effect';

export interface SampleImage {
  path: string;
  prompt: string;
  /** True when it is upstream's example image, false for the generated stand-in. */
  upstream: boolean;
}

export async function sampleImage(stateDir: string, env: NodeJS.ProcessEnv = process.env): Promise<SampleImage> {
  const shared = env.IMAGEREWARD_SHARED ? resolve(env.IMAGEREWARD_SHARED) : join(packageRoot(), '..', 'shared');
  const upstream = join(shared, 'images', '1.webp');
  if (existsSync(upstream)) return { path: upstream, prompt: SAMPLE_PROMPT, upstream: true };
  const path = join(stateDir, 'sample.png');
  if (!existsSync(path)) {
    await mkdir(stateDir, { recursive: true });
    // A sky-to-sea gradient: a real, decodable image of a sensible size.
    const w = 256;
    const h = 192;
    const px = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = (y * w + x) * 3;
        const sea = y > h * 0.55;
        px[i] = sea ? 20 + (x % 40) : 120 + Math.round((y / h) * 100);
        px[i + 1] = sea ? 60 + Math.round((y / h) * 60) : 170 + Math.round((y / h) * 60);
        px[i + 2] = sea ? 140 + Math.round((x / w) * 60) : 235;
      }
    }
    const png = await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, png);
    await rename(tmp, path);
  }
  return { path, prompt: SAMPLE_PROMPT, upstream: false };
}
