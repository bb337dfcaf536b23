/**
 * Hash-based delta sync: both sides digest fixed-size chunks with HighwayHash-128 and only the chunks whose
 * digests differ travel. Local (file to file) or to another Strata process over TCP (`serveSync`).
 * An interrupted sync resumes naturally: a re-run sends only the chunks that still differ.
 */

import { type FileHandle, open, stat } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { checkTimerMs } from '@strata/cli';
import { hash128 } from '@strata/highwayhash';
import { drainOrClose, SmallReads, sendProgress, takeBytes } from './device.js';

const digestKey = new Uint8Array(32).map((_, i) => 0x77 ^ (i * 5));
export const defaultChunkBytes = 64 * 1024;
/** Largest chunk size accepted. */
export const chunkBytesMax = 4 * 1024 * 1024;
/** Largest frame accepted on the sync protocol, but for the server's digests (see `digestFrameBytesMax`). */
const frameBytesMax = chunkBytesMax + 1024;
/**
 * Largest frame of digests a client takes: 16 bytes per chunk of its file (a 1 TiB file in 64 KiB chunks:
 * 256 MiB). The digests were held to `frameBytesMax`, so a file over 16 GiB in 64 KiB chunks (1 GiB in
 * 4 KiB ones) could not be synced over TCP ('bad frame length').
 */
const digestFrameBytesMax = 1 << 30;

/**
 * Chunks whose digests are compared at a time (`SyncOptions.windowChunks`): 64 KiB of digests, 256 MiB of a
 * file in 64 KiB chunks. Until 2026-12-07 each side held the digests of every chunk at once (16 bytes a
 * chunk: 256 MiB of them for 1 TiB in 64 KiB chunks, on both sides, in one frame over TCP).
 */
export const syncWindowChunks = 4096;
/**
 * Bytes of a file whose digests a server sends at a time inside the one DIGESTS frame of version 1: no
 * ALIVE frame can go out meanwhile, so the client sees these parts arrive instead.
 */
const streamPartBytes = 16 * 1024 * 1024;
/** Largest window taken (4 MiB of digests: a window's frame stays under `frameBytesMax`). */
export const syncWindowChunksMax = 1 << 18;

export interface SyncResult {
  chunks: number;
  changedChunks: number;
  bytesSent: number;
  size: number;
  dryRun: boolean;
  /** Windows of chunk digests compared (see `SyncOptions.windowChunks`). */
  windows: number;
  /**
   * The most chunk digests (ours and the other side's) this side held at once: at most 4 windows (both
   * sides' digests of the window compared and of the next, computed or asked for meanwhile), but against a
   * sync server of before 2026-12-07, which sends the digests of the whole file in one frame, those too.
   */
  digestsHeldMax: number;
}

/** Counts the chunk digests a side holds, and the most it held at once. */
class DigestCount {
  held = 0;
  heldMax = 0;
  hold(n: number): void {
    this.held += n;
    if (this.held > this.heldMax) this.heldMax = this.held;
  }
  release(n: number): void {
    this.held -= n;
  }
}

/** A chunk that differs is compared again in pieces of this size; only differing pieces travel. */
export const pieceBytes = 4096;
/** Files are read in blocks of this size (two in flight), whatever the chunk size. */
const readBlockBytes = 4 * 1024 * 1024;
/** Changed chunks refined per batch (a round trip each over TCP). */
const refineChunksMax = 256;

/** Digests `buf[0, len)` in pieces of `piece` bytes (the last may be short) into `out` from entry `at`. */
function digestPieces(buf: Uint8Array, len: number, piece: number, out: Buffer, at: number): void {
  for (let o = 0, k = at; o < len; o += piece, k++) {
    const [a, b] = hash128(digestKey, buf.subarray(o, Math.min(len, o + piece)));
    out.writeBigUInt64LE(a!, 16 * k);
    out.writeBigUInt64LE(b!, 16 * k + 8);
  }
}

/** Digests of every chunk of an open file, read in large blocks with the next read in flight. */
export async function digestFile(
  fh: FileHandle,
  size: number,
  chunkBytes: number,
  onChunk?: (n: number) => void,
): Promise<Buffer> {
  return digestRange(fh, size, chunkBytes, 0, Math.ceil(size / chunkBytes), onChunk);
}

/** Digests a window `[first, first + count)` of chunks has in a file of `size` bytes (none past its end). */
function digestsIn(size: number, chunkBytes: number, first: number, count: number): number {
  return Math.max(0, Math.min(first + count, Math.ceil(size / chunkBytes)) - first);
}

/**
 * The two blocks `digestRange` reads a file into (the next read in flight), to be reused by the windows of
 * one file, one window at a time: a new pair per window cost 5-10% more CPU at 4 MiB each.
 */
function readBlocks(chunkBytes: number): Buffer[] {
  const block = Math.max(chunkBytes, Math.floor(readBlockBytes / chunkBytes) * chunkBytes);
  return [Buffer.allocUnsafe(block), Buffer.allocUnsafe(block)];
}

/**
 * Digests of chunks `[first, first + count)` of an open file of `size` bytes (those it has: see
 * `digestsIn`), read in large blocks (`blocks`, see `readBlocks`) with the next read in flight.
 */
