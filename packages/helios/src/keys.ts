/**
 * Index keys: HighwayHash-64 of (column, value) or (column, token), kept as the low 53 bits so a key is an
 * exact float64 and sorts as a typed array without BigInt. A collision only adds a candidate block, which
 * row verification then rejects, so it costs time, never correctness.
 */
import { hash64Batch } from '@strata/highwayhash';
import { learnedSort } from '@strata/learned-sort';
import type { StreamDef } from './ddl.js';
import { type Cell, isTokenChar, type Row, tokenCharsMax } from './formats.js';
import { tokenKeysOfJson, valueKeysOfJson } from './tokenscan.js';

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
function sortUniqueLearned(keys: Float64Array): Float64Array {
  // Hash keys are uniform, the case a learned CDF model fits best.
  learnedSort(keys);
  let w = 0;
  for (let i = 0; i < keys.length; i++) if (i === 0 || keys[i] !== keys[w - 1]) keys[w++] = keys[i]!;
  return keys.subarray(0, w);
}

/** Below this many keys, `sortUnique` sorts in place with learned sort (the buckets would cost more). */
const bucketSortKeysMin = 256;
/** A bucket with more keys than this (keys that are not uniform) is sorted with the typed array's sort. */
const bucketInsertionKeysMax = 32;
/** Bucket starts, reused (grown to the largest array sorted). */
let bucketStarts = new Uint32Array(0);

/**
 * Sorted, distinct 53-bit keys of a float64 array (sorted in place, or a new array: use the result). Keys
 * are hashes, uniform over [0, 2^53): a bucket sort by their top bits (about one key a bucket, two passes
 * and an insertion sort of each bucket) took 22-27 ms for a 1M-line TOKENS ingest's block keys against
 * learned sort's 49-65. No @strata/learned-sort export does this as fast: at a block's key counts
 * `learnedSort` is its radix sort, and `radixSortF64` and `learnedSortF64` with its model forced took
 * 1.5-3x this sort's time in a probe (10K-300K keys, half repeats: 3.7 ms against 6.2 and 8.2 at 100K),
 * since neither knows the keys are uniform. Keys outside [0, 2^53) go to learned sort.
 */
export function sortUnique(keys: Float64Array): Float64Array {
  const n = keys.length;
  if (n < bucketSortKeysMin) return sortUniqueLearned(keys);
  let buckets = 1;
  while (buckets * 2 <= n) buckets *= 2;
  if (bucketStarts.length < buckets + 1) bucketStarts = new Uint32Array(buckets + 1);
  const at = bucketStarts;
  at.fill(0, 0, buckets + 1);
  const perKey = buckets / 2 ** 53;
  for (let i = 0; i < n; i++) {
    const b = Math.floor(keys[i]! * perKey);
    if (!(b >= 0 && b < buckets)) return sortUniqueLearned(keys); // not a 53-bit key (or NaN)
    at[b + 1]!++;
  }
  for (let b = 0; b < buckets; b++) at[b + 1]! += at[b]!;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const k = keys[i]!;
    out[at[Math.floor(k * perKey)]!++] = k;
  }
  // bucket b is now out[at[b - 1], at[b]) (at[-1] = 0): sort each, and keep each key once
  let s = 0;
  let w = 0;
  for (let b = 0; b < buckets; b++) {
    const e = at[b]!;
    if (e - s > bucketInsertionKeysMax) out.subarray(s, e).sort();
    else
      for (let i = s + 1; i < e; i++) {
        const k = out[i]!;
        let j = i - 1;
        while (j >= s && out[j]! > k) {
          out[j + 1] = out[j]!;
          j--;
        }
        out[j + 1] = k;
      }
    for (let i = s; i < e; i++) if (w === 0 || out[i] !== out[w - 1]) out[w++] = out[i]!;
    s = e;
  }
  return out.subarray(0, w);
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
  return sortUnique(rowKeys(def, rows));
}

