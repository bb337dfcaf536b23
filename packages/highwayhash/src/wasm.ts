/// <reference path="./webassembly.d.ts" />
/**
 * Loads the WebAssembly SIMD core (assembly/index.ts, built to build/highwayhash.wasm) and drives it:
 * inputs are copied into its linear memory in chunks of at most `chunkBytesMax`, so any input size works
 * with bounded memory. The core keeps one state at fixed addresses; each streaming hasher keeps its own
 * copy of the 128-byte state and swaps it in around each call.
 */
import { readFileSync } from 'node:fs';
import { asBytes, batchKeysMax, type HighwayKey, keyToWords, wordsToBig } from './hasher.js';

/**
 * Largest slice of input copied into WebAssembly memory at once. Larger inputs are copied and absorbed a
 * slice at a time, so the core reads each slice while it is still in cache: 256 KiB measured 3% faster
 * than 1 MiB at 1 MiB and 10% faster at 16 MiB (16 KiB was slower: fixed costs per slice).
 */
const chunkBytesMax = 256 << 10;
/** The core may read this many bytes past an input's end (and masks them off). */
const readPastEndBytesMax = 32;
/** Inputs up to this length are copied word by word: cheaper than `TypedArray.prototype.set`'s fixed cost. */
const loopCopyBytesMax = 32;
const STATE_BYTES = 128;

interface Exports {
  memory: WebAssembly.Memory;
  KEY: WebAssembly.Global;
  OUT: WebAssembly.Global;
  INPUT: WebAssembly.Global;
  setKey(): void;
  reset(): void;
  update(ptr: number, len: number): void;
  remainder(ptr: number, size: number): void;
  finalize64(): void;
  finalize128(): void;
  finalize256(): void;
  hash(ptr: number, len: number, bits: number): void;
  hash64Out(ptr: number, len: number): void;
  batch64(buf: number, offs: number, lens: number, n: number, out: number): void;
}

export interface WasmEngine {
  hash(key: Uint32Array, data: Uint8Array, bits: 64 | 128 | 256, into: Uint32Array): Uint32Array;
  /** HighwayHash-64 as a BigInt. */
  hash64(key: Uint32Array, data: Uint8Array): bigint;
  /** The batch form; `spans` from `checkBatch` (every key already checked to lie inside `buf`). */
  batch64(
    key: Uint32Array,
    buf: Uint8Array,
    offs: Uint32Array,
    lens: Uint32Array,
    out: BigUint64Array | Uint32Array,
    spans: Float64Array,
  ): void;
  createHasher(key: HighwayKey): WasmHasher;
}

/** The engine, or undefined when the module is missing or this runtime has no WebAssembly SIMD. */
export function loadWasm(): WasmEngine | undefined {
  let ex: Exports;
  try {
    const bytes = readFileSync(new URL('../build/highwayhash.wasm', import.meta.url));
    const mod = new WebAssembly.Module(bytes);
    ex = new WebAssembly.Instance(mod, { env: { abort: () => undefined } }).exports as unknown as Exports;
  } catch {
    return undefined;
  }
  return new Engine(ex);
}

class Engine implements WasmEngine {
  readonly input: number;
  readonly outPtr: number;
  readonly keyPtr: number;
  mem!: Uint8Array;
  mem32!: Uint32Array;
  out64!: BigUint64Array;
  /**
   * The key words in WebAssembly memory (and its derived initial state). The key stays resident: a call
   * compares the 8 words and rewrites them only when they differ, so a key mutated in place is noticed.
   */
  private readonly keyLoaded = new Uint32Array(8);
  private keyValid = false;

  constructor(readonly ex: Exports) {
    this.input = ex.INPUT.value as number;
    this.outPtr = ex.OUT.value as number;
    this.keyPtr = ex.KEY.value as number;
    this.ensure(chunkBytesMax);
  }

