// The result cache key (contracts/cache-key.ts) inside workerd, the edge's
// runtime: the shared suite (test/support/cache-key-suite.ts) over the same
// fixture as Node, so a key the edge computes is the key Node computes.
import { expect, it } from 'vitest';
import { sha256Hex } from '../../contracts/cache-key.js';
import vocabText from '../../contracts/tokenizer/vocab.txt';
import fixture from '../fixtures/cache-keys.json' with { type: 'json' };
import { describeCacheKey } from '../support/cache-key-suite.js';

describeCacheKey('workerd', vocabText, fixture);

it('hashes strings as UTF-8 (workerd)', async () => {
  // Digests from node:crypto (createHash('sha256').update(s, 'utf8')).
  expect(await sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  expect(await sha256Hex('café ☕ 🐱')).toBe(await sha256Hex(new TextEncoder().encode('café ☕ 🐱')));
  expect(await sha256Hex(new Uint8Array(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});
