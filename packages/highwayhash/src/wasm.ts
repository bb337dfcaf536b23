/// <reference path="../../../types/webassembly.d.ts" />
/**
 * Loads the WebAssembly SIMD core (assembly/index.ts, built to build/highwayhash.wasm) and drives it:
 * inputs are copied into its linear memory in slices of at most `chunkBytesMax`, so any input size works
 * with bounded memory. The core has one streaming state at fixed addresses; the streaming hasher that last
 * used it keeps it there, and a hasher's own copy is written only when another user needs the place.
 */
import { readFileSync } from 'node:fs';
import { asBytes, batchKeysMax, type HighwayKey, keyToWords } from './hasher.js';

/**
 * Largest slice of input copied into WebAssembly memory at once. Larger inputs are copied and absorbed a
 * slice at a time, so the core reads each slice from cache: 256 KiB measured 3% faster than 1 MiB at 1 MiB
 * and 10% faster at 16 MiB; slices of 16 KiB to 128 KiB measured within 3% of 256 KiB at 1 MiB and 16 MiB
 * and 8 KiB up to 8% slower (the copy, about 14% of the time, runs at cache speed at any of these sizes).
 */
const chunkBytesMax = 256 << 10;
/**
 * Inputs of at least this length are absorbed by the core's `update` loop and finished by `digest` (three
 * calls) rather than hashed in one call: V8 compiles `update`'s loop 3-5% faster than the same loop inside
 * the one-call hash from 4 KiB to 1 MiB (2% at 2 KiB, where two more calls eat it; equal at 1 KiB).
 */
const streamBytesMin = 4096;
/** The core may read this many bytes past an input's end (and masks them off). */
const readPastEndBytesMax = 32;
/** Inputs up to this length are copied word by word: cheaper than `TypedArray.prototype.set`'s fixed cost. */
const loopCopyBytesMax = 32;
/** Parts of a longer array up to this length are copied word by word too (a subarray costs an object). */
const partLoopCopyBytesMax = 256;
const STATE_BYTES = 128;

interface Exports {
  memory: WebAssembly.Memory;
  KEY: WebAssembly.Global;
  OUT: WebAssembly.Global;
  INPUT: WebAssembly.Global;
  INIT_A: WebAssembly.Global;
  INIT_B: WebAssembly.Global;
  setKey(init: number): void;
  reset(init: number): void;
  update(ptr: number, len: number): void;
  hash64Out(init: number, ptr: number, len: number): void;
  hashOut(init: number, ptr: number, len: number, bits: number): void;
  digest(ptr: number, size: number, bits: number): void;
  batch64(init: number, buf: number, offs: number, lens: number, n: number, out: number): void;
}

type Bits = 64 | 128 | 256;

/** The 8 words of two keys are equal. */
function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  return (
    a[0] === b[0] &&
    a[1] === b[1] &&
    a[2] === b[2] &&
    a[3] === b[3] &&
    a[4] === b[4] &&
    a[5] === b[5] &&
    a[6] === b[6] &&
    a[7] === b[7]
  );
}

export interface WasmEngine {
  /** HighwayHash-64 as (lo, hi) u32 words in `into`. */
  hash64Words(key: Uint32Array, data: Uint8Array, into: Uint32Array, from: number, to: number): Uint32Array;
  /** HighwayHash-128 as (lo, hi) u32 words of its two u64 words in `into`. */
  hash128Words(key: Uint32Array, data: Uint8Array, into: Uint32Array): Uint32Array;
  /** HighwayHash-64 as a BigInt. */
  hash64(key: Uint32Array, data: Uint8Array): bigint;
  /** HighwayHash-128 or -256 as u64 words in the reference's order. */
  hashBig(key: Uint32Array, data: Uint8Array, bits: 128 | 256): BigUint64Array;
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
  /** The streaming state's 128 bytes (at address 0). */
  stateView!: Uint8Array;
  /** The hasher whose state is the one at address 0, if any. */
  owner: WasmHasher | undefined;
  /**
   * The last two keys' words, each with its derived initial state in a slot of the core (`INIT_A`,
   * `INIT_B`): a call compares the 8 words with the key used last ("current"), then the other, and derives
   * a state only when neither matches, into the other slot, which becomes current; so two keys used in
   * turn both stay, and a key mutated in place is noticed. Fields, not arrays of two: the current key's
   * check is the whole cost of a call with the key of the call before (a 16-byte hash is ~55 ns).
   */
  private curKey = new Uint32Array(8);
  private curInit: number;
  private curValid = false;
  private otherKey = new Uint32Array(8);
  private otherInit: number;
  private otherValid = false;