  /** Grows memory so that `bytes` (plus the core's read-past-end margin) fit from INPUT on. */
  ensure(bytes: number): void {
    const need = this.input + bytes + readPastEndBytesMax;
    const have = this.ex.memory.buffer.byteLength;
    if (need > have) this.ex.memory.grow(Math.ceil((need - have) / 65536));
    if (this.mem?.buffer !== this.ex.memory.buffer) {
      this.mem = new Uint8Array(this.ex.memory.buffer);
      this.mem32 = new Uint32Array(this.ex.memory.buffer);
      this.out64 = new BigUint64Array(this.ex.memory.buffer, this.outPtr, 4);
    }
  }

  setKey(key: Uint32Array): void {
    const k = this.keyLoaded;
    if (
      this.keyValid &&
      k[0] === key[0] &&
      k[1] === key[1] &&
      k[2] === key[2] &&
      k[3] === key[3] &&
      k[4] === key[4] &&
      k[5] === key[5] &&
      k[6] === key[6] &&
      k[7] === key[7]
    )
      return;
    k.set(key);
    this.mem32.set(k, this.keyPtr >>> 2);
    this.ex.setKey();
    this.keyValid = true;
  }

  hash64(key: Uint32Array, data: Uint8Array): bigint {
    this.setKey(key);
    const n = data.length;
    if (n <= chunkBytesMax) {
      this.copyIn(data);
      this.ex.hash64Out(this.input, n);
    } else {
      this.ex.reset();
      this.absorb(data);
      this.ex.finalize64();
    }
    // one BigInt, read unsigned (an i64 return would arrive signed and need a second BigInt operation)
    return this.out64[0]!;
  }

  /** Copies an input of at most `chunkBytesMax` bytes to INPUT. */
  copyIn(data: Uint8Array): void {
    const n = data.length;
    if (n > loopCopyBytesMax) {
      this.mem.set(data, this.input);
      return;
    }
    // whole u32 words: one store per 4 bytes; the core ignores the bytes of the last word past n
    const m32 = this.mem32;
    const w = this.input >>> 2;
    let i = 0;
    for (let j = w; i + 4 <= n; i += 4, j++)
      m32[j] = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    if (i < n) {
      let x = 0;
      for (let sh = 0; i < n; i++, sh += 8) x |= data[i]! << sh;
      m32[w + (i >>> 2)] = x;
    }
  }

  hash(key: Uint32Array, data: Uint8Array, bits: 64 | 128 | 256, into: Uint32Array): Uint32Array {
    const ex = this.ex;
    this.setKey(key);
    const n = data.length;
    if (n <= chunkBytesMax) {
      this.copyIn(data);
      if (bits === 64) ex.hash64Out(this.input, n);
      else ex.hash(this.input, n, bits);
    } else {
      ex.reset();
      this.absorb(data);
      this.finish(bits);
    }
    const o = this.outPtr >>> 2;
    const m32 = this.mem32;
    into[0] = m32[o]!;
    into[1] = m32[o + 1]!;
    for (let i = 2; i < bits >>> 5; i++) into[i] = m32[o + i]!;
    return into;
  }

  /** Absorbs data into the current state, chunk by chunk; the tail (length mod 32) is absorbed too. */
  absorb(data: Uint8Array): void {
    const whole = data.length & ~31;
    for (let off = 0; off < whole; off += chunkBytesMax) {
      const end = Math.min(whole, off + chunkBytesMax);
      this.mem.set(data.subarray(off, end), this.input);
      this.ex.update(this.input, end - off);
    }
    const rest = data.length - whole;
    if (rest) {
      this.mem.set(data.subarray(whole), this.input);
      this.ex.remainder(this.input, rest);
    }
  }

  finish(bits: number): void {
    if (bits === 64) this.ex.finalize64();
    else if (bits === 128) this.ex.finalize128();
    else this.ex.finalize256();
  }

