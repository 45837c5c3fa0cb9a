// Image-embedding cache of the scoring service: the vision encoder's output
// (image_embeds, float32 [tokens, width]) keyed by the sha256 of the image
// bytes, so scoring a known image with a new prompt runs only the text half.
//
// Least-recently-used, bounded by bytes: an entry costs its Float32Array's
// byteLength plus a fixed ENTRY_OVERHEAD_BYTES for the key and bookkeeping. A
// value bigger than the whole budget is not stored. Values are stored and
// returned as they are (no copies): callers must not write into them.

/** Bytes charged per entry on top of the embeds (the 64-char key, Map entry, object headers). */
export const ENTRY_OVERHEAD_BYTES = 256;

export interface EmbedCacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  evictions: number;
}

export class EmbedCache {
  private readonly map = new Map<string, Float32Array>();
  private used = 0;
  private hitCount = 0;
  private missCount = 0;
  private evictionCount = 0;

  /** maxBytes 0 disables the cache (every get misses, put stores nothing). */
  constructor(readonly maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`cache size must be a non-negative integer number of bytes (got ${String(maxBytes)})`);
  }

  static cost(value: Float32Array): number {
    return value.byteLength + ENTRY_OVERHEAD_BYTES;
  }

  /** The embeds for `key` (and marks them most recently used), counting a hit or a miss. */
  get(key: string): Float32Array | undefined {
    const v = this.map.get(key);
    if (v === undefined) {
      this.missCount++;
      return undefined;
    }
    this.hitCount++;
    this.map.delete(key);
    this.map.set(key, v);
    return v;
  }

  /** Like get, without counting or touching the LRU order. */
  peek(key: string): Float32Array | undefined {
    return this.map.get(key);
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /** Stores `value` as the most recently used entry, evicting the least recently used ones to fit. False when it cannot fit at all. */
  set(key: string, value: Float32Array): boolean {
    const cost = EmbedCache.cost(value);
    const old = this.map.get(key);
    if (old !== undefined) {
      this.map.delete(key);
      this.used -= EmbedCache.cost(old);
    }
    if (cost > this.maxBytes) return false;
    while (this.used + cost > this.maxBytes) {
      const oldest = this.map.keys().next();
      if (oldest.done) break;
      const v = this.map.get(oldest.value)!;
      this.map.delete(oldest.value);
      this.used -= EmbedCache.cost(v);
      this.evictionCount++;
    }
    this.map.set(key, value);
    this.used += cost;
    return true;
  }

  delete(key: string): boolean {
    const v = this.map.get(key);
    if (v === undefined) return false;
    this.map.delete(key);
    this.used -= EmbedCache.cost(v);
    return true;
  }

  clear(): void {
    this.map.clear();
    this.used = 0;
  }

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.used;
  }

  get hits(): number {
    return this.hitCount;
  }

  get misses(): number {
    return this.missCount;
  }

  get evictions(): number {
    return this.evictionCount;
  }

  /** Keys from least to most recently used. */
  keys(): string[] {
    return [...this.map.keys()];
  }

  stats(): EmbedCacheStats {
    return { entries: this.map.size, bytes: this.used, maxBytes: this.maxBytes, hits: this.hitCount, misses: this.missCount, evictions: this.evictionCount };
  }
}
