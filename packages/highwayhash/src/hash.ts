/**
 * The one-shot, batch and streaming API over two engines: the WebAssembly core (default when the runtime
 * can run it) and the portable TypeScript core. `STRATA_HIGHWAYHASH=ts` or `useImplementation('ts')` forces
 * the portable one. Both give bit-identical results.
 */

import { kindOf } from '@strata/cli';
import {
  absorbPackets,
  asBytes,
  checkBatch,
  type HighwayKey,
  keyToWords,
  PortableHasher,
  wordsToBig,
} from './hasher.js';
import { finalize64, finalize128, finalize256, resetState, updateRemainder } from './portable.js';
import { loadWasm, type WasmEngine } from './wasm.js';

export type Implementation = 'wasm' | 'ts';

let wasm: WasmEngine | undefined;
let active: Implementation = 'ts';

/** Whether the WebAssembly core gave the expected hashes (`checkWasm`); undefined until checked. */
let wasmChecked: boolean | undefined;

/**
 * Chooses the engine; `wasm` throws when this runtime cannot run the WebAssembly core, or when the core
 * failed the check at load (or fails it now, if the portable core was chosen at load).
 */
export function useImplementation(impl: Implementation): void {
  if (impl === 'wasm') {
    wasm ??= loadWasm();
    if (!wasm) throw new Error('HighwayHash: the WebAssembly core is not available in this runtime');
    if (!wasmPasses()) throw new Error('HighwayHash: the WebAssembly core failed its check in this runtime');
  }
  active = impl;
}

/** The engine in use. */
export function implementation(): Implementation {
  return active;
}

if (process.env.STRATA_HIGHWAYHASH !== 'ts') {
  wasm = loadWasm();
  if (wasm) active = 'wasm';
}

// A key's words are read through a Uint32Array view of the key itself, made once per key object (a
// BigUint64Array key would otherwise cost BigInt work on every call): the view sees a key mutated in place,
// and the engines compare its 8 words with the key they hold. The views of the last two keys are kept, so
// a caller alternating two keys (an etag and a record checksum per write) makes no view per call. Keys
// that cannot be viewed (bytes at an offset that is not a multiple of 4, or a big-endian host) are
// converted on every call.
const littleEndian = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
let lastKey: HighwayKey | undefined;
let lastView: Uint32Array | undefined;
let otherKey: HighwayKey | undefined;
let otherView: Uint32Array | undefined;
const keyScratch = new Uint32Array(8);
function words(key: HighwayKey): Uint32Array {
  if (key === lastKey && lastView !== undefined && lastView.length === 8) return lastView;
  return wordsOfAnother(key);
}

/** `words` for a key other than the last one: kept out of `words`, so the call's fast path is small. */
function wordsOfAnother(key: HighwayKey): Uint32Array {
  if (key === otherKey && otherView !== undefined && otherView.length === 8) {
    otherKey = lastKey;
    lastKey = key;
    const v = otherView;
    otherView = lastView;
    lastView = v;
    return v;
  }
  keyToWords(key, keyScratch);
  otherKey = lastKey;
  otherView = lastView;
  lastKey = key;
  lastView =
    littleEndian && (key.byteOffset & 3) === 0 ? new Uint32Array(key.buffer, key.byteOffset, 8) : undefined;
  return lastView ?? keyScratch;
}

const s = new Uint32Array(32);
const scratch = new Uint32Array(8);
const out = new Uint32Array(8);

function portable(key: HighwayKey, data: Uint8Array): void {
  resetState(s, words(key));
  const used = absorbPackets(s, data, scratch);
  const rest = data.length - used;
  if (rest > 0) updateRemainder(s, data, used, rest);
}

/**
 * HighwayHash-64 of `data[start, end)` (all of it by default) as (lo, hi) u32 words in `into` (no BigInt,
 * and no subarray needed for a part of a buffer: for hot paths).
 */
export function hash64Words(
  key: HighwayKey,
  data: Uint8Array,
  into: Uint32Array = out,
  start = 0,
  end?: number,
): Uint32Array {
  const bytes = asBytes(data);
  end ??= bytes.length;
  if (!(start >= 0 && start <= end && end <= bytes.length) || start % 1 !== 0 || end % 1 !== 0)
    throw new RangeError(`hash64Words: [${start}, ${end}) is not a range of the ${bytes.length} bytes given`);
  if (active === 'wasm') return wasm!.hash64Words(words(key), bytes, into, start, end);
  portable(key, start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end));
  finalize64(s, into);
  return into;
}

