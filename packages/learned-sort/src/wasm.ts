/**
 * Drives the WebAssembly core (assembly/index.ts, built to build/learned-sort.wasm) for the learned path
 * on doubles. The input stays in its JS array: chunks of it are copied into the core's STAGE for the one
 * first-level pass, the core keeps the fixed-capacity first-level buckets in T (at most n + fanout
 * doubles, the only large allocation), keys spilled from full buckets wait in the part of the input
 * already read, and each sorted bucket is copied back into the input. A fresh memory is made
 * per sort and dropped afterwards, so nothing of the size of the input outlives the call.
 */
import { readFileSync } from 'node:fs';
import type { Rmi } from './learned.js';
import { mergeRunInto } from './merge.js';

// The few WebAssembly JS API types used here (Node has the API; its types ship only in lib.dom). Declared
// locally rather than as globals, so they cannot clash with another package's declarations.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmGlobal {
  value: unknown;
}
type WasmModule = object;
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (
    module: WasmModule,
    imports: Record<string, Record<string, unknown>>,
  ) => { readonly exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
}
const wasmApi = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

interface Exports {
  LEAVES: WasmGlobal;
  FANOUT: WasmGlobal;
  BUCKET_KEYS_MAX: WasmGlobal;
  STAGE_KEYS: WasmGlobal;
  MODEL: WasmGlobal;
  COUNTS: WasmGlobal;
  HFIRST: WasmGlobal;
  HEND: WasmGlobal;
  HSET: WasmGlobal;
  HCOUNT: WasmGlobal;
  SPILLS: WasmGlobal;
  OUT: WasmGlobal;
  STAGE: WasmGlobal;
  SPILL: WasmGlobal;
  T: WasmGlobal;
  setRoot(slope: number, intercept: number): void;
  scatterStage(k: number, capacity: number): number;
  compact(capacity: number): number;
  placeSpill(k: number): void;
  sortBucket(from: number, m: number, from2: number, m2: number, subKeys: number, subSortMin: number): void;
}

/** WebAssembly pages are 64 KiB; a 32-bit memory has at most 65,536 of them (4 GiB). */
const pageBytes = 65536;
const pagesMax = 65536;

interface Core {
  mod: WasmModule;
  /** The core's constants (fan-out, leaves, region addresses), read once from a probe instance. */
  layout: Exports;
}

let compiled: Core | null | undefined;

function wasmModule(): Core | null {
  if (compiled === undefined) {
    try {
      if (!wasmApi) throw new Error('no WebAssembly');
      const mod = new wasmApi.Module(readFileSync(new URL('../build/learned-sort.wasm', import.meta.url)));
      const memory = new wasmApi.Memory({ initial: 1 });
      const layout = new wasmApi.Instance(mod, { env: { memory } }).exports as unknown as Exports;
      compiled = { mod, layout };
    } catch {
      compiled = null; // not built (`npm run build`) or no WebAssembly: the JS core takes over
    }
  }
  return compiled;
}

/** True when the WebAssembly core is built and loads. */
export function wasmAvailable(): boolean {
  return wasmModule() !== null;
}

export interface WasmSortOptions {
  fanout: number;
  leafCount: number;
  subKeys: number;
  subSortMin: number;
  overfullFactor: number;
  overfullShareMax: number;
}

export interface WasmSortResult {
  /**
   * 'unavailable': not built, or the input does not fit a 32-bit memory; 'poor': the guard tripped;
   * 'special': `unchecked` and the input holds NaN or an infinity (the keys are left a permutation of it).
   */
  outcome: 'sorted' | 'poor' | 'unavailable' | 'disordered' | 'special';
  overfullShare: number;
}

/**
 * Sorts `keys` (finite, no NaN, unless `unchecked`) with the trained model `rmi` and heavy keys `hset`
 * (ascending, each with the first-level bucket it predicts into in `heavyBucket`). On any outcome but
 * 'sorted' the keys are a permutation of the input and the caller sorts them another way.
 */
