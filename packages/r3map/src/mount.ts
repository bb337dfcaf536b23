/**
 * A mount: a local device backed by a remote one (r3map's "remote-backed mount"). Reads of a chunk that is
 * not local yet fetch it on demand (and rank its neighbours hot); a background puller fetches the rest with
 * bounded concurrency, hot chunks first; writes land locally and mark chunks dirty; dirty chunks go back to
 * the remote on flush (write-back, the default) or at once (write-through).
 */
import { type BlockDevice, checkRange } from './device.js';

/** The background pull fetches runs of missing chunks of at most this many bytes in one request. */
export const pullRunBytesMax = 1 << 20;
/** A mount's (and a migration's) chunk size: 64 KiB to 4 MiB. */
export const mountChunkBytesMin = 64 << 10;
export const mountChunkBytesMax = 4 << 20;

export interface MountOptions {
  /** Chunk size, 64 KiB to 4 MiB. */
  chunkBytes?: number;
  /** Background fetches in flight at most. */
  pullConcurrency?: number;
  writeThrough?: boolean;
  /** Called with the bytes of every chunk fetched from the remote (for progress). */
  onFetch?: (bytes: number) => void;
}

export interface MountStats {
  chunks: number;
  present: number;
  fetchedOnDemand: number;
  fetchedInBackground: number;
  pushed: number;
  dirty: number;
  bytesFetched: number;
}

export class MountDevice implements BlockDevice {
  readonly size: number;
  readonly chunkBytes: number;
  private readonly present: Uint8Array;
  private readonly dirty = new Set<number>();
  private readonly fetching = new Map<number, Promise<void>>();
  private readonly hot: number[] = [];
  private cursor = 0;
  private pulling?: Promise<void>;
  private stopped = false;
  private owned = false;
  readonly stats: MountStats;

  constructor(
    private readonly local: BlockDevice,
    private readonly remote: BlockDevice,
    private readonly opts: MountOptions = {},
  ) {
    if (local.size !== remote.size)
      throw new RangeError(`local device (${local.size} bytes) and remote (${remote.size}) differ in size`);
    this.size = remote.size;
    this.chunkBytes = opts.chunkBytes ?? 1 << 20;
    // NaN passed the bounds and made no chunks at all: every read returned the local zeros, never fetched
    if (
      !Number.isInteger(this.chunkBytes) ||
      this.chunkBytes < mountChunkBytesMin ||
      this.chunkBytes > mountChunkBytesMax
    )
      throw new RangeError(
        `chunk size must be a whole number of bytes, 64 KiB to 4 MiB, got ${this.chunkBytes}`,
      );
    // no puller at all would leave every read of an absent chunk waiting forever
    const pullers = opts.pullConcurrency ?? 4;
    if (!Number.isInteger(pullers) || pullers < 1)
      throw new RangeError(`pullConcurrency must be a positive integer, got ${pullers}`);
    const n = Math.ceil(this.size / this.chunkBytes);
    this.present = new Uint8Array(n);
    this.stats = {
      chunks: n,
      present: 0,
      fetchedOnDemand: 0,
      fetchedInBackground: 0,
      pushed: 0,
      dirty: 0,
      bytesFetched: 0,
    };
  }

  private span(i: number): [number, number] {
    const off = i * this.chunkBytes;
    return [off, Math.min(this.chunkBytes, this.size - off)];
  }

  /** Makes chunk i local (once, however many callers ask at the same time). */
  private ensure(i: number, onDemand: boolean): Promise<void> {
    if (this.present[i]) return Promise.resolve();
    const f = this.fetching.get(i) ?? this.fetchRun(i, 1, onDemand);
    if (onDemand)
      for (const j of [i + 1, i + 2, i - 1])
        if (j >= 0 && j < this.present.length && !this.present[j]) this.hot.push(j);
    return f;
  }

  /** How many chunks from i on are missing and not being fetched, at most `pullRunBytesMax` worth. */
  private runFrom(i: number): number {
    const max = Math.max(1, Math.floor(pullRunBytesMax / this.chunkBytes));
    let n = 0;
    while (n < max && i + n < this.present.length && !this.present[i + n] && !this.fetching.has(i + n)) n++;
    return n;
  }

