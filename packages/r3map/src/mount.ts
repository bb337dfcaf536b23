/**
 * A mount: a local device backed by a remote one (r3map's "remote-backed mount"). Reads of a chunk that is
 * not local yet fetch it on demand (and rank its neighbours hot); a background puller fetches the rest with
 * bounded concurrency, hot chunks first; writes land locally and mark chunks dirty; dirty chunks go back to
 * the remote on flush (write-back, the default) or at once (write-through). When the remote reports its
 * allocation (`extents`: NBD BLOCK_STATUS), the background pull reads no chunk that reads as zeros there:
 * it trims it locally (nothing at all with `localZeroed`) and takes it as present.
 */
import { type BlockDevice, checkRange } from './device.js';
import { UnitSet } from './units.js';

/** The background pull fetches runs of missing chunks of at most this many bytes in one request. */
export const pullRunBytesMax = 1 << 20;
/** The background pull takes runs of chunks that read as zeros at the remote, up to this many bytes at once. */
export const zeroRunBytesMax = 64 << 20;
/** The background pull asks the remote's allocation (`extents`) for this many bytes ahead at a time. */
export const statusSpanBytes = 1 << 30;
/** What the background pull knows of a chunk at the remote: nothing yet, data, or reads as zeros. */
const STATUS_UNKNOWN = 0;
const STATUS_DATA = 1;
const STATUS_ZERO = 2;
/** A mount's (and a migration's) chunk size: 64 KiB to 4 MiB. */
export const mountChunkBytesMin = 64 << 10;
export const mountChunkBytesMax = 4 << 20;

export interface MountOptions {
  /** Chunk size, 64 KiB to 4 MiB. */
  chunkBytes?: number;
  /** Background fetches in flight at most. */
  pullConcurrency?: number;
  writeThrough?: boolean;
  /**
   * The local device reads as zeros everywhere as the mount starts (a new MemoryDevice, a file just created
   * sparse): a chunk that reads as zeros at the remote is then left as it is. Otherwise (the default: a
   * device that may hold old data) it is trimmed locally, which is cheap next to reading it remotely.
   */
  localZeroed?: boolean;
  /**
   * Called with the bytes of every chunk made local (for progress): fetched from the remote, or found to
   * read as zeros there and not read.
   */
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
  /** Chunks the background pull did not read: the remote reported them as reading zeros. */
  zeroChunks: number;
}

