import { hash64Words } from '@strata/highwayhash';
import { ObjectStoreError } from './contract.js';

/**
 * The index at the end of a WAL pack: where each key's bytes are in the pack's data region.
 *
 * A pack is `data | index | trailer`. Version 2 (written now), little-endian:
 * - index: one entry per key: u16 key length, the key (UTF-8), u8 kind (0 data, 1 deleted, 2 written to the
 *   store directly), f64 modification time (ms), and for kind 0: u48 offset in the data region, u32 size,
 *   the etag's 16 bytes;
 * - trailer (16 bytes): u32 index length, u32 lo and hi of a HighwayHash-64 of the index, magic `SPI2`.
 * Version 1 (still read): the index as a JSON array of `[key, offset, size, etag, mtime, kind]`, then its
 * length as a u32.
 */

/** Kinds of index entries: data in the pack, a deletion, a write made to the store directly. */
export const PackKind = { Data: 0, Deleted: 1, Direct: 2 } as const;
export type PackKind = (typeof PackKind)[keyof typeof PackKind];

/** Bytes of the version 2 trailer: also what `placeIndex` needs of a pack's end. */
export const packTrailerBytes = 16;
/** The trailer's magic ("SPI2"): an index length this large could not precede a version 1 pack's end. */
const magic = 0x32495053;
const indexKey = new Uint8Array(32).map((_, i) => 0x3c ^ (i * 5));
const etagBytes = 16;
const words = new Uint32Array(2);
/** A data entry's etag: 16 bytes as hex (what a version 2 index holds, so a rewrite of the pack can index it). */
const etagHex = /^[0-9a-fA-F]{32}$/;

/** Builds a version 2 index (see above), growing its buffer as needed. */
export class PackIndexWriter {
  private buf = Buffer.allocUnsafe(64 << 10);
  private pos = 0;
  /** Entries added. */
  count = 0;

  add(key: string, kind: PackKind, mtime: number, offset = 0, size = 0, etag = ''): void {
    const room = 2 + 3 * key.length + 1 + 8 + 6 + 4 + etagBytes;
    if (this.pos + room > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.pos + room));
      this.buf.copy(grown, 0, 0, this.pos);
      this.buf = grown;
    }
    const b = this.buf;
    let p = this.pos;
    const kl = b.write(key, p + 2, 'utf8');
    b.writeUInt16LE(kl, p);
    p += 2 + kl;
    b[p++] = kind;
    b.writeDoubleLE(mtime, p);
    p += 8;
    if (kind === PackKind.Data) {
      b.writeUIntLE(offset, p, 6);
      b.writeUInt32LE(size, p + 6);
      p += 10;
      if (b.write(etag, p, etagBytes, 'hex') !== etagBytes || etag.length !== 2 * etagBytes)
        throw new ObjectStoreError(
          `pack index: the etag of '${key}' is not ${etagBytes} bytes of hex: '${etag}'`,
        );
      p += etagBytes;
    }
    this.pos = p;
    this.count++;
  }

  /** The index and its trailer, to end the pack with. */
  finish(): Buffer {
    return sealIndex(this.buf.subarray(0, this.pos));
  }
}

/** `index` followed by its version 2 trailer. */
export function sealIndex(index: Uint8Array): Buffer {
  const n = index.length;
  const out = Buffer.allocUnsafe(n + packTrailerBytes);
  out.set(index, 0);
  hash64Words(indexKey, index, words);
  out.writeUInt32LE(n, n);
  out.writeUInt32LE(words[0]!, n + 4);
  out.writeUInt32LE(words[1]!, n + 8);
  out.writeUInt32LE(magic, n + 12);
  return out;
}

/** Where a pack's index is, read from the pack's last bytes (at least `packTrailerBytes` of them, fewer if the pack is smaller). */
export interface PackIndexPlace {
  version: 1 | 2;
  /** Offset of the index in the pack; also the size of the data region. */
  start: number;
  length: number;
}

