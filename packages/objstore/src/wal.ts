import { constants } from 'node:fs';
import { type FileHandle, open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { makeDirs, timerMsMax } from '@strata/cli';
import { hash64Words } from '@strata/highwayhash';
import { compareKeys, lowerBound } from './backends/mem.js';
import {
  type DeleteOptions,
  type GetOptions,
  type ListOptions,
  type ListPage,
  NotFoundError,
  type ObjectInfo,
  type ObjectStore,
  ObjectStoreError,
  type PutOptions,
} from './contract.js';
import { validateDelete, validateKey, validateList, validatePut } from './keys.js';
import { DirectoryLockedError, lockDirectory } from './lockfile.js';
import { PackedRefs, type PackRef, refKind } from './packedrefs.js';
import { PackIndexWriter, PackKind, packTrailerBytes, placeIndex, readIndex } from './packindex.js';
import { checkPrecondition, collectBody, etagInto, etagOf, KeyLocks, sliceRange } from './util.js';

export interface WalOptions {
  /** Directory of the WAL segments (the express tier: a local disk). */
  dir: string;
  /** Group commit: flush at least this often while writes wait. */
  flushIntervalMs?: number;
  /** Group commit: flush as soon as this many bytes wait. */
  flushBytes?: number;
  /** Write a pack once this many bytes are in the WAL. */
  packBytes?: number;
  /** Write a pack at least this often when the WAL is not empty. */
  packIntervalMs?: number;
  /** Writes larger than this bypass the WAL and go to the store directly. */
  walObjectBytesMax?: number;
  /** Key prefix of pack objects in the store. */
  packPrefix?: string;
  /** Compact a pack when its live bytes fall below this fraction of its size (0 turns compaction off). */
  compactLiveRatio?: number;
  /**
   * Bound on acknowledged bytes held in memory until packed: past it, writers wait for a pack (and get an
   * error if it fails), so a writer that outruns the store slows to the pack's rate instead of filling RAM.
   */
  memBytesMax?: number;
  /**
   * Close the store beneath when the WAL closes (default false: a WAL may be opened again over the same
   * store; `openStore` sets it, as its other layers close theirs, so its stack releases the backend).
   */
  closeStore?: boolean;
}

/**
 * Refuses WAL options that cannot work: an interval past a timer's 24.8 days (it would fire every
 * millisecond), sizes that are not positive, a ratio outside [0, 1]; each named with what it got.
 */
function checkWalOptions(o: WalOptions): void {
  const check = (name: keyof WalOptions, min: number, max: number) => {
    const v = o[name];
    if (v === undefined) return;
    if (typeof v !== 'number' || !(v >= min && v <= max))
      throw new RangeError(`WalOptions.${name} must be a number from ${min} to ${max}, got ${String(v)}`);
  };
  check('flushIntervalMs', 0, timerMsMax);
  check('packIntervalMs', 1, timerMsMax);
  for (const k of ['flushBytes', 'packBytes', 'walObjectBytesMax', 'memBytesMax'] as const)
    check(k, 1, Number.MAX_SAFE_INTEGER);
  check('compactLiveRatio', 0, 1);
  if (o.closeStore !== undefined && typeof o.closeStore !== 'boolean')
    throw new TypeError(`WalOptions.closeStore must be a boolean, got ${String(o.closeStore)}`);
}

const HEADER = 12;
const checksumKey = new Uint8Array(32).map((_, i) => 0xa5 ^ (i * 7));
/** Bound on bytes waiting for the next group commit; writers beyond it wait (backpressure). */
const pendingBytesMax = 64 * 2 ** 20;

/**
 * Lets the event loop run timers and I/O between the packer's steps: packing a second of small writes is
 * tens of milliseconds of work on the main thread (index, concatenation, checksums), and a group commit
 * whose interval ends meanwhile would otherwise wait for all of it.
 */
function yieldToCommits(): Promise<void> {
  return new Promise((resolve) =>
    setImmediate(() => {
      sliceStart = performance.now();
      resolve();
    }),
  );
}

/**
 * How long the packer's loops over keys run between yields to the event loop (the clock is read every 256
 * keys). A slice, not a count of keys: while writers keep the event loop busy, each yield waits a whole turn
 * of it (milliseconds of their work), and a yield every 2,000 keys made those waits most of a pack's time.
 */
const packSliceMs = 2;
let sliceStart = 0;

/** Whether a packer loop at its `i`th key has run its slice and should yield (`yieldToCommits`). */
function sliceDone(i: number): boolean {
  return (i & 255) === 0 && performance.now() - sliceStart >= packSliceMs;
}
/** Bytes of a pack sent to the store at a time, and how long before a due group commit no step starts. */
const packStepBytes = 2 ** 20;
/** A step of more pieces than this goes to the store as one buffer (compaction's pieces are one object each). */
const stepPiecesMax = 64;
const packStepQuietMs = 3;
/** For this long after a commit cut by size, pack steps do not wait for commits (see quietForPackStep). */
const saturatedMs = 100;

interface Segment {
  n: number;
  fh: FileHandle;
}

interface MemEntry {
  /**
   * The object is `buf[at, at + size)`: a record's copy in a slab, or an array of its own. A range rather
   * than a view of it: one object less per write for the garbage collector to move. Null: deleted (or,
   * with `direct`, in the store itself).
   */
  buf: Uint8Array | null;
  at: number;
  size: number;
  etag: string;
  modifiedMs: number;
  /** The store holds the current object (written there directly). */
  direct?: boolean;
}

/** The data fields of an entry without data. */
const noData = { buf: null, at: 0, size: 0 } as const;

/**
 * The writes of one group commit: a promise they all wait on (each put's own promise is derived from it:
 * a promise, its two resolving functions and a record per write cost about a third of the bytes a write
 * allocated), and per write what undoes its memory entry if the commit fails.
 */
class Batch {
  readonly done: Promise<void>;
  resolve!: () => void;
  reject!: (e: unknown) => void;
  readonly keys: string[] = [];
  readonly entries: MemEntry[] = [];
  readonly prevs: (MemEntry | undefined)[] = [];
  /** When each write was added (performance.now()), for `commitLatencyMs`. */
  readonly t0: number[] = [];
  constructor() {
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

export interface WalStats {
  walAppends: number;
  groupCommits: number;
  packsWritten: number;
  storePuts: number;
  commitLatencyMs: number[];
  /** Packs rewritten by compaction, and the bytes that freed in the store. */
  packsCompacted: number;
  bytesReclaimed: number;
}

/** The index kind of a memory entry. */
function kindOf(m: MemEntry): PackKind {
  return m.buf ? PackKind.Data : m.direct ? PackKind.Direct : PackKind.Deleted;
}

const recordHash = new Uint32Array(2);

/**
 * Records are encoded one after another into slabs of this many bytes: one allocation per slab instead of
 * one per record (allocating a small Buffer was a tenth of the CPU per write), and a group commit writes a
 * few contiguous ranges. A slab is not reused while the memory table may hold a record in it (until the
 * pack that stores them; see `sealedSlabs`), as a small Buffer's 8 KiB pool was not freed; this size keeps
 * that slack small.
 */
const slabBytes = 64 << 10;

/**
 * Slabs kept at most, in use and free: as many as `memBytesMax` of records fill (writers wait for a pack
 * beyond it), at least four packs' worth. Retired slabs are kept for reuse up to it and dropped beyond, so
 * a WAL that once needed N slabs reuses them instead of faulting in fresh memory (with packs of 4 x
 * `packBytes` kept, layers that outgrew packBytes while a pack ran got fresh slabs, and their page faults
 * were most of a record's encoding time).
 */
function slabsMax(o: Required<WalOptions>): number {
  return Math.ceil(Math.max(o.memBytesMax, 4 * o.packBytes) / slabBytes);
}

/**
 * A WAL record: u32 body length | u32 lo, hi of a HighwayHash-64 checksum | body: op (u8), u16 key length,
 * key, then for an op with `opTimed` set (every record written since 2026-12-07) the write's time (f64, ms
 * since the epoch: the object's modification time after a reopen), then by the op's low bits
 * - 4, a put: the data's etag (16 bytes, see `etagOf`) and the data. The checksum covers the body up to
 *   the etag, and the etag covers the data: the data is hashed once when written (for its etag, which a put
 *   computes anyway) and checked against the etag when read back.
 * - 2, a delete, and 3, a write made to the store directly: nothing more; the checksum covers the body.
 * - 1, a put as written before op 4 (read, no longer written): the data; the checksum covers the body.
 * Records without `opTimed` (written before 2026-12-07) are still read; their writes take the open's time.
 */
function recordBytes(op: 2 | 3 | 4, key: string, data: Uint8Array): number {
  return HEADER + 3 + Buffer.byteLength(key, 'utf8') + timeBytes + (op === 4 ? etagBytes : 0) + data.length;
}

/** Bytes of an etag in a record. */
const etagBytes = 16;
/** The op bit of a record that carries its write's time, and the bytes of the time. */
const opTimed = 0x80;
const timeBytes = 8;

/**
 * Encodes a record of `size` bytes (see `recordBytes`) at `at` in `buf`, written at `modifiedMs`; its copy
 * of `data` ends the record, right after (op 4) the data's etag.
 */
function encodeRecord(
  buf: Buffer,
  at: number,
  size: number,
  op: 2 | 3 | 4,
  key: string,
  data: Uint8Array,
  modifiedMs: number,
): void {
  const body = at + HEADER;
  buf.writeUInt32LE(size - HEADER, at);
  buf[body] = op | opTimed;
  const kl = buf.write(key, body + 3, 'utf8');
  buf.writeUInt16LE(kl, body + 1);
  let end = body + 3 + kl;
  buf.writeDoubleLE(modifiedMs, end);
  end += timeBytes;
  if (op === 4) {
    etagInto(data, buf, end);
    end += etagBytes;
  }
  buf.set(data, end);
  const h = hash64Words(checksumKey, buf, recordHash, body, op === 4 ? end : at + size);
  buf.writeUInt32LE(h[0]!, at + 4);
  buf.writeUInt32LE(h[1]!, at + 8);
}

/**
 * A record read back from a segment; `op` without `opTimed`; `etag` is the data's (for a put); `modifiedMs`
 * the write's time (records written before 2026-12-07 have none).
 */
export interface WalRecord {
  op: number;
  key: string;
  data: Uint8Array;
  etag?: string;
  modifiedMs?: number;
}

/**
 * Parses records from a segment; stops at the first torn or corrupt one and reports where. A record whose
 * checksum holds but whose op this code does not know (a newer writer's) is an error naming its offset:
 * it was replayed as a delete, and cutting the segment there would lose the acknowledged writes after it.
 */
export function decodeRecords(buf: Uint8Array): { records: WalRecord[]; validBytes: number } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const records: WalRecord[] = [];
  const w = new Uint32Array(2);
  let p = 0;
  while (p + HEADER <= b.length) {
    const len = b.readUInt32LE(p);
    if (len < 3 || p + HEADER + len > b.length) break;
    const body = b.subarray(p + HEADER, p + HEADER + len);
    const timed = (body[0]! & opTimed) !== 0;
    const op = body[0]! & ~opTimed;
    const kl = body.readUInt16LE(1);
    const etagAt = 3 + kl + (timed ? timeBytes : 0);
    const dataAt = etagAt + (op === 4 ? etagBytes : 0);
    if (dataAt > len) break;
    hash64Words(checksumKey, op === 4 ? body.subarray(0, dataAt) : body, w);
    if (w[0] !== b.readUInt32LE(p + 4) || w[1] !== b.readUInt32LE(p + 8)) break;
    if (op < 1 || op > 4)
      throw new Error(
        `WAL record at byte ${p}: op ${body[0]} is not one this version reads (1-4, +0x80 with a time): written by a newer version? Open it with that version`,
      );
    const key = body.toString('utf8', 3, 3 + kl);
    const data = body.subarray(dataAt);
    const record: WalRecord = { op, key, data };
    if (timed) record.modifiedMs = body.readDoubleLE(3 + kl);
    if (op === 4) {
      record.etag = body.toString('hex', etagAt, dataAt);
      if (etagOf(data) !== record.etag) break;
    }
    records.push(record);
    p += HEADER + len;
  }
  return { records, validBytes: p };
}

/**
 * The data region of a pack of `entries`, and each entry's offset in it (0 without data).
 * Normally the used range of each buffer the entries point into (a slab of records, or an entry's own array)
 * as it is: no copy per key; record headers and superseded versions in those ranges come along as dead
 * bytes. When more than `deadShareMax` of that would be dead (keys written over and over), each entry's
 * data alone: a pack that compaction would rewrite at once is not worth the copy it saves.
 */
async function packData(entries: MemEntry[]): Promise<{ parts: Uint8Array[]; offsets: Float64Array }> {
  const ranges = new Map<Uint8Array, { start: number; end: number; base: number }>();
  let buf: Uint8Array | null = null;
  let r = { start: 0, end: 0, base: 0 };
  let live = 0;
  for (let i = 0; i < entries.length; i++) {
    if (sliceDone(i)) await yieldToCommits();
    const m = entries[i]!;
    if (!m.buf) continue;
    live += m.size;
    if (m.buf !== buf) {
      buf = m.buf;
      const seen = ranges.get(buf);
      if (seen) r = seen;
      else ranges.set(buf, (r = { start: m.at, end: m.at + m.size, base: 0 }));
    }
    if (m.at < r.start) r.start = m.at;
    if (m.at + m.size > r.end) r.end = m.at + m.size;
  }
  const parts: Uint8Array[] = [];
  const offsets = new Float64Array(entries.length);
  let off = 0;
  for (const [b, range] of ranges) {
    parts.push(b.subarray(range.start, range.end));
    range.base = off - range.start;
    off += range.end - range.start;
  }
  const whole = off <= live / (1 - deadShareMax);
  if (!whole) parts.length = 0;
  off = 0;
  buf = null;
  for (let i = 0; i < entries.length; i++) {
    if (sliceDone(i)) await yieldToCommits();
    const m = entries[i]!;
    if (m.buf && whole) {
      if (m.buf !== buf) r = ranges.get((buf = m.buf))!;
      offsets[i] = r.base + m.at;
    } else if (m.buf) {
      parts.push(m.buf.subarray(m.at, m.at + m.size));
      offsets[i] = off;
      off += m.size;
    }
  }
  return { parts, offsets };
}

/** Whether a key's object is the store's, given the WAL's `localState`: nothing, or a direct write's marker. */
function storeDecides(local: string): boolean {
  return local === 'none' || local === 'direct';
}

/** Store deletes at most in flight at once for the objects found hidden at open (`purgeAtOpen`). */
const openPurgesInFlightMax = 16;

/** Share of a pack's data region that may be dead bytes when it is written from whole slab ranges. */
const deadShareMax = 0.25;

/**
 * One WAL layer's keys with `prefix` in key order, from the first after `after` (or at `from`), for `list`'s
 * merge: `key` (undefined past the end), its object (`entry`: null when deleted, undefined when the store
 * holds it), `next`.
 */
interface LayerRun {
  readonly key: string | undefined;
  entry(): ObjectInfo | null | undefined;
  next(): void;
}

/** A memory layer's run: its keys sorted (`sortedMem`), the entries read from the map. */
class MemRun implements LayerRun {
  private i: number;
  constructor(
    private readonly keys: readonly string[],
    private readonly map: Map<string, MemEntry>,
    from: string,
    after: string | undefined,
    private readonly prefix: string,
  ) {
    this.i = lowerBound(keys, from);
    if (keys[this.i] === after) this.i++;
  }
  get key(): string | undefined {
    const k = this.keys[this.i];
    return k?.startsWith(this.prefix) ? k : undefined;
  }
  entry(): ObjectInfo | null | undefined {
    const key = this.keys[this.i]!;
    const m = this.map.get(key)!;
    if (m.direct) return undefined;
    return m.buf ? { key, size: m.size, etag: m.etag, modifiedMs: m.modifiedMs } : null;
  }
  next(): void {
    this.i++;
  }
}

/** The packed keys' run, by rank in `PackedRefs`' key order. */
class PackedRun implements LayerRun {
  private r: number;
  constructor(
    private readonly packed: PackedRefs,
    from: string,
    after: string | undefined,
    private readonly prefix: string,
  ) {
    this.r = packed.rankOf(from);
    if (this.r < packed.size && packed.keyAtRank(this.r) === after) this.r++;
  }
  get key(): string | undefined {
    if (this.r >= this.packed.size) return undefined;
    const k = this.packed.keyAtRank(this.r);
    return k.startsWith(this.prefix) ? k : undefined;
  }
  entry(): ObjectInfo | null | undefined {
    const p = this.packed.refAtRank(this.r);
    if (p.direct) return undefined;
    return p.deleted
      ? null
      : { key: this.packed.keyAtRank(this.r), size: p.size, etag: p.etag, modifiedMs: p.modifiedMs };
  }
  next(): void {
    this.r++;
  }
}

export class WalStore implements ObjectStore {
  readonly url: string;
  readonly stats: WalStats = {
    walAppends: 0,
    groupCommits: 0,
    packsWritten: 0,
    storePuts: 0,
    commitLatencyMs: [],
    packsCompacted: 0,
    bytesReclaimed: 0,
  };
  private readonly o: Required<WalOptions>;
  /** Acknowledged writes not yet packed: the newest layer. */
  private mem = new Map<string, MemEntry>();
  /** Data bytes in `mem` and in `frozenMem` (see `memBytesMax`). */
  private memBytes = 0;
  private frozenBytes = 0;
  /** The writes a pack in progress is storing: read below `mem`, above the packs; never written to. */
  private frozenMem: Map<string, MemEntry> | undefined;
  /** Every packed key's reference, and each pack's live bytes. */
  private readonly packed = new PackedRefs();
  /** Bumped when a key comes into `mem` or leaves it (not when one is written again): `sortedMem`. */
  private memKeysVersion = 0;
  private memSorted: { map: Map<string, MemEntry>; version: number; keys: string[] } | undefined;
  private frozenSorted: { map: Map<string, MemEntry>; keys: string[] } | undefined;
  private segment = 0;
  private fh?: FileHandle;
  /** Where the next group commit writes in the current segment. */
  private segPos = 0;
  /**
   * The segment after the current one, created and its directory entry made durable ahead of
   * the rotation that switches to it, so a rotation inside the flush chain does no I/O of its own.
   */
  private next?: Promise<Segment>;
  private walBytes = 0;
  /** Writers waiting for the next group commit, and the bytes of their records. */
  private pending: Batch | undefined;
  /** The batch of the group commit being written, until it is durable or has failed. */
  private writing: Batch | undefined;
  private pendingBytes = 0;
  /** The slab records are encoded into (see `slabBytes`), and where the next one goes. */
  private slab: Buffer = Buffer.allocUnsafe(0);
  private slabPos = 0;
  /**
   * Full slabs, kept for reuse: fresh memory for every slab cost about a seventh of the CPU per write (page
   * faults). A slab is sealed when full; the pack of the memory layer frozen after that retires it (no
   * entry refers to it once that layer is dropped); the next rotation frees it (its flush has written every
   * record added before it, so no group commit reads it any more). A failed pack or commit frees none.
   */
  private sealedSlabs: Buffer[] = [];
  private retiredSlabs: Buffer[] = [];
  /** Slabs of `slabBytes` allocated and not dropped (see `slabsMax`). */
  private slabCount = 0;
  private freeSlabs: Buffer[] = [];
  /** The waiting records: these ranges of earlier slabs, then the current slab from `batchStart`. */
  private batchParts: Buffer[] = [];
  private batchStart = 0;
  private flushTimer?: NodeJS.Timeout;
  private packTimer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private packing?: Promise<void>;
  private packSeq = 0;
  private closed = false;
  /**
   * Set when a close starts: new calls are refused while the direct writes already under way (`directs`)
   * finish and add their markers, which the close then commits.
   */
  private closing = false;
  /** Direct writes (too large for the WAL) under way: a close waits for them. */
  private readonly directs = new Set<Promise<unknown>>();
  /** Set by a failed group commit: the WAL takes no more writes. */
  private failure: Error | undefined;
  private unlock: (() => Promise<void>) | undefined;

  private constructor(
    readonly store: ObjectStore,
    opts: WalOptions,
  ) {
    this.o = {
      flushIntervalMs: 5,
      flushBytes: 1 << 20,
      packBytes: 8 << 20,
      packIntervalMs: 1000,
      walObjectBytesMax: 256 << 10,
      packPrefix: '.wal-packs/',
      compactLiveRatio: 0.5,
      memBytesMax: 256 << 20,
      closeStore: false,
      ...opts,
    };
    this.url = `wal(${opts.dir}) -> ${store.url}`;
  }

  /** Opens (and recovers) a WAL directory in front of `store`; a RangeError names an option out of range. */
  static async open(store: ObjectStore, opts: WalOptions): Promise<WalStore> {
    checkWalOptions(opts);
    const w = new WalStore(store, opts);
    try {
      await w.recover();
    } catch (e) {
      // a WAL that cannot be recovered (a damaged pack, a failing store) leaves the directory unlocked
      await w.unlock?.();
      throw e;
    }
    return w;
  }

  private async recover(): Promise<void> {
    await makeDirs(this.o.dir);
    try {
      this.unlock = await lockDirectory(this.o.dir, `WAL directory ${this.o.dir}`);
    } catch (e) {
      if (e instanceof DirectoryLockedError) throw new ObjectStoreError(e.message);
      throw e;
    }
    // keys with a direct write's marker, and keys whose object in the store a record hides (see below)
    const directSeen = new Set<string>();
    const hidden = new Set<string>();
    // packs first (older state), then the WAL (newer)
    let after: string | undefined;
    const packs: ObjectInfo[] = [];
    for (;;) {
      const page = await this.store.list(this.o.packPrefix, after === undefined ? {} : { startAfter: after });
      packs.push(...page.objects);
      if (page.nextStartAfter === undefined) break;
      after = page.nextStartAfter;
    }
    for (const { key, size } of packs) {
      const name = key.slice(this.o.packPrefix.length);
      // the next pack's number comes from these names: another one would make it NaN, and every later pack
      // would be written over the one before
      if (!/^\d{12}\.pack$/.test(name))
        throw new ObjectStoreError(
          `'${key}' in the WAL's pack prefix on ${this.store.url} is not named as the WAL's packs are (12 digits, then .pack): move it out of ${this.o.packPrefix}`,
        );
      // the index only: its place from the pack's last bytes, then its bytes (not the pack's data)
      const tail =
        size > 0
          ? await this.store.get(key, {
              range: { start: Math.max(0, size - packTrailerBytes), end: size - 1 },
            })
          : new Uint8Array(0);
      const place = placeIndex(key, size, tail);
      const bytes = await this.store.get(key, { range: { start: place.start, end: size - 1 } });
      this.packSizes.set(key, { size, data: place.start });
      let live = 0;
      readIndex(key, place, bytes, (k, kind, mtime, off, n, etag) => {
        if (kind === PackKind.Direct) directSeen.add(k);
        this.packed.point(k, key, off, n, etag, mtime, kind);
        live += n;
      });
      this.packed.addLive(key, live);
      this.packSeq = Math.max(this.packSeq, Number(name.slice(0, 12)) + 1);
    }
    const segs = (await readdir(this.o.dir)).filter((n) => /^\d{12}\.wal$/.test(n)).sort();
    for (const name of segs) {
      const buf = await readFile(join(this.o.dir, name));
      let decoded: ReturnType<typeof decodeRecords>;
      try {
        decoded = decodeRecords(buf);
      } catch (e) {
        throw new Error(`${join(this.o.dir, name)}: ${(e as Error).message}`);
      }
      const { records, validBytes } = decoded;
      for (const r of records) {
        // a put over a direct write, or a delete of a key the WAL held nothing for or a direct write of: its
        // purge from the store may not have run before the crash (or the close) that left the record here
        const before = r.op === 3 ? undefined : this.localState(r.key);
        if (before === 'direct' || (r.op === 2 && before === 'none')) hidden.add(r.key);
        else if (r.op === 3) directSeen.add(r.key);
        this.applyToMem(r);
      }
      if (validBytes < buf.length) {
        const fh = await open(join(this.o.dir, name), 'r+');
        try {
          await fh.truncate(validBytes);
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      this.segment = Math.max(this.segment, Number(name.slice(0, 12)));
      this.walBytes += validBytes;
    }
    await this.openSegment(this.segment + (segs.length ? 1 : 0));
    for (const k of directSeen) if (this.localState(k) === 'direct') this.largeInStore.add(k);
    this.purgeAtOpen([...hidden]);
    this.packTimer = setInterval(() => void this.packNow().catch(() => undefined), this.o.packIntervalMs);
    this.packTimer.unref();
  }

  private segName(n: number): string {
    return join(this.o.dir, `${String(n).padStart(12, '0')}.wal`);
  }

  private async openSegment(n: number): Promise<void> {
    this.useSegment(await this.createSegment(n));
    this.prepareNext();
  }

  private useSegment(seg: Segment): void {
    this.segment = seg.n;
    this.fh = seg.fh;
    this.segPos = 0;
  }

  /**
   * Creates segment `n` and makes its directory entry durable. Its handle is opened with O_DSYNC: a group
   * commit's write is its own data sync, one trip through the thread pool instead of a write and then a
   * sync (while writers keep the event loop busy, each trip's callback waits for the next turn of it).
   */
  private async createSegment(n: number): Promise<Segment> {
    const { O_WRONLY, O_CREAT, O_EXCL, O_DSYNC } = constants;
    const fh = await open(this.segName(n), O_WRONLY | O_CREAT | O_EXCL | O_DSYNC);
    try {
      const d = await open(this.o.dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch (e) {
      // removed, so that creating it again (the rotation's retry) can work
      await fh.close();
      await rm(this.segName(n), { force: true });
      throw e;
    }
    return { n, fh };
  }

  /** Prepares the next segment. */
  private prepareNext(): void {
    const next = this.createSegment(this.segment + 1);
    next.catch(() => undefined); // a failed one is created again by the rotation that needs it
    this.next = next;
  }

  /** The prepared next segment, or (if preparing it failed) a new one created now. */
  private async takeNext(): Promise<Segment> {
    const n = this.segment + 1;
    const next = this.next;
    this.next = undefined;
    try {
      if (next) {
        const r = await next;
        if (r.n === n) return r;
        await r.fh.close();
      }
    } catch {
      // fall through: try once more, in the chain
    }
    return this.createSegment(n);
  }

  private applyToMem({ op, key, etag, data, modifiedMs }: WalRecord): void {
    // a record of before 2026-12-07 carries no time: the open's stands in
    const now = modifiedMs ?? Date.now();
    const copy = { buf: Uint8Array.from(data), at: 0, size: data.length };
    if (op === 4) this.memSet(key, { ...copy, etag: etag!, modifiedMs: now });
    else if (op === 1) this.memSet(key, { ...copy, etag: etagOf(data), modifiedMs: now });
    else if (op === 3) this.memSet(key, { ...noData, etag: '', modifiedMs: now, direct: true });
    else this.memSet(key, { ...noData, etag: '', modifiedMs: now });
  }

  /**
   * Sets (or, given undefined, removes) a key's entry in the newest memory layer, counting its bytes; returns
   * the entry it replaced.
   */
  private memSet(key: string, e: MemEntry | undefined): MemEntry | undefined {
    const prev = this.mem.get(key);
    this.memBytes += (e?.size ?? 0) - (prev?.size ?? 0);
    if (!prev !== !e) this.memKeysVersion++;
    if (e) this.mem.set(key, e);
    else this.mem.delete(key);
    return prev;
  }

  /** Waits while more than `memBytesMax` acknowledged bytes wait to be packed: for packs, until they fit. */
  private async roomInMemory(): Promise<void> {
    while (this.memBytes + this.frozenBytes > this.o.memBytesMax) {
      // closed or stopped: no pack will make room; the write fails with the reason where it appends
      if (this.closed || this.failure) return;
      try {
        await this.packNow();
      } catch (e) {
        throw new ObjectStoreError(
          `the WAL in ${this.o.dir} holds ${this.memBytes + this.frozenBytes} bytes not yet packed (memBytesMax ${this.o.memBytesMax}) and packing them to ${this.store.url} failed: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    }
  }

  /**
   * The current etag of `key` as this store sees it (memory, packs, then the store), for a conditional write
   * holding the key's lock. A put or delete that came into the WAL while the store was asked is newer than
   * what the store said, and decides (the check used the store's answer: a create-only put overwrote a put
   * acknowledged meanwhile). Direct writes take the key's lock too, so none lands meanwhile.
   */
  private async currentEtag(key: string): Promise<string | undefined> {
    let local = this.localState(key);
    if (storeDecides(local)) {
      const info = await this.store.head(key);
      local = this.localState(key);
      if (storeDecides(local)) return info?.etag;
    }
    return local === 'deleted' ? undefined : local;
  }

  /**
   * What the WAL holds for `key`: nothing (`'none'`: the store decides), a direct write's marker
   * (`'direct'`), a deletion, or an object's etag.
   */
  private localState(key: string): string {
    const m = this.memGet(key);
    if (m) return m.direct ? 'direct' : m.buf ? m.etag : 'deleted';
    const p = this.packed.get(key);
    if (!p) return 'none';
    return p.direct ? 'direct' : p.deleted ? 'deleted' : p.etag;
  }

  /**
   * Adds a record to the next group commit and returns where its copy of `data` starts in `this.slab` (for
   * the memory table); the caller then calls `durable`, with no await between. Throws, adding nothing, when
   * the WAL takes no writes.
   */
  private addRecord(op: 2 | 3 | 4, key: string, data: Uint8Array, modifiedMs: number): number {
    // (not `checkOpen`: while a close waits for the direct writes under way, their markers go in)
    if (this.closed) throw new ObjectStoreError('the WAL store is closed');
    if (this.failure)
      throw new ObjectStoreError(
        `the WAL in ${this.o.dir} stopped taking writes after a failed write or sync (${this.failure.message}); reopen it to recover what was acknowledged`,
      );
    const size = recordBytes(op, key, data);
    if (this.slabPos + size > this.slab.length) {
      if (this.slabPos > this.batchStart)
        this.batchParts.push(this.slab.subarray(this.batchStart, this.slabPos));
      if (this.slab.length === slabBytes) this.sealedSlabs.push(this.slab);
      this.slab = (size <= slabBytes && this.freeSlabs.pop()) || this.newSlab(size);
      this.slabPos = 0;
      this.batchStart = 0;
    }
    encodeRecord(this.slab, this.slabPos, size, op, key, data, modifiedMs);
    this.slabPos += size;
    this.pendingBytes += size;
    return this.slabPos - data.length;
  }

  /** A fresh slab, or an array of its own for a record larger than a slab. */
  private newSlab(size: number): Buffer {
    if (size > slabBytes) return Buffer.allocUnsafe(size);
    this.slabCount++;
    return Buffer.allocUnsafe(slabBytes);
  }

  /**
   * Applies `entry`, for the record just added, to the memory table (reads see it at once, and so do later
   * conditional puts), and resolves with its etag once the record is durable: after the next group commit.
   * If that fails, the entry is undone (unless a newer one replaced it) and the promise rejects.
   */
  private durable(key: string, entry: MemEntry): Promise<string> {
    const prev = this.memSet(key, entry);
    const b = (this.pending ??= new Batch());
    b.keys.push(key);
    b.entries.push(entry);
    b.prevs.push(prev);
    const now = performance.now();
    b.t0.push(now);
    this.stats.walAppends++;
    if (this.pendingBytes >= this.o.flushBytes) {
      this.sizeFlushAt = now;
      this.scheduleFlush(0);
    } else this.scheduleFlush(this.o.flushIntervalMs);
    const etag = entry.etag;
    return b.done.then(() => etag);
  }

  /**
   * Queues a group commit: in `ms`, or (0) next in the flush chain. At most one is queued (it takes what is
   * waiting when it starts), so a pack's rotation, queued behind it, waits for at most two commits.
   */
  private scheduleFlush(ms: number): void {
    if (ms === 0) {
      if (this.flushTimer) clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
      if (this.flushQueued) return;
      this.flushQueued = true;
      this.flushing = this.chain((release) => this.flush(release));
      return;
    }
    if (this.flushTimer || this.flushQueued) return;
    this.flushDueAt = performance.now() + ms;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.scheduleFlush(0);
    }, ms);
  }

  /** A group commit is queued in the flush chain and has not taken its records yet. */
  private flushQueued = false;

  /** When the scheduled group commit's timer fires (performance.now() time), 0 when none is scheduled. */
  private flushDueAt = 0;
  /** When a group commit was last cut by size (`flushBytes`) rather than by its interval. */
  private sizeFlushAt = Number.NEGATIVE_INFINITY;
  /** A group commit is writing or syncing. */
  private inFlush = false;
  /** Pack steps waiting for the group commit in progress or due to finish. */
  private commitWaiters: (() => void)[] = [];

  /**
   * Resolves when a step of a pack may go to the store without delaying a group commit: at once, unless a
   * commit is running or due within `packStepQuietMs`; then as soon as it has finished. With the store on
   * the WAL's disk, a commit's data sync would otherwise wait for the step's write-back.
   */
  private quietForPackStep(): Promise<void> {
    // saturated (commits cut by size, back to back): there is no quiet time to wait for, and waiting for
    // each commit only drags the pack out
    if (performance.now() - this.sizeFlushAt < saturatedMs) return Promise.resolve();
    const due = this.flushDueAt > 0 && this.flushDueAt - performance.now() < packStepQuietMs;
    if (!this.inFlush && !due) return Promise.resolve();
    return new Promise((resolve) => this.commitWaiters.push(resolve));
  }

  /** The flush chain's op in progress and the ops waiting for it (see `chain`). */
  private chainBusy = false;
  private readonly chainWaiting: (() => void)[] = [];

  /**
   * Runs `op` in the flush chain, where group commits and rotations run one at a time, in order. An op calls
   * `release` when it is done with the segment (at the latest, it is released when it settles), and the next
   * op starts then, synchronously. A group commit releases once its write is durable and before it
   * acknowledges its writers: the next commit is already writing while they run and add the records of the
   * one after. (Chained on a promise, the next commit started only after every writer's continuation, with
   * all of their records: commits and the writers' work then took turns, the main thread idle during each
   * commit's write.)
   */
  private chain(op: (release: () => void) => Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      const start = () => {
        this.chainBusy = true;
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          const next = this.chainWaiting.shift();
          if (next) next();
          else this.chainBusy = false;
        };
        let run: Promise<void>;
        try {
          run = op(release);
        } catch (e) {
          run = Promise.reject(e);
        }
        run.then(
          () => {
            release();
            resolve();
          },
          (e) => {
            release();
            reject(e);
          },
        );
      };
      if (this.chainBusy) this.chainWaiting.push(start);
      else start();
    });
  }

  /**
   * A group commit as an op of the flush chain (see `commit`): the next op may start once it is durable;
   * then its writers are acknowledged, and a pack starts if the WAL has grown past `packBytes`.
   */
  private async flush(release: () => void): Promise<void> {
    const batch = await this.commitNow();
    release();
    batch?.resolve();
    // not from the close's commit: the pack would rotate to (and leave open) a segment after the close
    if (!this.closed && this.walBytes >= this.o.packBytes) void this.packNow().catch(() => undefined);
  }

  /** A group commit, marked as running for the pack's steps (see `quietForPackStep`). */
  private async commitNow(): Promise<Batch | undefined> {
    this.flushQueued = false;
    this.flushDueAt = 0;
    this.inFlush = true;
    try {
      return await this.commit();
    } finally {
      this.inFlush = false;
      for (const w of this.commitWaiters.splice(0)) w();
    }
  }

  /**
   * One group commit: write every waiting record, synced by the write itself. Returns the batch, durable,
   * for the caller to acknowledge; on failure rejects its writers (and those waiting behind it) and returns
   * nothing.
   */
  private async commit(): Promise<Batch | undefined> {
    const batch = this.pending;
    if (!batch) return undefined;
    this.writing = batch;
    const parts = this.batchParts;
    parts.push(this.slab.subarray(this.batchStart, this.slabPos));
    const len = this.pendingBytes;
    this.pending = undefined;
    this.pendingBytes = 0;
    this.batchParts = [];
    this.batchStart = this.slabPos;
    try {
      const at = this.segPos;
      const { bytesWritten } = await this.fh!.writev(parts, at);
      if (bytesWritten !== len)
        throw new ObjectStoreError(
          `WAL segment ${this.segment}: short write (${bytesWritten} of ${len} bytes)`,
        );
      this.segPos = at + len; // durable: the segment is written with O_DSYNC
      this.stats.groupCommits++;
      this.walBytes += len;
      const now = performance.now();
      const lat = this.stats.commitLatencyMs;
      for (let i = 0; i < batch.t0.length && lat.length < 1_000_000; i++) lat.push(now - batch.t0[i]!);
      return batch;
    } catch (e) {
      // what was written is not known to be durable, and a later sync could report success for bytes
      // after lost ones (an error is reported once), which recovery would then cut: take no more writes
      this.failure = e instanceof Error ? e : new Error(String(e));
      const failed = this.pending ? [batch, this.pending] : [batch];
      this.pending = undefined;
      // undone newest first, so that a key written twice gets back the entry it had before both
      for (let j = failed.length - 1; j >= 0; j--) {
        const f = failed[j]!;
        for (let i = f.keys.length - 1; i >= 0; i--)
          if (this.mem.get(f.keys[i]!) === f.entries[i]) this.memSet(f.keys[i]!, f.prevs[i]);
      }
      for (const f of failed) f.reject(e);
      this.pendingBytes = 0;
      this.batchParts = [];
      this.batchStart = this.slabPos;
      return undefined;
    } finally {
      this.writing = undefined;
    }
  }

  /**
   * Per key: conditional puts and deletes (the check and the write with no other writer between), direct
   * writes (none lands between a check and its write) and the store deletes of `purge`.
   */
  private readonly keyLocks = new KeyLocks();

  put(key: string, body: Uint8Array | Readable, opts: PutOptions = {}): Promise<string> {
    // the common case (a body in memory, no precondition, nothing to wait for) with the write's promise
    // alone: async functions around it took a measurable share of the CPU per write
    if (body instanceof Uint8Array && opts.ifMatch === undefined && opts.ifNoneMatch === undefined) {
      if (this.memBytes + this.frozenBytes <= this.o.memBytesMax && this.pendingBytes <= pendingBytesMax) {
        try {
          this.checkKey(key);
          this.checkOpen();
          return this.writeUnconditionally(key, body);
        } catch (e) {
          return Promise.reject(e);
        }
      }
    }
    return this.putWaiting(key, body, opts);
  }

  /**
   * Reads of a closed WAL fail as its writes do (`addRecord`): its memory is what it held at the close, and a
   * WAL opened again on the directory since may have newer writes (a handle kept after a reopen read the old
   * ones).
   */
  private checkOpen(): void {
    if (this.closed || this.closing) throw new ObjectStoreError('the WAL store is closed');
  }

  /** Refuses a key that is not valid or is in the WAL's reserved pack prefix. */
  private checkKey(key: string): void {
    validateKey(key);
    this.checkUnreserved(key);
  }

  /** Refuses a key (valid: checked already) in the WAL's reserved pack prefix. */
  private checkUnreserved(key: string): void {
    if (key.startsWith(this.o.packPrefix))
      throw new ObjectStoreError(`key '${key}' is in the WAL's reserved prefix ${this.o.packPrefix}`);
  }

  /** A put that waits: for its body, for room in memory or the commit queue, or for a precondition. */
  private async putWaiting(key: string, body: Uint8Array | Readable, opts: PutOptions): Promise<string> {
    validatePut(key, body, opts);
    this.checkUnreserved(key);
    this.checkOpen();
    const data = body instanceof Uint8Array ? body : await collectBody(body);
    if (this.memBytes + this.frozenBytes > this.o.memBytesMax) await this.roomInMemory();
    while (this.pendingBytes > pendingBytesMax) await this.flushing;
    if (opts.ifMatch === undefined && opts.ifNoneMatch === undefined)
      return this.writeUnconditionally(key, data);
    return this.conditionally(key, opts, () =>
      data.length > this.o.walObjectBytesMax ? this.writeDirect(key, data) : this.write(key, data),
    );
  }

  /**
   * A put without a precondition: through the WAL, or (too large for it) to the store under the key's lock,
   * so that a conditional write's check and its direct write have no direct write of the key between them.
   */
  private writeUnconditionally(key: string, data: Uint8Array): Promise<string> {
    if (data.length <= this.o.walObjectBytesMax) return this.write(key, data);
    return this.keyLocks.run(key, () => this.writeDirect(key, data));
  }

  /**
   * Runs `write` under the key's lock once `opts` holds: the check and the record it adds are in one turn of
   * the event loop, so no other write comes between; a direct write (too large for the WAL) holds the lock
   * until the store has it, and a put or delete that comes into the WAL meanwhile is the newer
   * (`writeDirect`).
   */
  private conditionally<T>(key: string, opts: PutOptions, write: () => Promise<T>): Promise<T> {
    return this.keyLocks.run(key, async () => {
      checkPrecondition(key, await this.currentEtag(key), opts);
      return write();
    });
  }

  /** Writes a body of at most `walObjectBytesMax` through the WAL; resolves with the etag. */
  private write(key: string, data: Uint8Array): Promise<string> {
    // the memory layer holds the record's copy of the body: the caller may reuse its array once put returns
    const modifiedMs = Date.now();
    const at = this.addRecord(4, key, data, modifiedMs);
    const etag = this.slab.toString('hex', at - etagBytes, at); // the record's etag, just before the data
    const done = this.durable(key, { buf: this.slab, at, size: data.length, etag, modifiedMs });
    // over a large object of the key's in the store: it goes once this version is durable (a set's size is
    // all the common case reads)
    if (this.largeInStore.size !== 0 && this.largeInStore.delete(key)) this.purge(key, done);
    return done;
  }

  /**
   * Keys whose object the store may hold, written there directly (too large for the WAL), with nothing in
   * the WAL above it: a small put over one of them purges it (`purge`). Rebuilt at open from the direct
   * writes' markers. A hint: the purge decides under the key's lock whether the object is hidden.
   */
  private readonly largeInStore = new Set<string>();

  /** Resolves once every record added so far is durable (rejects if its group commit fails). */
  private allDurable(): Promise<unknown> {
    return (this.pending ?? this.writing)?.done ?? Promise.resolve();
  }

  /**
   * A large write: straight to the store, holding the key's lock. An older version in the WAL or a pack would
   * shadow it after a restart, so a "direct" record goes to the WAL before the write is acknowledged. When a
   * put or delete came into the WAL while the store wrote (see `localState`), that write is the newer and
   * stays above this one: a marker would replace it, though this one took effect before it (a conditional
   * one's precondition held only before it; and a key the WAL held nothing for was read from the store as
   * soon as the object was there, before the store answered).
   */
  private writeDirect(key: string, data: Uint8Array): Promise<string> {
    // one that got the key's lock after a close began is refused: the close does not wait for it
    this.checkOpen();
    const p = this.writeDirectNow(key, data);
    this.directs.add(p);
    const done = () => this.directs.delete(p);
    p.then(done, done);
    return p;
  }

  private async writeDirectNow(key: string, data: Uint8Array): Promise<string> {
    const before = this.localState(key);
    await this.flushing;
    const etag = await this.store.put(key, data);
    this.stats.storePuts++;
    for (const w of this.listWatches) w.add(key);
    const now = this.localState(key);
    if (now !== before) {
      // the newer write hides the object just stored: it goes once that write is durable
      this.purge(key, this.allDurable());
      return etag;
    }
    this.largeInStore.add(key);
    // the marker: over an older version in the WAL or a pack, the put waits for it (the old version must
    // never shadow the object after a restart); over nothing it does not: it is there for a reopen to know
    // the store holds a large object of the key (a small put over it then removes it), and lost in a crash,
    // or refused by a WAL that takes no writes (closed, or stopped after a failed commit), it leaves the
    // object the key's, as without it
    const shadows = now !== 'none';
    let marked: Promise<unknown>;
    try {
      const modifiedMs = Date.now();
      this.addRecord(3, key, new Uint8Array(0), modifiedMs);
      marked = this.durable(key, { ...noData, etag: '', modifiedMs, direct: true });
    } catch (e) {
      if (shadows) throw e;
      return etag;
    }
    if (shadows) await marked;
    else marked.catch(() => undefined);
    return etag;
  }

  /** The newest in-memory entry of a key: the current layer, then the frozen one being packed. */
  private memGet(key: string): MemEntry | undefined {
    return this.mem.get(key) ?? this.frozenMem?.get(key);
  }

  async get(key: string, opts: GetOptions = {}): Promise<Uint8Array> {
    this.checkKey(key);
    this.checkOpen();
    const m = this.memGet(key);
    if (m && !m.direct) {
      if (!m.buf) throw new NotFoundError(key);
      return Uint8Array.from(sliceRange(m.buf.subarray(m.at, m.at + m.size), opts.range));
    }
    for (let attempt = 0; !m; attempt++) {
      const p = this.packed.get(key);
      if (!p || p.direct) break;
      if (p.deleted) throw new NotFoundError(key);
      if (p.size === 0) return new Uint8Array(0);
      const whole = { start: p.offset, end: p.offset + p.size - 1 };
      try {
        const bytes = await this.store.get(p.pack, { range: whole });
        if (bytes.length !== p.size)
          throw new ObjectStoreError(
            `'${key}' in WAL pack ${p.pack}: ${this.store.url} returned ${bytes.length} bytes, not ${p.size}`,
          );
        return Uint8Array.from(sliceRange(bytes, opts.range));
      } catch (e) {
        // compaction may have replaced the pack between reading the ref and fetching it: look again
        const now = this.packed.get(key);
        if (!(e instanceof NotFoundError) || attempt > 0 || (now?.pack === p.pack && now.offset === p.offset))
          throw e;
      }
    }
    return this.store.get(key, opts);
  }

  async getStream(key: string, opts: GetOptions = {}): Promise<Readable> {
    this.checkKey(key);
    this.checkOpen();
    const m = this.memGet(key);
    const p = m ? undefined : this.packed.get(key);
    if ((m && !m.direct) || (p && !p.direct)) {
      return Readable.from([await this.get(key, opts)]);
    }
    return this.store.getStream(key, opts);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    this.checkKey(key);
    this.checkOpen();
    const m = this.memGet(key);
    if (m && !m.direct)
      return m.buf ? { key, size: m.size, etag: m.etag, modifiedMs: m.modifiedMs } : undefined;
    const p = m ? undefined : this.packed.get(key);
    if (p && !p.direct)
      return p.deleted ? undefined : { key, size: p.size, etag: p.etag, modifiedMs: p.modifiedMs };
    return this.store.head(key);
  }

  /**
   * A page of the store's listing merged with the WAL's layers, newest first: the writes in memory, those a
   * pack in progress is storing, the packed keys. Each layer is read as a sorted run from where the page
   * starts (a search, then the page's own keys; not a walk of every key the WAL holds, which made listing
   * 100,000 packed keys in pages of 1,000 take 2.8 s). A key the newest layer holding it deletes is left
   * out; one it wrote to the store directly is the store's object. The store is read page after page until
   * `limit` objects are found or it has no more, so a store page that holds only packs or keys the WAL
   * deleted does not end the listing (it did: a WAL with more packs than `limit` listed nothing from '').
   */
  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    validateList(prefix, opts);
    this.checkOpen();
    const watch = new Set<string>();
    this.listWatches.add(watch);
    try {
      return await this.listWatched(prefix, opts, watch);
    } finally {
      this.listWatches.delete(watch);
    }
  }

  /**
   * The keys written to the store directly since each listing in progress began (see `writeDirect`): the
   * store's page may be older than their WAL markers, which hide what the WAL held before (a deleted
   * version still in the store was listed, and a key the page did not have yet was left out).
   */
  private readonly listWatches = new Set<Set<string>>();

  private async listWatched(prefix: string, opts: ListOptions, watch: Set<string>): Promise<ListPage> {
    const limit = opts.limit ?? 1000;
    const objects: ObjectInfo[] = [];
    const late: number[] = [];
    let after = opts.startAfter;
    for (;;) {
      const page = await this.store.list(
        prefix,
        after === undefined ? { limit } : { startAfter: after, limit },
      );
      const bound = page.nextStartAfter;
      const stored = page.objects.filter((o) => !o.key.startsWith(this.o.packPrefix));
      // the layers read now, after the store's page, as the page saw them: every key after `after` up to
      // `bound` (the rest waits for the next page of the store)
      const from = after !== undefined && compareKeys(after, prefix) > 0 ? after : prefix;
      const runs: LayerRun[] = [new MemRun(this.sortedMem(), this.mem, from, after, prefix)];
      if (this.frozenMem)
        runs.push(new MemRun(this.sortedFrozen(this.frozenMem), this.frozenMem, from, after, prefix));
      runs.push(new PackedRun(this.packed, from, after, prefix));
      let si = 0;
      for (;;) {
        let k = si < stored.length ? stored[si]!.key : undefined;
        for (const r of runs) {
          const rk = r.key;
          if (rk !== undefined && (k === undefined || compareKeys(rk, k) < 0)) k = rk;
        }
        if (k === undefined || (bound !== undefined && compareKeys(k, bound) > 0)) break;
        // the newest layer holding k decides; each run holding it moves past it
        const newest = runs.find((r) => r.key === k);
        const v = newest?.entry();
        for (const r of runs) if (r.key === k) r.next();
        const s = si < stored.length && stored[si]!.key === k ? stored[si++] : undefined;
        // written to the store directly while the listing ran: the page may not have it, or an older version
        // (one the WAL deleted), so the store is asked (below)
        const lateDirect = newest !== undefined && v === undefined && watch.has(k);
        const o = lateDirect ? { key: k, size: 0, etag: '', modifiedMs: 0 } : v === undefined ? s : v;
        if (!o) continue;
        if (objects.length === limit) return this.listed(objects, late, objects[limit - 1]!.key);
        if (lateDirect) late.push(objects.length);
        objects.push(o);
      }
      if (bound === undefined) return this.listed(objects, late, undefined);
      after = bound;
    }
  }

  /**
   * A listing's page, with the objects at `late` (keys the WAL says the store holds, written there directly
   * while the listing ran) read from the store with a head each.
   */
  private async listed(objects: ObjectInfo[], late: number[], next: string | undefined): Promise<ListPage> {
    if (late.length > 0) {
      const infos = await Promise.all(late.map((i) => this.store.head(objects[i]!.key)));
      const found = new Map(late.map((i, j) => [i, infos[j]]));
      // one the store no longer has (removed behind the WAL's back) is left out
      objects = objects.flatMap((o, i) => (found.has(i) ? (found.get(i) ?? []) : [o]));
    }
    return next === undefined ? { objects } : { objects, nextStartAfter: next };
  }

  /** `mem`'s keys in key order (`compareKeys`), sorted again only when a key came or left since. */
  private sortedMem(): readonly string[] {
    const c = this.memSorted;
    if (c?.map === this.mem && c.version === this.memKeysVersion) return c.keys;
    const keys = [...this.mem.keys()].sort(compareKeys);
    this.memSorted = { map: this.mem, version: this.memKeysVersion, keys };
    return keys;
  }

  /** The frozen layer's keys in key order (it is not written to while frozen). */
  private sortedFrozen(frozen: Map<string, MemEntry>): readonly string[] {
    const c = this.frozenSorted;
    if (c?.map === frozen) return c.keys;
    const keys = [...frozen.keys()].sort(compareKeys);
    this.frozenSorted = { map: frozen, keys };
    return keys;
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<void> {
    validateDelete(key, opts);
    this.checkUnreserved(key);
    this.checkOpen();
    const write = () => {
      // the key's object is the store's when the WAL holds a direct write of it, or nothing
      const inStore = storeDecides(this.localState(key));
      const modifiedMs = Date.now();
      this.addRecord(2, key, new Uint8Array(0), modifiedMs);
      this.largeInStore.delete(key);
      const deleted = this.durable(key, { ...noData, etag: '', modifiedMs });
      if (inStore) this.purge(key, deleted);
      return deleted;
    };
    await (opts.ifMatch === undefined ? write() : this.conditionally(key, opts, write));
  }

  /**
   * Deletes `key`'s object from the store once `durable` resolves: a deletion, or a small put over a large
   * object of the key's, or a put that came into the WAL while a large one was being stored (the WAL's
   * version hides the store's object; until 2026-12-07 it stayed in the store for ever: every large object
   * deleted or written over through the WAL was kept, and paid for). See `purgeNow`. A close waits for
   * these; a crash before one is made good at the next open when the WAL still holds the record (`recover`).
   */
  private purge(key: string, durable: Promise<unknown>): void {
    const purged: Promise<void> = durable.then(
      () => this.purgeNow(key),
      () => {
        // not durable, and undone: the object may be the key's again
        if (storeDecides(this.localState(key))) this.largeInStore.add(key);
      },
    );
    this.purges.add(purged);
    void purged.then(() => this.purges.delete(purged));
  }

  /**
   * Deletes `key`'s object from the store, under the key's lock, if the WAL holds a version of the key (an
   * object or a deletion: durable, as `purge` waits for that) above it; not when the store's object is the
   * key's (a direct write of the key came since). A failed delete leaves the object, hidden.
   */
  private purgeNow(key: string): Promise<void> {
    return this.keyLocks
      .run(key, async () => {
        if (this.released || storeDecides(this.localState(key))) return;
        await this.store.delete(key);
      })
      .catch(() => undefined);
  }

  /**
   * Purges (`purgeNow`) the keys whose object in the store the WAL's records hid at open, in the background,
   * `openPurgesInFlightMax` at a time; a close stops them (the records still in the WAL at the next open
   * are looked at again then).
   */
  private purgeAtOpen(keys: string[]): void {
    if (keys.length === 0) return;
    let next = 0;
    const worker = async () => {
      while (next < keys.length && !this.closed) await this.purgeNow(keys[next++]!);
    };
    const purged = Promise.all(
      Array.from({ length: Math.min(openPurgesInFlightMax, keys.length) }, worker),
    ).then(() => undefined);
    this.purges.add(purged);
    void purged.then(() => this.purges.delete(purged));
  }

  /** Purges in flight (see `purge`), and whether the close has released the directory. */
  private readonly purges = new Set<Promise<void>>();
  private released = false;

  /**
   * Packs everything acknowledged so far into one object on the store, then drops the WAL segments it
   * covers. Writes that arrive meanwhile go to a new segment and stay in memory.
   */
  packNow(): Promise<void> {
    this.packing ??= this.pack().finally(() => {
      this.packing = undefined;
    });
    return this.packing;
  }

  private async pack(): Promise<void> {
    // not once the WAL closes: the close waits only for a pack already in progress, and this one would go on
    // writing to the store and removing segments after the directory is released
    if (this.closed) return;
    if (this.mem.size === 0) return;
    // freeze: rotate the segment so the pack covers exactly the closed segments; the rotation runs in the
    // flush chain, so no group commit writes to a segment while it is being switched, and switches to a
    // segment created ahead of time, so the commits queued behind it wait for no file system call
    let upTo = 0;
    let frozen = new Map<string, MemEntry>();
    let frozenSlabs: Buffer[] = [];
    let closing: FileHandle | undefined;
    const rotate = this.chain(async () => {
      (await this.commitNow())?.resolve();
      const max = slabsMax(this.o);
      for (const slab of this.retiredSlabs) {
        if (this.failure || this.slabCount > max) this.slabCount--;
        else this.freeSlabs.push(slab);
      }
      this.retiredSlabs = [];
      const next = await this.takeNext(); // prepared in the background: normally no I/O here
      upTo = this.segment;
      // the writes so far become the frozen layer (read below the new one) in O(1), not a copy
      frozen = this.mem;
      this.frozenMem = frozen;
      this.mem = new Map();
      this.frozenBytes = this.memBytes;
      this.memBytes = 0;
      const keep = this.unfreezePending(frozen);
      frozenSlabs = keep.size ? this.sealedSlabs.filter((s) => !keep.has(s)) : this.sealedSlabs;
      this.sealedSlabs = keep.size ? this.sealedSlabs.filter((s) => keep.has(s)) : [];
      closing = this.fh;
      this.useSegment(next);
      this.walBytes = 0;
    });
    this.flushing = rotate.catch(() => undefined); // a failed rotation leaves the segment as it was
    await rotate;
    await closing?.close();
    this.prepareNext();
    try {
      // the loops over every frozen key yield to the event loop after each time slice (`packSliceMs`), so
      // that group commits due meanwhile are not held up (frozen is not written to, so that is safe); they
      // run over arrays of its keys and entries: a Map iteration with an await in the loop allocates per key
      const keys = [...frozen.keys()];
      const entries = [...frozen.values()];
      const { parts, offsets } = await packData(entries);
      const index = new PackIndexWriter();
      for (let i = 0; i < keys.length; i++) {
        if (sliceDone(i)) await yieldToCommits();
        const m = entries[i]!;
        index.add(keys[i]!, kindOf(m), m.modifiedMs, offsets[i], m.size, m.etag);
      }
      const packKey = await this.writePack(parts, index);
      let live = 0;
      for (let i = 0; i < keys.length; i++) {
        if (sliceDone(i)) await yieldToCommits();
        const m = entries[i]!;
        this.packed.point(keys[i]!, packKey, offsets[i]!, m.size, m.etag, m.modifiedMs, kindOf(m));
        live += m.size;
      }
      this.packed.addLive(packKey, live);
      this.retiredSlabs = frozenSlabs;
    } catch (e) {
      // the frozen writes stay readable, below anything written since, and go in the next pack
      const shadowed = new Map<string, MemEntry>();
      for (const [k, m] of frozen) {
        if (!this.mem.has(k)) this.memSet(k, m);
        else shadowed.set(k, m);
      }
      // a write since the rotation that is not durable yet and had nothing below it in memory: if its commit
      // fails, it is undone to the frozen version (acknowledged), not to nothing
      for (const b of [this.writing, this.pending]) {
        if (!b) continue;
        for (let i = 0; i < b.keys.length; i++)
          if (b.prevs[i] === undefined && shadowed.has(b.keys[i]!)) b.prevs[i] = shadowed.get(b.keys[i]!);
      }
      this.sealedSlabs.push(...frozenSlabs);
      throw e;
    } finally {
      this.frozenMem = undefined;
      this.frozenBytes = 0;
    }
    for (const name of await readdir(this.o.dir)) {
      if (/^\d{12}\.wal$/.test(name) && Number(name.slice(0, 12)) <= upTo)
        await rm(join(this.o.dir, name), { force: true });
    }
    await yieldToCommits();
    await this.compact();
  }

  /**
   * Moves the entries of the writes waiting for a group commit (added while the rotation waited, in
   * writers' continuations or elsewhere) from `frozen`, just frozen, to the new memory layer: their records
   * go to the new segment, so the pack must not store them, and a failed commit must find them to undo them.
   * `frozen` keeps what each had before. Returns the slabs their data is in, which stay sealed.
   */
  private unfreezePending(frozen: Map<string, MemEntry>): Set<Uint8Array> {
    const keep = new Set<Uint8Array>();
    const b = this.pending;
    if (!b) return keep;
    // newest first: a key written twice keeps its newest entry above and the one before both below
    for (let i = b.keys.length - 1; i >= 0; i--) {
      const k = b.keys[i]!;
      const e = b.entries[i]!;
      if (frozen.get(k) !== e) continue;
      if (!this.mem.has(k)) this.memSet(k, e);
      const prev = b.prevs[i];
      if (prev) frozen.set(k, prev);
      else frozen.delete(k);
      this.frozenBytes += (prev?.size ?? 0) - e.size;
      if (e.buf) keep.add(e.buf);
    }
    return keep;
  }

  /** Writes a pack object (`parts`, the data region, then the index); returns its key. */
  private async writePack(parts: Uint8Array[], index: PackIndexWriter): Promise<string> {
    const idx = index.finish();
    const packKey = `${this.o.packPrefix}${String(this.packSeq++).padStart(12, '0')}.pack`;
    let size = 0;
    for (const p of parts) size += p.length;
    const data = size;
    size += idx.length;
    // streamed in steps, each sent between group commits: no copy of the whole pack, no long hash of it
    // on the event loop, and no step's write-back in front of a commit's data sync
    const wal = this;
    async function* steps() {
      let group: Uint8Array[] = [];
      let n = 0;
      const send = async function* () {
        await wal.quietForPackStep();
        // a slab's range as it is; many small pieces (compaction's) in one buffer
        if (group.length <= stepPiecesMax) yield* group;
        else yield Buffer.concat(group, n);
        group = [];
        n = 0;
      };
      for (const p of parts) {
        group.push(p);
        n += p.length;
        if (n >= packStepBytes) yield* send();
      }
      group.push(idx);
      n += idx.length;
      yield* send();
    }
    // one step read ahead at most: the pacing holds
    await this.store.put(packKey, Readable.from(steps(), { highWaterMark: 1 }));
    this.packSizes.set(packKey, { size, data });
    this.stats.packsWritten++;
    this.stats.storePuts++;
    return packKey;
  }

  /** Packs' sizes in the store and the data bytes they were written with, by key. */
  private readonly packSizes = new Map<string, { size: number; data: number }>();
  /**
   * Rewrites sparse packs (live bytes below `compactLiveRatio` of their size) and, when there are at least
   * four, small ones (live bytes under an eighth of `packBytes`) into one new pack, then deletes them. Runs
   * inside the packing chain, so no pack is written meanwhile.
   */
  private async compact(): Promise<void> {
    const ratio = this.o.compactLiveRatio;
    if (ratio <= 0 || this.packSizes.size === 0) return;
    // sparse: most of its data superseded (a pack of tombstones only has no data and is never sparse)
    const packs = [...this.packSizes.keys()];
    const sparse = packs.filter((p) => this.packed.liveOf(p) < ratio * this.packSizes.get(p)!.data);
    const small = packs.filter((p) => this.packed.liveOf(p) < this.o.packBytes / 8);
    const chosenPacks = new Set(small.length >= 4 ? [...sparse, ...small] : sparse);
    if (chosenPacks.size === 0) return;
    // the keys of the chosen packs: one pass over the keys, only when there is something to compact
    const chosen = this.packed.keysIn(chosenPacks);
    const parts: Uint8Array[] = [];
    const index = new PackIndexWriter();
    // each moved key with its offset in the new pack
    const moved: [string, number, PackRef][] = [];
    let off = 0;
    for (const [pack, keys] of chosen) {
      if (keys.length === 0) continue;
      const refs = keys.map((k) => [k, this.packed.get(k)!] as const);
      const dataRefs = refs.filter(([, r]) => !r.deleted && !r.direct && r.size > 0);
      const whole = dataRefs.length ? await this.store.get(pack) : new Uint8Array(0);
      // the refs' offsets hold only in the pack as written: a shorter one would shift every later key's bytes
      const size = this.packSizes.get(pack)!.size;
      if (dataRefs.length && whole.length !== size)
        throw new ObjectStoreError(
          `WAL pack ${pack} came back from ${this.store.url} as ${whole.length} bytes, not the ${size} it has: not compacted`,
        );
      for (const [k, r] of refs) {
        if (r.deleted || r.direct) {
          index.add(k, refKind(r), r.modifiedMs);
          moved.push([k, 0, r]);
          continue;
        }
        parts.push(whole.subarray(r.offset, r.offset + r.size));
        index.add(k, PackKind.Data, r.modifiedMs, off, r.size, r.etag);
        moved.push([k, off, r]);
        off += r.size;
      }
    }
    let reclaimed = 0;
    for (const p of chosen.keys()) reclaimed += this.packSizes.get(p)!.size;
    if (index.count > 0) {
      const packKey = await this.writePack(parts, index);
      reclaimed -= this.packSizes.get(packKey)!.size;
      let live = 0;
      for (const [k, o, r] of moved) {
        this.packed.point(k, packKey, o, r.size, r.etag, r.modifiedMs, refKind(r));
        live += r.size;
      }
      this.packed.addLive(packKey, live);
    }
    for (const p of chosen.keys()) {
      await this.store.delete(p);
      this.packSizes.delete(p);
      this.packed.forgetPack(p);
      this.stats.packsCompacted++;
    }
    this.stats.bytesReclaimed += Math.max(0, reclaimed);
  }

  /**
   * Waits for a pack in progress, commits what waits, and releases the directory. What is in the WAL and
   * not packed stays in its segments and is replayed at the next open.
   */
  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    // the direct writes under way land in the store and add their markers first (a close did not wait for
    // them until 2026-12-07: the put failed though its object landed, hidden by an older version in the WAL)
    this.closing = true;
    while (this.directs.size > 0) await Promise.all([...this.directs].map((p) => p.catch(() => undefined)));
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.packTimer) clearInterval(this.packTimer);
    // the cancelled commit will not come: pack steps waiting for it go on
    this.flushDueAt = 0;
    for (const w of this.commitWaiters.splice(0)) w();
    // a failed pack (its caller has the error) leaves its writes in the segments: the close goes on, or the
    // writes waiting for a commit would wait for ever and the directory stay locked
    await this.packing?.catch(() => undefined);
    this.flushing = this.chain((release) => this.flush(release));
    await this.flushing;
    // the deletes acknowledged so far remove their objects from the store before another WAL may open here
    while (this.purges.size > 0) await Promise.all([...this.purges]);
    this.released = true;
    await this.fh?.close();
    this.fh = undefined;
    // the prepared segment holds nothing: remove it
    const next = this.next;
    this.next = undefined;
    await next
      ?.then(async (r) => {
        await r.fh.close();
        await rm(this.segName(r.n), { force: true });
      })
      .catch(() => undefined);
    await this.unlock?.();
    if (this.o.closeStore) await this.store.close();
  }
}