async function digestRange(
  fh: FileHandle,
  size: number,
  chunkBytes: number,
  first: number,
  count: number,
  onChunk?: (n: number) => void,
  blocks: Buffer[] = readBlocks(chunkBytes),
): Promise<Buffer> {
  const out = Buffer.alloc(16 * digestsIn(size, chunkBytes, first, count));
  const from = first * chunkBytes;
  const to = Math.min(size, (first + count) * chunkBytes);
  const block = blocks[0]!.length;
  const read = async (off: number, buf: Buffer) => {
    const len = Math.min(block, to - off);
    await readFully(fh, buf, len, off);
    return len;
  };
  let bufs = [blocks[0]!, blocks[1]!];
  let next = from < to ? read(from, bufs[0]!) : undefined;
  try {
    for (let off = from; off < to; off += block) {
      const len = await next!;
      const cur = bufs[0]!;
      bufs = [bufs[1]!, cur];
      next = off + block < to ? read(off + block, bufs[0]!) : undefined;
      digestPieces(cur, len, chunkBytes, out, (off - from) / chunkBytes);
      onChunk?.(len);
    }
  } catch (e) {
    // the read in flight settles before the caller may close the file
    await next?.catch(() => undefined);
    throw e;
  }
  return out;
}

async function readFully(fh: FileHandle, buf: Buffer, len: number, pos: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await fh.read(buf, done, len - done, pos + done);
    if (bytesRead === 0) {
      buf.fill(0, done, len);
      return;
    }
    done += bytesRead;
  }
}

/** Throws a RangeError unless `chunkBytes` is a chunk size sync takes. */
export function checkChunk(chunkBytes: number): void {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 4096 || chunkBytes > chunkBytesMax)
    throw new RangeError(`chunk size must be an integer in [4096, ${chunkBytesMax}], got ${chunkBytes}`);
}

/** Piece digests of the given chunks of an open file, in order (`pieceBytes` pieces per chunk). */
async function pieceDigests(
  fh: FileHandle,
  size: number,
  chunkBytes: number,
  chunks: number[],
): Promise<Buffer> {
  const per = Math.ceil(chunkBytes / pieceBytes);
  const out = Buffer.alloc(16 * per * chunks.length);
  const buf = Buffer.allocUnsafe(chunkBytes);
  for (let j = 0; j < chunks.length; j++) {
    const off = chunks[j]! * chunkBytes;
    const len = Math.max(0, Math.min(chunkBytes, size - off));
    await readFully(fh, buf, len, off);
    digestPieces(buf, len, pieceBytes, out, j * per);
  }
  return out;
}

export interface SyncOptions {
  chunkBytes?: number;
  dryRun?: boolean;
  onProgress?: (n: number) => void;
  /**
   * Chunks whose digests are compared at a time, 1 to `syncWindowChunksMax` (default `syncWindowChunks`):
   * bounds the digests held (`SyncResult.digestsHeldMax`). Over TCP, 0 asks the server for the digests of
   * the whole file in one frame, as a client of before 2026-12-07 did (sync protocol version 1).
   */
  windowChunks?: number;
}

function checkWindow(windowChunks: number, zeroOk: boolean): void {
  if (
    !Number.isInteger(windowChunks) ||
    windowChunks < (zeroOk ? 0 : 1) ||
    windowChunks > syncWindowChunksMax
  )
    throw new RangeError(
      `sync windowChunks must be an integer in [${zeroOk ? 0 : 1}, ${syncWindowChunksMax}], got ${windowChunks}`,
    );
}

/**
 * Makes `dst` equal to `src` (both local files), sending only the pieces of chunks that differ. The files
 * are compared a window of `windowChunks` chunks at a time, the next window's digests computed while the
 * current one's changes are written.
 */
export async function syncFiles(src: string, dst: string, opts: SyncOptions = {}): Promise<SyncResult> {
  const chunkBytes = opts.chunkBytes ?? defaultChunkBytes;
  checkChunk(chunkBytes);
  const windowChunks = opts.windowChunks ?? syncWindowChunks;
  checkWindow(windowChunks, false);
  const size = (await stat(src)).size;
  const s = await open(src, 'r');
  const exists = await stat(dst).then(
    () => true,
    () => false,
  );
  if (!exists && !opts.dryRun) await (await open(dst, 'a+')).close();
  const d = exists || !opts.dryRun ? await open(dst, opts.dryRun ? 'r' : 'r+') : undefined;
  let ahead: Promise<[Buffer, Buffer]>[] = [];
  try {
    const dsize = d ? (await d.stat()).size : 0;
    const count = new DigestCount();
    const n = Math.ceil(size / chunkBytes);
    const windows = Math.ceil(n / windowChunks);
    const sBlocks = readBlocks(chunkBytes);
    const dBlocks = readBlocks(chunkBytes);
    /**
     * Both sides' digests of window `k` at once: the reads overlap, the hashing takes turns; both settle
     * before the files are closed (a side still reading a closed descriptor could read another file that
     * reused it).
     */
    const digests = (k: number): Promise<[Buffer, Buffer]> => {
      const first = k * windowChunks;
      count.hold(
        digestsIn(dsize, chunkBytes, first, windowChunks) + digestsIn(size, chunkBytes, first, windowChunks),
      );
      return settleBoth(
        d
          ? digestRange(d, dsize, chunkBytes, first, windowChunks, undefined, dBlocks)
          : Promise.resolve(Buffer.alloc(0)),
        digestRange(s, size, chunkBytes, first, windowChunks, opts.onProgress, sBlocks),
      );
    };
    const push = new Pusher(s, size, chunkBytes, dsize, opts, {
      pieces: (chunks) => pieceDigests(d!, dsize, chunkBytes, chunks),
      write: async (off, data) => {
        await d!.write(data, 0, data.length, off);
      },
      finish: async () => {
        await d!.truncate(size);
        await d!.datasync();
      },
    });
    // window k + 1 is digested while window k's changes are written, never two at once
    if (windows > 0) ahead = [digests(0)];
    for (let k = 0; k < windows; k++) {
      const [theirs, ours] = await ahead[0]!;
      ahead = k + 1 < windows ? [digests(k + 1)] : [];
      await push.window(k * windowChunks, windowChunks, ours, theirs);
      count.release(theirs.length / 16 + ours.length / 16);
    }
    return await push.finish(windows, count.heldMax);
  } finally {
    // digests of windows ahead stop reading before the files are closed
    await Promise.allSettled(ahead);
    await s.close();
    await d?.close();
  }
}