  batch64(
    key: Uint32Array,
    buf: Uint8Array,
    offs: Uint32Array,
    lens: Uint32Array,
    out: BigUint64Array | Uint32Array,
    spans: Float64Array,
  ): void {
    this.setKey(key);
    const n = offs.length;
    for (let first = 0, c = 0; first < n; first += batchKeysMax, c += 2) {
      const count = Math.min(batchKeysMax, n - first);
      const lo = spans[c]!;
      const hi = spans[c + 1]!;
      const span = hi - lo;
      // the offsets go in unchanged: the core adds them to (INPUT - lo), in wrapping u32 arithmetic
      const offsPtr = (this.input + span + readPastEndBytesMax + 7) & ~7;
      const lensPtr = offsPtr + 4 * count;
      const outPtr = lensPtr + 4 * count;
      this.ensure(outPtr + 8 * count - this.input);
      this.mem.set(buf.subarray(lo, hi), this.input);
      this.mem32.set(offs.subarray(first, first + count), offsPtr >>> 2);
      this.mem32.set(lens.subarray(first, first + count), lensPtr >>> 2);
      this.ex.batch64((this.input - lo) >>> 0, offsPtr, lensPtr, count, outPtr);
      if (out instanceof BigUint64Array)
        out.set(new BigUint64Array(this.ex.memory.buffer, outPtr, count), first);
      else out.set(this.mem32.subarray(outPtr >>> 2, (outPtr >>> 2) + 2 * count), 2 * first);
    }
  }

  createHasher(key: HighwayKey): WasmHasher {
    return new WasmHasher(this, key);
  }
}

/** A streaming hasher on the WebAssembly core; keeps its own state and a 32-byte pending buffer. */
export class WasmHasher {
  private readonly key = new Uint32Array(8);
  private readonly state = new Uint8Array(STATE_BYTES);
  private readonly pending = new Uint8Array(32);
  private pendingLen = 0;
  private readonly out = new Uint32Array(8);

  constructor(
    private readonly e: Engine,
    key: HighwayKey,
  ) {
    this.reset(key);
  }

  reset(key?: HighwayKey): this {
    if (key !== undefined) keyToWords(key, this.key);
    this.e.setKey(this.key);
    this.e.ex.reset();
    this.state.set(this.e.mem.subarray(0, STATE_BYTES));
    this.pendingLen = 0;
    return this;
  }

  update(data: Uint8Array): this {
    data = asBytes(data);
    const e = this.e;
    let off = 0;
    if (this.pendingLen + data.length < 32) {
      this.pending.set(data, this.pendingLen);
      this.pendingLen += data.length;
      return this;
    }
    e.mem.set(this.state, 0);
    if (this.pendingLen > 0) {
      off = 32 - this.pendingLen;
      this.pending.set(data.subarray(0, off), this.pendingLen);
      e.mem.set(this.pending, e.input);
      e.ex.update(e.input, 32);
      this.pendingLen = 0;
    }
    const rest = data.subarray(off);
    const whole = rest.length & ~31;
    for (let p = 0; p < whole; p += chunkBytesMax) {
      const end = Math.min(whole, p + chunkBytesMax);
      e.mem.set(rest.subarray(p, end), e.input);
      e.ex.update(e.input, end - p);
    }
    this.pending.set(rest.subarray(whole), 0);
    this.pendingLen = rest.length - whole;
    this.state.set(e.mem.subarray(0, STATE_BYTES));
    return this;
  }

  private final(bits: 64 | 128 | 256): Uint32Array {
    const e = this.e;
    e.mem.set(this.state, 0);
    if (this.pendingLen > 0) {
      e.mem.set(this.pending.subarray(0, this.pendingLen), e.input);
      e.ex.remainder(e.input, this.pendingLen);
    }
    e.finish(bits);
    const o = e.outPtr >>> 2;
    for (let i = 0; i < bits >>> 5; i++) this.out[i] = e.mem32[o + i]!;
    return this.out;
  }

  digest64(): bigint {
    const w = this.final(64);
    return (BigInt(w[1]!) << 32n) | BigInt(w[0]!);
  }

  digest128(): BigUint64Array {
    return wordsToBig(this.final(128), 2);
  }

  digest256(): BigUint64Array {
    return wordsToBig(this.final(256), 4);
  }
}
