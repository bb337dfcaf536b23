/** Key handling, one-shot hashing and the streaming hasher over the portable core. */
import { kindOf } from '@strata/cli';
import {
  finalize64,
  finalize128,
  finalize256,
  resetState,
  updateLanes,
  updatePackets,
  updateRemainder,
} from './portable.js';

/** A 256-bit HighwayHash key: four u64 words, or 32 bytes read as four little-endian u64 words. */
export type HighwayKey = BigUint64Array | Uint8Array;

/** Converts a key to 8 u32 words (lo, hi per u64 lane); a TypeError says what was expected. */
export function keyToWords(key: HighwayKey, out = new Uint32Array(8)): Uint32Array {
  if (key instanceof BigUint64Array) {
    if (key.length !== 4)
      throw new TypeError(`HighwayHash key: expected a BigUint64Array of 4 words, got ${key.length}`);
    for (let i = 0; i < 4; i++) {
      const w = key[i]!;
      out[2 * i] = Number(w & 0xffffffffn);
      out[2 * i + 1] = Number(w >> 32n);
    }
    return out;
  }
  if (key instanceof Uint8Array) {
    if (key.length !== 32) throw new TypeError(`HighwayHash key: expected 32 bytes, got ${key.length}`);
    for (let i = 0; i < 8; i++) {
      const p = 4 * i;
      out[i] = (key[p]! | (key[p + 1]! << 8) | (key[p + 2]! << 16) | (key[p + 3]! << 24)) >>> 0;
    }
    return out;
  }
  throw new TypeError(`HighwayHash key: expected a BigUint64Array(4) or 32 bytes, got ${kindOf(key)}`);
}

/** Checks that `data` is bytes (a Uint8Array, a Buffer, or another ArrayBufferView) and returns its bytes. */
export function asBytes(data: unknown, what = 'data'): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError(
    `HighwayHash ${what}: expected a Uint8Array or another ArrayBufferView, got ${kindOf(data)}`,
  );
}

/** Keys per chunk of a batch: bounds the WebAssembly memory one batch call needs. */
export const batchKeysMax = 1 << 16;

/**
 * Checks, before anything is written, that every key of a batch lies inside the buffer (a RangeError names
 * the first that does not), and returns in the same pass each chunk's byte span: chunk c (keys c *
 * batchKeysMax onwards) covers [spans[2c], spans[2c + 1]).
 */
export function checkBatch(bufLen: number, offsets: Uint32Array, lengths: Uint32Array): Float64Array {
  const n = offsets.length;
  const spans = new Float64Array(2 * Math.ceil(n / batchKeysMax));
  for (let c = 0, first = 0; first < n; c++, first += batchKeysMax) {
    const last = Math.min(n, first + batchKeysMax);
    let lo = bufLen;
    let hi = 0;
    for (let i = first; i < last; i++) {
      const o = offsets[i]!;
      const e = o + lengths[i]!;
      if (e > bufLen)
        throw new RangeError(`hash64Batch: key ${i} [${o}, ${e}) is past the buffer's ${bufLen} bytes`);
      if (o < lo) lo = o;
      if (e > hi) hi = e;
    }
    spans[2 * c] = lo;
    spans[2 * c + 1] = Math.max(lo, hi);
  }
  return spans;
}

/** Words of a result (lo, hi pairs) as a BigUint64Array in the reference's word order. */
export function wordsToBig(w: Uint32Array, n: number): BigUint64Array {
  const out = new BigUint64Array(n);
  for (let i = 0; i < n; i++) out[i] = (BigInt(w[2 * i + 1]!) << 32n) | BigInt(w[2 * i]!);
  return out;
}

/**
 * Words handed to one `updatePackets` call (16 KiB). Unbounded calls made a long input's first call run
 * long enough to be compiled on-stack (OSR) before the code after the loop had ever run; that code then
 * lacked feedback and deoptimized at the end of every later call, and the function never got its regular
 * optimized entry: the TypeScript core ran at half speed from about 256 KiB up. Bounded calls keep the
 * entry hot, so V8 installs the regular optimized code and later calls never enter the OSR code.
 */
const packetWordsPerCallMax = 4096;

/**
 * Absorbs all whole 32-byte packets of `data` into `s`; returns the bytes consumed. Reads lanes through an
 * aligned u32 view when the data is 4-byte aligned, else through a copy of each packet.
 */
export function absorbPackets(s: Uint32Array, data: Uint8Array, scratch: Uint32Array): number {
  const n = data.length & ~31;
  if (n === 0) return 0;
  if ((data.byteOffset & 3) === 0) {
    const w = new Uint32Array(data.buffer, data.byteOffset, n >>> 2);
    for (let p = 0; p < w.length; p += packetWordsPerCallMax)
      updatePackets(s, w, p, Math.min(w.length, p + packetWordsPerCallMax));
  } else {
    const b = new Uint8Array(scratch.buffer, scratch.byteOffset, 32);
    for (let off = 0; off < n; off += 32) {
      b.set(data.subarray(off, off + 32));
      updateLanes(s, scratch, 0);
    }
  }
  return n;
}

/** A reusable streaming hasher on the portable core: `update` with any chunking equals one-shot. */
export class PortableHasher {
  private readonly s = new Uint32Array(32);
  private readonly final = new Uint32Array(32);
  private readonly key = new Uint32Array(8);
  private readonly packet = new Uint32Array(8);
  private readonly packetBytes = new Uint8Array(this.packet.buffer);
  private readonly scratch = new Uint32Array(8);
  private readonly out = new Uint32Array(8);
  private pending = 0;

  constructor(key: HighwayKey) {
    keyToWords(key, this.key);
    resetState(this.s, this.key);
  }

  /** Starts over, with the same key or a new one; allocates nothing. */
  reset(key?: HighwayKey): this {
    if (key !== undefined) keyToWords(key, this.key);
    resetState(this.s, this.key);
    this.pending = 0;
    return this;
  }

  update(data: Uint8Array): this {
    data = asBytes(data);
    let off = 0;
    if (this.pending > 0) {
      const take = Math.min(32 - this.pending, data.length);
      this.packetBytes.set(data.subarray(0, take), this.pending);
      this.pending += take;
      off = take;
      if (this.pending < 32) return this;
      updateLanes(this.s, this.packet, 0);
      this.pending = 0;
    }
    const rest = data.subarray(off);
    const used = absorbPackets(this.s, rest, this.scratch);
    const tail = rest.length - used;
    if (tail > 0) {
      this.packetBytes.set(rest.subarray(used), 0);
      this.pending = tail;
    }
    return this;
  }

  /** A copy of the state with the pending bytes absorbed: a digest leaves the stream as it was. */
  private finish(): Uint32Array {
    const f = this.final;
    f.set(this.s);
    if (this.pending > 0) updateRemainder(f, this.packetBytes, 0, this.pending);
    return f;
  }

  /** The 64-bit hash as (lo, hi) u32 words in `out` (no BigInt). */
  digest64Words(out = this.out): Uint32Array {
    finalize64(this.finish(), out);
    return out;
  }

  digest64(): bigint {
    const w = this.digest64Words();
    return (BigInt(w[1]!) << 32n) | BigInt(w[0]!);
  }

  digest128(): BigUint64Array {
    finalize128(this.finish(), this.out);
    return wordsToBig(this.out, 2);
  }

  digest256(): BigUint64Array {
    finalize256(this.finish(), this.out);
    return wordsToBig(this.out, 4);
  }
}