/**
 * HighwayHash-128 of `data` as (lo, hi) u32 words of its two u64 words, in the reference's order, in
 * `into` (4 words; no BigInt: for hot paths).
 */
export function hash128Words(key: HighwayKey, data: Uint8Array, into: Uint32Array = out): Uint32Array {
  if (!(into instanceof Uint32Array) || into.length < 4)
    throw new TypeError('hash128Words: into must be a Uint32Array of at least 4 words');
  const bytes = asBytes(data);
  if (active === 'wasm') return wasm!.hash128Words(words(key), bytes, into);
  portable(key, bytes);
  finalize128(s, out);
  if (into !== out) into.set(out.subarray(0, 4));
  return into;
}

/** HighwayHash-64 of `data` under a 256-bit key. */
export function hash64(key: HighwayKey, data: Uint8Array): bigint {
  if (active === 'wasm') return wasm!.hash64(words(key), asBytes(data));
  const w = hash64Words(key, data);
  return (BigInt(w[1]!) << 32n) | BigInt(w[0]!);
}

/** HighwayHash-128: two u64 words in the reference implementation's order. */
export function hash128(key: HighwayKey, data: Uint8Array): BigUint64Array {
  const bytes = asBytes(data);
  if (active === 'wasm') return wasm!.hashBig(words(key), bytes, 128);
  portable(key, bytes);
  finalize128(s, out);
  return wordsToBig(out, 2);
}

/** HighwayHash-256: four u64 words in the reference implementation's order. */
export function hash256(key: HighwayKey, data: Uint8Array): BigUint64Array {
  const bytes = asBytes(data);
  if (active === 'wasm') return wasm!.hashBig(words(key), bytes, 256);
  portable(key, bytes);
  finalize256(s, out);
  return wordsToBig(out, 4);
}

/**
 * HighwayHash-64 of many short keys packed in one buffer: key i is `buffer[offsets[i], offsets[i] +
 * lengths[i])`. Results go to `out`: a BigUint64Array (one word per key) or a Uint32Array (lo, hi per key,
 * no BigInt). Per-call overhead is paid once for the whole batch.
 */
export function hash64Batch(
  key: HighwayKey,
  buffer: Uint8Array,
  offsets: Uint32Array,
  lengths: Uint32Array,
  out: BigUint64Array | Uint32Array,
): void {
  const bytes = asBytes(buffer, 'batch buffer');
  // from JavaScript anything can come: a plain array of offsets failed as "offs.subarray is not a function"
  // in the WebAssembly path, and a negative one passed the bounds check
  if (!(offsets instanceof Uint32Array))
    throw new TypeError(`hash64Batch offsets: expected a Uint32Array, got ${kindOf(offsets)}`);
  if (!(lengths instanceof Uint32Array))
    throw new TypeError(`hash64Batch lengths: expected a Uint32Array, got ${kindOf(lengths)}`);
  if (!(out instanceof BigUint64Array || out instanceof Uint32Array))
    throw new TypeError(`hash64Batch out: expected a BigUint64Array or a Uint32Array, got ${kindOf(out)}`);
  const n = offsets.length;
  if (lengths.length !== n) throw new TypeError(`hash64Batch: ${n} offsets but ${lengths.length} lengths`);
  const need = out instanceof BigUint64Array ? n : 2 * n;
  if (out.length < need) throw new TypeError(`hash64Batch: out holds ${out.length} words, ${need} needed`);
  const spans = checkBatch(bytes.length, offsets, lengths);
  const w = words(key);
  if (active === 'wasm') {
    wasm!.batch64(w, bytes, offsets, lengths, out, spans);
    return;
  }
  const r = new Uint32Array(2);
  for (let i = 0; i < n; i++) {
    const o = offsets[i]!;
    portable(key, bytes.subarray(o, o + lengths[i]!));
    finalize64(s, r);
    if (out instanceof BigUint64Array) out[i] = (BigInt(r[1]!) << 32n) | BigInt(r[0]!);
    else {
      out[2 * i] = r[0]!;
      out[2 * i + 1] = r[1]!;
    }
  }
}

