import { randomBytes } from 'node:crypto';
import { closeSync, constants, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { type FileHandle, link, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { makeDirs } from '@strata/cli';
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
} from '../contract.js';
import { validateDelete, validateKey, validateList, validatePut } from '../keys.js';
import { lockFile } from '../lockfile.js';
import { bodyBytesMax, checkPrecondition, chunkBytes, etagHasher, etagOf, rangeBounds } from '../util.js';
import { compareKeys } from './mem.js';

/**
 * The embedded default backend. Each object is one file under `objects/`, named by the hex of its key's
 * UTF-8 bytes (so names sort like keys; a long key is truncated and suffixed with a digest), holding a
 * header (magic, etag, the full key) and then the bytes. A put writes a temp file, fsyncs it, renames
 * it over the old one and fsyncs the directory, so a crash leaves the old or the new object, never a torn
 * one. Conditional puts hold a per-key lock file (created with O_EXCL, so it works across processes).
 */
const MAGIC = 'STRATAOBJ1\n';
/** Fixed part of the header: magic (11) + etag (32) + key length (u16 LE, 2) + newline (1). */
const HEADER_FIXED = 46;
/** Longest file name used, in hex characters (file systems allow 255 bytes). */
const nameHexMax = 200;

function encodeKey(key: string): string {
  const hex = Buffer.from(key, 'utf8').toString('hex');
  if (hex.length <= nameHexMax) return hex;
  return `${hex.slice(0, nameHexMax)}~${etagOf(Buffer.from(key, 'utf8')).slice(0, 16)}`;
}

function hexPart(name: string): string {
  const i = name.indexOf('~');
  return i < 0 ? name : name.slice(0, i);
}

/** How long before a directory listing its modification time must be for the listing to be reused. */
const dirTimeSlackMs = 50;

/**
 * Object headers a list reads at once. Each header is an open, a read and a close through the thread pool,
 * about 0.2 ms when awaited one after another: a listing of 4,096 objects took 0.8 s.
 */
const listHeadsInFlight = 16;

/** Bytes of a large object written (and made durable) at a time. */
const writeStepBytes = 1 << 20;

/**
 * Writes one step of a large body at `at`, durable when it returns: on a journaling file system a small
 * fsync elsewhere (a WAL's group commit) may have to wait for the data being written back, and a step bounds
 * that wait. `durable` is a handle opened with O_DSYNC, so the write is its own data sync: one trip through
 * the thread pool per step, not two (a busy event loop runs each trip's callback only on its next turn).
 */
async function writeStep(durable: FileHandle, parts: Uint8Array[], at: number): Promise<void> {
  let n = 0;
  for (const p of parts) n += p.length;
  const { bytesWritten } = await durable.writev(parts, at);
  if (bytesWritten !== n) throw new ObjectStoreError(`short write at ${at} (${bytesWritten} of ${n} bytes)`);
}

/**
 * Steps of a streamed body written at once. Each step's callback waits for a turn of the event loop, which a
 * process busy elsewhere (a saturated WAL packing into this store) gives every few milliseconds: with one
 * step at a time that bounded a pack to a step per turn. Each step is still durable before its write
 * returns, so a commit elsewhere waits behind at most this many steps.
 */
const stepsInFlight = 2;

/** An open object file's first bytes (as many as the longest header), its size and its time, read synchronously. */
function headSync(fd: number): { head: Buffer; fileBytes: number; modifiedMs: number } {
  const st = fstatSync(fd);
  const head = Buffer.allocUnsafe(Math.min(HEADER_FIXED + 1024, st.size));
  const n = readSync(fd, head, 0, head.length, 0);
  return { head: head.subarray(0, n), fileBytes: st.size, modifiedMs: st.mtimeMs };
}

/** A second handle on `path` whose writes are durable when they return (see `writeStep`). */
function openDurable(path: string): Promise<FileHandle> {
  return open(path, constants.O_WRONLY | constants.O_DSYNC);
}

/**
 * Writes a streamed body after `header` in steps as it arrives (memory holds at most a step, not the
 * object), hashing it on the way; then writes the header with the etag. Returns the etag.
 */
async function writeStream(fh: FileHandle, path: string, header: Buffer, body: Readable): Promise<string> {
  const h = etagHasher();
  let at = header.length;
  let parts: Uint8Array[] = [];
  let pending = 0;
  let total = 0;
  let durable: FileHandle | undefined;
  const inFlight: Promise<void>[] = [];
  try {
    for await (const c of body) {
      const b = chunkBytes(c);
      total += b.length;
      if (total > bodyBytesMax) throw new RangeError(`object body is larger than ${bodyBytesMax} bytes`);
      h.update(b);
      parts.push(b);
      pending += b.length;
      if (pending >= writeStepBytes) {
        durable ??= await openDurable(path);
        if (inFlight.length >= stepsInFlight) await inFlight.shift();
        const step = writeStep(durable, parts, at);
        // awaited only when the next step needs its place or the body has ended: a failure meanwhile must not
        // count as an unhandled rejection (which ends the process); the await below still throws it
        step.catch(() => undefined);
        inFlight.push(step);
        at += pending;
        parts = [];
        pending = 0;
      }
    }
    for (const w of inFlight.splice(0)) await w;
  } finally {
    // a step still writing when another failed must end before the handle closes
    await Promise.allSettled(inFlight);
    await durable?.close();
  }
  if (pending > 0) await fh.writev(parts, at); // made durable by the caller's fsync
  const etag = h.etag();
  header.write(etag, MAGIC.length, 'latin1');
  await fh.write(header, 0, header.length, 0);
  return etag;
}

export interface FileStoreOptions {
  /**
   * Gets of at most this many bytes (a range, or a whole object) are read with synchronous system calls
   * on the calling thread: open, fstat, the header, the bytes, close, each a few microseconds when the
   * file is in the page cache, where the thread pool costs a wake-up of a pool thread and of the event
   * loop per call (five per range get) and waits behind any other work of the process's threads (a
   * compiler or GC thread on this 2-core machine: 4.5 ms at p99 against 0.06 ms, see the README). The
   * event loop waits meanwhile, also for a disk read when the file is not cached: for a reader of small
   * objects that are usually cached (index pages, say). Above 0, heads and the headers a listing reads
   * are synchronous as well (open, fstat, a read of at most 1,070 bytes, close). Default 0: every get,
   * head and listing goes through the pool.
   */
  syncReadBytesMax?: number;
}

export class FileStore implements ObjectStore {
  private readonly objDir: string;
  private readonly tmpDir: string;
  private ready: Promise<void>;
  private readonly syncReadBytesMax: number;

  constructor(
    readonly root: string,
    readonly url = `file:${root}`,
    o: FileStoreOptions = {},
  ) {
    const max = o.syncReadBytesMax ?? 0;
    if (!Number.isSafeInteger(max) || max < 0)
      throw new RangeError(`syncReadBytesMax must be a non-negative integer, got ${max}`);
    this.syncReadBytesMax = max;
    this.objDir = join(root, 'objects');
    this.tmpDir = join(root, 'tmp');
    const objDir = this.objDir;
    const tmpDir = this.tmpDir;
    this.ready = (async () => {
      await makeDirs(objDir);
      await makeDirs(tmpDir);
    })();
    // awaited by every operation, which gets the error; a store dropped before its first operation (its
    // directory removed meanwhile) must not end the process with an unhandled rejection
    this.ready.catch(() => undefined);
  }

  private path(key: string): string {
    return join(this.objDir, encodeKey(key));
  }

  async put(key: string, body: Uint8Array | Readable, opts: PutOptions = {}): Promise<string> {
    validatePut(key, body, opts);
    await this.ready;
    const tmp = join(this.tmpDir, `${randomBytes(8).toString('hex')}.tmp`);
    const keyBytes = Buffer.from(key, 'utf8');
    const header = Buffer.alloc(HEADER_FIXED + keyBytes.length);
    header.write(MAGIC, 0, 'latin1');
    header.writeUInt16LE(keyBytes.length, MAGIC.length + 32);
    header[HEADER_FIXED - 1] = 0x0a;
    keyBytes.copy(header, HEADER_FIXED);
    const fh = await open(tmp, 'w');
    let etag: string;
    try {
      if (body instanceof Uint8Array) {
        etag = etagOf(body);
        header.write(etag, MAGIC.length, 'latin1');
        if (body.length <= writeStepBytes) await fh.writev([header, body]);
        else {
          await fh.write(header);
          const durable = await openDurable(tmp);
          try {
            for (let at = 0; at < body.length; at += writeStepBytes)
              await writeStep(durable, [body.subarray(at, at + writeStepBytes)], header.length + at);
          } finally {
            await durable.close();
          }
        }
      } else etag = await writeStream(fh, tmp, header, body);
      await fh.sync();
    } catch (e) {
      await fh.close();
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    await fh.close();
    const conditional = opts.ifMatch !== undefined || opts.ifNoneMatch !== undefined;
    const unlock = conditional ? await this.lock(key) : undefined;
    try {
      if (conditional) checkPrecondition(key, (await this.head(key))?.etag, opts);
      await rename(tmp, this.path(key));
      await this.syncDir(this.objDir);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    } finally {
      await unlock?.();
    }
    return etag;
  }

  private async syncDir(dir: string): Promise<void> {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  private lock(key: string): Promise<() => Promise<void>> {
    return lockFile(`${join(this.tmpDir, encodeKey(key).slice(0, 200))}.lock`, `'${key}'`);
  }

  private async readHeader(fh: FileHandle, what: string): Promise<ObjectInfo & { headerBytes: number }> {
    const st = await fh.stat();
    const h = Buffer.alloc(HEADER_FIXED + 1024);
    const { bytesRead } = await fh.read(h, 0, h.length, 0);
    return this.infoOf(h.subarray(0, bytesRead), st.size, st.mtimeMs, what);
  }

  /** What an object file's first bytes `h` say, given its size and time; a bad header is an error naming it. */
  private infoOf(
    h: Buffer,
    fileBytes: number,
    modifiedMs: number,
    what: string,
  ): ObjectInfo & { headerBytes: number } {
    const parsed = parseHeader(h);
    if (!parsed || fileBytes < parsed.headerBytes)
      throw new ObjectStoreError(`object file ${what} in ${this.root} is corrupt: bad header`);
    return { ...parsed, size: fileBytes - parsed.headerBytes, modifiedMs };
  }

  async get(key: string, opts: GetOptions = {}): Promise<Uint8Array> {
    validateKey(key);
    await this.ready;
    if (this.syncReadBytesMax > 0) {
      const got = this.getSync(key, opts.range);
      if (got) return got;
    }
    if (opts.range) return this.getRange(key, opts.range);
    let buf: Buffer;
    try {
      buf = await readFile(this.path(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(key);
      throw e;
    }
    const h = parseHeader(buf);
    if (!h || h.key !== key)
      throw new ObjectStoreError(`object '${key}' in ${this.root} is corrupt: bad header`);
    return buf.subarray(h.headerBytes);
  }

  /**
   * A get with synchronous calls (`syncReadBytesMax`), from one open file as `getRange`; undefined when
   * the bytes asked for are more than the bound (the caller reads them through the pool).
   */
  private getSync(key: string, range: { start: number; end: number } | undefined): Uint8Array | undefined {
    let fd: number;
    try {
      fd = openSync(this.path(key), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(key);
      throw e;
    }
    try {
      const { head: h, fileBytes } = headSync(fd);
      const n = h.length;
      const parsed = parseHeader(h);
      if (!parsed || fileBytes < parsed.headerBytes || parsed.key !== key)
        throw new ObjectStoreError(`object '${key}' in ${this.root} is corrupt: bad header`);
      const size = fileBytes - parsed.headerBytes;
      const [start, end] = range ? rangeBounds(size, range) : [0, size];
      if (end - start > this.syncReadBytesMax) return undefined;
      const out = Buffer.allocUnsafe(end - start);
      // bytes the header's read already holds, then the rest
      let got = Math.max(0, Math.min(n - parsed.headerBytes, end) - start);
      if (got > 0) h.copy(out, 0, parsed.headerBytes + start, parsed.headerBytes + start + got);
      while (got < out.length) {
        const r = readSync(fd, out, got, out.length - got, parsed.headerBytes + start + got);
        if (r === 0) throw new ObjectStoreError(`object '${key}' in ${this.root} is shorter than its size`);
        got += r;
      }
      return out;
    } finally {
      closeSync(fd);
    }
  }

  /** A range read: the header, then just the range's bytes, from one open file (one version of the object). */
  private async getRange(key: string, range: { start: number; end: number }): Promise<Uint8Array> {
    let fh: FileHandle;
    try {
      fh = await open(this.path(key), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(key);
      throw e;
    }
    try {
      const h = await this.readHeader(fh, `'${key}'`);
      if (h.key !== key) throw new ObjectStoreError(`object '${key}' in ${this.root} is corrupt: bad header`);
      const [start, end] = rangeBounds(h.size, range);
      const out = Buffer.allocUnsafe(end - start);
      let got = 0;
      while (got < out.length) {
        const { bytesRead } = await fh.read(out, got, out.length - got, h.headerBytes + start + got);
        if (bytesRead === 0)
          throw new ObjectStoreError(`object '${key}' in ${this.root} is shorter than its size`);
        got += bytesRead;
      }
      return out;
    } finally {
      await fh.close();
    }
  }

  async getStream(key: string, opts: GetOptions = {}): Promise<Readable> {
    validateKey(key);
    await this.ready;
    const info = await this.headWithOffset(key);
    if (!info) throw new NotFoundError(key);
    const [from, to] = opts.range ? rangeBounds(info.size, opts.range) : [0, info.size];
    if (to <= from) return createReadStream('/dev/null');
    return createReadStream(this.path(key), {
      start: info.headerBytes + from,
      end: info.headerBytes + to - 1,
      highWaterMark: 1 << 20,
    });
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    validateKey(key);
    const h = await this.headWithOffset(key);
    if (!h) return undefined;
    return { key: h.key, size: h.size, etag: h.etag, modifiedMs: h.modifiedMs };
  }

  private async headWithOffset(key: string): Promise<(ObjectInfo & { headerBytes: number }) | undefined> {
    await this.ready;
    return this.headFile(this.path(key), key);
  }

  /**
   * An object file's header, or undefined when there is no such file. With `syncReadBytesMax` (the store's
   * owner chose to wait on small reads rather than on the thread pool) its three calls are synchronous: a
   * listing of 4,096 objects then takes milliseconds, not hundreds of them.
   */
  private async headFile(
    path: string,
    what: string,
  ): Promise<(ObjectInfo & { headerBytes: number }) | undefined> {
    if (this.syncReadBytesMax > 0) return this.headFileSync(path, what);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      return await this.readHeader(fh, what);
    } finally {
      await fh.close();
    }
  }

  private headFileSync(path: string, what: string): (ObjectInfo & { headerBytes: number }) | undefined {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      const { head, fileBytes, modifiedMs } = headSync(fd);
      return this.infoOf(head, fileBytes, modifiedMs, what);
    } finally {
      closeSync(fd);
    }
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    validateList(prefix, opts);
    await this.ready;
    // hex of UTF-8 sorts exactly like the UTF-8 bytes do; names of long keys are checked by their header
    const hexPrefix = Buffer.from(prefix, 'utf8').toString('hex').slice(0, nameHexMax);
    const afterHex =
      opts.startAfter === undefined
        ? undefined
        : Buffer.from(opts.startAfter, 'utf8').toString('hex').slice(0, nameHexMax);
    const sorted = await this.sortedNames();
    // the names with the prefix are a contiguous run of the sorted names, from the first one at or after
    // max(prefix, startAfter) (a name is at least its hex part, so none before it can qualify)
    const from = afterHex !== undefined && afterHex > hexPrefix ? afterHex : hexPrefix;
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]! < from) lo = mid + 1;
      else hi = mid;
    }
    const limit = opts.limit ?? 1000;
    const found: ObjectInfo[] = [];
    // headers read `listHeadsInFlight` at a time, taken in name order as one at a time would take them: a
    // short name's key is its name, so once more than `limit` are found the names after it need no header
    // (a few of them may have been read already; an error reading one of those is not the list's). The
    // names are walked from `lo` as they are needed, so a page costs its own names, not all that follow it.
    const isCandidate = (i: number) => i < sorted.length && sorted[i]!.startsWith(hexPrefix);
    let i = lo;
    heads: while (isCandidate(i)) {
      const window: { name: string; short: boolean }[] = [];
      for (; isCandidate(i) && window.length < listHeadsInFlight; i++) {
        const name = sorted[i]!;
        if (afterHex !== undefined && hexPart(name) < afterHex) continue;
        const short = !name.includes('~');
        if (short && opts.startAfter !== undefined) {
          const key = Buffer.from(name, 'hex').toString('utf8');
          if (compareKeys(key, opts.startAfter) <= 0) continue;
        }
        window.push({ name, short });
      }
      const read = await Promise.allSettled(
        window.map((w) => this.headFile(join(this.objDir, w.name), w.name)),
      );
      for (let k = 0; k < window.length; k++) {
        if (window[k]!.short && found.length > limit) break heads;
        const r = read[k]!;
        if (r.status === 'rejected') throw r.reason;
        const h = r.value;
        if (!h?.key.startsWith(prefix)) continue; // deleted meanwhile
        if (opts.startAfter !== undefined && compareKeys(h.key, opts.startAfter) <= 0) continue;
        found.push({ key: h.key, size: h.size, etag: h.etag, modifiedMs: h.modifiedMs });
      }
    }
    found.sort((a, b) => compareKeys(a.key, b.key));
    const objects = found.slice(0, limit);
    return found.length > limit ? { objects, nextStartAfter: objects[objects.length - 1]!.key } : { objects };
  }

  /**
   * The object files' names, sorted. A listing is reused while the directory's modification time has not
   * changed and that time was more than `dirTimeSlackMs` before the listing was taken (file system
   * timestamps are coarse: a change in the same tick as an earlier one could keep the same time), so a
   * list costs a stat instead of reading a directory that holds every object of the store.
   */
  private async sortedNames(): Promise<string[]> {
    const st = await stat(this.objDir, { bigint: true });
    const c = this.listing;
    if (c && c.mtimeNs === st.mtimeNs && c.takenMs - Number(st.mtimeNs / 1_000_000n) > dirTimeSlackMs)
      return c.names;
    const takenMs = Date.now();
    const names = (await readdir(this.objDir)).sort();
    this.listing = { takenMs, mtimeNs: st.mtimeNs, names };
    return names;
  }

  private listing: { takenMs: number; mtimeNs: bigint; names: string[] } | undefined;

  async delete(key: string, opts: DeleteOptions = {}): Promise<void> {
    validateDelete(key, opts);
    await this.ready;
    if (opts.ifMatch !== undefined) return this.deleteIfMatch(key, opts);
    await rm(this.path(key), { force: true });
    await this.syncDir(this.objDir);
  }

  /**
   * A conditional delete, under the key's lock (so no conditional put comes between). An unconditional put
   * takes no lock, so the file that matched is first renamed aside and its header read again: when a put
   * replaced it between the check and the rename, the newer file goes back into place (by a hard link,
   * which leaves an even newer one alone) and the delete fails as if it had come after that put.
   */
  private async deleteIfMatch(key: string, opts: DeleteOptions): Promise<void> {
    const unlock = await this.lock(key);
    try {
      checkPrecondition(key, (await this.head(key))?.etag, opts);
      const path = this.path(key);
      const aside = join(this.tmpDir, `${randomBytes(8).toString('hex')}.deleted`);
      try {
        await rename(path, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        checkPrecondition(key, undefined, opts); // an unconditional delete came between: throws
      }
      try {
        checkPrecondition(key, (await this.headFile(aside, `'${key}'`))?.etag, opts);
      } catch (e) {
        // not the version asked for: back into place, unless an even newer put is there by now
        try {
          await link(aside, path);
        } catch (l) {
          if ((l as NodeJS.ErrnoException).code !== 'EEXIST') {
            await rename(aside, path);
            throw e;
          }
        }
        await unlink(aside);
        throw e;
      }
      await unlink(aside);
      await this.syncDir(this.objDir);
    } finally {
      await unlock();
    }
  }

  /** Waits for the directory set-up begun by the constructor: after close nothing of the store is in flight. */
  async close(): Promise<void> {
    await this.ready.catch(() => undefined);
  }
}

function parseHeader(h: Buffer): { key: string; etag: string; headerBytes: number } | undefined {
  if (h.length < HEADER_FIXED || h.toString('latin1', 0, MAGIC.length) !== MAGIC) return undefined;
  const keyLen = h.readUInt16LE(MAGIC.length + 32);
  if (h.length < HEADER_FIXED + keyLen || h[HEADER_FIXED - 1] !== 0x0a) return undefined;
  return {
    etag: h.toString('latin1', MAGIC.length, MAGIC.length + 32),
    key: h.toString('utf8', HEADER_FIXED, HEADER_FIXED + keyLen),
    headerBytes: HEADER_FIXED + keyLen,
  };
}
