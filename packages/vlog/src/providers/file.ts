/**
 * A durable single-machine loglet in a directory (the embedded default, and the storage a LogServer uses).
 *
 * records.log: records back to back, each  u32 len | u32 lo32(hash64) | u32 hi32(hash64) | payload,
 *              where the hash is HighwayHash-64 of the payload; positions are implicit (start + index).
 * START:       the first position (written once at creation).
 * SEALED:      present once sealed; holds the tail.
 * TRIM:        the trim point.
 *
 * Appends are group-committed: records waiting while an fsync runs go out together in the next one, and
 * each append resolves after the fsync that covers it. Where the disk can (`Disk.zeroFill`), records.log
 * is zero-filled ahead of the records, so that a group commit writes over allocated zeros and its fdatasync
 * need not change the file's size; where the disk can also (`Disk.writeDurable`), such a group is one
 * O_DSYNC write, which is its fsync. Recovery scans the file and cuts a torn or corrupt tail (a crash
 * mid-write), so only whole, checksummed records count: the scan stops at the first record that does not
 * check out (zeros do not: a zero header fails the checksum), and everything after it must then be zeros,
 * or the file is truncated there, so that no stale bytes can pass for records after later appends.
 */
import { hash64Words } from '@strata/highwayhash';
import {
  badBatch,
  checkPosition,
  checkReadRange,
  type Loglet,
  LogletUnavailableError,
  type LogRecord,
  type Payload,
  SealedError,
  type TailInfo,
  TrimmedError,
} from '../contract.js';
import { type Disk, NodeDisk } from './disk.js';

const HEADER = 12;
const checksumKey = new Uint8Array(32).map((_, i) => 0x3c ^ (i * 11));
/** Largest record payload. */
export const recordBytesMax = 64 * 2 ** 20;
/** Records per group commit at most (bounds one write). */
const groupRecordsMax = 4096;
/** Zero-filled space kept ahead of the records: at least this... */
const zeroAheadBytesMin = 64 * 1024;
/** ...and at most this, growing with the file (a small loglet stays small). */
const zeroAheadBytesMax = 2 ** 20;

function checksum(p: Uint8Array, out: Uint32Array): Uint32Array {
  return hash64Words(checksumKey, p, out);
}

/** Scans a records file; returns record offsets and the length of its valid prefix. */
export function scanRecords(buf: Buffer): { offsets: number[]; validBytes: number } {
  const offsets: number[] = [];
  const w = new Uint32Array(2);
  let p = 0;
  while (p + HEADER <= buf.length) {
    const len = buf.readUInt32LE(p);
    if (len > recordBytesMax || p + HEADER + len > buf.length) break;
    checksum(buf.subarray(p + HEADER, p + HEADER + len), w);
    if (w[0] !== buf.readUInt32LE(p + 4) || w[1] !== buf.readUInt32LE(p + 8)) break;
    offsets.push(p);
    p += HEADER + len;
  }
  return { offsets, validBytes: p };
}

/** Encodes a batch back to back in one buffer. */
function encodeRecords(batch: Payload[]): Buffer {
  let n = 0;
  for (const p of batch) n += HEADER + p.length;
  const out = Buffer.allocUnsafe(n);
  const w = new Uint32Array(2);
  let o = 0;
  for (const p of batch) {
    out.writeUInt32LE(p.length, o);
    checksum(p, w);
    out.writeUInt32LE(w[0]!, o + 4);
    out.writeUInt32LE(w[1]!, o + 8);
    out.set(p, o + HEADER);
    o += HEADER + p.length;
  }
  return out;
}

function allZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