export function wasmLearnedSort(
  keys: Float64Array,
  rmi: Rmi,
  hset: Float64Array,
  heavyBucket: Int32Array,
  unchecked: boolean,
  o: WasmSortOptions,
): WasmSortResult {
  const core = wasmModule();
  const n = keys.length;
  if (core === null) return { outcome: 'unavailable', overfullShare: 0 };
  const probe = core.layout;
  const at = (g: WasmGlobal) => g.value as number;
  if (at(probe.FANOUT) !== o.fanout || at(probe.LEAVES) !== o.leafCount)
    throw new Error(
      `learned-sort: build/learned-sort.wasm was built for fan-out ${at(probe.FANOUT)} and ${at(probe.LEAVES)} leaves, the JS side expects ${o.fanout} and ${o.leafCount}: run \`npm run build\``,
    );
  const T = at(probe.T);
  const B = o.fanout;
  // fixed-capacity buckets: T holds B x capacity >= n keys; a key whose bucket is full spills
  const capacity = Math.ceil(n / B);
  const pages = Math.ceil((T + 8 * B * capacity) / pageBytes);
  if (pages > pagesMax) return { outcome: 'unavailable', overfullShare: 0 };
  let memory: WasmMemory;
  try {
    memory = new wasmApi!.Memory({ initial: pages, maximum: pages });
  } catch {
    return { outcome: 'unavailable', overfullShare: 0 };
  }
  const ex = new wasmApi!.Instance(core.mod, { env: { memory } }).exports as unknown as Exports;
  const buf = memory.buffer;
  const f64 = new Float64Array(buf);
  const i32 = new Int32Array(buf);
  const H = hset.length;
  // the model, one 32-byte record per leaf, scaled to predict first-level bucket numbers: [0, B]
  const model = at(ex.MODEL) >>> 3;
  for (let l = 0; l < o.leafCount; l++) {
    f64[model + 4 * l] = rmi.slopes[l]! * B;
    f64[model + 4 * l + 1] = rmi.intercepts[l]! * B;
    f64[model + 4 * l + 2] = rmi.lo[l]! * B;
    f64[model + 4 * l + 3] = rmi.hi[l]! * B;
  }
  ex.setRoot(rmi.rootSlope, rmi.rootIntercept);
  const hfirst = at(ex.HFIRST) >>> 2;
  const hend = at(ex.HEND) >>> 2;
  i32.fill(-1, hfirst, hfirst + B);
  for (let k = 0; k < H; k++) {
    const b = heavyBucket[k]!;
    if (i32[hfirst + b] === -1) i32[hfirst + b] = k;
    i32[hend + b] = k + 1;
  }
  f64.set(hset, at(ex.HSET) >>> 3);
  const stage = at(ex.STAGE) >>> 3;
  const spill = at(ex.SPILL) >>> 3;
  const stageKeys = at(ex.STAGE_KEYS);
  const countsAt = at(ex.COUNTS) >>> 2;
  const spillsAt = at(ex.SPILLS) >>> 2;
  const hcountAt = at(ex.HCOUNT) >>> 2;
  const t64 = T >>> 3;
  // The one first-level pass. Spilled keys go back into the input, behind the chunks already read.
  let spilled = 0;
  /** Puts every key read so far back into keys[0, readKeys), in any order: the input as a permutation. */
  const restore = (readKeys: number) => {
    let pos = spilled;
    for (let b = 0; b < B; b++) {
      const c = i32[countsAt + b]!;
      keys.set(f64.subarray(t64 + b * capacity, t64 + b * capacity + c), pos);
      pos += c;
    }
    for (let k = 0; k < H; k++) {
      const c = i32[hcountAt + k]!;
      keys.fill(hset[k]!, pos, pos + c);
      pos += c;
    }
    if (pos !== readKeys) throw new Error(`learned-sort: restored ${pos} keys of ${readKeys} (a bug)`);
  };
  for (let off = 0; off < n; off += stageKeys) {
    const k = Math.min(stageKeys, n - off);
    f64.set(keys.subarray(off, off + k), stage);
    let s = ex.scatterStage(k, capacity);
    const special = s < 0;
    if (special) s = -s - 1;
    if (s > 0) {
      keys.set(f64.subarray(spill, spill + s), spilled);
      spilled += s;
    }
    if (special) {
      if (!unchecked)
        throw new Error('learned-sort: a NaN or an infinity reached the WebAssembly core (a bug)');
      restore(off + k);
      return { outcome: 'special', overfullShare: 0 };
    }
  }
  const fill = i32.slice(countsAt, countsAt + B);
  const spills = i32.slice(spillsAt, spillsAt + B);
  const heavyCounts = i32.slice(hcountAt, hcountAt + H);
  // guard: how many keys sit in badly overfull buckets?
  let heavyTotal = 0;
  for (let k = 0; k < H; k++) heavyTotal += heavyCounts[k]!;
  const avg = (n - heavyTotal) / B;
  let over = 0;
  for (let b = 0; b < B; b++) {
    const c = fill[b]! + spills[b]!;
    if (c > o.overfullFactor * avg + 64) over += c;
  }
  const overfullShare = over / n;
  if (overfullShare > o.overfullShareMax) {
    restore(n);
    return { outcome: 'poor', overfullShare };
  }
  // close the gaps between buckets, then bring the spilled keys in behind them, grouped by bucket
  ex.compact(capacity);
  const starts = i32.slice(countsAt, countsAt + B);
  const spillStarts = i32.slice(spillsAt, spillsAt + B);
  for (let off = 0; off < spilled; off += stageKeys) {
    const k = Math.min(stageKeys, spilled - off);
    f64.set(keys.subarray(off, off + k), stage);
    ex.placeSpill(k);
  }
  // second level, bucket by bucket, back into `keys`; heavy keys' equality runs are merged in here
  const out = at(ex.OUT) >>> 3;
  const bucketKeysMax = at(ex.BUCKET_KEYS_MAX);
  let pos = 0;
  let prevLast = Number.NEGATIVE_INFINITY;
  let disordered = false;
  for (let b = 0, k = 0; b < B; b++) {
    const m = fill[b]!;
    const m2 = spills[b]!;
    const total = m + m2;
    const k0 = k;
    let heavyHere = 0;
    while (k < H && heavyBucket[k] === b) heavyHere += heavyCounts[k++]!;
    const start = pos;
    let run: Float64Array;
    if (total <= bucketKeysMax) {
      ex.sortBucket(starts[b]!, m, spillStarts[b]!, m2, o.subKeys, o.subSortMin);
      run = f64.subarray(out, out + total);
    } else {
      // far more keys than the model promised here: sort them in the input, behind the room their
      // equality runs need, so that the merge below writes only over keys it has already read
      const at0 = pos + heavyHere;
      keys.set(f64.subarray(t64 + starts[b]!, t64 + starts[b]! + m), at0);
      keys.set(f64.subarray(t64 + spillStarts[b]!, t64 + spillStarts[b]! + m2), at0 + m);
      run = keys.subarray(at0, at0 + total);
      run.sort();
    }
    if (k === k0) {
      if (run.buffer !== keys.buffer || run.byteOffset !== keys.byteOffset + 8 * pos) keys.set(run, pos);
      pos += total;
    } else pos = mergeRunInto(run, keys, pos, hset, heavyCounts, k0, k);
    // the model is monotone by construction; check it where it is cheap (two reads per bucket)
    if (pos > start) {
      if (keys[start]! < prevLast) disordered = true;
      prevLast = keys[pos - 1]!;
    }
  }
  return { outcome: disordered ? 'disordered' : 'sorted', overfullShare };
}
