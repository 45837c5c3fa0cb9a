import { describe, expect, it } from 'vitest';
import { ENTRY_OVERHEAD_BYTES, EmbedCache } from '../../gpu-service/service/embed-cache.js';

const f = (n: number, v = 0): Float32Array => new Float32Array(n).fill(v);
const cost = (n: number): number => n * 4 + ENTRY_OVERHEAD_BYTES;

describe('EmbedCache', () => {
  it('counts hits and misses and returns the stored array itself', () => {
    const c = new EmbedCache(10_000);
    const a = f(10, 1);
    expect(c.get('a')).toBeUndefined();
    expect(c.set('a', a)).toBe(true);
    expect(c.get('a')).toBe(a);
    expect(c.get('b')).toBeUndefined();
    expect(c.stats()).toMatchObject({ entries: 1, bytes: cost(10), hits: 1, misses: 2, evictions: 0 });
    expect(c.peek('a')).toBe(a);
    expect(c.stats().hits).toBe(1); // peek does not count
  });

  it('evicts least recently used entries to stay within its byte budget', () => {
    const c = new EmbedCache(cost(100) * 3);
    c.set('a', f(100));
    c.set('b', f(100));
    c.set('c', f(100));
    expect(c.bytes).toBe(cost(100) * 3);
    c.get('a'); // a becomes most recent: b is now the oldest
    c.set('d', f(100));
    expect(c.keys()).toEqual(['c', 'a', 'd']);
    expect(c.evictions).toBe(1);
    // A bigger entry evicts as many as needed.
    c.set('e', f(200));
    expect(c.keys()).toEqual(['d', 'e']);
    expect(c.bytes).toBe(cost(100) + cost(200));
    expect(c.bytes).toBeLessThanOrEqual(c.maxBytes);
  });

  it('replacing a key re-accounts its bytes; delete and clear free them', () => {
    const c = new EmbedCache(100_000);
    c.set('a', f(100));
    c.set('a', f(50));
    expect(c.size).toBe(1);
    expect(c.bytes).toBe(cost(50));
    expect(c.delete('a')).toBe(true);
    expect(c.delete('a')).toBe(false);
    expect(c.bytes).toBe(0);
    c.set('x', f(10));
    c.clear();
    expect(c.size).toBe(0);
    expect(c.bytes).toBe(0);
  });

  it('never stores a value larger than the whole budget, and size 0 disables it', () => {
    const c = new EmbedCache(cost(10));
    c.set('small', f(10));
    expect(c.set('huge', f(11))).toBe(false);
    expect(c.has('huge')).toBe(false);
    expect(c.has('small')).toBe(true); // nothing evicted for a value that cannot fit
    const off = new EmbedCache(0);
    expect(off.set('a', f(1))).toBe(false);
    expect(off.get('a')).toBeUndefined();
    expect(off.bytes).toBe(0);
    expect(() => new EmbedCache(-1)).toThrow(RangeError);
    expect(() => new EmbedCache(1.5)).toThrow(RangeError);
  });

  it('holds its bound under a long random workload', () => {
    const max = 50_000;
    const c = new EmbedCache(max);
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const sizes = new Map<string, number>();
    for (let i = 0; i < 5000; i++) {
      const k = `k${Math.floor(rnd() * 200)}`;
      if (rnd() < 0.5) c.get(k);
      else {
        const n = 1 + Math.floor(rnd() * 2000);
        c.set(k, f(n));
        sizes.set(k, n);
      }
      expect(c.bytes).toBeLessThanOrEqual(max);
    }
    const sum = c.keys().reduce((a, k) => a + cost(c.peek(k)!.length), 0);
    expect(c.bytes).toBe(sum);
    expect(c.hits + c.misses).toBeGreaterThan(2000);
  });
});
