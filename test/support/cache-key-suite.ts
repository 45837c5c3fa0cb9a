// The result-cache-key checks both runtimes run (test/node/cache-key.test.ts in
// Node, test/workers/cache-key.test.ts inside workerd, the edge's runtime): the
// keys of test/fixtures/cache-keys.json (computed with node:crypto from a
// restatement of the encoding; regenerate with
// `node --import tsx test/fixtures/cache-keys.generate.ts`), prompts the tokenizer
// cannot tell apart sharing a key, and the inputs refused. Pure TS: no node: imports.
import { describe, expect, it } from 'vitest';
import { RESULT_CACHE_KEY_VERSION, promptImageKeys, resultCacheKey, sha256Hex } from '../../contracts/cache-key.js';
import { BertTokenizer, MAX_LENGTH } from '../../contracts/tokenizer/index.js';

export interface CacheKeyCase {
  name: string;
  model: string;
  prompt: string;
  image_hex: string;
  input_ids: number[];
  image_sha256: string;
  key: string;
}
export interface CacheKeyFixture {
  version: number;
  cases: CacheKeyCase[];
}

const hexBytes = (hex: string): Uint8Array => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
const IMAGE = 'a'.repeat(64);

/** Registers the shared cache-key tests under `result cache key (<runtime>)`. */
export function describeCacheKey(runtime: string, vocabText: string, fixture: CacheKeyFixture): void {
  const tokenizer = BertTokenizer.fromVocabText(vocabText);
  const ids = (prompt: string): number[] => tokenizer.encode(prompt, MAX_LENGTH).input_ids;

  describe(`result cache key (${runtime})`, () => {
    it('is version 1, like the fixture', () => {
      expect(RESULT_CACHE_KEY_VERSION).toBe(1);
      expect(fixture.version).toBe(RESULT_CACHE_KEY_VERSION);
      expect(fixture.cases.length).toBeGreaterThanOrEqual(8);
    });

    it.each(fixture.cases.map((c) => [c.name, c] as const))('matches the fixture: %s', async (_name, c) => {
      expect(ids(c.prompt)).toEqual(c.input_ids);
      expect(await sha256Hex(hexBytes(c.image_hex))).toBe(c.image_sha256);
      expect(await resultCacheKey(c.model, c.input_ids, c.image_sha256)).toBe(c.key);
      expect(await promptImageKeys(c.model, c.input_ids, [c.image_sha256, c.image_sha256.toUpperCase()])).toEqual([c.key, c.key]);
    });

    it.each([
      ['case and spacing', 'A Cat', 'a  cat'],
      ['accents', 'café', 'cafe'],
      ['control characters and tabs', 'a\tcat\u0000', 'a cat'],
      ['anything after the 33rd word piece', `${'word '.repeat(33)}first ending`, `${'word '.repeat(33)}another ending entirely`],
    ])('gives prompts the tokenizer cannot tell apart one key (%s)', async (_why, a, b) => {
      expect(ids(a)).toEqual(ids(b));
      expect(await resultCacheKey('ImageReward-v1.0', ids(a), IMAGE)).toBe(await resultCacheKey('ImageReward-v1.0', ids(b), IMAGE));
    });

    it('gives a different model, prompt or image a different key', async () => {
      const base = await resultCacheKey('ImageReward-v1.0', ids('a cat'), IMAGE);
      expect(base).toMatch(/^[0-9a-f]{64}$/);
      const others = await Promise.all([
        resultCacheKey('ImageReward-v1.1', ids('a cat'), IMAGE),
        resultCacheKey('ImageReward-v1.0', ids('a dog'), IMAGE),
        resultCacheKey('ImageReward-v1.0', ids('a cat'), 'b'.repeat(64)),
      ]);
      expect(new Set([base, ...others]).size).toBe(4);
    });

    it('keys every image of a prompt in order', async () => {
      const shas = ['1'.repeat(64), '2'.repeat(64), '1'.repeat(64)];
      const keys = await promptImageKeys('m', ids('x'), shas);
      expect(keys).toEqual(await Promise.all(shas.map((s) => resultCacheKey('m', ids('x'), s))));
      expect(keys[0]).toBe(keys[2]);
      expect(keys[0]).not.toBe(keys[1]);
      expect(await promptImageKeys('m', ids('x'), [])).toEqual([]);
    });

    const good = ids('a cat');
    it.each([
      ['an empty model id', () => resultCacheKey('', good, IMAGE)],
      ['a NUL in the model id', () => resultCacheKey('a\0b', good, IMAGE)],
      ['a lone surrogate in the model id', () => resultCacheKey('m\ud800', good, IMAGE)],
      ['unpadded ids', () => resultCacheKey('m', [101, 1037, 4937, 102], IMAGE)],
      ['too many ids', () => resultCacheKey('m', [...good, 0], IMAGE)],
      ['a negative id', () => resultCacheKey('m', [...good.slice(0, 34), -1], IMAGE)],
      ['a fractional id', () => resultCacheKey('m', [...good.slice(0, 34), 1.5], IMAGE)],
      ['a NaN id', () => resultCacheKey('m', [...good.slice(0, 34), Number.NaN], IMAGE)],
      ['a short digest', () => resultCacheKey('m', good, 'abc')],
      ['a non-hex digest', () => resultCacheKey('m', good, 'g'.repeat(64))],
      ['a bad digest among several', () => promptImageKeys('m', good, [IMAGE, 'x'])],
    ])('rejects %s', async (_why, call) => {
      await expect(call()).rejects.toThrow(TypeError);
    });
  });
}