  constructor(readonly ex: Exports) {
    this.input = ex.INPUT.value as number;
    this.outPtr = ex.OUT.value as number;
    this.keyPtr = ex.KEY.value as number;
    this.curInit = ex.INIT_A.value as number;
    this.otherInit = ex.INIT_B.value as number;
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
      this.stateView = this.mem.subarray(0, STATE_BYTES);
    }
  }

  /** Makes `key`'s initial state available in the core; returns its address (see `curKey`). */
  setKey(key: Uint32Array): number {
    if (this.curValid && sameWords(this.curKey, key)) return this.curInit;
    return this.switchKey(key);
  }

  /** The other slot becomes current, holding `key` (derived again unless it already did). */
  private switchKey(key: Uint32Array): number {
    const k = this.otherKey;
    const init = this.otherInit;
    const held = this.otherValid && sameWords(k, key);
    this.otherKey = this.curKey;
    this.otherInit = this.curInit;
    this.otherValid = this.curValid;
    this.curKey = k;
    this.curInit = init;
    this.curValid = true;
    if (!held) {
      k.set(key);
      this.mem32.set(key, this.keyPtr >>> 2);
      this.ex.setKey(init);
    }
    return init;
  }

  /** Saves the resident hasher's state with it before the streaming state is used for something else. */
  evict(): void {
    const o = this.owner;
    if (o === undefined) return;
    o.save(this.stateView);
    this.owner = undefined;
  }

  /** Hashes `data[from, to)` under `key`; the result lands at OUT. */
  run(key: Uint32Array, data: Uint8Array, bits: Bits, from = 0, to = data.length): void {
    const init = this.setKey(key);
    const n = to - from;
    if (n < streamBytesMin) {
      this.copyIn(data, from, to, this.input);
      if (bits === 64) this.ex.hash64Out(init, this.input, n);
      else this.ex.hashOut(init, this.input, n, bits);
      return;
    }
    this.evict();
    this.ex.reset(init);
    const whole = from + (n & ~31);
    for (let off = from; off < whole; off += chunkBytesMax) {
      const end = Math.min(whole, off + chunkBytesMax);
      this.copyIn(data, off, end, this.input);
      this.ex.update(this.input, end - off);
    }
    this.copyIn(data, whole, to, this.input);
    this.ex.digest(this.input, to - whole, bits);
  }

  hash64(key: Uint32Array, data: Uint8Array): bigint {
    const n = data.length;
    // run's short path written out: through run, a 64-byte hash64 measured 3% slower (7fa0414)
    if (n < streamBytesMin) {
      const init = this.setKey(key);
      if (n <= loopCopyBytesMax) this.copyWords(data, 0, n, this.input);
      else this.mem.set(data, this.input);
      this.ex.hash64Out(init, this.input, n);
    } else this.run(key, data, 64);
    // one BigInt, read unsigned (an i64 return would arrive signed and need a second BigInt operation)
    return this.out64[0]!;
  }

  hashBig(key: Uint32Array, data: Uint8Array, bits: 128 | 256): BigUint64Array {
    this.run(key, data, bits);
    return this.readBig(bits >>> 6);
  }

  /** The first n result words as a new BigUint64Array (element copies measured faster than `slice`). */
  readBig(n: number): BigUint64Array {
    const r = new BigUint64Array(n);
    const o = this.out64;
    for (let i = 0; i < n; i++) r[i] = o[i]!;
    return r;
  }

  hash64Words(key: Uint32Array, data: Uint8Array, into: Uint32Array, from: number, to: number): Uint32Array {
    this.run(key, data, 64, from, to);
    const o = this.outPtr >>> 2;
    into[0] = this.mem32[o]!;
    into[1] = this.mem32[o + 1]!;
    return into;
  }

  hash128Words(key: Uint32Array, data: Uint8Array, into: Uint32Array): Uint32Array {
    this.run(key, data, 128);
    const o = this.outPtr >>> 2;
    const m = this.mem32;
    into[0] = m[o]!;
    into[1] = m[o + 1]!;
    into[2] = m[o + 2]!;
    into[3] = m[o + 3]!;
    return into;
  }

  /** Copies data[from, to) (at most `chunkBytesMax` bytes) to address `at`. */
  copyIn(data: Uint8Array, from: number, to: number, at: number): void {
    const n = to - from;
    if (n > loopCopyBytesMax && from === 0 && to === data.length) this.mem.set(data, at);
    // a short part of a longer array: word by word, not through a subarray (an object per call)
    else if (n > partLoopCopyBytesMax) this.mem.set(data.subarray(from, to), at);
    else this.copyWords(data, from, to, at);
  }

  /**
   * Copies data[from, to) to `at` (a multiple of 4) in whole u32 words: one store per 4 bytes; the core
   * ignores the bytes of the last word past the end.
   */
  copyWords(data: Uint8Array, from: number, to: number, at: number): void {
    const m32 = this.mem32;
    let j = at >>> 2;
    let i = from;
    for (; i + 4 <= to; i += 4, j++)
      m32[j] = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    if (i < to) {
      let x = 0;
      for (let sh = 0; i < to; i++, sh += 8) x |= data[i]! << sh;
      m32[j] = x;
    }
  }

  batch64(
    key: Uint32Array,
    buf: Uint8Array,
    offs: Uint32Array,
    lens: Uint32Array,
    out: BigUint64Array | Uint32Array,
    spans: Float64Array,
  ): void {
    const init = this.setKey(key);
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
      this.ex.batch64(init, (this.input - lo) >>> 0, offsPtr, lensPtr, count, outPtr);
      if (out instanceof BigUint64Array)
        out.set(new BigUint64Array(this.ex.memory.buffer, outPtr, count), first);
      else out.set(this.mem32.subarray(outPtr >>> 2, (outPtr >>> 2) + 2 * count), 2 * first);
    }
  }

  createHasher(key: HighwayKey): WasmHasher {
    return new WasmHasher(this, key);
  }
}