  /**
   * Fetches chunks [i, i + count) (all missing, none being fetched) with one remote read and one local
   * write: fewer, larger requests than one per chunk.
   */
  private fetchRun(i: number, count: number, onDemand: boolean): Promise<void> {
    const off = i * this.chunkBytes;
    const len = Math.min(count * this.chunkBytes, this.size - off);
    const f = (async () => {
      // as parts when both sides can (no reassembly of the bytes in between)
      if (this.remote.readv && this.local.writev)
        await this.local.writev(off, await this.remote.readv(off, len));
      else await this.local.writeAt(off, await this.remote.readAt(off, len));
      this.stats.bytesFetched += len;
      this.opts.onFetch?.(len);
      // nothing else made these chunks present while this fetch was registered for them
      for (let k = i; k < i + count; k++) this.present[k] = 1;
      this.stats.present += count;
      if (onDemand) this.stats.fetchedOnDemand += count;
      else this.stats.fetchedInBackground += count;
    })().finally(() => {
      for (let k = i; k < i + count; k++) this.fetching.delete(k);
    });
    for (let k = i; k < i + count; k++) this.fetching.set(k, f);
    return f;
  }

  private async ensureRange(offset: number, length: number): Promise<void> {
    if (length === 0) return;
    const first = Math.floor(offset / this.chunkBytes);
    const last = Math.floor((offset + length - 1) / this.chunkBytes);
    const all: Promise<void>[] = [];
    for (let i = first; i <= last; i++) all.push(this.ensure(i, true));
    await Promise.all(all);
  }

  /**
   * Forgets chunks the remote has rewritten since they were fetched (migration rounds): they are fetched
   * again, now (`refetch`) or on demand. Chunks dirty here keep their local bytes.
   */
  async invalidate(chunks: Iterable<number>, refetch = true): Promise<void> {
    const again: number[] = [];
    for (const i of chunks) {
      if (i < 0 || i >= this.present.length || this.dirty.has(i)) continue;
      await this.fetching.get(i)?.catch(() => undefined);
      if (this.present[i]) {
        this.present[i] = 0;
        this.stats.present--;
      }
      again.push(i);
    }
    if (!refetch) return;
    // consecutive chunks go in one request
    again.sort((a, b) => a - b);
    const all: Promise<void>[] = [];
    for (const i of again) {
      if (this.present[i]) continue;
      const f = this.fetching.get(i);
      if (f) all.push(f);
      else all.push(this.fetchRun(i, this.runFrom(i), false));
    }
    await Promise.all(all);
  }

  /**
   * Re-reads from the remote the `unitBytes`-sized units it has rewritten since they were fetched, in place,
   * in chunks that are already local (migration rounds, before the mount serves anyone: nothing else may
   * read or write it meanwhile). Units of chunks not local yet are left to their chunk's fetch; consecutive
   * units go in one request. Resolves with the bytes re-read.
   */
  async refresh(units: Iterable<number>, unitBytes: number): Promise<number> {
    const list = [...units]
      .filter((u) => {
        const off = u * unitBytes;
        if (u < 0 || off >= this.size) return false;
        const first = Math.floor(off / this.chunkBytes);
        const last = Math.floor((Math.min(this.size, off + unitBytes) - 1) / this.chunkBytes);
        for (let c = first; c <= last; c++) if (!this.present[c] || this.dirty.has(c)) return false;
        return true;
      })
      .sort((a, b) => a - b);
    const runs: [number, number][] = [];
    const unitsMax = Math.max(1, Math.floor(pullRunBytesMax / unitBytes));
    for (const u of list) {
      const r = runs[runs.length - 1];
      if (r && r[0] + r[1] === u && r[1] < unitsMax) r[1]++;
      else runs.push([u, 1]);
    }
    let bytes = 0;
    let k = 0;
    const worker = async () => {
      while (k < runs.length) {
        const [u, n] = runs[k++]!;
        const off = u * unitBytes;
        const len = Math.min(n * unitBytes, this.size - off);
        if (this.remote.readv && this.local.writev)
          await this.local.writev(off, await this.remote.readv(off, len));
        else await this.local.writeAt(off, await this.remote.readAt(off, len));
        bytes += len;
        this.stats.bytesFetched += len;
        this.opts.onFetch?.(len);
      }
    };
    await Promise.all(Array.from({ length: this.opts.pullConcurrency ?? 4 }, worker));
    return bytes;
  }

