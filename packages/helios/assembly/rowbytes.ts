// The byte parser's page loop in AssemblyScript (built to build/rowbytes.wasm by `npm run build:wasm -w
// @strata/helios`; loaded by src/rowbytes.ts, whose JavaScript loop stays the reference and the
// fallback). For the lines of a page of an ASCII chunk: the template matched along the path of longest
// runs (src/rowbytes.ts says why that is the regex's match), each field's range written out, the string
// columns' JSON text written as `JSON.stringify` writes it, and the integer columns' digits read. A line
// the matcher does not take is handed back to the caller (it goes to `RowParser`).
//
// Everything lives at addresses the caller passes (it lays them out from `regionsFrom()` up), described
// by a frame of u32 words; the byte class table is at `base`, filled by `setup`.

const base: usize = 65536;

/** The template's steps, as src/rowbytes.ts numbers them. */
const opLiteral: u32 = 0;
const opSpaces: u32 = 1;
const opNonSpace: u32 = 2;
const opNotChar: u32 = 3;
const opRest: u32 = 4;
const opNonSpaceSpaces: u32 = 5;
const opNotCharChar: u32 = 6;
const opNotCharBlanksChar: u32 = 7;

/** As src/rowbytes.ts's: `\s`, a byte `JSON.stringify` escapes, a line terminator. */
const classSpace: u32 = 1;
const classEscape: u32 = 2;
const classTerminator: u32 = 4;

/** The frame's words (u32 each, at `frame + 4 * word`). */
const fOps = 0; // the steps: (op, argument) pairs of i32
const fOpCount = 1; // how many steps
const fText = 2; // the page's bytes; 16 readable bytes past them
const fEnds = 3; // u32 per line: where it ends, as a chunk offset (its newline, or the chunk's end)
const fBias = 4; // the chunk offset of fText's first byte: where the page's first line starts
const fLines = 5; // lines in the page
const fFields = 6; // per line, per field: its start and end, i32 chunk offsets
const fFieldCount = 7;
const fJson = 8; // per JSON column, 4 words: its field, its text's address, the text's length so far, its room
const fJsonCount = 9;
const fInts = 10; // per INT column, 2 words: its field, the address of its values (f64 a line; -1: not digits)
const fIntCount = 11;
const fLineBytesMax = 12;
const fClasses = 13; // scratch: u32 per field, the classes of its bytes
/** Why `pageLines` stopped at a line: see there. */
const fStop = 14;
/** Per `Date` + `Time` column, 3 words: its fields, the address of its values (f64 a line; NaN: not HDFS's). */
const fDates = 15;
const fDateCount = 16;

const stopDone: u32 = 0;
const stopNoMatch: u32 = 1;
const stopRoom: u32 = 2;

export function regionsFrom(): usize {
  return base + 256;
}

/** Fills the byte class table (as src/rowbytes.ts's `byteClass`). */
export function setup(): void {
  for (let b: u32 = 0; b < 256; b++) {
    let k: u32 = 0;
    if ((b >= 9 && b <= 13) || b == 32) k |= classSpace;
    if (b < 0x20 || b == 0x22 || b == 0x5c) k |= classEscape;
    if (b == 10 || b == 13) k |= classTerminator;
    store<u8>(base + b, <u8>k);
  }
}

@inline
function word(frame: usize, w: usize): u32 {
  return load<u32>(frame + (w << 2));
}

@inline
function cls(p: usize): u32 {
  return <u32>load<u8>(base + <usize>load<u8>(p));
}

const ones: u64 = 0x0101010101010101;
const highs: u64 = 0x8080808080808080;

/**
 * The bytes of w (eight ASCII bytes) below `below` or equal to `"`, `\` or c, as their top bits; the
 * lowest set bit is exact (a byte sets its top bit in w - n * ones when no byte below it did: no borrow
 * reaches it), the ones above it may not be.
 */
@inline
function stops(w: u64, below: u64, c: u64): u64 {
  return ((w - below * ones) | ((w ^ (0x22 * ones)) - ones) | ((w ^ (0x5c * ones)) - ones) | ((w ^ c) - ones)) &
    ~w & highs;
}

