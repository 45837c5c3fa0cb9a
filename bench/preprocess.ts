// Preprocessing throughput, decode through normalized tensor, one image at a
// time. Meant to run pinned to one core (bench/run.ts uses `taskset -c 0`)
// with sharp and libuv limited to one thread, so the figure is "per core".
//
//   node --import tsx bench/preprocess.ts SECONDS BACKEND FILE...  → JSON {file: images/s}
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { preprocessImage } from '../gpu-service/preprocess/index.js';

export async function benchPreprocess(files: string[], seconds: number, backend: 'native' | 'reference'): Promise<Record<string, number>> {
  sharp.concurrency(1);
  sharp.cache(false);
  const result: Record<string, number> = {};
  for (const file of files) {
    const bytes = await readFile(file);
    await preprocessImage(bytes, { backend }); // warm-up
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      await preprocessImage(bytes, { backend });
      n++;
    }
    result[file] = n / ((performance.now() - t0) / 1000);
  }
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [seconds, backend, ...files] = process.argv.slice(2);
  if (backend !== 'native' && backend !== 'reference') throw new Error('backend must be native or reference');
  console.log(JSON.stringify(await benchPreprocess(files, Number(seconds), backend)));
}