/** Both results once both promises have settled; the first failure otherwise. */
async function settleBoth<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [x, y] = await Promise.allSettled([a, b]);
  if (x.status === 'rejected') throw x.reason;
  if (y.status === 'rejected') throw y.reason;
  return [x.value, y.value];
}

/** What the sending side needs from the destination. */
interface Target {
  /** Piece digests of these chunks of the destination (see `pieceDigests`). */
  pieces(chunks: number[]): Promise<Buffer>;
  write(offset: number, data: Buffer): Promise<void>;
  finish(): Promise<void>;
}

/**
 * Compares chunk digests a window at a time; a chunk that differs but exists whole on both sides is
 * compared again piece by piece, and only differing pieces (adjacent ones merged) are written.
 */
class Pusher {
  private changed = 0;
  private bytes = 0;
  private readonly per: number;
  private readonly buf: Buffer;
  private readonly mine: Buffer;

  constructor(
    private readonly s: FileHandle,
    private readonly size: number,
    private readonly chunkBytes: number,
    private readonly theirSize: number,
    private readonly opts: { dryRun?: boolean },
    private readonly target: Target,
  ) {
    this.per = Math.ceil(chunkBytes / pieceBytes);
    this.buf = Buffer.allocUnsafe(chunkBytes);
    this.mine = Buffer.alloc(16 * this.per);
  }

  private lenOf(i: number, total: number): number {
    return Math.max(0, Math.min(this.chunkBytes, total - i * this.chunkBytes));
  }

  /**
   * Sends what differs in chunks `[first, first + count)` (those of our file): `ours` and `theirs` hold
   * the digests of those chunks each side has, from chunk `first` on.
   */
  async window(first: number, count: number, ours: Buffer, theirs: Buffer): Promise<void> {
    const { chunkBytes, size, theirSize, per, buf, mine, target } = this;
    const end = Math.min(first + count, Math.ceil(size / chunkBytes));
    const changed: number[] = [];
    for (let i = first; i < end; i++) {
      const j = i - first;
      const same =
        this.lenOf(i, theirSize) === this.lenOf(i, size) &&
        16 * j + 16 <= theirs.length &&
        ours.compare(theirs, 16 * j, 16 * j + 16, 16 * j, 16 * j + 16) === 0;
      if (!same) changed.push(i);
    }
    this.changed += changed.length;
    const refine = chunkBytes > pieceBytes;
    for (let b = 0; b < changed.length; b += refineChunksMax) {
      const batch = changed.slice(b, b + refineChunksMax);
      // pieces only help where the destination holds the whole chunk
      const whole = refine ? batch.filter((i) => this.lenOf(i, theirSize) === this.lenOf(i, size)) : [];
      const theirPieces = whole.length ? await target.pieces(whole) : Buffer.alloc(0);
      for (const i of batch) {
        const off = i * chunkBytes;
        const len = this.lenOf(i, size);
        await readFully(this.s, buf, len, off);
        const w = whole.indexOf(i);
        if (w < 0) {
          this.bytes += len;
          if (!this.opts.dryRun) await target.write(off, Buffer.from(buf.subarray(0, len)));
          continue;
        }
        digestPieces(buf, len, pieceBytes, mine, 0);
        for (let k = 0; k * pieceBytes < len; ) {
          const differs = (j: number) =>
            j * pieceBytes < len &&
            mine.compare(theirPieces, 16 * (w * per + j), 16 * (w * per + j + 1), 16 * j, 16 * j + 16) !== 0;
          if (!differs(k)) {
            k++;
            continue;
          }
          let e = k + 1;
          while (differs(e)) e++;
          const from = k * pieceBytes;
          const to = Math.min(len, e * pieceBytes);
          this.bytes += to - from;
          if (!this.opts.dryRun) await target.write(off + from, Buffer.from(buf.subarray(from, to)));
          k = e;
        }
      }
    }
  }

  /** Ends the sync (the destination's truncate and datasync, unless a dry run). */
  async finish(windows: number, digestsHeldMax: number): Promise<SyncResult> {
    if (!this.opts.dryRun) await this.target.finish();
    return {
      chunks: Math.ceil(this.size / this.chunkBytes),
      changedChunks: this.changed,
      bytesSent: this.bytes,
      size: this.size,
      dryRun: this.opts.dryRun === true,
      windows,
      digestsHeldMax,
    };
  }
}

// --- over TCP: frames are u32 length | u8 type | payload -------------------------------------------------

