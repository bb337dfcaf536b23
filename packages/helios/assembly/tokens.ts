// A TOKENS column's distinct keys from its JSON text, in AssemblyScript (built to build/tokens.wasm by
// `npm run build:wasm -w @strata/helios`; loaded by src/tokenscan.ts). The same keys as keys.ts's
// `commitTokensJson`, which stays the reference and the fallback: the JSON text of a page's column (the
// cells as `JSON.stringify` writes them, UTF-8), every token of every string cell (runs of letters,
// digits, `_ - .` and bytes above ASCII, trimmed of `.` and `-` at both ends, cut to `tokenCharsMax`
// bytes, every token of a cell; escapes are separators), each distinct key (prefix + token)
// written once to `out`, with its offset and length, for one HighwayHash batch.
//
// Everything lives at addresses the caller passes (it lays them out from `base` up); the byte classes
// are a table at `base`, filled by `setup`.

/** Where the byte class table starts; the caller's regions start past it. */
const base: usize = 65536;
const classAscii: u32 = 1;
const classNonAscii: u32 = 2;
const classToken: u32 = classAscii | classNonAscii;
const classQuote: u32 = 4;
const classEscape: u32 = 8;
const classTrim: u32 = 16;
/** As formats.ts's. */
const tokenCharsMax: usize = 128;
/** Slots of the dedupe table at the start of a call (doubled while over half full). */
const slotsFirst: u32 = 4096;

/** The caller's regions start here. */
export function regionsFrom(): usize {
  return base + 256;
}