export class MountDevice implements BlockDevice {
  readonly size: number;
  readonly chunkBytes: number;
  private readonly present: Uint8Array;
  /** Per chunk, STATUS_*: what the remote's `extents` said of it (for the background pull). */
  private readonly status: Uint8Array;
  /** The status query in flight (one at a time: each covers up to `statusSpanBytes`). */
  private statusing?: Promise<void>;
  /** Bumped by `invalidate`: a status query that began before it marks nothing (it may be stale). */
  private statusEpoch = 0;
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
    this.status = new Uint8Array(n);
    this.stats = {
      chunks: n,
      present: 0,
      fetchedOnDemand: 0,
      fetchedInBackground: 0,
      pushed: 0,
      dirty: 0,
      bytesFetched: 0,
      zeroChunks: 0,
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

  /**
   * How many chunks from i on are missing and not being fetched, at most `pullRunBytesMax` worth (of
   * `zeroRunBytesMax` for a zero run); with `status`, only chunks of that status after the first.
   */
  private runFrom(i: number, status?: number): number {
    const bytes = status === STATUS_ZERO ? zeroRunBytesMax : pullRunBytesMax;
    const max = Math.max(1, Math.floor(bytes / this.chunkBytes));
    let n = 0;
    while (
      n < max &&
      i + n < this.present.length &&
      !this.present[i + n] &&
      !this.fetching.has(i + n) &&
      (n === 0 || status === undefined || this.status[i + n] === status)
    )
      n++;
    return n;
  }

  /**
   * Learns whether chunk i (and the chunks after it, `statusSpanBytes` at a time) reads as zeros at the
   * remote. One query at a time: the pullers wait for the one in flight, which most likely covers them.
   */
  private async learnStatus(i: number): Promise<void> {
    // a chunk made local meanwhile (a demand read) gets no status (see `queryStatus`): asking again for it
    // would go on for ever
    while (this.status[i] === STATUS_UNKNOWN && !this.present[i] && !this.stopped) {
      if (!this.statusing)
        this.statusing = this.queryStatus(i).finally(() => {
          this.statusing = undefined;
        });
      await this.statusing;
    }
  }

  /**
   * Asks the remote's `extents` from chunk i's start on until chunk i is known, and marks every chunk the
   * answers cover whole: zero when all its bytes read as zeros, else data. A hole that does not say it
   * reads as zeros is data (NBD: its bytes are undefined).
   */
  private async queryStatus(i: number): Promise<void> {
    const cb = this.chunkBytes;
    const epoch = this.statusEpoch;
    const end = Math.min(this.size, i * cb + statusSpanBytes);
    let p = i * cb;
    let allZero = true;
    while (p < end && this.status[i] === STATUS_UNKNOWN) {
      const ext = await this.remote.extents!(p, end - p);
      if (epoch !== this.statusEpoch) return;
      const from = p;
      for (const x of ext) {
        const xEnd = Math.min(end, p + x.length);
        while (p < xEnd) {
          const c = Math.floor(p / cb);
          const cEnd = Math.min(this.size, (c + 1) * cb);
          if (!x.zero) allZero = false;
          p = Math.min(xEnd, cEnd);
          if (p === cEnd) {
            if (!this.present[c]) this.status[c] = allZero ? STATUS_ZERO : STATUS_DATA;
            allZero = true;
          }
        }
      }
      // a device that reported nothing (against its contract) would be asked forever: take chunk i as data
      if (p === from) {
        this.status[i] = STATUS_DATA;
        return;
      }
    }
  }

  /**
   * Makes chunks [i, i + count), all missing and reading as zeros at the remote, present without reading
   * them: trimmed locally unless the local device reads zeros there already (`localZeroed`).
   */
  private zeroRun(i: number, count: number): Promise<void> {
    // reads and writes of these chunks wait for it (a write landing before the trim would be lost)
    return this.makeLocal(i, count, 'zeroChunks', async (off, len) => {
      if (!this.opts.localZeroed) await this.local.trim(off, len);
    });
  }

  /**
   * Fetches chunks [i, i + count) (all missing, none being fetched) with one remote read and one local
   * write: fewer, larger requests than one per chunk.
   */
  private fetchRun(i: number, count: number, onDemand: boolean): Promise<void> {
    return this.makeLocal(
      i,
      count,
      onDemand ? 'fetchedOnDemand' : 'fetchedInBackground',
      async (off, len) => {
        // as parts when both sides can (no reassembly of the bytes in between)
        if (this.remote.readv && this.local.writev)
          await this.local.writev(off, await this.remote.readv(off, len));
        else await this.local.writeAt(off, await this.remote.readAt(off, len));
        this.stats.bytesFetched += len;
      },
    );
  }

  /**
   * Makes chunks [i, i + count) (all missing, none being fetched) local with `work` on their bytes,
   * registered as being fetched until it ends; then they are present and counted in `stats[counted]`.
   */
  private makeLocal(
    i: number,
    count: number,
    counted: 'fetchedOnDemand' | 'fetchedInBackground' | 'zeroChunks',
    work: (off: number, len: number) => Promise<void>,
  ): Promise<void> {
    const off = i * this.chunkBytes;
    const len = Math.min(count * this.chunkBytes, this.size - off);
    const f = (async () => {
      await work(off, len);
      this.opts.onFetch?.(len);
      // nothing else made these chunks present while this run was registered for them
      for (let k = i; k < i + count; k++) this.present[k] = 1;
      this.stats.present += count;
      this.stats[counted] += count;
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
    // what the remote said of them is stale now (they were written there), and so is any answer in flight
    this.statusEpoch++;
    for (const i of chunks) {
      if (i < 0 || i >= this.present.length || this.dirty.has(i)) continue;
      this.status[i] = STATUS_UNKNOWN;
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
    // taken in ascending order as the workers ask (a UnitSet iterates in order: not copied into an array of
    // every unit, 16M numbers after 64 GiB written in 4 KiB units), skipping units whose chunks are not
    // present or are locally dirty, consecutive ones merged into runs of at most `pullRunBytesMax`
    const ascending = units instanceof UnitSet ? units : [...units].sort((a, b) => a - b);
    const kept = (u: number) => {
      const off = u * unitBytes;
      if (u < 0 || off >= this.size) return false;
      const first = Math.floor(off / this.chunkBytes);
      const last = Math.floor((Math.min(this.size, off + unitBytes) - 1) / this.chunkBytes);
      for (let c = first; c <= last; c++) if (!this.present[c] || this.dirty.has(c)) return false;
      return true;
    };
    const unitsMax = Math.max(1, Math.floor(pullRunBytesMax / unitBytes));
    const runs = (function* (): Generator<[number, number]> {
      let start = 0;
      let n = 0;
      for (const u of ascending) {
        if (!kept(u)) continue;
        if (n > 0 && start + n === u && n < unitsMax) n++;
        else {
          if (n > 0) yield [start, n];
          start = u;
          n = 1;
        }
      }
      if (n > 0) yield [start, n];
    })();
    let bytes = 0;
    const worker = async () => {
      for (let r = runs.next(); !r.done; r = runs.next()) {
        const [u, n] = r.value;
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
      const statusKnown = this.remote.extents !== undefined;
      const worker = async () => {
        for (let i = next(); i !== undefined && !this.stopped; i = next()) {
          if (statusKnown && this.status[i] === STATUS_UNKNOWN) await this.learnStatus(i);
          if (this.present[i]) continue;
          const f = this.fetching.get(i);
          if (f) await f;
          else {
            const zero = this.status[i] === STATUS_ZERO;
            const n = this.runFrom(i, statusKnown ? this.status[i] : undefined);
            if (this.cursor === i + 1) this.cursor = i + n; // the run's chunks are taken
            await (zero ? this.zeroRun(i, n) : this.fetchRun(i, n, false));
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