const fnvBasis = 0x811c9dc5;
/** FNV-1a over b[s, e) from state h: the dedupe table's hash (HighwayHash is for the distinct keys only). */
function fnv(b: Uint8Array, s: number, e: number, h: number): number {
  for (let i = s; i < e; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h;
}

/**
 * The UTF-8 bytes of distinct key strings, written one after another and deduplicated by their bytes as
 * they are written (an open-addressing table on a cheap 32-bit hash), so that a token that repeats costs
 * neither a string nor a HighwayHash: one batch hashes the distinct keys at the end. Reused across calls.
 */
class KeyBytes {
  buf = new Uint8Array(1 << 16);
  /** A view of `buf`, for comparing keys four bytes at a time. */
  view = new DataView(this.buf.buffer);
  offs = new Uint32Array(1024);
  lens = new Uint32Array(1024);
  n = 0;
  /** Bytes used by the committed keys; a key being written starts here. */
  end = 0;
  private table = new Int32Array(2048);
  private hashes = new Int32Array(1024);
  /** The prefix array each key was committed with: a repeat with the same one skips comparing the prefix. */
  private prefixes: Uint8Array[] = [];

  reset(): void {
    this.n = 0;
    this.end = 0;
    this.table.fill(0);
  }

  /** Room for `bytes` more bytes after `end` plus the key being written. */
  reserve(bytes: number): void {
    if (this.end + bytes <= this.buf.length) return;
    const b = new Uint8Array(Math.max(this.buf.length * 2, this.end + bytes));
    b.set(this.buf.subarray(0, this.buf.length));
    this.buf = b;
    this.view = new DataView(b.buffer);
  }

  /**
   * Commits the key `prefix` + src[s, s + len) unless an equal key is in already. src may be `buf` with
   * the key already written at `end` (then nothing is copied). `srcView` is a DataView of src's bytes.
   */
  commit(prefix: Uint8Array, src: Uint8Array, srcView: DataView, s: number, len: number): void {
    const h = fnv(src, s, s + len, fnv(prefix, 0, prefix.length, fnvBasis));
    this.commitHashed(prefix, src, srcView, s, len, h);
  }

  /** `commit` with the key's `fnv` hash computed by the caller. */
  commitHashed(
    prefix: Uint8Array,
    src: Uint8Array,
    srcView: DataView,
    s: number,
    len: number,
    h: number,
  ): void {
    const pl = prefix.length;
    const total = pl + len;
    const mask = this.table.length - 1;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const e = this.table[slot]!;
      if (e === 0) {
        if (src !== this.buf || s !== this.end) {
          this.reserve(total);
          const buf = this.buf;
          const o = this.end;
          // byte loops for the short keys most are (a subarray and two sets took 70 ns a key: 3% of a
          // TOKENS ingest's main thread)
          for (let i = 0; i < pl; i++) buf[o + i] = prefix[i]!;
          if (len <= 64) for (let i = 0; i < len; i++) buf[o + pl + i] = src[s + i]!;
          else buf.set(src.subarray(s, s + len), o + pl);
        }
        this.add(slot, h, total, prefix);
        return;
      }
      const k = e - 1;
      if (this.hashes[k] !== h || this.lens[k] !== total) continue;
      // Most keys met are repeats of a key committed with the same prefix array, compared whole: the
      // prefix only when the arrays differ, the rest four bytes at a time.
      const buf = this.buf;
      const o = this.offs[k]!;
      if (this.prefixes[k] !== prefix) {
        let i = 0;
        while (i < pl && buf[o + i] === prefix[i]) i++;
        if (i < pl) continue;
      }
      const view = this.view;
      const d = o + pl;
      let j = 0;
      while (j + 4 <= len && view.getUint32(d + j, true) === srcView.getUint32(s + j, true)) j += 4;
      if (j + 4 <= len) continue;
      while (j < len && buf[d + j] === src[s + j]) j++;
      if (j === len) return; // a repeat (bytes written after `end` are overwritten by the next key)
    }
  }

  private add(slot: number, h: number, len: number, prefix: Uint8Array): void {
    const k = this.n++;
    this.prefixes[k] = prefix;
    if (k === this.offs.length) {
      const grow = (a: Uint32Array) => {
        const b = new Uint32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.offs = grow(this.offs);
      this.lens = grow(this.lens);
      const hs = new Int32Array(this.hashes.length * 2);
      hs.set(this.hashes);
      this.hashes = hs;
    }
    this.offs[k] = this.end;
    this.lens[k] = len;
    this.hashes[k] = h;
    this.table[slot] = k + 1;
    this.end += len;
    if (this.n * 2 > this.table.length) this.rehash();
  }

  private rehash(): void {
    const t = new Int32Array(this.table.length * 2);
    const mask = t.length - 1;
    for (let k = 0; k < this.n; k++) {
      let slot = this.hashes[k]! & mask;
      while (t[slot] !== 0) slot = (slot + 1) & mask;
      t[slot] = k + 1;
    }
    this.table = t;
  }

  /** The committed keys' 53-bit HighwayHash keys, in commit order. */
  hash(): Float64Array {
    const n = this.n;
    const out = new Float64Array(n);
    if (n === 0) return out;
    const words = new Uint32Array(2 * n);
    hash64Batch(
      keyBytes,
      this.buf.subarray(0, this.end),
      this.offs.subarray(0, n),
      this.lens.subarray(0, n),
      words,
    );
    for (let i = 0; i < n; i++) out[i] = (words[2 * i + 1]! & 0x1fffff) * 4294967296 + words[2 * i]!;
    return out;
  }
}

const scratch = new KeyBytes();
const noPrefix = new Uint8Array(0);

/** Writes the key string `s` (any text) at `end` and commits it. */
function commitString(kb: KeyBytes, s: string): void {
  kb.reserve(s.length * 3);
  kb.commit(noPrefix, kb.buf, kb.view, kb.end, enc.encodeInto(s, kb.buf.subarray(kb.end)).written);
}

/**
 * The tokens of `v` as keys of TOKENS column `col` (`tokenKey(col, token)`), written as bytes: the same
 * tokens as `tokenize`, without a string per token (a token with non-ASCII text goes through a string).
 */
function commitTokens(kb: KeyBytes, col: number, v: string): void {
  const prefix = tokenKey(col, '');
  const pl = prefix.length; // ASCII digits and \u0001
  const n = v.length;
  let i = 0;
  while (i < n) {
    while (i < n && !isTokenChar(v.charCodeAt(i))) i++;
    let s = i;
    while (i < n && isTokenChar(v.charCodeAt(i))) i++;
    let e = i;
    while (s < e && (v.charCodeAt(s) === 46 || v.charCodeAt(s) === 45)) s++;
    while (e > s && (v.charCodeAt(e - 1) === 46 || v.charCodeAt(e - 1) === 45)) e--;
    if (e <= s) continue;
    if (e > s + tokenCharsMax) e = s + tokenCharsMax;
    kb.reserve(pl + 3 * (e - s));
    const buf = kb.buf;
    let o = kb.end;
    for (let j = 0; j < pl; j++) buf[o++] = prefix.charCodeAt(j);
    let ascii = true;
    for (let j = s; j < e; j++) {
      const c = v.charCodeAt(j);
      if (c > 127) {
        ascii = false;
        break;
      }
      buf[o++] = c;
    }
    if (ascii) kb.commit(noPrefix, buf, kb.view, kb.end, o - kb.end);
    else commitString(kb, prefix + v.slice(s, e));
  }
}

const utf8 = new TextDecoder();
/** Byte classes for the JSON scan: a separator (0), a token's ASCII byte, a token's non-ASCII byte, `"`, `\`. */
const classAscii = 1;
const classNonAscii = 2;
const classToken = classAscii | classNonAscii;
const classQuote = 4;
const classEscape = 8;
/** `.` and `-`: token characters a token does not start or end with (trimmed). */
const classTrim = 16;
const byteClass = Uint8Array.from({ length: 256 }, (_, b) =>
  b === 0x22
    ? classQuote
    : b === 0x5c
      ? classEscape
      : b > 127
        ? classNonAscii
        : b === 46 || b === 45
          ? classAscii | classTrim
          : isTokenChar(b)
            ? classAscii
            : 0,
);

/**
 * The distinct tokens `commitTokensJson` has met in one call, by their bytes in its JSON text: an
 * open-addressing table (entry numbers from 1; 0 is empty) and per entry its hash, start and length. A
 * repeated token is found here, in one column's text, instead of in the KeyBytes table (fewer loads and
 * no prefix to tell apart): a 1,024-row page of HDFS lines holds about 9,000 tokens, 830 distinct.
 */
const seenSlots = new Int32Array(8192);
const seenMax = seenSlots.length / 2 - 1;
const seenHash = new Int32Array(seenMax + 1);
const seenAt = new Int32Array(seenMax + 1);
const seenLen = new Int32Array(seenMax + 1);

/**
 * The tokens of a TOKENS column's cells read from their JSON text (the page's section before compression:
 * `JSON.stringify` of the cells, UTF-8), as keys of column `col`: the same keys as `commitTokens` on
 * each string cell, and a repeated token is only scanned, hashed cheaply and compared, never copied.
 * Escapes are separators (every character JSON escapes is one), except a lone surrogate (`\udXXX`), a
 * token character: when there is one this takes nothing and returns false (the caller takes the strings).
 */
function commitTokensJson(kb: KeyBytes, col: number, json: Uint8Array): boolean {
  // A lone surrogate anywhere: the strings instead (checked first, so no key is taken twice over).
  // (a Buffer's indexOf is a memchr; a Uint8Array's compares byte by byte in a loop: 10% of this function)
  const jb = Buffer.from(json.buffer, json.byteOffset, json.byteLength);
  for (let k = jb.indexOf(0x5c); k >= 0; k = jb.indexOf(0x5c, k + 2))
    if (json[k + 1] === 0x75 && (json[k + 2] === 0x64 || json[k + 2] === 0x44)) return false;
  const prefix = enc.encode(tokenKey(col, ''));
  const prefixHash = fnv(prefix, 0, prefix.length, fnvBasis);
  const jv = new DataView(json.buffer, json.byteOffset, json.byteLength);
  const n = json.length;
  const slots = seenSlots;
  const mask = slots.length - 1;
  slots.fill(0);
  let seen = 0;
  let i = 0;
  while (i < n) {
    if (json[i] !== 0x22) {
      i++; // between cells: brackets, commas, null
      continue;
    }
    i++;
    for (;;) {
      // to the next token or the end of the string (one class lookup a byte)
      let k = byteClass[json[i]!]!;
      while (k === 0) k = byteClass[json[++i]!]!;
      if (i >= n) throw new Error('commitTokensJson: an unterminated string in a column section');
      if (k === classQuote) break;
      if (k === classEscape) {
        i += json[i + 1] === 0x75 ? 6 : 2; // an escaped character: a separator
        continue;
      }
      const s0 = i;
      const k0 = k;
      let kinds = 0;
      // hashed while scanned: most tokens are taken whole, and most are repeats
      let h = prefixHash;
      let c = json[i]!;
      do {
        kinds |= k;
        h = Math.imul(h ^ c, 0x01000193);
        c = json[++i]!;
        k = byteClass[c]!;
      } while ((k & classToken) !== 0);
      const len = i - s0;
      if (
        ((k0 | byteClass[json[i - 1]!]!) & classTrim) === 0 &&
        len <= tokenCharsMax &&
        (kinds & classNonAscii) === 0
      ) {
        // taken whole (most tokens): a repeat in this text is found in `seenSlots`, compared word by word
        let slot = h & mask;
        let repeat = false;
        for (let x = slots[slot]!; x !== 0; x = slots[slot]!) {
          if (seenHash[x] === h && seenLen[x] === len) {
            const o = seenAt[x]!;
            let j = 0;
            while (j + 4 <= len && jv.getUint32(o + j, true) === jv.getUint32(s0 + j, true)) j += 4;
            if (j + 4 > len) while (j < len && json[o + j] === json[s0 + j]) j++;
            if (j === len) {
              repeat = true;
              break;
            }
          }
          slot = (slot + 1) & mask;
        }
        if (repeat) continue;
        if (seen < seenMax) {
          seen++;
          slots[slot] = seen;
          seenHash[seen] = h;
          seenAt[seen] = s0;
          seenLen[seen] = len;
        }
        kb.commitHashed(prefix, json, jv, s0, len, h);
        continue;
      }
      let s = s0;
      let e = i;
      while (s < e && (byteClass[json[s]!]! & classTrim) !== 0) s++;
      while (e > s && (byteClass[json[e - 1]!]! & classTrim) !== 0) e--;
      if (e <= s) continue;
      if ((kinds & classNonAscii) === 0) kb.commit(prefix, json, jv, s, Math.min(e - s, tokenCharsMax));
      else {
        const t = utf8.decode(json.subarray(s, e));
        commitString(kb, tokenKey(col, t.length > tokenCharsMax ? t.slice(0, tokenCharsMax) : t));
      }
    }
    i++;
  }
  return true;
}

/**
 * The values of a declared column read from its JSON text (`JSON.stringify` of its cells, UTF-8) as keys of
 * column `col` (`valueKey(col, value)`): a string without escapes and a number are their bytes between
 * the separators, a string with escapes goes through `JSON.parse`; nulls are skipped. A string is scanned
 * four bytes at a time for its closing quote or a backslash and hashed a word at a time as it is scanned
 * (`wordHash`: every key this takes from bytes is hashed so, and an escaped string's value, hashed by
 * `commitString`, never equals an unescaped one's, so equal keys always meet with equal hashes).
 */
function commitValuesJson(kb: KeyBytes, col: number, json: Uint8Array): void {
  const prefix = enc.encode(valueKey(col, ''));
  const prefixHash = fnv(prefix, 0, prefix.length, fnvBasis);
  const jv = new DataView(json.buffer, json.byteOffset, json.byteLength);
  const n = json.length - 1; // the closing bracket
  // the string last committed, [lastAt, lastAt + lastLen): runs of one value are common (a level)
  let lastAt = -1;
  let lastLen = -1;
  let i = 1;
  while (i < n) {
    const c = json[i]!;
    if (c === 0x2c) {
      i++;
      continue;
    }
    if (c === 0x22) {
      const s = ++i;
      let h = prefixHash;
      // whole words while none holds a quote or a backslash (exact for any bytes: a byte of w equal to
      // 0x22 is a zero byte of w ^ 0x22222222, and z - 0x01010101 & ~z & 0x80808080 is non-zero exactly
      // when z has a zero byte), then bytes
      while (i + 4 <= n) {
        const w = jv.getUint32(i, true);
        const q = w ^ 0x22222222;
        const x = w ^ 0x5c5c5c5c;
        if ((((q - 0x01010101) & ~q) | ((x - 0x01010101) & ~x)) & 0x80808080) break;
        h = Math.imul(h ^ w, 0x01000193);
        i += 4;
      }
      let escaped = false;
      for (;;) {
        if (i >= n) throw new Error('commitValuesJson: an unterminated string in a column section');
        const b = json[i]!;
        if (b === 0x22) break;
        if (b === 0x5c) {
          escaped = true;
          i++;
        }
        h = Math.imul(h ^ b, 0x01000193);
        i++;
      }
      const len = i - s;
      i++;
      if (escaped) {
        commitString(kb, valueKey(col, JSON.parse(utf8.decode(json.subarray(s - 1, i))) as string));
        continue;
      }
      if (len === lastLen) {
        let k = 0;
        while (k + 4 <= len && jv.getUint32(s + k, true) === jv.getUint32(lastAt + k, true)) k += 4;
        if (k + 4 > len) while (k < len && json[s + k] === json[lastAt + k]) k++;
        if (k === len) continue;
      }
      kb.commitHashed(prefix, json, jv, s, len, h);
      lastAt = s;
      lastLen = len;
      continue;
    }
    const s = i;
    while (i < n && json[i] !== 0x2c) i++;
    // a number (not null)
    if (json[s] !== 0x6e) kb.commitHashed(prefix, json, jv, s, i - s, wordHash(json, jv, s, i, prefixHash));
  }
}

/** The hash `commitValuesJson` gives b[s, e) from state h: its whole words, then its last bytes. */
function wordHash(b: Uint8Array, bv: DataView, s: number, e: number, h: number): number {
  let i = s;
  for (; i + 4 <= e; i += 4) h = Math.imul(h ^ bv.getUint32(i, true), 0x01000193);
  for (; i < e; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h;
}

/**
 * The distinct 53-bit keys of some rows under the stream's INDEX clause, unsorted: the HighwayHash keys
 * of `valueKey(col, value)` and `tokenKey(col, token)` for each distinct value and token (`tokenize`),
 * built from bytes (a repeated token costs a table probe, not a string and a hash). `columnsJson`, when
 * given, is each column's cells as JSON text (UTF-8): TOKENS columns are then read from it.
 */
export function rowKeys(def: StreamDef, rows: Row[], columnsJson?: Uint8Array[]): Float64Array {
  const columns = def.columns.map((_, c) => rows.map((r) => r[c] ?? null));
  return columnKeys(def, columns, columnsJson);
}

/** `rowKeys` of rows given as columns: `columns[c][i]` is row i's cell of column c (a block page's shape). */
export function columnKeys(def: StreamDef, columns: Cell[][], columnsJson?: Uint8Array[]): Float64Array {
  const kb = scratch;
  kb.reset();
  // keys from the WebAssembly scans (TOKENS columns, and declared ones given as JSON text alone):
  // distinct within a column, and no other column's (each key starts with its column's number and the
  // kind's byte)
  let scanned: Float64Array[] | undefined;
  // the columns taken by them, as TOKENS and as values (a column may be named twice in the INDEX clause)
  let tokenCols: number[] | undefined;
  let valueCols: number[] | undefined;
  for (const d of def.index) {
    const col = def.columns.findIndex((c) => c.name === d.column);
    let cells = columns[col] ?? [];
    const json = columnsJson?.[col];
    // a column given as JSON text alone (the byte parser's string columns): its cells are in the text
    const textOnly = json !== undefined && cells.length === 0;
    if (d.tokens) {
      if (tokenCols?.includes(col)) continue;
      const keys = json && tokenKeysOfJson(enc.encode(tokenKey(col, '')), json, keyBytes);
      if (keys) {
        (scanned ??= []).push(keys);
        (tokenCols ??= []).push(col);
        continue;
      }
      if (json && commitTokensJson(kb, col, json)) continue;
      if (textOnly) cells = JSON.parse(utf8.decode(json)) as Cell[];
      for (const v of cells) if (typeof v === 'string') commitTokens(kb, col, v);
      continue;
    }
    if (textOnly) {
      if (valueCols?.includes(col)) continue;
      const keys = valueKeysOfJson(enc.encode(valueKey(col, '')), json, keyBytes);
      if (keys) {
        (scanned ??= []).push(keys);
        (valueCols ??= []).push(col);
      } else commitValuesJson(kb, col, json);
      continue;
    }
    // Few distinct values: a Set of the cells (their strings' hashes are cached) before any bytes.
    const set = new Set<string | number>();
    let last: Cell | undefined;
    for (let i = 0; i < cells.length; i++) {
      const v = cells[i];
      if (v === last) continue; // runs of one value are common (a level, a component)
      last = v;
      if (v !== null && v !== undefined) set.add(v);
    }
    for (const v of set) commitString(kb, valueKey(col, v));
  }
  const keys = kb.hash();
  return scanned ? concatKeys([keys, ...scanned]) : keys;
}

/** Arrays of keys one after another, in one array (the one array itself when there is one). */
export function concatKeys(parts: Float64Array[]): Float64Array {
  if (parts.length === 1) return parts[0]!;
  let n = 0;
  for (const k of parts) n += k.length;
  const all = new Float64Array(n);
  let o = 0;
  for (const k of parts) {
    all.set(k, o);
    o += k.length;
  }
  return all;
}
