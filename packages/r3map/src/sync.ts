/**
 * Hash-based delta sync: both sides digest fixed-size chunks with HighwayHash-128 and only the chunks whose
 * digests differ travel. Local (file to file) or to another Strata process over TCP (`serveSync`).
 * An interrupted sync resumes naturally: a re-run sends only the chunks that still differ.
 */

import { type FileHandle, open, stat } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { hash128 } from '@strata/highwayhash';

const digestKey = new Uint8Array(32).map((_, i) => 0x77 ^ (i * 5));
export const defaultChunkBytes = 64 * 1024;
/** Largest chunk size accepted. */
export const chunkBytesMax = 4 * 1024 * 1024;
/** Largest frame accepted on the sync protocol. */
const frameBytesMax = chunkBytesMax + 1024;

export interface SyncResult {
  chunks: number;
  changedChunks: number;
  bytesSent: number;
  size: number;
  dryRun: boolean;
}

/** Digests of every chunk of an open file (missing bytes past the end digest as absent). */
export async function digestFile(
  fh: FileHandle,
  size: number,
  chunkBytes: number,
  onChunk?: (n: number) => void,
): Promise<Buffer> {
  const n = Math.ceil(size / chunkBytes);
  const out = Buffer.alloc(16 * n);
  const buf = Buffer.allocUnsafe(chunkBytes);
  for (let i = 0; i < n; i++) {
    const len = Math.min(chunkBytes, size - i * chunkBytes);
    await readFully(fh, buf, len, i * chunkBytes);
    const [a, b] = hash128(digestKey, buf.subarray(0, len));
    out.writeBigUInt64LE(a!, 16 * i);
    out.writeBigUInt64LE(b!, 16 * i + 8);
    onChunk?.(len);
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

function checkChunk(chunkBytes: number): void {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 4096 || chunkBytes > chunkBytesMax)
    throw new RangeError(`chunk size must be an integer in [4096, ${chunkBytesMax}], got ${chunkBytes}`);
}

/** Makes `dst` equal to `src` (both local files), sending only the chunks that differ. */
export async function syncFiles(
  src: string,
  dst: string,
  opts: { chunkBytes?: number; dryRun?: boolean; onProgress?: (n: number) => void } = {},
): Promise<SyncResult> {
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
    const theirs = d ? await digestFile(d, dsize, chunkBytes) : Buffer.alloc(0);
    return await pushChunks(
      s,
      size,
      chunkBytes,
      theirs,
      dsize,
      opts,
      async (off, data) => {
        await d!.write(data, 0, data.length, off);
      },
      async () => {
        await d!.truncate(size);
        await d!.datasync();
      },
    );
  } finally {
    await s.close();
    await d?.close();
  }
}

async function pushChunks(
  s: FileHandle,
  size: number,
  chunkBytes: number,
  theirs: Buffer,
  theirSize: number,
  opts: { dryRun?: boolean; onProgress?: (n: number) => void },
  write: (offset: number, data: Buffer) => Promise<void>,
  finish: () => Promise<void>,
): Promise<SyncResult> {
  const n = Math.ceil(size / chunkBytes);
  const buf = Buffer.allocUnsafe(chunkBytes);
  let changed = 0;
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const len = Math.min(chunkBytes, size - i * chunkBytes);
    await readFully(s, buf, len, i * chunkBytes);
    const [a, b] = hash128(digestKey, buf.subarray(0, len));
    const theirLen = Math.max(0, Math.min(chunkBytes, theirSize - i * chunkBytes));
    const same =
      theirLen === len &&
      16 * i + 16 <= theirs.length &&
      theirs.readBigUInt64LE(16 * i) === a &&
      theirs.readBigUInt64LE(16 * i + 8) === b;
    if (!same) {
      changed++;
      bytes += len;
      if (!opts.dryRun) await write(i * chunkBytes, Buffer.from(buf.subarray(0, len)));
    }
    opts.onProgress?.(len);
  }
  if (!opts.dryRun) await finish();
  return { chunks: n, changedChunks: changed, bytesSent: bytes, size, dryRun: opts.dryRun === true };
}

// --- over TCP: frames are u32 length | u8 type | payload -------------------------------------------------

const T_HELLO = 1; // client -> server: JSON {path, chunkBytes, size}
const T_DIGESTS = 2; // server -> client: u64 size | digests
const T_CHUNK = 3; // client -> server: u64 offset | bytes
const T_DONE = 4; // client -> server: finish (truncate, fsync); server -> client: ok
const T_ERROR = 5; // either way: UTF-8 message