export class FileLoglet implements Loglet {
  private offsets: number[] = [];
  /** Bytes of committed records (the next group is written here). */
  private size = 0;
  /** records.log's length: past `size` it holds zeros only. */
  private fileBytes = 0;
  /** The zero-fill running ahead of the records, if any (nothing is written in its range meanwhile). */
  private zeroing?: Promise<void>;
  private sealed = false;
  private trim = 0;
  private queue: {
    /** The batch's records, encoded back to back. */
    bytes: Buffer;
    /** Each record's encoded length. */
    sizes: number[];
    /** A repair write (copying committed records to a lagging replica): allowed after the seal. */
    repair: boolean;
    resolve: (p: number[]) => void;
    reject: (e: unknown) => void;
  }[] = [];
  private flushing = false;
  /** Settles when the running group commit loop ends. */
  private flushed: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly disk: Disk,
    readonly start: number,
  ) {}

  /** Opens (creating at `start` if new) the loglet in directory `dir`, recovering from a crash. */
  static async open(dir: string, start = 0): Promise<FileLoglet> {
    return FileLoglet.openOn(await NodeDisk.open(dir), start);
  }

  /** Opens (creating at `start` if new) the loglet on `disk`, recovering from a crash. */
  static async openOn(
    disk: Disk,
    start = 0,
    /**
     * Whether the start is kept in a START file (the default). A LogServer's replica does without: every
     * request names its loglet's start (it is part of the chain), so opening a new replica costs no fsync.
     */
    o: { startFile?: boolean } = {},
  ): Promise<FileLoglet> {
    let s = start;
    if (o.startFile !== false) {
      const st = await disk.read('START');
      if (st === undefined || st.length === 0) await disk.replace('START', String(start));
      else s = Number(st.toString('utf8'));
    }
    const l = new FileLoglet(disk, s);
    await l.recover();
    return l;
  }

  private async recover(): Promise<void> {
    const buf = (await this.disk.read('records.log')) ?? Buffer.alloc(0);
    const { offsets, validBytes } = scanRecords(buf);
    this.offsets = offsets;
    this.size = validBytes;
    this.fileBytes = buf.length;
    // zeros past the records are zero-fill; anything else is a torn write, cut so that it can never
    // line up with later records
    if (!allZero(buf.subarray(validBytes))) {
      await this.disk.truncate('records.log', validBytes);
      this.fileBytes = validBytes;
    }
    this.sealed = (await this.disk.read('SEALED')) !== undefined;
    if (this.sealed) this.sealing = Promise.resolve();
    const t = await this.disk.read('TRIM');
    this.trim = t === undefined ? this.start : Number(t.toString('utf8'));
  }

  get tail(): number {
    return this.start + this.offsets.length;
  }

  /** Whether seal has begun (appends queued from now on are rejected). */
  get isSealed(): boolean {
    return this.sealed;
  }

  append(batch: Payload[]): Promise<number[]> {
    const bad = badBatch(batch);
    if (bad) return Promise.reject(bad);
    if (this.sealed) return Promise.reject(new SealedError(this.tail));
    return this.enqueue(batch, false);
  }

  /**
   * Writes records at the tail even when sealed: a LogServer that missed committed records (it was behind
   * when the loglet was sealed) receives them from a replica that has them, so that a majority holds every
   * record below the sealed tail. Positions are the caller's to check.
   */
  repair(batch: Payload[]): Promise<number[]> {
    return this.enqueue(batch, true);
  }

  private enqueue(batch: Payload[], repair: boolean): Promise<number[]> {
    if (this.closed) return Promise.reject(new LogletUnavailableError('the loglet is closed'));
    for (const p of batch)
      if (p.length > recordBytesMax)
        return Promise.reject(new RangeError(`record of ${p.length} bytes exceeds ${recordBytesMax}`));
    return new Promise((resolve, reject) => {
      // encoded inside the executor: a failure rejects the append rather than throwing at its caller
      const bytes = encodeRecords(batch);
      const sizes = batch.map((p) => HEADER + p.length);
      this.queue.push({ bytes, sizes, repair, resolve, reject });
      if (!this.flushing) this.flushed = this.flush();
    });
  }

  /** Group commit: everything queued goes out in one write and one fsync. */
  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.queue.length > 0) {
      const group: typeof this.queue = [];
      let n = 0;
      while (this.queue.length > 0 && n < groupRecordsMax) {
        const a = this.queue.shift()!;
        if (this.sealed && !a.repair) {
          a.reject(new SealedError(this.tail));
          continue;
        }
        group.push(a);
        n += a.sizes.length;
      }
      if (group.length === 0) continue;
      const bufs = group.length === 1 ? [group[0]!.bytes] : [Buffer.concat(group.map((a) => a.bytes))];
      const end = this.size + bufs[0]!.length;
      try {
        // never write where zeros are still being written
        if (this.zeroing && end > this.fileBytes) await this.zeroing;
        if (this.disk.writeDurable && end <= this.fileBytes) {
          // over durable zeros: the write is the sync (no size to change)
          await this.disk.writeDurable('records.log', this.size, bufs);
          this.zeroAhead(end);
        } else {
          await this.disk.writeAt('records.log', this.size, bufs);
          this.fileBytes = Math.max(this.fileBytes, end);
          this.zeroAhead(end);
          await this.disk.sync('records.log');
        }
      } catch (e) {
        // what was written is not known to be durable: fail this group and every later append
        this.closed = true;
        for (const a of group) a.reject(e);
        for (const a of this.queue.splice(0)) a.reject(e);
        break;
      }
      for (const a of group) {
        const positions: number[] = [];
        for (const n of a.sizes) {
          positions.push(this.start + this.offsets.length);
          this.offsets.push(this.size);
          this.size += n;
        }
        a.resolve(positions);
      }
    }
    this.flushing = false;
  }

  /** Starts zero-filling ahead of byte `end` when less than half the wanted space is left. */
  private zeroAhead(end: number): void {
    const disk = this.disk;
    if (this.zeroing || !disk.zeroFill) return;
    const ahead = Math.min(zeroAheadBytesMax, Math.max(zeroAheadBytesMin, end));
    if (this.fileBytes - end >= ahead / 2) return;
    const from = this.fileBytes;
    const to = end + ahead;
    this.zeroing = disk.zeroFill('records.log', from, to).then(
      () => {
        this.fileBytes = Math.max(this.fileBytes, to);
        this.zeroing = undefined;
      },
      () => {
        // only a cost: records written past the zeros extend the file as they would without them
        this.zeroing = undefined;
      },
    );
  }

  async checkTail(): Promise<TailInfo> {
    return { tail: this.tail, sealed: this.sealed };
  }

  /**
   * The records of [from, to) below the tail; with `maxBytes`, only a prefix of them whose encoded records
   * take at most that many bytes (but at least one record), so a reply built from it stays bounded.
   */
  async read(from: number, to: number, maxBytes = Number.POSITIVE_INFINITY): Promise<LogRecord[]> {
    checkReadRange(from, to);
    if (from < this.trim) throw new TrimmedError(from, this.trim);
    const lo = Math.max(from, this.start);
    let hi = Math.min(to, this.tail);
    if (hi <= lo) return [];
    const a = this.offsets[lo - this.start]!;
    if (hi === this.tail ? this.size - a > maxBytes : this.offsets[hi - this.start]! - a > maxBytes) {
      // the last record that ends within maxBytes of the first one's start (records end where the next begins)
      let l = lo + 1;
      let h = hi - 1; // [lo, hi) as a whole is too long
      while (l < h) {
        const m = (l + h + 1) >>> 1;
        if (this.offsets[m - this.start]! - a <= maxBytes) l = m;
        else h = m - 1;
      }
      hi = l;
    }
    const b = hi === this.tail ? this.size : this.offsets[hi - this.start]!;
    const buf = await this.disk.readAt('records.log', a, b - a);
    const out: LogRecord[] = [];
    const w = new Uint32Array(2);
    for (let p = lo; p < hi; p++) {
      const off = this.offsets[p - this.start]! - a;
      const len = buf.readUInt32LE(off);
      const payload = buf.subarray(off + HEADER, off + HEADER + len);
      checksum(payload, w);
      if (w[0] !== buf.readUInt32LE(off + 4) || w[1] !== buf.readUInt32LE(off + 8))
        throw new Error(`loglet ${this.disk.label}: checksum mismatch reading position ${p}`);
      out.push({ position: p, payload: Uint8Array.from(payload) });
    }
    return out;
  }

  async prefixTrim(pos: number): Promise<void> {
    checkPosition('prefixTrim: pos', pos);
    // not clamped to the local tail: a LogServer replica may trim ahead of records still in flight to it
    if (pos <= this.trim) return;
    this.trim = pos;
    await this.disk.replace('TRIM', String(pos));
  }

  /** The seal in progress or done: every caller waits until the sealed bit is durable. */
  private sealing?: Promise<void>;

  async seal(): Promise<TailInfo> {
    if (!this.sealing) {
      this.sealed = true;
      this.sealing = (async () => {
        // wait for in-flight group commits: what they acknowledge is below the sealed tail
        while (this.flushing) await this.flushed;
        await this.disk.replace('SEALED', String(this.tail));
      })();
      this.sealing.catch(() => {
        this.sealing = undefined; // not durable: a later seal writes it again (appends stay refused)
      });
    }
    await this.sealing;
    return this.checkTail();
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushed;
    await this.zeroing;
    await this.disk.close();
  }
}
