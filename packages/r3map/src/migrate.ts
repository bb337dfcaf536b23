/**
 * Live migration of a block device (after r3map/architekt): the source keeps serving while the
 * destination pre-copies; the source tracks chunks written after they were sent and the destination
 * re-fetches them in rounds until the dirty set is small; then finalize: the source seals (new writes
 * wait), hands over the final dirty list, and the destination takes over at once, fetching any chunk it
 * still lacks from the source on demand (post-copy) while the background pull completes. The time writes
 * wait is the downtime. If the source dies before finalize, the migration fails and the source stays
 * authoritative; if the destination dies, the source continues untouched.
 */
import { type BlockDevice, checkRange } from './device.js';
import type { MountDevice } from './mount.js';
import { UnitSet } from './units.js';

/** A device that records which chunks were written, and can hold writes (seal) during a handover. */
export class TrackedDevice implements BlockDevice {
  readonly size: number;
  /** A bit a unit at most, however many are written (see `UnitSet`). */
  private dirty = new UnitSet();
  private tracking = false;
  private gate?: Promise<void>;
  private openGate?: () => void;
  /** Writes and trims in flight on the inner device (`quiesce` waits for them). */
  private inflight = 0;
  private idle: (() => void)[] = [];

  constructor(
    readonly inner: BlockDevice,
    readonly chunkBytes: number,
  ) {
    // 0 made every tracked write loop forever without yielding; NaN tracked nothing, so the destination
    // missed writes made during the pre-copy
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1)
      throw new RangeError(
        `TrackedDevice: the tracking unit must be a whole number of bytes >= 1, got ${chunkBytes}`,
      );
    this.size = inner.size;
  }

  private mark(offset: number, length: number): void {
    if (!this.tracking || length === 0) return;
    const first = Math.floor(offset / this.chunkBytes);
    this.dirty.addRange(first, Math.floor((offset + length - 1) / this.chunkBytes) - first + 1);
  }

  /** Starts tracking (or returns and clears what was written since the last call). */
  drainDirty(): UnitSet {
    this.tracking = true;
    const d = this.dirty;
    this.dirty = new UnitSet();
    return d;
  }

  /** New writes wait until `unseal`. */
  seal(): void {
    this.gate ??= new Promise((r) => (this.openGate = r));
  }

  unseal(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  get sealed(): boolean {
    return this.gate !== undefined;
  }

  readAt(offset: number, length: number): Promise<Uint8Array> {
    return this.inner.readAt(offset, length);
  }

  writeAt(offset: number, bytes: Uint8Array, opts?: { fua?: boolean }): Promise<void> {
    return this.change('write', offset, bytes.length, () => this.inner.writeAt(offset, bytes, opts));
  }

  /**
   * A write or trim of [offset, offset + length): refused once sealed, counted in flight (`quiesce`), and
   * its units marked before it is applied (a drain in between still sees it) and again once applied (a copy
   * that cleared the unit in between may have read the old bytes): either way the unit is re-sent.
   */
  private async change(
    what: string,
    offset: number,
    length: number,
    apply: () => Promise<void>,
  ): Promise<void> {
    checkRange(this.size, offset, length, what);
    if (this.gate) throw new Error(`the source is sealed: its ${what}s go to the destination`);
    this.mark(offset, length);
    this.inflight++;
    try {
      await apply();
      this.mark(offset, length);
    } finally {
      if (--this.inflight === 0) for (const f of this.idle.splice(0)) f();
    }
  }

  /**
   * The device as the destination copies it: a read clears the chunks it covers whole from the dirty set
   * before it reads, since their bytes go over now; a write that lands after that marks them again (see
   * `writeAt`). Without it, a chunk written during the pre-copy before its first copy is sent twice. Its
   * `extents` are the device's (for BLOCK_STATUS), and clear nothing.
   */
  get copySource(): BlockDevice {
    const t = this;
    const inner = t.inner;
    return {
      size: t.size,
      readAt(offset: number, length: number): Promise<Uint8Array> {
        t.clearCovered(offset, length);
        return t.inner.readAt(offset, length);
      },
      // the destination skips what reads as zeros: that clears nothing, so a write there after this
      // answer (marked when it lands) is re-sent in a round
      ...(inner.extents
        ? { extents: (offset: number, length: number) => inner.extents!(offset, length) }
        : {}),
      writeAt: () => Promise.reject(new Error('the copy source is read-only')),
      flush: () => Promise.resolve(),
      trim: () => Promise.reject(new Error('the copy source is read-only')),
      close: () => Promise.resolve(),
    };
  }

  private clearCovered(offset: number, length: number): void {
    if (!this.tracking || length === 0) return;
    const first = Math.ceil(offset / this.chunkBytes);
    const end = offset + length;
    const last = end === this.size ? Math.ceil(end / this.chunkBytes) : Math.floor(end / this.chunkBytes);
    if (last > first) this.dirty.deleteRange(first, last - first);
  }

  /** Resolves when no write or trim is in flight (call after `seal`). */
  quiesce(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  /**
   * As `writeAt`: a trim was not counted in flight, so the seal did not wait for it and the destination
   * could copy the range before the trim landed (the trim was lost there); and an out-of-range length was
   * marked unit by unit before the inner device refused it (2^50 bytes: seconds, then 'Set maximum size
   * exceeded').
   */
  trim(offset: number, length: number): Promise<void> {
    return this.change('trim', offset, length, () => this.inner.trim(offset, length));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * What a workload writes to during a migration: the source, then (from the handover) the destination.
 * Writes that arrive while the source is sealed wait, and that wait is the downtime.
 */
export class MigratingDevice implements BlockDevice {
  readonly size: number;
  private owner: BlockDevice;
  private handover?: Promise<BlockDevice>;
  private resolveHandover?: (d: BlockDevice) => void;
  readonly waitsMs: number[] = [];

  constructor(private readonly source: TrackedDevice) {
    this.size = source.size;
    this.owner = source;
  }

  /** Called by the migration: from now on writes wait for `complete`. */
  beginHandover(): void {
    this.handover = new Promise((r) => (this.resolveHandover = r));
    this.source.seal();
  }

  complete(dest: BlockDevice): void {
    this.owner = dest;
    this.resolveHandover?.(dest);
    this.handover = undefined;
  }

  /** The migration failed: the source stays authoritative and takes writes again. */
  abort(): void {
    this.source.unseal();
    this.resolveHandover?.(this.source);
    this.handover = undefined;
  }

  /**
   * Runs `f` on the owner. With no handover under way this is synchronous up to the device call, so the
   * source's seal can never fall between choosing the source and writing to it.
   */
  private route<T>(f: (d: BlockDevice) => Promise<T>): Promise<T> {
    if (!this.handover) {
      try {
        return f(this.owner);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return (async () => {
      const t0 = performance.now();
      while (this.handover) await this.handover;
      this.waitsMs.push(performance.now() - t0);
      return f(this.owner);
    })();
  }

  readAt(offset: number, length: number): Promise<Uint8Array> {
    return this.route((d) => d.readAt(offset, length));
  }

  writeAt(offset: number, bytes: Uint8Array, opts?: { fua?: boolean }): Promise<void> {
    return this.route((d) => d.writeAt(offset, bytes, opts));
  }

  flush(): Promise<void> {
    return this.route((d) => d.flush());
  }

  trim(offset: number, length: number): Promise<void> {
    return this.route((d) => d.trim(offset, length));
  }

  async close(): Promise<void> {}
}

export interface MigrationReport {
  rounds: number;
  /** Tracking units (the source's `chunkBytes`) sent again: in the rounds, and dirty at the seal. */
  chunksResent: number;
  /** Units dirty at the seal (with those carried from the last round); fetched whole, as chunks. */
  finalDirty: number;
  /** How long the source was sealed (writes waited) during the handover. */
  downtimeMs: number;
  totalMs: number;
}

/** The chunks of `chunkBytes` that hold the given units of `unitBytes`. */
export function unitsToChunks(
  units: Iterable<number>,
  unitBytes: number,
  chunkBytes: number,
  size: number,
): UnitSet {
  // a chunk size of 0 looped forever without yielding
  for (const [what, n] of [
    ['unit', unitBytes],
    ['chunk', chunkBytes],
  ] as const)
    if (!Number.isSafeInteger(n) || n < 1)
      throw new RangeError(`unitsToChunks: the ${what} size must be a whole number of bytes >= 1, got ${n}`);
  const out = new UnitSet();
  // a UnitSet by its runs: a run of a million units is one range of chunks, not a million look-ups
  const runs: Iterable<[number, number]> =
    units instanceof UnitSet
      ? units.runs()
      : (function* () {
          for (const u of units) yield [u, 1] as [number, number];
        })();
  for (const [u, n] of runs) {
    if (!Number.isSafeInteger(u) || u < 0) throw new RangeError(`unitsToChunks: unit ${u} is not an index`);
    const off = u * unitBytes;
    if (off >= size) continue;
    const end = Math.min(size, off + n * unitBytes);
    const first = Math.floor(off / chunkBytes);
    out.addRange(first, Math.floor((end - 1) / chunkBytes) - first + 1);
  }
  return out;
}

export interface MigrateOptions {
  /** Stop the pre-copy rounds when at most this many units (the source's `chunkBytes`) are dirty. */
  dirtyChunksMax?: number;
  roundsMax?: number;
}

/**
 * Migrates `source` (reachable by the destination as `remote`, e.g. an NbdClientDevice to the source's
 * NBD server) into `dest`, a MountDevice over that remote. Resolves when the destination owns the device
 * and holds every chunk.
 */
export async function migrate(
  source: TrackedDevice,
  dest: MountDevice,
  front: MigratingDevice,
  opts: MigrateOptions = {},
): Promise<MigrationReport> {
  const t0 = performance.now();
  source.drainDirty(); // start tracking before the first copy
  let rounds = 0;
  let resent = 0;
  let carried = new UnitSet();
  let previous = Number.POSITIVE_INFINITY;
  try {
    await dest.pullAll();
    for (; rounds < (opts.roundsMax ?? 8); rounds++) {
      const dirty = source.drainDirty();
      // small enough, or not shrinking (the workload dirties as fast as a round re-sends): it goes with the
      // handover, and post-copy fetches those chunks on demand
      if (dirty.size <= (opts.dirtyChunksMax ?? 4) || dirty.size > 0.8 * previous) {
        carried = dirty;
        break;
      }
      previous = dirty.size;
      resent += dirty.size;
      // just the rewritten units, in place: the source may track finer than the destination's chunks
      await dest.refresh(dirty, source.chunkBytes);
    }
  } catch (e) {
    // the source (or the link) died before finalize: the destination gives up; the source is untouched
    front.abort();
    throw e;
  }
  // finalize: seal, final dirty list, hand over at once; post-copy fetches what is missing on demand
  const tSeal = performance.now();
  front.beginHandover();
  await source.quiesce();
  const last = source.drainDirty();
  for (const [u, n] of carried.runs()) last.addRange(u, n);
  await dest.invalidate(unitsToChunks(last, source.chunkBytes, dest.chunkBytes, dest.size), false);
  dest.own();
  front.complete(dest);
  const downtimeMs = performance.now() - tSeal;
  await dest.pullAll();
  return {
    rounds,
    chunksResent: resent + last.size,
    finalDirty: last.size,
    downtimeMs,
    totalMs: performance.now() - t0,
  };
}
