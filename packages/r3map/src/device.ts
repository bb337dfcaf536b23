/**
 * The `BlockDevice` contract: a fixed-size array of bytes.
 *
 * - `readAt(offset, length)` returns exactly `length` bytes; never-written or trimmed ranges read as zeros.
 * - `writeAt(offset, bytes)` resolves when the bytes are in the device (visible to reads); they are durable
 *   after the next `flush()` resolves (or at once for a write with `fua`).
 * - `trim(offset, length)` discards a range: it reads as zeros afterwards.
 * - Every access must lie within [0, size): out-of-range accesses throw {@link RangeError}.
 * - `extents(offset, length)`, when present, reports the allocation of the range from `offset` on, as NBD
 *   BLOCK_STATUS's `base:allocation` does: consecutive extents covering [offset, offset + n) for some
 *   0 < n <= length (a device may stop short, as an NBD server may; the caller asks again from there).
 *   Devices without it are all data. A caller that skips a `zero` range must still see later writes to
 *   it by other means (a migration's dirty tracking does).
 * - `readv(offset, length)`, when present, is `readAt` without the copy: the parts, in order, add up to
 *   `length` bytes. They may be views of the device's own memory: the caller must not modify them, and a
 *   later write to the range may show through (the NBD server sends them at once, and NBD leaves a read
 *   concurrent with an overlapping write undefined).
 * - `readInto(offset, into)`, when present, is `readAt` into the caller's buffer: it fills all of `into`
 *   (the NBD server reuses its buffers once the socket has sent them; not after a failed read, which may
 *   leave reads into it running).
 * - `writev(offset, parts)`, when present, is `writeAt` of the parts' concatenation without making it. The
 *   parts are the caller's again once the promise settles: a device copies what it keeps (the NBD server
 *   hands it views of its receive pages and reuses them after that).
 */
import type { Socket } from 'node:net';

export interface Extent {
  /** Bytes, at least 1. */
  length: number;
  /** Unallocated (NBD_STATE_HOLE). Says nothing about the bytes: only `zero` does. */
  hole: boolean;
  /** Reads as zeros (NBD_STATE_ZERO); when false the bytes are not known. */
  zero: boolean;
}

export interface BlockDevice {
  readonly size: number;
  readAt(offset: number, length: number): Promise<Uint8Array>;
  writeAt(offset: number, bytes: Uint8Array, opts?: { fua?: boolean }): Promise<void>;
  flush(): Promise<void>;
  trim(offset: number, length: number): Promise<void>;
  extents?(offset: number, length: number): Promise<Extent[]>;
  readv?(offset: number, length: number): Promise<Uint8Array[]>;
  readInto?(offset: number, into: Uint8Array): Promise<void>;
  writev?(offset: number, parts: Uint8Array[], opts?: { fua?: boolean }): Promise<void>;
  close(): Promise<void>;
}

/** Throws a RangeError unless [offset, offset + length) lies within a device of `size` bytes. */
export function checkRange(size: number, offset: number, length: number, what = 'access'): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > size
  )
    throw new RangeError(`${what} [${offset}, ${offset + length}) is outside the device's ${size} bytes`);
}

/** Socket reads shorter than this are copied by {@link SmallReads} (bulk reads are kept as they are). */
export const smallReadBytes = 4096;
/** Bytes of each buffer {@link SmallReads} copies short reads into. */
const smallReadsBufferBytes = 64 * 1024;

/**
 * A probe of what leaves `socket`: each call says whether bytes left since the call before (the first
 * compares with the probe's making). Leaving is a write ending, or the kernel taking bytes of the one under
 * way (libuv's write queue shrinking, read from the socket's internal handle where it has one; else only
 * whole writes count): to a peer that reads slowly, 64 MiB of NBD replies or a 1 GiB digest frame is one
 * write, and on a busy socket writes are added as others leave, so its queue alone need not shrink.
 */
export function sendProgress(socket: Socket): () => boolean {
  const queued = () => {
    const q = (socket as unknown as { _handle?: { writeQueueSize?: unknown } | null })._handle
      ?.writeQueueSize;
    return typeof q === 'number' ? q : socket.writableLength;
  };
  /** Bytes of the writes that have ended: only ever grows. */
  const written = () => socket.bytesWritten - socket.writableLength;
  let lastWritable = socket.writableLength;
  let lastQueued = queued();
  let lastWritten = written();
  return () => {
    const w = socket.writableLength;
    const q = queued();
    const d = written();
    const moved = w < lastWritable || q < lastQueued || d > lastWritten;
    lastWritable = w;
    lastQueued = q;
    lastWritten = d;
    return moved;
  };
}

/**
 * Resolves when `sock` emits 'drain' or closes, whichever comes first (a peer gone away ends the wait:
 * 'drain' never comes then).
 */
export function drainOrClose(sock: Socket): Promise<void> {
  return new Promise<void>((res) => {
    const done = () => {
      sock.off('drain', done);
      sock.off('close', done);
      res();
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
}

/**
 * Appends socket reads to a queue of chunks (see `takeChunks`) at a cost in objects that does not grow with
 * the number of reads: a read that continues the queue's last chunk in memory (the next bytes of the same
 * receive page) is merged into it, and a read under `smallReadBytes` is first copied into a buffer shared
 * by such reads, where consecutive ones are merged. A peer sending one byte at a time otherwise had each
 * byte kept as a Buffer of its own, about 100-200 bytes of heap a byte: a 32 MiB NBD WRITE so was 3-6 GB.
 * Bytes copied are never written over (a full buffer is replaced), so views handed out stay valid.
 */
export class SmallReads {
  private buf?: Buffer;
  private fill = 0;

  /** Appends `c` to `chunks`; with `copy` false, short reads are not copied (they lie in pages already). */
  append(chunks: Buffer[], c: Buffer, copy = true): void {
    if (copy && c.length < smallReadBytes) {
      if (!this.buf || this.buf.length - this.fill < c.length) {
        this.buf = Buffer.allocUnsafeSlow(smallReadsBufferBytes);
        this.fill = 0;
      }
      c.copy(this.buf, this.fill);
      c = this.buf.subarray(this.fill, this.fill + c.length);
      this.fill += c.length;
    }
    const last = chunks.length - 1;
    const prev = chunks[last];
    if (prev && prev.buffer === c.buffer && prev.byteOffset + prev.length === c.byteOffset)
      chunks[last] = Buffer.from(prev.buffer, prev.byteOffset, prev.length + c.length);
    else chunks.push(c);
  }
}

/**
 * Takes the next `n` bytes off the front of a queue of socket chunks as one buffer: a view when they lie in
 * the first chunk, else a copy of just those bytes. The queue must hold at least `n` bytes.
 */
export function takeBytes(chunks: Buffer[], n: number): Buffer {
  const first = chunks[0]!;
  if (first.length >= n) {
    if (first.length === n) chunks.shift();
    else chunks[0] = first.subarray(n);
    return first.subarray(0, n);
  }
  const out = Buffer.allocUnsafe(n);
  let p = 0;
  for (const c of takeChunks(chunks, n)) {
    c.copy(out, p);
    p += c.length;
  }
  return out;
}

/**
 * Takes the next `n` bytes off the front of a queue of socket chunks, as views of them (no copy); the
 * queue must hold at least `n` bytes.
 */
export function takeChunks(chunks: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  let p = 0;
  while (p < n) {
    const c = chunks[0]!;
    const k = Math.min(c.length, n - p);
    out.push(k === c.length ? c : c.subarray(0, k));
    p += k;
    if (k === c.length) chunks.shift();
    else chunks[0] = c.subarray(k);
  }
  return out;
}