const T_HELLO = 1; // client -> server: JSON {path, chunkBytes, size}
const T_DIGESTS = 2; // server -> client: u64 size | digests
const T_CHUNK = 3; // client -> server: u64 offset | bytes
const T_DONE = 4; // client -> server: finish (truncate, fsync); server -> client: ok
const T_ERROR = 5; // either way: UTF-8 message
const T_PIECES = 6; // client -> server: u32 chunk indices; server -> client: their piece digests
const T_READY = 7; // server -> client: HELLO taken (sent before the server digests its file); payload u8 1: it sends ALIVE
const T_ALIVE = 8; // either way, to a peer that said it takes them: working locally (digesting, flushing)
// since 2026-12-07 (version 2, for a client whose HELLO names a `window`): client -> server: u64 first chunk
// | u32 count, asking for those chunks' digests; server -> client: u64 first chunk | their digests
const T_WINDOW = 9;
/** The version of the sync protocol a server's READY names (byte 1); a READY of 0-1 bytes is version 1. */
const syncProtocolVersion = 2;

/**
 * How long a client waits for the server's first frame (READY, sent as soon as HELLO is taken): a silent
 * peer (not a sync server, or a stuck one) held the client forever. Digests can take long after READY.
 */
export const syncHandshakeTimeoutMs = 15_000;
/**
 * How long either side waits, after the handshake, on a peer from which nothing arrives and which takes
 * nothing of what was sent (`idleTimeoutMs`): a peer that stopped mid-transfer (SIGSTOP, a hung disk, a
 * dead link without a reset) held the other side forever. A side working locally (digesting its file,
 * piece digests, the final truncate and datasync) sends ALIVE frames meanwhile, every third of it.
 */
export const syncIdleTimeoutMs = 30_000;

/**
 * Bounds one connection's waits on its peer after the handshake. While this side waits on the peer
 * (`wait(phase, p)`, or `waiting(phase)` until `working()`), nothing received and nothing sent taken for
 * `timeoutMs` fails the connection: `failure` is set to an error naming the phase and the socket is
 * destroyed with it. While it works locally the bound is off, and ALIVE frames go to a peer that takes
 * them (`peerTakesAlive`), each only when nothing of ours waits in the socket.
 */