/** Fills the byte class table (as keys.ts's `byteClass`). */
export function setup(): void {
  for (let b: u32 = 0; b < 256; b++) {
    let k: u32 = 0;
    if (b == 0x22) k = classQuote;
    else if (b == 0x5c) k = classEscape;
    else if (b > 127) k = classNonAscii;
    else if (b == 46 || b == 45) k = classAscii | classTrim;
    else if ((b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95) k = classAscii;
    store<u8>(base + b, k);
  }
}

@inline
function cls(p: usize): u32 {
  return <u32>load<u8>(base + <usize>load<u8>(p));
}

/** The low `n` bytes (n < 8) of a word as a mask. */
@inline
function lowBytes(n: usize): u64 {
  return (<u64>1 << (<u64>n << 3)) - 1;
}

/** A hash of bytes [p, p + len): whole words, the last masked (the caller keeps 8 readable bytes past). */
@inline
function hashBytes(p: usize, len: usize): u32 {
  let h: u64 = 0x9e3779b97f4a7c15 ^ <u64>len;
  let j: usize = 0;
  for (; j + 8 <= len; j += 8) h = (h ^ load<u64>(p + j)) * 0xff51afd7ed558ccd;
  if (j < len) h = (h ^ (load<u64>(p + j) & lowBytes(len - j))) * 0xff51afd7ed558ccd;
  h ^= h >> 32;
  h *= 0xc4ceb9fe1a85ec53;
  return <u32>(h >> 32);
}

/** Bytes [a, a + len) equal bytes [b, b + len) (8 readable bytes past each). */
@inline
function sameBytes(a: usize, b: usize, len: usize): bool {
  let j: usize = 0;
  for (; j + 8 <= len; j += 8) if (load<u64>(a + j) != load<u64>(b + j)) return false;
  return j >= len || ((load<u64>(a + j) ^ load<u64>(b + j)) & lowBytes(len - j)) == 0;
}

let mask: u32 = 0;
/** Keys written by the current call, and the bytes they take at `out`. */
let d: u32 = 0;
let o: usize = 0;

/** A table slot: the key's hash in the high word, its number + 1 in the low one (0: empty). */
@inline
function slotOf(h: u32, k: u32): u64 {
  return (<u64>h << 32) | <u64>(k + 1);
}

/** Puts key k (its hash in `hashes`) into the table of `mask + 1` slots. */
@inline
function place(table: usize, hashes: usize, k: u32): void {
  const h = load<u32>(hashes + (<usize>k << 2));
  let slot = h & mask;
  while (load<u64>(table + (<usize>slot << 3)) != 0) slot = (slot + 1) & mask;
  store<u64>(table + (<usize>slot << 3), slotOf(h, k));
}

/**
 * Adds key `prefix` + bytes [src, src + len) unless the table has it: written at `out + o` (a word at a
 * time up to 32 bytes; 8 bytes past `out + o + pl + len` are inside `out`'s room), its offset, length and
 * dedupe hash recorded as key `d`; the table doubles while over half full, up to `slotsMax` slots.
 */
@inline
function addKey(
  src: usize,
  len: usize,
  prefix: usize,
  pl: usize,
  out: usize,
  offs: usize,
  lens: usize,
  hashes: usize,
  table: usize,
  slotsMax: u32,
): void {
  const h = hashBytes(src, len);
  const total = <u32>(pl + len);
  let slot = h & mask;
  for (;;) {
    const x = load<u64>(table + (<usize>slot << 3));
    if (x == 0) break;
    const q = <u32>x - 1;
    if (
      <u32>(x >> 32) == h &&
      load<u32>(lens + (<usize>q << 2)) == total &&
      sameBytes(out + <usize>load<u32>(offs + (<usize>q << 2)) + pl, src, len)
    )
      return; // a repeat
    slot = (slot + 1) & mask;
  }
  // a new key: prefix, then the bytes (short ones, most, word by word: memory.copy is a call into C)
  const at = out + o;
  if (pl <= 8) store<u64>(at, load<u64>(prefix));
  else memory.copy(at, prefix, pl);
  if (len <= 32) for (let j: usize = 0; j < len; j += 8) store<u64>(at + pl + j, load<u64>(src + j));
  else memory.copy(at + pl, src, len);
  store<u32>(offs + (<usize>d << 2), <u32>o);
  store<u32>(lens + (<usize>d << 2), total);
  store<u32>(hashes + (<usize>d << 2), h);
  store<u64>(table + (<usize>slot << 3), slotOf(h, d));
  d++;
  o += total;
  if (d * 2 > mask + 1 && mask + 1 < slotsMax) {
    mask = (mask << 1) | 1;
    memory.fill(table, 0, (<usize>mask + 1) << 3);
    for (let q: u32 = 0; q < d; q++) place(table, hashes, q);
  }
}

/**
 * The distinct keys of the tokens in text[0, n) (text[n] must be `"`, and 8 bytes past it readable), each
 * `prefix` (pl bytes) + token, written one after another at `out`: key k at out + offs[k] (an offset
 * from `out`), lens[k] bytes. `table` has room for `slotsMax` u64 slots (a power of two, at least twice
 * the keys there can be: n / 2 + 2), `hashes` and `offs` and `lens` for n / 2 + 2 entries, `out` for
 * that many prefixes plus n bytes and 16 more (a key is written a word at a time), `prefix` 8 readable
 * bytes. Returns how many keys, or -1 when the text needs the
 * strings (a token with bytes above ASCII, or a lone surrogate's escape `\udXXX`), or -2 when a string
 * is not terminated.
 */
export function tokenKeys(
  text: usize,
  n: usize,
  prefix: usize,
  pl: usize,
  out: usize,
  offs: usize,
  lens: usize,
  hashes: usize,
  table: usize,
  slotsMax: u32,
): i32 {
  mask = slotsFirst - 1;
  if (mask >= slotsMax) mask = slotsMax - 1;
  memory.fill(table, 0, (<usize>mask + 1) << 3);
  d = 0;
  o = 0;
  let i: usize = 0;
  while (i < n) {
    if (load<u8>(text + i) != 0x22) {
      i++; // between cells: brackets, commas, null, numbers
      continue;
    }
    i++;
    for (;;) {
      let k = cls(text + i);
      while (k == 0) k = cls(text + ++i);
      if (i >= n) return -2;
      if (k == classQuote) break;
      if (k == classEscape) {
        if (load<u8>(text + i + 1) == 0x75) {
          const c = load<u8>(text + i + 2);
          if (c == 0x64 || c == 0x44) return -1; // a lone surrogate: a token character, as a string
          i += 6;
        } else i += 2;
        if (i >= n) return -2;
        continue;
      }
      let s = i;
      let kinds = k;
      do {
        kinds |= k;
        k = cls(text + ++i);
      } while ((k & classToken) != 0);
      let e = i;
      if (((cls(text + s) | cls(text + e - 1)) & classTrim) != 0) {
        while (s < e && (cls(text + s) & classTrim) != 0) s++;
        while (e > s && (cls(text + e - 1) & classTrim) != 0) e--;
        if (e <= s) continue;
      }
      if ((kinds & classNonAscii) != 0) return -1;
      let len = e - s;
      if (len > tokenCharsMax) len = tokenCharsMax;
      addKey(text + s, len, prefix, pl, out, offs, lens, hashes, table, slotsMax);
    }
    i++;
  }
  return <i32>d;
}

/**
 * The distinct keys of a declared column's values in its JSON text (`JSON.stringify` of its cells: strings,
 * numbers, nulls), as keys.ts's `commitValuesJson` takes them: a string's bytes between its quotes, a
 * number's text, nulls skipped; each key `prefix` + those bytes, written and counted as `tokenKeys` does
 * (same regions). Returns how many keys, or -1 when a string has an escape (the strings take the
 * text), or -2 when a string is not terminated.
 */
export function valueKeys(
  text: usize,
  n: usize,
  prefix: usize,
  pl: usize,
  out: usize,
  offs: usize,
  lens: usize,
  hashes: usize,
  table: usize,
  slotsMax: u32,
): i32 {
  mask = slotsFirst - 1;
  if (mask >= slotsMax) mask = slotsMax - 1;
  memory.fill(table, 0, (<usize>mask + 1) << 3);
  d = 0;
  o = 0;
  const end = n - 1; // the closing bracket
  // the string last taken, [lastAt, lastAt + lastLen): runs of one value are common (a level)
  let lastAt: usize = 0;
  let lastLen: usize = usize.MAX_VALUE;
  let i: usize = 1;
  while (i < end) {
    const c = load<u8>(text + i);
    if (c == 0x2c) {
      i++;
      continue;
    }
    let s = i;
    let len: usize;
    if (c == 0x22) {
      s = ++i;
      for (;;) {
        if (i >= end) return -2;
        const b = load<u8>(text + i);
        if (b == 0x22) break;
        if (b == 0x5c) return -1;
        i++;
      }
      len = i - s;
      i++;
      if (len == lastLen && sameBytes(text + lastAt, text + s, len)) continue;
      lastAt = s;
      lastLen = len;
    } else {
      while (i < end && load<u8>(text + i) != 0x2c) i++;
      if (c == 0x6e) continue; // null
      len = i - s;
    }
    addKey(text + s, len, prefix, pl, out, offs, lens, hashes, table, slotsMax);
  }
  return <i32>d;
}
