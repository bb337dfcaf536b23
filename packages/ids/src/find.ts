// A content's search in a buffer (the payload steps' `content`, with its bounds and nocase): the
// runtime's search for long exact ones, a search anchored on the needle's rarest byte for long caseless
// ones, a plain loop for the rest.

function lower(b: number): number {
  return b >= 65 && b <= 90 ? b + 32 : b;
}

/** The runtime's search (memchr for a byte), on any Uint8Array. */
const bufferIndexOf = Buffer.prototype.indexOf;

/**
 * Where `needle` first occurs in `hay` at or after `from`, ending by `to` (-1: nowhere); `nocase`: ASCII
 * letters in either case. Its property test compares it with a plain loop (`test/find.test.ts`).
 */
export function find(hay: Uint8Array, needle: Uint8Array, from: number, to: number, nocase: boolean): number {
  const n = needle.length;
  const start = Math.max(0, from);
  const end = Math.min(to, hay.length);
  if (n === 0) return start <= to ? start : -1;
  const last = end - n;
  if (last < start) return -1;
  if (!nocase && last - start >= 32) {
    // a longer search: the runtime's (its first occurrence is the first within the bounds, or none is)
    const at = bufferIndexOf.call(hay, needle, start);
    return at >= 0 && at <= last ? at : -1;
  }
  if (nocase && last - start >= 32 && hay.length - end <= 1024 + 4 * (end - start)) {
    // a longer caseless search: candidates where one byte of the needle sits, found by the runtime's byte
    // search (memchr: 1,500 bytes in about 35 ns, `findLoop` about 1,000), in both forms for a letter;
    // not where that search could run far past the window's end
    return findAnchored(hay, needle, start, last, anchorOf(needle));
  }
  return findLoop(hay, needle, start, last, nocase);
}

/** `find` from `start` to `last` (the last start that fits) one start at a time. */
function findLoop(hay: Uint8Array, needle: Uint8Array, start: number, last: number, nocase: boolean): number {
  const n = needle.length;
  // the first byte tested in its one or two forms before the rest
  const f = nocase ? lower(needle[0]!) : needle[0]!;
  const fu = nocase && isLetter(f) ? f - 32 : f;
  outer: for (let i = start; i <= last; i++) {
    const a = hay[i]!;
    if (a !== f && a !== fu) continue;
    for (let j = 1; j < n; j++) {
      const x = hay[i + j]!;
      const y = needle[j]!;
      if (x !== y && !(nocase && lower(x) === lower(y))) continue outer;
    }
    return i;
  }
  return -1;
}

/**
 * Candidates tried by the byte search before `findAnchored` looks at how dense they are: more than one in
 * `anchorGapMin` bytes (the byte everywhere, where each search call costs more than the bytes it skips),
 * and the plain loop takes the rest.
 */
const anchorTriesMin = 16;
const anchorGapMin = 16;

/**
 * How common a byte is in the traffic rules search, 0 (rare) to 7: the bytes of text protocols' syntax,
 * digits, blanks, line ends, NUL and 0xFF; letters by their frequency in English (e t a o i n s h r
 * most), a little above a byte as common, as both their forms are searched. `anchorOf` takes the rarest.
 */
const byteCommonness = (() => {
  const c = new Uint8Array(256);
  for (const b of [0x00, 0x20, 0x2f]) c[b] = 6;
  for (const b of '.=&:-\r\n0123456789') c[b.charCodeAt(0)] = 4;
  c[0xff] = 4;
  for (const b of '_,;"\'%?()<>+#*!\t') c[b.charCodeAt(0)] = 2;
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  for (let r = 0; r < letters.length; r++) {
    const v = r < 9 ? 7 : r < 18 ? 5 : 3;
    c[letters.charCodeAt(r)] = v;
    c[letters.charCodeAt(r) - 32] = v;
  }
  return c;
})();

function isLetter(b: number): boolean {
  return (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7a;
}

/** The index in `needle` (not empty) of its rarest byte (`byteCommonness`), the first of those. */
function anchorOf(needle: Uint8Array): number {
  let k = 0;
  let best = byteCommonness[needle[0]!]!;
  for (let j = 1; j < needle.length && best > 0; j++) {
    const c = byteCommonness[needle[j]!]!;
    if (c < best) {
      best = c;
      k = j;
    }
  }
  return k;
}

/** Whether `needle` matches `hay` at `i` caseless (it fits there). */
function matchesCaseless(hay: Uint8Array, needle: Uint8Array, i: number): boolean {
  for (let j = 0; j < needle.length; j++) if (lower(hay[i + j]!) !== lower(needle[j]!)) return false;
  return true;
}

/**
 * `find` caseless from `start` to `last` (the last start that fits), by the occurrences of `needle[k]`: of
 * both its forms, in order, for a letter.
 */
function findAnchored(hay: Uint8Array, needle: Uint8Array, start: number, last: number, k: number): number {
  const a = needle[k]!;
  const letter = isLetter(a);
  const lo = letter ? a | 0x20 : a;
  const up = letter ? lo - 32 : -1;
  let pl = bufferIndexOf.call(hay, lo, start + k);
  let pu = letter ? bufferIndexOf.call(hay, up, start + k) : -1;
  for (let tries = 1; ; tries++) {
    const fromLo = pu < 0 || (pl >= 0 && pl < pu);
    const p = fromLo ? pl : pu;
    if (p < 0 || p - k > last) return -1;
    if (matchesCaseless(hay, needle, p - k)) return p - k;
    if (fromLo) pl = bufferIndexOf.call(hay, lo, p + 1);
    else pu = bufferIndexOf.call(hay, up, p + 1);
    if (tries >= anchorTriesMin && p - start < anchorGapMin * tries)
      return findLoop(hay, needle, p - k + 1, last, true);
  }
}
