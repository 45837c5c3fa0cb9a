// Node loader for the shared tokenizer: reads vocab.txt from disk. The default
// is the bundled bert-base-uncased vocab, found from the package root so the
// same path works from the sources (tsx, vitest) and from dist/gpu-service/.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BertTokenizer } from '../contracts/tokenizer/index.js';
import { packageRoot } from './package-root.js';

export function defaultVocabPath(): string {
  return join(packageRoot(), 'contracts', 'tokenizer', 'vocab.txt');
}

const cache = new Map<string, Promise<BertTokenizer>>();

/** Loads (once per path) a BertTokenizer from `vocabPath` or the bundled vocab. */
export function loadTokenizer(vocabPath: string = defaultVocabPath()): Promise<BertTokenizer> {
  let pending = cache.get(vocabPath);
  if (!pending) {
    pending = readFile(vocabPath, 'utf8').then((text) => BertTokenizer.fromVocabText(text));
    // A failed load (missing file) is not cached, so a later call can retry.
    pending.catch(() => cache.delete(vocabPath));
    cache.set(vocabPath, pending);
  }
  return pending;
}