/**
 * A streaming hasher on the WebAssembly core. Its state lives in the core while it is the last hasher used
 * (`Engine.owner`), and in `state` after another user took the place; up to 31 bytes wait in `pending`.
 */
export class WasmHasher {
  private readonly key = new Uint32Array(8);
  private readonly pending = new Uint8Array(32);
  private pendingLen = 0;
  /** True until a packet is absorbed: the state is the key's initial one and needs no copy. */
  private fresh = true;
  /** The state while it is not resident in the core; made at the first eviction, then reused. */
  private state: Uint8Array | undefined;

  constructor(
    private readonly e: Engine,
    key: HighwayKey,
  ) {
    keyToWords(key, this.key);
  }

  reset(key?: HighwayKey): this {
    if (key !== undefined) keyToWords(key, this.key);
    if (this.e.owner === this) this.e.owner = undefined;
    this.fresh = true;
    this.pendingLen = 0;
    return this;
  }

  /** Called by the engine when another user needs the streaming state's place. */
  save(resident: Uint8Array): void {
    (this.state ??= new Uint8Array(STATE_BYTES)).set(resident);
  }

  /** Makes this hasher's state the resident one. */
  private claim(): void {
    const e = this.e;
    if (e.owner === this) return;
    e.evict();
    if (this.fresh) {
      e.ex.reset(e.setKey(this.key));
      this.fresh = false;
    } else e.mem.set(this.state!, 0);
    e.owner = this;
  }

  update(data: Uint8Array): this {
    data = asBytes(data);
    const n = data.length;
    const pending = this.pending;
    let pl = this.pendingLen;
    if (pl + n < 32) {
      for (let i = 0; i < n; i++) pending[pl + i] = data[i]!;
      this.pendingLen = pl + n;
      return this;
    }
    this.claim();
    const e = this.e;
    const mem = e.mem;
    const at = e.input;
    // each turn: the pending bytes, then up to a slice of data, all whole packets absorbed, the rest pending
    for (let off = 0; off < n; ) {
      const take = Math.min(n - off, chunkBytesMax - 32);
      for (let i = 0; i < pl; i++) mem[at + i] = pending[i]!;
      if (take > loopCopyBytesMax) mem.set(take === n ? data : data.subarray(off, off + take), at + pl);
      else for (let i = 0; i < take; i++) mem[at + pl + i] = data[off + i]!;
      const total = pl + take;
      const whole = total & ~31;
      if (whole > 0) e.ex.update(at, whole);
      pl = total - whole;
      for (let i = 0; i < pl; i++) pending[i] = mem[at + whole + i]!;
      off += take;
    }
    this.pendingLen = pl;
    return this;
  }

  /** The digest at OUT; the hasher's state is not changed. */
  private final(bits: Bits): void {
    const e = this.e;
    const pl = this.pendingLen;
    if (this.fresh) {
      // nothing absorbed yet: a one-shot hash of the pending bytes
      const init = e.setKey(this.key);
      e.copyWords(this.pending, 0, pl, e.input);
      e.ex.hashOut(init, e.input, pl, bits);
      return;
    }
    this.claim();
    e.copyWords(this.pending, 0, pl, e.input);
    e.ex.digest(e.input, pl, bits);
  }

  digest64(): bigint {
    this.final(64);
    return this.e.out64[0]!;
  }

  digest128(): BigUint64Array {
    this.final(128);
    return this.e.readBig(2);
  }

  digest256(): BigUint64Array {
    this.final(256);
    return this.e.readBig(4);
  }
}