/** The offset of the lowest stop in a word from `stops`. */
@inline
function firstStop(m: u64): usize {
  return <usize>(ctz(m) >> 3);
}

/**
 * Matches [s, e) against the steps along the path of longest runs, as src/rowbytes.ts's `match` does
 * (the same steps, the same backtrack), writing each field's range (chunk offsets: address - text +
 * bias) at `row` and its bytes' classes at `classes`. False where that path fails.
 */
function match(
  ops: usize,
  opCount: u32,
  s: usize,
  e: usize,
  row: usize,
  classes: usize,
  shift: usize,
): bool {
  let p = s;
  for (let k: u32 = 0; k < opCount; k++) {
    const op = load<u32>(ops + (<usize>k << 3));
    const arg = load<u32>(ops + (<usize>k << 3) + 4);
    if (op == opLiteral) {
      if (p < e && <u32>load<u8>(p) == arg) p++;
      else return false;
    } else if (op == opSpaces) {
      if (p >= e || (cls(p) & classSpace) == 0) return false;
      p++;
      while (p < e && (cls(p) & classSpace) != 0) p++;
    } else if (op == opNonSpace || op == opNonSpaceSpaces) {
      const p0 = p;
      let c: u32 = 0;
      // eight bytes at a time while none is a blank, a control, `"` or `\`; then from the first such byte,
      // byte by byte while its class adds to the field's (a quote) and back to words after it
      for (;;) {
        if (p + 8 <= e) {
          const m = stops(load<u64>(p), 0x21, 0x22 * ones);
          if (m == 0) {
            p += 8;
            continue;
          }
          p += firstStop(m);
        }
        if (p >= e) break;
        const x = cls(p);
        if ((x & classSpace) != 0) break;
        c |= x;
        p++;
      }
      store<i32>(row + (<usize>arg << 3), <i32>(p0 - shift));
      store<i32>(row + (<usize>arg << 3) + 4, <i32>(p - shift));
      store<u32>(classes + (<usize>arg << 2), c);
      if (op == opNonSpaceSpaces) {
        if (p >= e) return false;
        p++;
        while (p < e && (cls(p) & classSpace) != 0) p++;
      }
    } else if (op == opNotChar || op == opNotCharChar || op == opNotCharBlanksChar) {
      const f = arg & 0xffff;
      const ch = arg >>> 16;
      const chs = <u64>ch * ones;
      const p0 = p;
      let c: u32 = 0;
      for (;;) {
        if (p + 8 <= e) {
          const m = stops(load<u64>(p), 0x20, chs);
          if (m == 0) {
            p += 8;
            continue;
          }
          p += firstStop(m);
        }
        if (p >= e) break;
        const x = <u32>load<u8>(p);
        if (x == ch) break;
        c |= cls(p);
        p++;
      }
      let fe = p;
      if (op == opNotCharChar) {
        if (p >= e) return false;
        p++;
      } else if (op == opNotCharBlanksChar) {
        // the regex's backtrack (see src/rowbytes.ts): the run less its last byte, a blank
        if (p >= e || p == p0 || (cls(p - 1) & classSpace) == 0) return false;
        fe = p - 1;
        p++;
      }
      store<i32>(row + (<usize>f << 3), <i32>(p0 - shift));
      store<i32>(row + (<usize>f << 3) + 4, <i32>(fe - shift));
      store<u32>(classes + (<usize>f << 2), c);
    } else {
      // opRest: `.*` then the end, so no line terminator in it
      const p0 = p;
      let c: u32 = 0;
      for (;;) {
        if (p + 8 <= e) {
          const m = stops(load<u64>(p), 0x20, 0x22 * ones);
          if (m == 0) {
            p += 8;
            continue;
          }
          p += firstStop(m);
        }
        if (p >= e) break;
        c |= cls(p);
        p++;
      }
      if ((c & classTerminator) != 0) return false;
      store<i32>(row + (<usize>arg << 3), <i32>(p0 - shift));
      store<i32>(row + (<usize>arg << 3) + 4, <i32>(p - shift));
      store<u32>(classes + (<usize>arg << 2), c);
    }
  }
  return p == e;
}