/** Finds the index of a pack of `size` bytes from its last bytes `tail`. */
export function placeIndex(pack: string, size: number, tail: Uint8Array): PackIndexPlace {
  const t = Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength);
  if (t.length >= packTrailerBytes && t.readUInt32LE(t.length - 4) === magic) {
    const length = t.readUInt32LE(t.length - packTrailerBytes);
    const start = size - packTrailerBytes - length;
    if (start < 0)
      throw corrupt(pack, size - packTrailerBytes, `its index length ${length} is more than the pack holds`);
    return { version: 2, start, length };
  }
  if (t.length < 4) throw corrupt(pack, 0, `${size} bytes are too few for a pack`);
  const length = t.readUInt32LE(t.length - 4);
  const start = size - 4 - length;
  if (start < 0) throw corrupt(pack, size - 4, `its index length ${length} is more than the pack holds`);
  return { version: 1, start, length };
}

/** One entry of a pack's index. */
export type PackIndexVisitor = (
  key: string,
  kind: PackKind,
  mtime: number,
  offset: number,
  size: number,
  etag: string,
) => void;

/**
 * Reads the index bytes found by `placeIndex` (with the trailer for version 2: `index | trailer`), calling
 * `visit` for each entry in order. A damaged index throws an error naming the pack and the byte.
 */
export function readIndex(
  pack: string,
  place: PackIndexPlace,
  bytes: Uint8Array,
  visit: PackIndexVisitor,
): void {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (place.version === 1) {
    let entries: unknown;
    try {
      entries = JSON.parse(b.toString('utf8', 0, place.length));
    } catch (e) {
      throw corrupt(
        pack,
        place.start,
        `its JSON index does not parse (${e instanceof Error ? e.message : e})`,
      );
    }
    if (!Array.isArray(entries)) throw corrupt(pack, place.start, 'its JSON index is not an array');
    for (const e of entries) {
      // what a version 1 writer made: [key, offset, size, etag, mtime, kind], the bytes in the data region
      if (
        !Array.isArray(e) ||
        e.length !== 6 ||
        typeof e[0] !== 'string' ||
        !Number.isSafeInteger(e[1]) ||
        !Number.isSafeInteger(e[2]) ||
        e[1] < 0 ||
        e[2] < 0 ||
        e[1] + e[2] > place.start ||
        typeof e[3] !== 'string' ||
        (e[5] === PackKind.Data && !etagHex.test(e[3])) ||
        typeof e[4] !== 'number' ||
        (e[5] !== PackKind.Data && e[5] !== PackKind.Deleted && e[5] !== PackKind.Direct)
      )
        throw corrupt(
          pack,
          place.start,
          `its JSON index has a malformed entry ${JSON.stringify(e).slice(0, 80)}`,
        );
      visit(e[0], e[5], e[4], e[1], e[2], e[3]);
    }
    return;
  }
  const n = place.length;
  if (b.length < n + packTrailerBytes) throw corrupt(pack, place.start, 'its index is cut short');
  hash64Words(indexKey, b.subarray(0, n), words);
  if (words[0] !== b.readUInt32LE(n + 4) || words[1] !== b.readUInt32LE(n + 8))
    throw corrupt(pack, place.start, "its index does not match the index's checksum");
  let p = 0;
  while (p < n) {
    const at = p;
    if (p + 11 > n) throw corrupt(pack, place.start + at, 'an index entry is cut short');
    const kl = b.readUInt16LE(p);
    if (p + 2 + kl + 9 > n) throw corrupt(pack, place.start + at, 'an index entry is cut short');
    const key = b.toString('utf8', p + 2, p + 2 + kl);
    p += 2 + kl;
    const kind = b[p]! as PackKind;
    const mtime = b.readDoubleLE(p + 1);
    p += 9;
    if (kind === PackKind.Data) {
      if (p + 10 + etagBytes > n) throw corrupt(pack, place.start + at, 'an index entry is cut short');
      const offset = b.readUIntLE(p, 6);
      const size = b.readUInt32LE(p + 6);
      if (offset + size > place.start)
        throw corrupt(
          pack,
          place.start + at,
          `'${key}' points past the data region (${offset}+${size} > ${place.start})`,
        );
      visit(key, kind, mtime, offset, size, b.toString('hex', p + 10, p + 10 + etagBytes));
      p += 10 + etagBytes;
    } else if (kind === PackKind.Deleted || kind === PackKind.Direct) visit(key, kind, mtime, 0, 0, '');
    else throw corrupt(pack, place.start + at, `an index entry has unknown kind ${kind}`);
  }
}

function corrupt(pack: string, at: number, what: string): ObjectStoreError {
  return new ObjectStoreError(`WAL pack ${pack} is damaged at byte ${at}: ${what}`);
}
