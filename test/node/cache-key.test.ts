// The result cache key (contracts/cache-key.ts) in Node: the shared suite
// (test/support/cache-key-suite.ts) over test/fixtures/cache-keys.json, which
// test/workers/cache-key.test.ts also runs inside workerd, so the edge and Node
// key results identically.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { sha256Hex } from '../../contracts/cache-key.js';
import { describeCacheKey, type CacheKeyFixture } from '../support/cache-key-suite.js';

const ROOT = join(import.meta.dirname, '..', '..');
const fixture = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'cache-keys.json'), 'utf8')) as CacheKeyFixture;

describeCacheKey('Node', readFileSync(join(ROOT, 'contracts', 'tokenizer', 'vocab.txt'), 'utf8'), fixture);

it('hashes strings as UTF-8, like node:crypto', async () => {
  for (const s of ['', 'abc', 'café ☕ 🐱']) expect(await sha256Hex(s)).toBe(createHash('sha256').update(s, 'utf8').digest('hex'));
  expect(await sha256Hex(new Uint8Array(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});