  /**
   * The local device becomes authoritative (a migration's handover): writes and trims stay local and are
   * never pushed to the remote, which is only read for the chunks that are not local yet.
   */
  own(): void {
    this.owned = true;
    this.dirty.clear();
    this.stats.dirty = 0;
  }

  /** Starts the background puller; resolves when every chunk is local. */
  pullAll(): Promise<void> {
    this.pulling ??= (async () => {
      this.cursor = 0;
      const next = (): number | undefined => {
        while (this.hot.length) {
          const h = this.hot.shift()!;
          if (!this.present[h]) return h;
        }
        while (this.cursor < this.present.length && this.present[this.cursor]) this.cursor++;
        return this.cursor < this.present.length ? this.cursor++ : undefined;
      };
      const worker = async () => {
        for (let i = next(); i !== undefined && !this.stopped; i = next()) {
          const f = this.fetching.get(i);
          if (f) await f;
          else {
            const n = this.runFrom(i);
            if (this.cursor === i + 1) this.cursor = i + n; // the run's chunks are taken
            await this.fetchRun(i, n, false);
          }
        }
      };
      await Promise.all(Array.from({ length: this.opts.pullConcurrency ?? 4 }, worker));
    })().finally(() => {
      this.pulling = undefined;
    });
    return this.pulling;
  }

  async readAt(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this.size, offset, length, 'read');
    await this.ensureRange(offset, length);
    return this.local.readAt(offset, length);
  }

  async writeAt(offset: number, bytes: Uint8Array, opts: { fua?: boolean } = {}): Promise<void> {
    checkRange(this.size, offset, bytes.length, 'write');
    // a partial write into a chunk that is not local needs the rest of the chunk first
    await this.ensureRange(offset, bytes.length);
    await this.local.writeAt(offset, bytes, opts);
    if (this.owned) return;
    if (this.opts.writeThrough) {
      await this.remote.writeAt(offset, bytes, opts);
      return;
    }
    if (bytes.length === 0) return;
    const first = Math.floor(offset / this.chunkBytes);
    const last = Math.floor((offset + bytes.length - 1) / this.chunkBytes);
    for (let i = first; i <= last; i++) this.dirty.add(i);
    this.stats.dirty = this.dirty.size;
    if (opts.fua) await this.flush();
  }

  /** Pushes dirty chunks to the remote (write-back), then flushes both devices. */
  async flush(): Promise<void> {
    if (this.owned) return this.local.flush();
    const chunks = [...this.dirty];
    this.dirty.clear();
    for (let k = 0; k < chunks.length; k++) {
      const [off, len] = this.span(chunks[k]!);
      try {
        await this.remote.writeAt(off, await this.local.readAt(off, len));
        this.stats.pushed++;
      } catch (e) {
        // this chunk and every one not pushed yet stay dirty (only this one did: the rest were never pushed)
        for (let j = k; j < chunks.length; j++) this.dirty.add(chunks[j]!);
        this.stats.dirty = this.dirty.size;
        throw e;
      }
    }
    this.stats.dirty = this.dirty.size;
    await this.local.flush();
    await this.remote.flush();
  }

  async trim(offset: number, length: number): Promise<void> {
    checkRange(this.size, offset, length, 'trim');
    await this.ensureRange(offset, length);
    await this.local.trim(offset, length);
    if (!this.owned) await this.remote.trim(offset, length);
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.pulling?.catch(() => undefined);
    await this.flush();
  }
}