/** A streaming hasher: `update` with any chunk sizes gives the one-shot digest; reusable via `reset`. */
export interface Hasher {
  update(data: Uint8Array): Hasher;
  reset(key?: HighwayKey): Hasher;
  digest64(): bigint;
  digest128(): BigUint64Array;
  digest256(): BigUint64Array;
}

/** A new streaming hasher on the active engine. */
export function createHasher(key: HighwayKey): Hasher {
  if (active === 'wasm') return wasm!.createHasher(key);
  return new PortableHasher(key);
}

/**
 * What the load check (`checkWasm`) hashes and expects, computed by the portable core (which the tests hold
 * to the reference's vectors; the first, the empty input under the key 0..31, is the reference's first
 * 64-bit vector). `test/highwayhash.test.ts` computes them again.
 */
export const loadCheck = {
  keys: [Uint8Array.from({ length: 32 }, (_, i) => i), BigUint64Array.of(1n, 2n, 3n, 4n)] as HighwayKey[],
  data: Uint8Array.from({ length: 301 }, (_, i) => (i * 131 + 7) & 0xff),
  /** hash64 of data[0, n) under each key in turn, for each n. */
  lengths: [0, 3, 16, 31, 32, 33, 64, 65, 300],
  hash64: [
    0x907a56de22c26e53n,
    0x92943a34e3447faan,
    0x10f56709ea75a540n,
    0x88dbafa0071e653bn,
    0xb4e2f1e2a2ffc4cbn,
    0x9dc17557e509f5d1n,
    0xdc8ff91eb2fda7can,
    0x60133e8a9b46bc4en,
    0x10f15baa6d067605n,
    0xb124c119040f97acn,
    0x63c4ccca77371e3dn,
    0x7d260048acd22c78n,
    0xe2e52ec2be9b9848n,
    0x947056d633381889n,
    0xc3e2312521ae1579n,
    0xbd48862f0c4df873n,
    0x7df73577adaab3a6n,
    0xe25eabc544ca857bn,
  ],
  /** hash64Words of data[1, n + 1) under the second key, n = 16 and 64: (lo, hi) each. */
  words: [2221010019, 67249688, 844925074, 441352268],
  /** hash128 of data[0, 33) under the first key; hash256 of data[0, 65) under the second. */
  hash128: [0xf9af3a9513aabdd8n, 0x7277fc6fca0787fn],
  hash256: [0x23e4d530474de8ccn, 0xe2af8acca6a412ean, 0x1d768308e562734dn, 0x1b7519a3a3769c6n],
};

/**
 * At load, the WebAssembly core is checked against `loadCheck` (1-2 ms, mostly unoptimized glue): two keys
 * in turn, lengths on both sides of the packet size and of the word-by-word copy's bound, 64, 128 and 256
 * bits, a part of a buffer. A runtime that computes another hash (a SIMD fault) gets the portable core and a
 * warning instead of wrong hashes. The calls go through the public functions, so their optimized code later
 * has type feedback for the paths callers take after their first ones (a 64-byte input after many of 16
 * bytes, a second key): without it, the first such call deoptimized them, and V8 optimized them again
 * differently from run to run (README, "Where a short call goes").
 */
function checkWasm(): boolean {
  const { keys, data, lengths } = loadCheck;
  let i = 0;
  for (const n of lengths)
    for (const key of keys) if (hash64(key, data.subarray(0, n)) !== loadCheck.hash64[i++]) return false;
  const w = new Uint32Array(2);
  for (const [j, n] of [16, 64].entries()) {
    hash64Words(keys[1]!, data, w, 1, n + 1);
    if (w[0] !== loadCheck.words[2 * j] || w[1] !== loadCheck.words[2 * j + 1]) return false;
  }
  const h128 = hash128(keys[0]!, data.subarray(0, 33));
  const h256 = hash256(keys[1]!, data.subarray(0, 65));
  return loadCheck.hash128.every((x, j) => h128[j] === x) && loadCheck.hash256.every((x, j) => h256[j] === x);
}

/** Runs `checkWasm` once, on the WebAssembly core whatever the engine in use. */
function wasmPasses(): boolean {
  if (wasmChecked === undefined) {
    const was = active;
    active = 'wasm';
    try {
      wasmChecked = checkWasm();
    } finally {
      active = was;
    }
  }
  return wasmChecked;
}

if (active === 'wasm' && !wasmPasses()) {
  active = 'ts';
  process.emitWarning(
    'HighwayHash: the WebAssembly core disagreed with the reference on a check at load; using the portable one',
  );
}