class IdleWatch {
  failure?: Error;
  peerTakesAlive = false;
  /** What this side waits on the peer for; undefined while it works locally. */
  private phase?: string;
  private movedMs = performance.now();
  private aliveMs = 0;
  private readonly sent: () => boolean;
  private bytesRead: number;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly sock: Socket,
    private readonly timeoutMs: number,
    /** The error for a wait in `phase` that went `ms` without progress. */
    private readonly idle: (phase: string, ms: number) => Error,
    private readonly tellPeer = false,
  ) {
    this.sent = sendProgress(sock);
    this.bytesRead = sock.bytesRead;
    this.timer = setInterval(() => this.tick(), Math.max(10, Math.min(1_000, timeoutMs / 4)));
    this.timer.unref();
  }

  private tick(): void {
    const now = performance.now();
    const moved = this.sent() || this.sock.bytesRead > this.bytesRead;
    this.bytesRead = this.sock.bytesRead;
    if (this.phase === undefined) {
      this.movedMs = now;
      if (this.peerTakesAlive && now - this.aliveMs >= this.timeoutMs / 3 && this.sock.writableLength === 0) {
        this.aliveMs = now;
        this.sock.write(frame(T_ALIVE, Buffer.alloc(0)));
      }
    } else if (moved) this.movedMs = now;
    else if (now - this.movedMs > this.timeoutMs) {
      this.failure = this.idle(this.phase, this.timeoutMs);
      this.stop();
      // the peer is told why, when its socket has room (a server's ERROR frame; a client sends none)
      if (this.tellPeer && this.sock.writableLength === 0)
        this.sock.write(frame(T_ERROR, Buffer.from(this.failure.message, 'utf8')));
      this.sock.destroy(this.failure);
    }
  }

  waiting(phase: string): void {
    if (this.phase === undefined) this.movedMs = performance.now();
    this.phase = phase;
  }

  working(): void {
    this.phase = undefined;
  }

  async wait<T>(phase: string, p: Promise<T>): Promise<T> {
    this.waiting(phase);
    try {
      return await p;
    } finally {
      this.working();
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

function frame(type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(payload.length + 1, 0);
  h[4] = type;
  return Buffer.concat([h, payload]);
}

/**
 * Writes `data`, then waits until the socket takes more ('drain') or closes; false when it is closed. A
 * peer that does not read stops the sender instead of having everything queued for it, and one that goes
 * away ends the wait ('drain' never comes then).
 */
async function sendFrame(sock: Socket, data: Buffer): Promise<boolean> {
  if (sock.write(data)) return true;
  if (sock.destroyed) return false;
  await drainOrClose(sock);
  return !sock.destroyed;
}

/**
 * The frames of a socket, each of at most `bytesMax` bytes. A frame's bytes are joined once it is whole,
 * not on every read (that copied a frame of N reads N times), and short reads are gathered as they come
 * (`SmallReads`: a peer sending a byte at a time had each byte kept as a Buffer object).
 */
async function* frames(
  sock: Socket,
  bytesMax = frameBytesMax,
): AsyncGenerator<{ type: number; payload: Buffer }> {
  const parts: Buffer[] = [];
  let have = 0;
  const small = new SmallReads();
  for await (const c of sock) {
    small.append(parts, c as Buffer);
    have += (c as Buffer).length;
    while (have >= 4) {
      const len = (parts[0]!.length >= 4 ? parts[0]! : Buffer.concat(parts, 4)).readUInt32BE(0);
      if (len < 1 || len > bytesMax)
        throw new Error(`sync protocol: bad frame length ${len} (1 to ${bytesMax} bytes)`);
      if (have < 4 + len) break;
      const buf = takeBytes(parts, 4 + len);
      have -= 4 + len;
      // a sign of life: its bytes are what the idle watch counts
      if (buf[4] === T_ALIVE) continue;
      yield { type: buf[4]!, payload: buf.subarray(5) };
    }
  }
}

/** Longest path a HELLO may name. */
const helloPathBytesMax = 4096;

/**
 * A HELLO frame's JSON `{path, chunkBytes, size}`; throws saying what is wrong (a peer's bytes: `null` gave
 * "Cannot read properties of null", a path that was an object "Cannot convert object to primitive value").
 * The chunk size and the size are checked by the caller.
 */
interface Hello {
  path: string;
  chunkBytes: number;
  size: number;
  /** The client takes ALIVE frames (since 2026-12-07; absent before). */
  alive?: boolean;
  /**
   * Version 2 (since 2026-12-07): the client asks for digests in WINDOW frames of at most this many chunks,
   * and the server sends none of its own accord. Absent (version 1): the server sends the digests of every
   * chunk of the client's file in one DIGESTS frame.
   */
  window?: number;
}

function parseHello(payload: Buffer): Hello {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new Error(`HELLO is not JSON (${payload.length} bytes)`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new Error('HELLO is not a JSON object {path, chunkBytes, size}');
  const h = v as Hello;
  if (typeof h.path !== 'string' || h.path.length === 0 || h.path.length > helloPathBytesMax)
    throw new Error(`HELLO's path must be a string of 1 to ${helloPathBytesMax} characters`);
  if (
    h.window !== undefined &&
    (!Number.isInteger(h.window) || h.window < 1 || h.window > syncWindowChunksMax)
  )
    throw new Error(`HELLO's window must be an integer in [1, ${syncWindowChunksMax}] chunks`);
  return h;
}

export interface ServeSyncOptions {
  /** `syncHandshakeTimeoutMs` unless given. */
  helloTimeoutMs?: number;
  /** `syncIdleTimeoutMs` unless given. */
  idleTimeoutMs?: number;
  /** Called with what ended a connection early: its idle timeout (naming the phase), a refused frame. */
  onError?: (e: Error) => void;
  /** Called as each connection ends, with the most chunk digests it held at once (one window's). */
  onSession?: (s: { digestsHeldMax: number; windows: number }) => void;
}

/**
 * Serves sync targets under `root` (paths may not escape it). A connection must send its HELLO within
 * `helloTimeoutMs` of its accept (default `syncHandshakeTimeoutMs`): a peer that connected and said
 * nothing was held as long as it stayed connected. After it, a client that sends nothing and takes nothing
 * for `idleTimeoutMs` while the server waits on it is dropped (after an ERROR frame naming the phase, if
 * its socket has room).
 */
export function serveSync(root: string, opts: ServeSyncOptions = {}): Server {
  const base = resolve(root);
  const helloTimeoutMs = opts.helloTimeoutMs ?? syncHandshakeTimeoutMs;
  const idleTimeoutMs = opts.idleTimeoutMs ?? syncIdleTimeoutMs;
  checkTimerMs('sync idleTimeoutMs', idleTimeoutMs, 1);
  return createServer((sock) => {
    const peer = `sync client ${sock.remoteAddress}:${sock.remotePort}`;
    // from the accept, not from the last byte: a peer sending a byte now and then must not hold it either
    const helloDue = setTimeout(() => sock.destroy(), helloTimeoutMs);
    sock.once('close', () => clearTimeout(helloDue));
    void (async () => {
      let watch: IdleWatch | undefined;
      let fh: FileHandle | undefined;
      let size = 0;
      let chunkBytes = 0;
      let current = 0;
      /** The HELLO's window (version 2), 0 for a client of version 1. */
      let window = 0;
      /** What the windows are read into, one at a time. */
      let blocks: Buffer[] | undefined;
      let windows = 0;
      const count = new DigestCount();
      /** Handles one frame; false when the session is over. */
      const handleFrame = async (f: { type: number; payload: Buffer }): Promise<boolean> => {
        if (f.type === T_HELLO) {
          // each HELLO opened the file again, and only the last was ever closed
          if (fh) throw new Error('a second HELLO (one per connection)');
          clearTimeout(helloDue);
          const hello = parseHello(f.payload);
          const p = resolve(base, hello.path);
          if (!p.startsWith(`${base}/`))
            throw new Error(`path '${hello.path}' is outside the served directory`);
          checkChunk(hello.chunkBytes);
          if (!Number.isSafeInteger(hello.size) || hello.size < 0) throw new Error(`bad size ${hello.size}`);
          size = hello.size;
          await (await open(p, 'a+')).close();
          fh = await open(p, 'r+');
          const cur = (await fh.stat()).size;
          chunkBytes = hello.chunkBytes;
          current = cur;
          // from here its waits on the client are bounded, and it tells a client that takes them it is alive
          watch = new IdleWatch(
            sock,
            idleTimeoutMs,
            (phase, ms) => new Error(`${peer}: nothing arrived or left for ${ms} ms while ${phase}`),
            true,
          );
          watch.peerTakesAlive = hello.alive === true;
          window = hello.window ?? 0;
          if (window > 0) {
            // version 2: the client asks for its windows of digests; it learns our size here
            const ready = Buffer.alloc(10);
            ready[0] = 1;
            ready[1] = syncProtocolVersion;
            ready.writeBigUInt64BE(BigInt(cur), 2);
            sock.write(frame(T_READY, ready));
            return true;
          }
          sock.write(frame(T_READY, Buffer.from([1])));
          // version 1: the digests of every chunk the client has (those past them were work and bytes for
          // nothing) in one frame, computed and sent a part at a time: only the client holds them all. No
          // ALIVE frame may go out inside that frame (it did, and the client read garbage), so the parts
          // are small (`streamPartBytes` of the file) and their own bytes show the client we are alive
          const has = Math.min(cur, Math.ceil(size / chunkBytes) * chunkBytes);
          const n = Math.ceil(has / chunkBytes);
          const part = Math.min(syncWindowChunks, Math.max(1, Math.floor(streamPartBytes / chunkBytes)));
          const head = Buffer.alloc(13);
          head.writeUInt32BE(1 + 8 + 16 * n, 0);
          head[4] = T_DIGESTS;
          head.writeBigUInt64BE(BigInt(cur), 5);
          watch.peerTakesAlive = false;
          if (!(await watch.wait('sending its digests', sendFrame(sock, head)))) return false;
          blocks ??= readBlocks(chunkBytes);
          for (let first = 0; first < n; first += part) {
            const d = await digestRange(fh, has, chunkBytes, first, part, undefined, blocks);
            windows++;
            count.hold(d.length / 16);
            const sent = await watch.wait('sending its digests', sendFrame(sock, d));
            count.release(d.length / 16);
            if (!sent) return false;
          }
          watch.peerTakesAlive = hello.alive === true;
          return true;
        }
        if (f.type === T_WINDOW) {
          if (!fh || window === 0) throw new Error('WINDOW before a HELLO that names a window');
          if (f.payload.length !== 12) throw new Error(`WINDOW frame of ${f.payload.length} bytes (12)`);
          const first = Number(f.payload.readBigUInt64BE(0));
          const n = f.payload.readUInt32BE(8);
          const chunks = Math.ceil(size / chunkBytes);
          if (n < 1 || n > window || first + n > chunks)
            throw new Error(
              `WINDOW of chunks [${first}, +${n}): at most ${window} chunks, within the ${chunks} of the declared size`,
            );
          const d = await digestRange(
            fh,
            current,
            chunkBytes,
            first,
            n,
            undefined,
            (blocks ??= readBlocks(chunkBytes)),
          );
          windows++;
          count.hold(d.length / 16);
          const reply = frame(T_WINDOW, Buffer.concat([f.payload.subarray(0, 8), d]));
          try {
            return await watch!.wait('sending digests', sendFrame(sock, reply));
          } finally {
            count.release(d.length / 16);
          }
        }
        if (f.type === T_CHUNK) {
          if (!fh) throw new Error('CHUNK before HELLO');
          if (f.payload.length < 8) throw new Error('CHUNK frame too short');
          const off = Number(f.payload.readBigUInt64BE(0));
          const data = f.payload.subarray(8);
          if (off + data.length > size)
            throw new Error(`chunk [${off}, +${data.length}) is past the declared size ${size}`);
          await fh.write(data, 0, data.length, off);
          return true;
        }
        if (f.type === T_PIECES) {
          if (!fh) throw new Error('PIECES before HELLO');
          const count = f.payload.length / 4;
          if (!Number.isInteger(count) || count > refineChunksMax)
            throw new Error(
              `PIECES frame of ${f.payload.length} bytes (at most ${refineChunksMax} u32 indices)`,
            );
          const chunks: number[] = [];
          for (let k = 0; k < count; k++) {
            const i = f.payload.readUInt32BE(4 * k);
            if (i * chunkBytes >= current) throw new Error(`PIECES: chunk ${i} is past the end (${current})`);
            chunks.push(i);
          }
          // the next frame waits until the client reads this reply: each frame of 1 KiB is answered with up
          // to 4 MiB, and all of them were queued for a client that did not read
          const pieces = frame(T_PIECES, await pieceDigests(fh, current, chunkBytes, chunks));
          return watch!.wait('sending piece digests', sendFrame(sock, pieces));
        }
        if (f.type === T_DONE) {
          if (!fh) throw new Error('DONE before HELLO');
          await fh.truncate(size);
          await fh.datasync();
          await new Promise<void>((r) => sock.write(frame(T_DONE, Buffer.alloc(0)), () => r()));
          sock.end();
          return false;
        }
        throw new Error(`unexpected frame type ${f.type}`);
      };
      const it = frames(sock);
      try {
        for (;;) {
          watch?.waiting("waiting for the client's next frame (PIECES, CHUNK or DONE)");
          const n = await it.next();
          if (n.done) break;
          watch?.working();
          // errors are answered inside the loop: leaving a for-await on a socket destroys it unflushed
          try {
            if (!(await handleFrame(n.value))) break;
          } catch (e) {
            opts.onError?.(e as Error);
            await new Promise<void>((r) =>
              sock.write(frame(T_ERROR, Buffer.from((e as Error).message, 'utf8')), () => r()),
            );
            sock.end();
            break;
          }
        }
      } catch {
        // a framing error from the peer, or its idle timeout: drop the connection
        if (watch?.failure) opts.onError?.(watch.failure);
      } finally {
        watch?.stop();
        await it.return(undefined).catch(() => undefined);
        await fh?.close();
        opts.onSession?.({ digestsHeldMax: count.heldMax, windows });
      }
    })();
  });
}

/** Pushes local `src` to `path` on a sync server at host:port. */
export async function syncToRemote(
  src: string,
  host: string,
  port: number,
  path: string,
  opts: SyncOptions & {
    /** `syncHandshakeTimeoutMs` unless given. */
    handshakeTimeoutMs?: number;
    /**
     * `syncIdleTimeoutMs` unless given: after the server's READY, a wait on it during which nothing
     * arrives and nothing sent is taken fails the sync, the error naming what it waited for.
     */
    idleTimeoutMs?: number;
  } = {},
): Promise<SyncResult> {
  const idleTimeoutMs = opts.idleTimeoutMs ?? syncIdleTimeoutMs;
  checkTimerMs('sync idleTimeoutMs', idleTimeoutMs, 1);
  const chunkBytes = opts.chunkBytes ?? defaultChunkBytes;
  checkChunk(chunkBytes);
  const windowChunks = opts.windowChunks ?? syncWindowChunks;
  checkWindow(windowChunks, true);
  const size = (await stat(src)).size;
  const n = Math.ceil(size / chunkBytes);
  // version 1: the server's digests of the chunks this file has (and its u64 size and the frame's type)
  const digestBytes = 9 + 16 * n;
  const wholeTooLarge = `${src}: ${size} bytes in chunks of ${chunkBytes} need ${digestBytes} bytes of digests in one frame (sync protocol version 1), more than ${digestFrameBytesMax}`;
  if (windowChunks === 0 && digestBytes > digestFrameBytesMax)
    throw new RangeError(`${wholeTooLarge}: use a larger chunk size, or windows (windowChunks > 0)`);
  const peer = `sync server ${host}:${port}`;
  const s = await open(src, 'r');
  const sock = connect({ host, port });
  const timeoutMs = opts.handshakeTimeoutMs ?? syncHandshakeTimeoutMs;
  // from the connect on, not from the last byte: a peer sending a byte now and then must not hold it
  const due = setTimeout(
    () => sock.destroy(new Error(`${peer}: no answer within ${timeoutMs} ms`)),
    timeoutMs,
  );
  /** Our digests being computed (one window at a time): they stop reading before the file is closed. */
  let reading: Promise<Buffer> | undefined;
  let watch: IdleWatch | undefined;
  try {
    await new Promise<void>((res, rej) => sock.once('connect', res).once('error', rej));
    const it = frames(sock, Math.max(frameBytesMax, Math.min(digestBytes, digestFrameBytesMax)));
    const hello = {
      path,
      chunkBytes,
      size,
      alive: true,
      ...(windowChunks > 0 ? { window: windowChunks } : {}),
    };
    sock.write(frame(T_HELLO, Buffer.from(JSON.stringify(hello))));
    // our digests a window at a time (against either version), the first ones while the server starts
    const win = windowChunks || syncWindowChunks;
    const windows = Math.ceil(n / win);
    const count = new DigestCount();
    const blocks = readBlocks(chunkBytes);
    const ourDigests = (k: number): Promise<Buffer> => {
      count.hold(digestsIn(size, chunkBytes, k * win, win));
      const p = digestRange(s, size, chunkBytes, k * win, win, opts.onProgress, blocks);
      p.catch(() => undefined);
      reading = p;
      return p;
    };
    // window k + 1 is digested (and asked for) while window k is compared: both sides stay busy
    let oursNext = windows > 0 ? ourDigests(0) : undefined;
    let first = await it.next();
    clearTimeout(due);
    const w = new IdleWatch(
      sock,
      idleTimeoutMs,
      (phase, ms) => new Error(`${peer}: nothing arrived or left for ${ms} ms while ${phase}`),
    );
    watch = w;
    let theirSize = -1;
    if (!first.done && first.value.type === T_READY) {
      const ready = first.value.payload;
      // a server from before 2026-12-07 sends an empty READY and no ALIVE frames
      w.peerTakesAlive = ready[0] === 1;
      // version 2 (READY of 10 bytes): its size, and digests only when asked for
      if (windowChunks > 0 && ready.length >= 10 && ready[1]! >= syncProtocolVersion)
        theirSize = Number(ready.readBigUInt64BE(2));
      else {
        // a server of version 1 sends the digests of the whole file in one frame
        if (digestBytes > digestFrameBytesMax)
          throw new Error(
            `${peer} speaks sync protocol version 1: ${wholeTooLarge}: use a larger chunk size`,
          );
        first = await w.wait("waiting for the server's digests", it.next());
      }
    }
    const replies = theirSize < 0 ? undefined : new Replies(it, peer);
    /** The next reply, of type `want`: in order, from `replies` (version 2) or straight off the frames. */
    const reply = (want: number): Promise<Buffer> => {
      if (replies) return replies.expect(want);
      return (async () => {
        const f = await it.next();
        if (f.done) throw new Error(`${peer} closed the connection`);
        if (f.value.type === T_ERROR) throw new Error(`${peer}: ${f.value.payload.toString('utf8')}`);
        if (f.value.type !== want) throw new Error(`${peer}: unexpected frame type ${f.value.type}`);
        return Buffer.from(f.value.payload);
      })();
    };
    /** Theirs of window `k` (version 1: a view of the whole file's). */
    let theirWindow: (k: number) => Promise<Buffer>;
    let theirsNext: Promise<Buffer> | undefined;
    if (theirSize < 0) {
      if (first.done) throw new Error(`${peer} closed the connection`);
      if (first.value.type === T_ERROR) throw new Error(`${peer}: ${first.value.payload.toString('utf8')}`);
      if (first.value.type !== T_DIGESTS || first.value.payload.length < 8)
        throw new Error(`${peer}: expected its digests`);
      theirSize = Number(first.value.payload.readBigUInt64BE(0));
      const all = Buffer.from(first.value.payload.subarray(8));
      count.hold(all.length / 16);
      theirWindow = async (k) =>
        all.subarray(Math.min(all.length, 16 * k * win), Math.min(all.length, 16 * (k + 1) * win));
    } else {
      const known = theirSize;
      theirWindow = (k) => {
        const from = k * win;
        const want = Math.min(win, n - from);
        const req = Buffer.alloc(12);
        req.writeBigUInt64BE(BigInt(from), 0);
        req.writeUInt32BE(want, 8);
        sock.write(frame(T_WINDOW, req));
        const p = reply(T_WINDOW).then((b) => {
          const digests = digestsIn(known, chunkBytes, from, want);
          if (b.length !== 8 + 16 * digests || Number(b.readBigUInt64BE(0)) !== from)
            throw new Error(
              `${peer}: a WINDOW reply of ${b.length} bytes from chunk ${b.length >= 8 ? b.readBigUInt64BE(0) : '?'}, for ${digests} digests from chunk ${from}`,
            );
          count.hold(digests);
          return b.subarray(8);
        });
        p.catch(() => undefined);
        return p;
      };
      if (windows > 0) theirsNext = theirWindow(0);
    }
    const push = new Pusher(s, size, chunkBytes, theirSize, opts, {
      pieces: async (chunks) => {
        const req = Buffer.alloc(4 * chunks.length);
        for (let k = 0; k < chunks.length; k++) req.writeUInt32BE(chunks[k]!, 4 * k);
        sock.write(frame(T_PIECES, req));
        const got = await w.wait('waiting for its piece digests', reply(T_PIECES));
        if (got.length !== 16 * Math.ceil(chunkBytes / pieceBytes) * chunks.length)
          throw new Error(`${peer}: ${got.length} bytes of piece digests for ${chunks.length} chunks`);
        return got;
      },
      write: async (off, data) => {
        const h = Buffer.alloc(8);
        h.writeBigUInt64BE(BigInt(off), 0);
        // a server gone mid-transfer: 'drain' never came, and the sync waited forever
        if (!(await w.wait('sending chunks', sendFrame(sock, frame(T_CHUNK, Buffer.concat([h, data]))))))
          throw new Error(`${peer} closed the connection`);
      },
      finish: async () => {
        sock.write(frame(T_DONE, Buffer.alloc(0)));
        await w.wait('waiting for its DONE (its truncate and datasync)', reply(T_DONE));
      },
    });
    for (let k = 0; k < windows; k++) {
      const theirs = await w.wait("waiting for the server's digests", theirsNext ?? theirWindow(k));
      const ours = await oursNext!;
      oursNext = k + 1 < windows ? ourDigests(k + 1) : undefined;
      theirsNext = replies && k + 1 < windows ? theirWindow(k + 1) : undefined;
      await push.window(k * win, win, ours, theirs);
      count.release(ours.length / 16 + (replies ? theirs.length / 16 : 0));
    }
    return await push.finish(windows, count.heldMax);
  } catch (e) {
    // its own error, not what the destroyed socket then made of the waits (a close, a premature end)
    throw watch?.failure ?? e;
  } finally {
    watch?.stop();
    clearTimeout(due);
    sock.destroy();
    // our digests stop reading before the file is closed
    await reading?.catch(() => undefined);
    await s.close();
  }
}

/**
 * A sync server's replies (version 2), taken in the order their requests were sent, which is the order
 * the server answers them in: windows of digests asked for ahead arrive while piece digests are awaited.
 * At most one window ahead and one PIECES are asked for at a time, so this holds no more.
 */
class Replies {
  private readonly waiting: { type: number; resolve: (b: Buffer) => void; reject: (e: Error) => void }[] = [];
  private failure?: Error;

  constructor(
    private readonly it: AsyncGenerator<{ type: number; payload: Buffer }>,
    private readonly peer: string,
  ) {
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const f = await this.it.next();
        if (f.done) throw new Error(`${this.peer} closed the connection`);
        if (f.value.type === T_ERROR) throw new Error(`${this.peer}: ${f.value.payload.toString('utf8')}`);
        const w = this.waiting.shift();
        if (!w) throw new Error(`${this.peer}: a frame of type ${f.value.type} that nothing asked for`);
        if (f.value.type !== w.type) {
          w.reject(new Error(`${this.peer}: unexpected frame type ${f.value.type} (${w.type} expected)`));
          throw new Error(`${this.peer}: unexpected frame type ${f.value.type}`);
        }
        w.resolve(Buffer.from(f.value.payload));
      }
    } catch (e) {
      this.failure = e as Error;
      for (const w of this.waiting.splice(0)) w.reject(this.failure);
    }
  }

  /** The reply to the request just sent, which must be of type `type`. */
  expect(type: number): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    const p = new Promise<Buffer>((resolve, reject) => this.waiting.push({ type, resolve, reject }));
    p.catch(() => undefined);
    return p;
  }
}
