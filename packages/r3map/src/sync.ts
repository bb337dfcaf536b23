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

export interface SyncResult {
  chunks: number;
  changedChunks: number;
  bytesSent: number;
  size: number;
  dryRun: boolean;
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
  const n = Math.ceil(size / chunkBytes);
  const out = Buffer.alloc(16 * n);
  const block = Math.max(chunkBytes, Math.floor(readBlockBytes / chunkBytes) * chunkBytes);
  const read = async (off: number, buf: Buffer) => {
    const len = Math.min(block, size - off);
    await readFully(fh, buf, len, off);
    return len;
  };
  let bufs = [Buffer.allocUnsafe(block), Buffer.allocUnsafe(block)];
  let next = size > 0 ? read(0, bufs[0]!) : undefined;
  try {
    for (let off = 0; off < size; off += block) {
      const len = await next!;
      const cur = bufs[0]!;
      bufs = [bufs[1]!, cur];
      next = off + block < size ? read(off + block, bufs[0]!) : undefined;
      digestPieces(cur, len, chunkBytes, out, off / chunkBytes);
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
}

/** Makes `dst` equal to `src` (both local files), sending only the pieces of chunks that differ. */
export async function syncFiles(src: string, dst: string, opts: SyncOptions = {}): Promise<SyncResult> {
  const chunkBytes = opts.chunkBytes ?? defaultChunkBytes;
  checkChunk(chunkBytes);
  const size = (await stat(src)).size;
  const s = await open(src, 'r');
  const exists = await stat(dst).then(
    () => true,
    () => false,
  );
  if (!exists && !opts.dryRun) await (await open(dst, 'a+')).close();
  const d = exists || !opts.dryRun ? await open(dst, opts.dryRun ? 'r' : 'r+') : undefined;
  try {
    const dsize = d ? (await d.stat()).size : 0;
    // both sides digest at once: the reads overlap, the hashing takes turns; both settle before the
    // files are closed (a side still reading a closed descriptor could read another file that reused it)
    const [theirs, ours] = await settleBoth(
      d ? digestFile(d, dsize, chunkBytes) : Promise.resolve(Buffer.alloc(0)),
      digestFile(s, size, chunkBytes, opts.onProgress),
    );
    return await pushChunks(s, size, chunkBytes, ours, theirs, dsize, opts, {
      pieces: (chunks) => pieceDigests(d!, dsize, chunkBytes, chunks),
      write: async (off, data) => {
        await d!.write(data, 0, data.length, off);
      },
      finish: async () => {
        await d!.truncate(size);
        await d!.datasync();
      },
    });
  } finally {
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
 * Compares chunk digests; a chunk that differs but exists whole on both sides is compared again piece by
 * piece, and only differing pieces (adjacent ones merged) are written.
 */
async function pushChunks(
  s: FileHandle,
  size: number,
  chunkBytes: number,
  ours: Buffer,
  theirs: Buffer,
  theirSize: number,
  opts: { dryRun?: boolean },
  target: Target,
): Promise<SyncResult> {
  const n = Math.ceil(size / chunkBytes);
  const lenOf = (i: number, total: number) => Math.max(0, Math.min(chunkBytes, total - i * chunkBytes));
  const changed: number[] = [];
  for (let i = 0; i < n; i++) {
    const same =
      lenOf(i, theirSize) === lenOf(i, size) &&
      16 * i + 16 <= theirs.length &&
      ours.compare(theirs, 16 * i, 16 * i + 16, 16 * i, 16 * i + 16) === 0;
    if (!same) changed.push(i);
  }
  const refine = chunkBytes > pieceBytes;
  const per = Math.ceil(chunkBytes / pieceBytes);
  const buf = Buffer.allocUnsafe(chunkBytes);
  const mine = Buffer.alloc(16 * per);
  let bytes = 0;
  for (let b = 0; b < changed.length; b += refineChunksMax) {
    const batch = changed.slice(b, b + refineChunksMax);
    // pieces only help where the destination holds the whole chunk
    const whole = refine ? batch.filter((i) => lenOf(i, theirSize) === lenOf(i, size)) : [];
    const theirPieces = whole.length ? await target.pieces(whole) : Buffer.alloc(0);
    for (const i of batch) {
      const off = i * chunkBytes;
      const len = lenOf(i, size);
      await readFully(s, buf, len, off);
      const w = whole.indexOf(i);
      if (w < 0) {
        bytes += len;
        if (!opts.dryRun) await target.write(off, Buffer.from(buf.subarray(0, len)));
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
        bytes += to - from;
        if (!opts.dryRun) await target.write(off + from, Buffer.from(buf.subarray(from, to)));
        k = e;
      }
    }
  }
  if (!opts.dryRun) await target.finish();
  return {
    chunks: n,
    changedChunks: changed.length,
    bytesSent: bytes,
    size,
    dryRun: opts.dryRun === true,
  };
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
  return h;
}

export interface ServeSyncOptions {
  /** `syncHandshakeTimeoutMs` unless given. */
  helloTimeoutMs?: number;
  /** `syncIdleTimeoutMs` unless given. */
  idleTimeoutMs?: number;
  /** Called with what ended a connection early: its idle timeout (naming the phase), a refused frame. */
  onError?: (e: Error) => void;
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
          sock.write(frame(T_READY, Buffer.from([1])));
          // the client compares its own chunks only: digests past them were work and bytes for nothing
          const d = await digestFile(
            fh,
            Math.min(cur, Math.ceil(size / chunkBytes) * chunkBytes),
            hello.chunkBytes,
          );
          const head = Buffer.alloc(8);
          head.writeBigUInt64BE(BigInt(cur), 0);
          return watch.wait(
            'sending its digests',
            sendFrame(sock, frame(T_DIGESTS, Buffer.concat([head, d]))),
          );
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
  const size = (await stat(src)).size;
  // the server's digests of the chunks this file has (and its u64 size and the frame's type)
  const digestBytes = 9 + 16 * Math.ceil(size / chunkBytes);
  if (digestBytes > digestFrameBytesMax)
    throw new RangeError(
      `${src}: ${size} bytes in chunks of ${chunkBytes} need ${digestBytes} bytes of digests over TCP, more than ${digestFrameBytesMax}: use a larger chunk size`,
    );
  const s = await open(src, 'r');
  const sock = connect({ host, port });
  const timeoutMs = opts.handshakeTimeoutMs ?? syncHandshakeTimeoutMs;
  // from the connect on, not from the last byte: a peer sending a byte now and then must not hold it
  const due = setTimeout(
    () => sock.destroy(new Error(`sync server ${host}:${port}: no answer within ${timeoutMs} ms`)),
    timeoutMs,
  );
  let oursP: Promise<Buffer> | undefined;
  let watch: IdleWatch | undefined;
  try {
    await new Promise<void>((res, rej) => sock.once('connect', res).once('error', rej));
    const it = frames(sock, Math.max(frameBytesMax, digestBytes));
    sock.write(frame(T_HELLO, Buffer.from(JSON.stringify({ path, chunkBytes, size, alive: true }))));
    // our digests while the server computes its own
    oursP = digestFile(s, size, chunkBytes, opts.onProgress);
    oursP.catch(() => undefined);
    let first = await it.next();
    clearTimeout(due);
    const w = new IdleWatch(
      sock,
      idleTimeoutMs,
      (phase, ms) =>
        new Error(`sync server ${host}:${port}: nothing arrived or left for ${ms} ms while ${phase}`),
    );
    watch = w;
    if (!first.done && first.value.type === T_READY) {
      // a server from before 2026-12-07 sends an empty READY and no ALIVE frames
      w.peerTakesAlive = first.value.payload[0] === 1;
      first = await w.wait("waiting for the server's digests", it.next());
    }
    if (first.done) throw new Error('sync server closed the connection');
    if (first.value.type === T_ERROR) throw new Error(`sync server: ${first.value.payload.toString('utf8')}`);
    if (first.value.type !== T_DIGESTS || first.value.payload.length < 8)
      throw new Error('sync server: expected its digests');
    const theirSize = Number(first.value.payload.readBigUInt64BE(0));
    const theirs = Buffer.from(first.value.payload.subarray(8));
    const ours = await oursP;
    const reply = async (want: number, phase: string): Promise<Buffer> => {
      const f = await w.wait(phase, it.next());
      if (f.done) throw new Error('sync server closed the connection');
      if (f.value.type === T_ERROR) throw new Error(`sync server: ${f.value.payload.toString('utf8')}`);
      if (f.value.type !== want) throw new Error(`sync server: unexpected frame type ${f.value.type}`);
      return Buffer.from(f.value.payload);
    };
    return await pushChunks(s, size, chunkBytes, ours, theirs, theirSize, opts, {
      pieces: async (chunks) => {
        const req = Buffer.alloc(4 * chunks.length);
        for (let k = 0; k < chunks.length; k++) req.writeUInt32BE(chunks[k]!, 4 * k);
        sock.write(frame(T_PIECES, req));
        const got = await reply(T_PIECES, 'waiting for its piece digests');
        if (got.length !== 16 * Math.ceil(chunkBytes / pieceBytes) * chunks.length)
          throw new Error(`sync server: ${got.length} bytes of piece digests for ${chunks.length} chunks`);
        return got;
      },
      write: async (off, data) => {
        const h = Buffer.alloc(8);
        h.writeBigUInt64BE(BigInt(off), 0);
        // a server gone mid-transfer: 'drain' never came, and the sync waited forever
        if (!(await w.wait('sending chunks', sendFrame(sock, frame(T_CHUNK, Buffer.concat([h, data]))))))
          throw new Error('sync server closed the connection');
      },
      finish: async () => {
        sock.write(frame(T_DONE, Buffer.alloc(0)));
        await reply(T_DONE, 'waiting for its DONE (its truncate and datasync)');
      },
    });
  } catch (e) {
    // its own error, not what the destroyed socket then made of the waits (a close, a premature end)
    throw watch?.failure ?? e;
  } finally {
    watch?.stop();
    clearTimeout(due);
    sock.destroy();
    // our digests stop reading before the file is closed
    await oursP?.catch(() => undefined);
    await s.close();
  }
}
