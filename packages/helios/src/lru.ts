/**
 * A map bounded by the bytes its values hold, least recently used first. A search's caches use it: the
 * parts of HLN2 index nodes it read (directories and pages) and the directories of the blocks it opened.
 * Their values never change under a key (a new version of a node or block is a new key), so a put of a
 * key already held (two concurrent searches that read the same part) replaces it and counts it once.
 */
export class BytesLru<V> {
  private readonly entries = new Map<string, { v: V; bytes: number }>();
  private held = 0;

  /** `bytesMax`: the bound; one value larger than it is still kept, alone, until the next put. */
  constructor(public bytesMax: number) {}

  /** The value under `k`, now the most recently used; undefined when not held. */
  get(k: string): V | undefined {
    const e = this.entries.get(k);
    if (!e) return undefined;
    this.entries.delete(k); // most recently used last
    this.entries.set(k, e);
    return e.v;
  }

  /** Holds `v` under `k` as the most recently used, then drops the least recently used past the bound. */
  put(k: string, v: V, bytes: number): void {
    this.held += bytes - (this.entries.get(k)?.bytes ?? 0);
    this.entries.delete(k);
    this.entries.set(k, { v, bytes });
    for (const [key, e] of this.entries) {
      if (this.held <= this.bytesMax || key === k) break;
      this.entries.delete(key);
      this.held -= e.bytes;
    }
  }

  /** Drops the entries whose keys `gone` accepts. */
  dropWhere(gone: (k: string) => boolean): void {
    for (const [k, e] of this.entries)
      if (gone(k)) {
        this.entries.delete(k);
        this.held -= e.bytes;
      }
  }

  get size(): number {
    return this.entries.size;
  }

  /** The bytes of the values held, as their puts counted them. */
  get bytes(): number {
    return this.held;
  }

  /** Keys, least recently used first. */
  keys(): IterableIterator<string> {
    return this.entries.keys();
  }

  /** Values with their bytes, least recently used first. */
  *values(): IterableIterator<{ v: V; bytes: number }> {
    yield* this.entries.values();
  }
}