function frame(type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(payload.length + 1, 0);
  h[4] = type;
  return Buffer.concat([h, payload]);
}

async function* frames(sock: Socket): AsyncGenerator<{ type: number; payload: Buffer }> {
  let buf: Buffer = Buffer.alloc(0);
  for await (const c of sock) {
    buf = buf.length ? Buffer.concat([buf, c as Buffer]) : (c as Buffer);
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (len < 1 || len > frameBytesMax) throw new Error(`sync protocol: bad frame length ${len}`);
      if (buf.length < 4 + len) break;
      yield { type: buf[4]!, payload: buf.subarray(5, 4 + len) };
      buf = buf.subarray(4 + len);
    }
  }
}

/** Serves sync targets under `root` (paths may not escape it). */
export function serveSync(root: string): Server {
  const base = resolve(root);
  return createServer((sock) => {
    void (async () => {
      let fh: FileHandle | undefined;
      let size = 0;
      /** Handles one frame; false when the session is over. */
      const handleFrame = async (f: { type: number; payload: Buffer }): Promise<boolean> => {
        if (f.type === T_HELLO) {
          const hello = JSON.parse(f.payload.toString('utf8')) as {
            path: string;
            chunkBytes: number;
            size: number;
          };
          const p = resolve(base, String(hello.path));
          if (!p.startsWith(`${base}/`))
            throw new Error(`path '${hello.path}' is outside the served directory`);
          checkChunk(hello.chunkBytes);
          if (!Number.isSafeInteger(hello.size) || hello.size < 0) throw new Error(`bad size ${hello.size}`);
          size = hello.size;
          await (await open(p, 'a+')).close();
          fh = await open(p, 'r+');
          const cur = (await fh.stat()).size;
          const d = await digestFile(fh, cur, hello.chunkBytes);
          const head = Buffer.alloc(8);
          head.writeBigUInt64BE(BigInt(cur), 0);
          sock.write(frame(T_DIGESTS, Buffer.concat([head, d])));
          return true;
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
      try {
        for await (const f of frames(sock)) {
          // errors are answered inside the loop: leaving a for-await on a socket destroys it unflushed
          try {
            if (!(await handleFrame(f))) break;
          } catch (e) {
            await new Promise<void>((r) =>
              sock.write(frame(T_ERROR, Buffer.from((e as Error).message, 'utf8')), () => r()),
            );
            sock.end();
            break;
          }
        }
      } catch {
        // a framing error from the peer: drop the connection
      } finally {
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
  opts: { chunkBytes?: number; dryRun?: boolean; onProgress?: (n: number) => void } = {},
): Promise<SyncResult> {
  const chunkBytes = opts.chunkBytes ?? defaultChunkBytes;
  checkChunk(chunkBytes);
  const size = (await stat(src)).size;
  const s = await open(src, 'r');
  const sock = connect({ host, port });
  await new Promise<void>((res, rej) => sock.once('connect', res).once('error', rej));
  try {
    const it = frames(sock);
    sock.write(frame(T_HELLO, Buffer.from(JSON.stringify({ path, chunkBytes, size }))));
    const first = await it.next();
    if (first.done) throw new Error('sync server closed the connection');
    if (first.value.type === T_ERROR) throw new Error(`sync server: ${first.value.payload.toString('utf8')}`);
    const theirSize = Number(first.value.payload.readBigUInt64BE(0));
    const theirs = Buffer.from(first.value.payload.subarray(8));
    const r = await pushChunks(
      s,
      size,
      chunkBytes,
      theirs,
      theirSize,
      opts,
      async (off, data) => {
        const h = Buffer.alloc(8);
        h.writeBigUInt64BE(BigInt(off), 0);
        if (!sock.write(frame(T_CHUNK, Buffer.concat([h, data]))))
          await new Promise((res) => sock.once('drain', res));
      },
      async () => {
        sock.write(frame(T_DONE, Buffer.alloc(0)));
        const done = await it.next();
        if (done.done || done.value.type !== T_DONE)
          throw new Error(`sync server: ${done.done ? 'closed' : done.value.payload.toString('utf8')}`);
      },
    );
    return r;
  } finally {
    sock.destroy();
    await s.close();
  }
}