/** Two ASCII digits at p as their value, else -1. */
@inline
function twoDigits(p: usize): i32 {
  const x = <u32>load<u8>(p) - 48;
  const y = <u32>load<u8>(p + 1) - 48;
  return x <= 9 && y <= 9 ? <i32>(x * 10 + y) : -1;
}

/** Days from 1970-01-01 to year y, month m (1-12), day 1 (proleptic Gregorian; y at least 0). */
function daysFrom(y: i32, m: i32): i64 {
  if (m <= 2) y--;
  const era = y / 400;
  const yoe = y - era * 400;
  const doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5;
  const doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return <i64>era * 146097 + <i64>doe - 719468;
}

/** The days of month m (1-12) of year y (Gregorian). */
function monthDays(y: i32, m: i32): i32 {
  if (m == 2) return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28;
  return m == 4 || m == 6 || m == 9 || m == 11 ? 30 : 31;
}

/**
 * Epoch ms of `yyMMdd` at d and `HHmmss` at t as formats.ts's `hdfsDateTimeBytes` gives it (Date.UTC(2000 +
 * yy, MM - 1, dd) plus the time), or NaN when a part is not two digits or is out of its range (the caller
 * then reads the fields in JavaScript, which gives no time for them).
 */
function hdfsMs(d: usize, t: usize): f64 {
  const yy = twoDigits(d);
  const mo = twoDigits(d + 2);
  const dd = twoDigits(d + 4);
  const hh = twoDigits(t);
  const mi = twoDigits(t + 2);
  const ss = twoDigits(t + 4);
  if ((yy | mo | dd | hh | mi | ss) < 0) return NaN;
  if (mo < 1 || mo > 12 || dd < 1 || dd > monthDays(2000 + yy, mo) || hh > 23 || mi > 59 || ss > 60)
    return NaN;
  const day = daysFrom(2000 + yy, mo) + <i64>(dd - 1);
  return <f64>(day * 86400000 + <i64>((hh * 60 + mi) * 60 + ss) * 1000);
}

/** Hex digits as `JSON.stringify` writes a `\u00XX` escape's: lowercase. */
@inline
function hexDigit(x: u32): u8 {
  return <u8>(x < 10 ? 48 + x : 87 + x);
}

/** Writes [s, s + len) (ASCII) at o as `JSON.stringify` escapes a string's characters; returns the end. */
function escaped(s: usize, len: usize, o: usize): usize {
  for (let q = s; q < s + len; q++) {
    const x = <u32>load<u8>(q);
    if (x >= 0x20 && x != 0x22 && x != 0x5c) {
      store<u8>(o++, <u8>x);
      continue;
    }
    store<u8>(o++, 0x5c);
    if (x == 0x22 || x == 0x5c) store<u8>(o++, <u8>x);
    else if (x == 8) store<u8>(o++, 0x62); // b
    else if (x == 9) store<u8>(o++, 0x74); // t
    else if (x == 10) store<u8>(o++, 0x6e); // n
    else if (x == 12) store<u8>(o++, 0x66); // f
    else if (x == 13) store<u8>(o++, 0x72); // r
    else {
      store<u8>(o, 0x75); // u00XX
      store<u8>(o + 1, 0x30);
      store<u8>(o + 2, 0x30);
      store<u8>(o + 3, hexDigit(x >> 4));
      store<u8>(o + 4, hexDigit(x & 15));
      o += 5;
    }
  }
  return o;
}

/**
 * Lines [r0, lines) of the page the frame describes: each matched, its fields written at `fFields`, its
 * JSON columns' cells appended to their texts (a comma before each line's but the page's first), its
 * INT columns' values written (the digits' value, for 1 to 15 digits; else -1) and its `Date` + `Time`
 * columns' (`hdfsMs` when both fields are 6 bytes; else NaN). Returns the first line
 * not done, or the page's line count; `fStop` says why it stopped there: `stopNoMatch` (the path of
 * longest runs fails: the caller gives the line's cells, then goes on from the next line) or `stopRoom`
 * (a cell may not fit its text's room: the caller gives up on the module for the page).
 */
