/**
 * Index keys: HighwayHash-64 of (column, value) or (column, token), kept as the low 53 bits so a key is an
 * exact float64 and sorts as a typed array without BigInt. A collision only adds a candidate block, which
 * row verification then rejects, so it costs time, never correctness.
 */
import { hash64Batch } from '@strata/highwayhash';
import { learnedSort } from '@strata/learned-sort';
import type { StreamDef } from './ddl.js';
import { type Row, tokenize } from './formats.js';

/** The fixed HighwayHash key for index keys (the digits of pi); changing it invalidates every index. */
export const indexHashKey = new Uint32Array([
  0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0x082efa98, 0xec4e6c89,
]);
const keyBytes = new Uint8Array(indexHashKey.buffer);

/** The key string of a whole value of column `col`. */
export function valueKey(col: number, value: string | number): string {
  return `${col}\u0000${value}`;
}
/** The key string of one token of a TOKENS column `col`. */
export function tokenKey(col: number, token: string): string {
  return `${col}\u0001${token}`;
}

const enc = new TextEncoder();

/** Hashes key strings to 53-bit keys (one float64 each). */
export function hashKeys(keys: string[]): Float64Array {
  const n = keys.length;
  const out = new Float64Array(n);
  if (n === 0) return out;
  let total = 0;
  for (const k of keys) total += k.length * 3;
  const buf = new Uint8Array(total);
  const offs = new Uint32Array(n);
  const lens = new Uint32Array(n);
  let o = 0;
  for (let i = 0; i < n; i++) {
    const r = enc.encodeInto(keys[i]!, buf.subarray(o));
    offs[i] = o;
    lens[i] = r.written;
    o += r.written;
  }
  const words = new Uint32Array(2 * n);
  hash64Batch(keyBytes, buf, offs, lens, words);
  for (let i = 0; i < n; i++) out[i] = (words[2 * i + 1]! & 0x1fffff) * 4294967296 + words[2 * i]!;
  return out;
}

/** One key as a 53-bit number. */
export function hashKey(key: string): number {
  return hashKeys([key])[0]!;
}

/** Sorted, distinct 53-bit keys of a float64 array (sorted in place with learned sort, then deduplicated). */
export function sortUnique(keys: Float64Array): Float64Array {
  // Hash keys are uniform, the case a learned CDF model fits best.
  learnedSort(keys);
  let w = 0;
  for (let i = 0; i < keys.length; i++) if (i === 0 || keys[i] !== keys[w - 1]) keys[w++] = keys[i]!;
  return keys.subarray(0, w);
}

/** The distinct key strings of a block's rows under the stream's INDEX clause. */
export function keyStringsOf(def: StreamDef, rows: Row[]): string[] {
  const out: string[] = [];
  const toks: string[] = [];
  for (const d of def.index) {
    const col = def.columns.findIndex((c) => c.name === d.column);
    // Deduplicate the raw values first: the key strings are built once per distinct value.
    const set = new Set<string | number>();
    for (const row of rows) {
      const v = row[col];
      if (v === null || v === undefined) continue;
      if (d.tokens) {
        if (typeof v !== 'string') continue;
        toks.length = 0;
        tokenize(v, toks);
        for (let i = 0; i < toks.length; i++) set.add(toks[i]!);
      } else set.add(v);
    }
    for (const v of set) out.push(d.tokens ? tokenKey(col, v as string) : valueKey(col, v));
  }
  return out;
}

/** The sorted distinct keys of several key arrays (a block's leaf from its pages' keys). */
export function unionKeys(parts: Float64Array[]): Float64Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const all = new Float64Array(n);
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return sortUnique(all);
}

/** The sorted distinct 53-bit keys of a block's rows. */
export function keysOf(def: StreamDef, rows: Row[]): Float64Array {
  return sortUnique(hashKeys(keyStringsOf(def, rows)));
}
