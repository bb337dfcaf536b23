import type { Readable } from 'node:stream';
import { kindOf } from '@strata/cli';
import { createHasher, hash128Words } from '@strata/highwayhash';
import { PreconditionFailedError, type PutOptions } from './contract.js';

/** Fixed key for content etags; etags are content digests (like S3's MD5 etags), not secrets. */
const etagKey = new Uint8Array(32).map((_, i) => 0x5a ^ i);

/** The etag of a body: HighwayHash-128 of its bytes as 32 hex digits. */
export function etagOf(data: Uint8Array): string {
  etagInto(data, etagBytes, 0);
  return etagBytes.toString('hex');
}

const etagWords = new Uint32Array(4);

/**
 * Writes the 16 bytes of `data`'s etag at `at` in `buf`: the hash's two u64 words, each big-endian (the
 * order of the etag's hex digits). No BigInt on the way: the WAL writes one per put.
 */
export function etagInto(data: Uint8Array, buf: Buffer, at: number): void {
  const w = hash128Words(etagKey, data, etagWords);
  buf.writeUInt32BE(w[1]!, at);
  buf.writeUInt32BE(w[0]!, at + 4);
  buf.writeUInt32BE(w[3]!, at + 8);
  buf.writeUInt32BE(w[2]!, at + 12);
}

/** The etag of a body that arrives in parts: `update` with each, then `etag()` (equal to `etagOf`). */
export function etagHasher(): { update(part: Uint8Array): void; etag(): string } {
  const h = createHasher(etagKey);
  return {
    update: (part) => void h.update(part),
    etag: () => etagHex(h.digest128()),
  };
}

const etagBytes = Buffer.alloc(16);
const etagView = new DataView(etagBytes.buffer, etagBytes.byteOffset, 16);

/** A streamed body's etag: the two words as 32 hex digits in one flat string, as `etagOf` makes it. */
function etagHex(h: BigUint64Array): string {
  etagView.setBigUint64(0, h[0]!);
  etagView.setBigUint64(8, h[1]!);
  return etagBytes.toString('hex');
}

/** Largest body collected into memory from a stream by backends that need it whole. */
export const bodyBytesMax = 5 * 2 ** 30;

/** A chunk of a put's body stream as bytes: a string is UTF-8, anything else but bytes is refused. */
export function chunkBytes(c: unknown): Uint8Array {
  if (c instanceof Uint8Array) return c;
  if (typeof c === 'string') return Buffer.from(c);
  throw new TypeError(`put: the body stream gave ${kindOf(c)}, not bytes (a Uint8Array or a string)`);
}

export async function collectBody(body: Uint8Array | Readable): Promise<Uint8Array> {
  if (body instanceof Uint8Array) return body;
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of body) {
    const b = chunkBytes(c);
    n += b.length;
    if (n > bodyBytesMax) throw new RangeError(`object body is larger than ${bodyBytesMax} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** Runs functions one at a time per key, in the order they came (a mutex per key, dropped when idle). */
export class KeyLocks {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, f: () => Promise<T>): Promise<T> {
    const run = (this.tails.get(key) ?? Promise.resolve()).then(f);
    const tail = run.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return run;
  }
}

/** Throws {@link PreconditionFailedError} unless a put with `opts` may replace an object whose etag is `current`. */
export function checkPrecondition(key: string, current: string | undefined, opts: PutOptions): void {
  if (opts.ifNoneMatch === '*' && current !== undefined)
    throw new PreconditionFailedError(key, 'the object exists (If-None-Match: *)');
  if (opts.ifMatch !== undefined && current !== normalizeEtag(opts.ifMatch))
    throw new PreconditionFailedError(
      key,
      current === undefined
        ? 'the object does not exist (If-Match)'
        : `etag is ${current}, not ${opts.ifMatch}`,
    );
}

/** Etags compare without surrounding quotes. */
export function normalizeEtag(etag: string): string {
  return etag.replace(/^"(.*)"$/, '$1');
}

/** The inclusive byte range [start, end] of `data`, clamped; a start past the end is an error. */
export function sliceRange(data: Uint8Array, range?: { start: number; end: number }): Uint8Array {
  if (!range) return data;
  const [start, end] = rangeBounds(data.length, range);
  return data.subarray(start, end);
}

/**
 * The bytes [start, end) an inclusive `range` selects of an object of `size` bytes (the end is clipped to
 * the object, as HTTP ranges are); a range that is not integers with 0 <= start <= end, or starts past a
 * non-empty object, is a RangeError.
 */
export function rangeBounds(size: number, range: { start: number; end: number }): [number, number] {
  const { start, end } = range;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start)
    throw new RangeError(`invalid range ${start}-${end}: expected integers 0 <= start <= end`);
  if (start >= size && size > 0)
    throw new RangeError(`range start ${start} is past the object's ${size} bytes`);
  return [Math.min(start, size), Math.min(end + 1, size)];
}