export function pageLines(frame: usize, r0: u32): u32 {
  const ops = <usize>word(frame, fOps);
  const opCount = word(frame, fOpCount);
  const text = <usize>word(frame, fText);
  const ends = <usize>word(frame, fEnds);
  const bias = <usize>word(frame, fBias);
  const lines = word(frame, fLines);
  const fields = <usize>word(frame, fFields);
  const fieldCount = <usize>word(frame, fFieldCount);
  const json = <usize>word(frame, fJson);
  const jsonCount = <usize>word(frame, fJsonCount);
  const ints = <usize>word(frame, fInts);
  const intCount = <usize>word(frame, fIntCount);
  const lineMax = <usize>word(frame, fLineBytesMax);
  const classes = <usize>word(frame, fClasses);
  const dates = <usize>word(frame, fDates);
  const dateCount = <usize>word(frame, fDateCount);
  // an address in the text less `shift` is its chunk offset
  const shift = text - bias;
  for (let r = r0; r < lines; r++) {
    const s = r == 0 ? text : shift + <usize>load<u32>(ends + (<usize>(r - 1) << 2)) + 1;
    let e = shift + <usize>load<u32>(ends + (<usize>r << 2));
    if (e > s + lineMax) e = s + lineMax;
    if (e > s && load<u8>(e - 1) == 13) e--;
    const row = fields + <usize>r * (fieldCount << 3);
    if (!match(ops, opCount, s, e, row, classes, shift)) {
      store<u32>(frame + (fStop << 2), stopNoMatch);
      return r;
    }
    for (let j: usize = 0; j < jsonCount; j++) {
      const at = json + (j << 4);
      const f = <usize>load<u32>(at);
      const out = <usize>load<u32>(at + 4);
      const used = <usize>load<u32>(at + 8);
      const room = <usize>load<u32>(at + 12);
      const fs = shift + <usize>load<i32>(row + (f << 3));
      const len = shift + <usize>load<i32>(row + (f << 3) + 4) - fs;
      const esc = (load<u32>(classes + (f << 2)) & classEscape) != 0;
      // a comma, the quotes, the bytes (an escape is at most 6), and 8 past them (the word copy below)
      if (used + 3 + (esc ? 6 * len : len) + 8 > room) {
        store<u32>(frame + (fStop << 2), stopRoom);
        return r;
      }
      let o = out + used;
      if (r > 0) store<u8>(o++, 0x2c); // ,
      store<u8>(o++, 0x22); // "
      if (esc) o = escaped(fs, len, o);
      else {
        for (let k: usize = 0; k < len; k += 8) store<u64>(o + k, load<u64>(fs + k));
        o += len;
      }
      store<u8>(o++, 0x22);
      store<u32>(at + 8, <u32>(o - out));
    }
    for (let j: usize = 0; j < intCount; j++) {
      const at = ints + (j << 3);
      const f = <usize>load<u32>(at);
      const fs = shift + <usize>load<i32>(row + (f << 3));
      const len = shift + <usize>load<i32>(row + (f << 3) + 4) - fs;
      let v: i64 = -1;
      if (len > 0 && len <= 15) {
        v = 0;
        for (let q = fs; q < fs + len; q++) {
          const d = <u32>load<u8>(q) - 48;
          if (d > 9) {
            v = -1;
            break;
          }
          v = v * 10 + <i64>d;
        }
      }
      store<f64>(<usize>load<u32>(at + 4) + (<usize>r << 3), <f64>v);
    }
    for (let j: usize = 0; j < dateCount; j++) {
      const at = dates + j * 12;
      const f = <usize>load<u32>(at);
      const g = <usize>load<u32>(at + 4);
      const ds = <usize>load<i32>(row + (f << 3));
      const ts = <usize>load<i32>(row + (g << 3));
      const v =
        <usize>load<i32>(row + (f << 3) + 4) - ds == 6 && <usize>load<i32>(row + (g << 3) + 4) - ts == 6
          ? hdfsMs(shift + ds, shift + ts)
          : NaN;
      store<f64>(<usize>load<u32>(at + 8) + (<usize>r << 3), v);
    }
  }
  store<u32>(frame + (fStop << 2), stopDone);
  return lines;
}
