// The prefilter's automaton scan in AssemblyScript (src/prefilter.ts drives it, src/scan-wasm.ts loads it).
// A scan is a chain of dependent table loads, one per byte: each next state's address needs the state
// before it, so one chain runs at the latency of a load. A long input is scanned in parts at once,
// independent chains: two halves from 256 bytes, four quarters from 1,024, and parts at least twice
// `overlap` long. The first part runs from the state the scan resumes in; each other part from the root
// `overlap` bytes before its start (a match ending in a part is at most `overlap` + 1 bytes long, so it
// began there or later).
//
// Memory (imported, laid out by the loader; addresses in globals set by `setup`):
//   delta   u16[states * 256]  next state = delta[state * 256 + byte]; a state's row is built the first
//                              time a scan reaches the state (`buildRow`), the root's at `setup`: a
//                              pass of real traffic reaches few of the states (ndpi-mix-a with every
//                              community rule: 5,542 of the 43,975 states of 31 automata), so most rows
//                              are never written, nor their memory ever touched
//   headId  i32[states]        the id of the first pattern on a state's output chain, or the no-output id
//   seen    u8[ids + 1]        heads reported by the scan under way (the no-output id's stays 1; the
//                              others are cleared again before `scan` returns)
//   out     i32[ids + 1]       the states reported, each with a head not reported before in this scan
//   visited u8[states]         per state, 1 when a scan need not look at it: a state without output
//                              once its row is built, one with output once the scan under way has been
//                              in it (cleared again before `scan` returns); the scan's test at every byte
//                              is one load, and so a state whose row is not built is looked at (and built)
//                              before the scan reads its row
//   touched i32[states]        the states with output the scan under way has been in
//   last    u32                the state after the last scan's input (read by the loader where it lies:
//                              a second call out of JavaScript per scan cost more than the scan of a
//                              short input)
//   skip    360 bytes          `scanSkip`'s tables and counts (see `setupSkip`)
//   fail    i32[states]        the trie's fail links, for `buildRow`
//   kids    i32[states + 1]    the children of state s are the states kids[s] to kids[s + 1] - 1 (states
//                              are numbered breadth-first, so a state's children are consecutive)
//   edge    u8[states]         the folded byte into each state (a letter's upper case goes there too)
//   built   u8[states]         1 once the state's row is built
//   chain   i32[states]        `buildRow`'s stack: the states of a fail chain whose rows are not built
//   input   the bytes to scan (the rest of the memory)
//
// `scanSkip` is the same scan for an automaton whose patterns start with few byte pairs: it looks for
// the next place a pattern can start 16 bytes at a time and runs the automaton only from there.

let delta: usize = 0;
let headId: usize = 0;
let seen: usize = 0;
let out: usize = 0;
let visited: usize = 0;
let touched: usize = 0;
let touchedN: i32 = 0;
let last: usize = 0;
let overlap: i32 = 0;
let reported: i32 = 0;
let fail: usize = 0;
let kids: usize = 0;
let edge: usize = 0;
let built: usize = 0;
let chain: usize = 0;
let noOutputId: i32 = 0;
/** Rows built so far (`rowsBuilt`). */
let rows: i32 = 0;

/** Inputs shorter than this are scanned as one chain. */
const twoLanesBytesMin: i32 = 256;
/** Inputs this long and more are scanned as four quarters at once. */
const fourLanesBytesMin: i32 = 1024;

/**
 * Sets the layout (the loader's, above) and builds the root's row (the scans step from the root without
 * looking at the state they reach there).
 */
export function setup(
  deltaAt: usize,
  headIdAt: usize,
  seenAt: usize,
  outAt: usize,
  visitedAt: usize,
  touchedAt: usize,
  lastAt: usize,
  longest: i32,
  failAt: usize,
  kidsAt: usize,
  edgeAt: usize,
  builtAt: usize,
  chainAt: usize,
  noOutput: i32,
): void {
  delta = deltaAt;
  headId = headIdAt;
  seen = seenAt;
  out = outAt;
  visited = visitedAt;
  touched = touchedAt;
  last = lastAt;
  overlap = longest > 0 ? longest - 1 : 0;
  fail = failAt;
  kids = kidsAt;
  edge = edgeAt;
  built = builtAt;
  chain = chainAt;
  noOutputId = noOutput;
  buildRow(0);
}

/** How many rows are built. */
export function rowsBuilt(): i32 {
  return rows;
}

/**
 * Builds the row of state `s` (not built): its fail state's row, with the state's own edges on top. The
 * states of its fail chain whose rows are not built come first, shallowest first (a fail state is
 * shallower), from a stack in memory rather than by recursion: a chain can be as long as the longest
 * pattern, past what the call stack takes.
 */
function buildRow(s: u32): void {
  let n: usize = 0;
  let t = s;
  while (t != 0 && load<u8>(built + <usize>t) == 0) {
    store<i32>(chain + (n << 2), <i32>t);
    n++;
    t = <u32>load<i32>(fail + (<usize>t << 2));
  }
  // (the root, the chain's end, is built by `setup` before anything else)
  if (t == 0 && load<u8>(built) == 0) rowOf(0);
  while (n > 0) {
    n--;
    rowOf(<u32>load<i32>(chain + (n << 2)));
  }
}

/**
 * The row of state `s`, its fail state's built: that row with the state's own edges on top; the root's is
 * its edges over the zeros of fresh memory. A state without output is then never looked at again
 * (`visited`).
 */
function rowOf(s: u32): void {
  const row = delta + (<usize>s << 9);
  if (s != 0) memory.copy(row, delta + (<usize>load<i32>(fail + (<usize>s << 2)) << 9), 512);
  const end = load<i32>(kids + (<usize>(s + 1) << 2));
  for (let t = load<i32>(kids + (<usize>s << 2)); t < end; t++) {
    const b = <usize>load<u8>(edge + <usize>t);
    store<u16>(row + (b << 1), <u16>t);
    if (b >= 0x61 && b <= 0x7a) store<u16>(row + ((b - 32) << 1), <u16>t);
  }
  store<u8>(built + <usize>s, 1);
  if (load<i32>(headId + (<usize>s << 2)) == noOutputId) store<u8>(visited + <usize>s, 1);
  rows++;
}

/** Builds the row of state `s` unless it is built. */
@inline
function ensureRow(s: u32): void {
  if (load<u8>(built + <usize>s) == 0) buildRow(s);
}

/**
 * A state the scan must look at: its row built if it is not (then done, for a state without output); one
 * with output not visited before in this scan marked, and reported if its chain's head is new. Inlined, as
 * it was when it was this last part alone (Binaryen's choice then; called, the scan loops ran slower).
 */
@inline
function visit(s: u32): void {
  if (load<u8>(built + <usize>s) == 0) {
    buildRow(s);
    if (load<u8>(visited + <usize>s) != 0) return;
  }
  store<u8>(visited + <usize>s, 1);
  store<i32>(touched + (<usize>touchedN << 2), <i32>s);
  touchedN++;
  const id = <usize>load<i32>(headId + (<usize>s << 2));
  if (load<u8>(seen + id) == 0) {
    store<u8>(seen + id, 1);
    store<i32>(out + (<usize>reported << 2), <i32>s);
    reported++;
  }
}

/** `visit`s state `s` unless the scan need not look at it. */
@inline
function report(s: u32, vs: usize): void {
  if (load<u8>(vs + <usize>s) == 0) visit(s);
}

/** 1 when the scan need not look at any of the three states, else 0. */
@inline
function seen3(s1: u32, s2: u32, s3: u32, vs: usize): u32 {
  return <u32>load<u8>(vs + <usize>s1) & <u32>load<u8>(vs + <usize>s2) & <u32>load<u8>(vs + <usize>s3);
}

@inline
function step(s: u32, input: usize, i: i32, dl: usize): u32 {
  // the byte's part of the address first, off the chain of states: the chain is one shift, one add, one load
  const at = dl + (<usize>load<u8>(input + <usize>i) << 1);
  return <u32>load<u16>(at + (<usize>s << 9));
}

/**
 * Scans input[0, len) resumed in state `from` (0 at the start of a text): reports into `out` (returning
 * how many) the states whose output chains hold every pattern ending in the input, each head once (`seen`
 * marks them during the scan and is clear again after it); the state to resume the next bytes in goes to
 * `last`.
 */
export function scan(input: usize, len: i32, from: u32): i32 {
  reported = 0;
  touchedN = 0;
  store<u32>(last, lanes(input, len, from));
  return finishScan();
}

/** The scan of input[0, len) from state `from` (reports as `scan`, nothing reset or cleared): the last state. */
function lanes(input: usize, len: i32, from: u32): u32 {
  // the globals in locals: the loops below read them at every byte
  const dl = delta;
  const vs = visited;
  let s = from;
  // a state reached without a look at it: from the root in `scanSkip` before it goes on as the lanes, or
  // any state a scan is resumed in (`MultiMatcher.scanFrom` takes any)
  ensureRow(s);
  if (len >= fourLanesBytesMin && len >= 8 * overlap) {
    // four quarters: lanes 1-3 first run the `overlap` bytes before their quarters, then all four at once
    const q = len >> 2;
    let s1: u32 = 0;
    let s2: u32 = 0;
    let s3: u32 = 0;
    let j1 = q - overlap;
    let j2 = 2 * q - overlap;
    let j3 = 3 * q - overlap;
    // (nothing reported before the quarters: a match ending there ends in the quarter before, whose lane
    // reports it)
    for (; j1 < q; j1++, j2++, j3++) {
      s1 = step(s1, input, j1, dl);
      s2 = step(s2, input, j2, dl);
      s3 = step(s3, input, j3, dl);
      // rows built, nothing reported
      if (seen3(s1, s2, s3, vs) == 0) {
        ensureRow(s1);
        ensureRow(s2);
        ensureRow(s3);
      }
    }
    for (let i = 0; i < q; i++, j1++, j2++, j3++) {
      s = step(s, input, i, dl);
      s1 = step(s1, input, j1, dl);
      s2 = step(s2, input, j2, dl);
      s3 = step(s3, input, j3, dl);
      if ((<u32>load<u8>(vs + <usize>s) & seen3(s1, s2, s3, vs)) == 0) {
        report(s, vs);
        report(s1, vs);
        report(s2, vs);
        report(s3, vs);
      }
    }
    for (; j3 < len; j3++) {
      s3 = step(s3, input, j3, dl);
      report(s3, vs);
    }
    s = s3;
  } else if (len >= twoLanesBytesMin && len >= 4 * overlap) {
    const mid = len >> 1;
    let j = mid - overlap;
    let s2: u32 = 0;
    for (let i = 0; i < mid; i++, j++) {
      s = step(s, input, i, dl);
      s2 = step(s2, input, j, dl);
      // one branch for both, almost never taken
      if ((<u32>load<u8>(vs + <usize>s) & <u32>load<u8>(vs + <usize>s2)) == 0) {
        report(s, vs);
        report(s2, vs);
      }
    }
    for (; j < len; j++) {
      s2 = step(s2, input, j, dl);
      report(s2, vs);
    }
    // the match in progress at the end began in the second lane's bytes (more than `overlap` of them)
    s = s2;
  } else
    for (let i = 0; i < len; i++) {
      s = step(s, input, i, dl);
      report(s, vs);
    }
  return s;
}

/** Clears the marks of the scan that ends (`seen`, `visited`); returns how many states it reported. */
function finishScan(): i32 {
  for (let k = 0; k < reported; k++)
    store<u8>(seen + <usize>load<i32>(headId + (<usize>load<i32>(out + (<usize>k << 2)) << 2)), 0);
  for (let k = 0; k < touchedN; k++) store<u8>(visited + <usize>load<i32>(touched + (<usize>k << 2)), 0);
  return reported;
}

let skipTables: usize = 0;
let depth1Max: u32 = 0;

/**
 * Sets `scanSkip`'s space (at `tablesAt`, 360 bytes), laid out by the loader:
 *   0    four rows of 16 bytes, bit k of each byte for group k (at most 8) of the pairs of bytes that begin
 *        patterns: the low nibbles of the group's first bytes, their high nibbles, the low nibbles of the
 *        bytes after them, their high nibbles (Teddy's tables, from Hyperscan: a pair may begin a pattern
 *        of group k when bit k is set in all four of its entries)
 *   64   256 bytes, per state of depth 1: the bit of the group that holds only that state's one-byte
 *        pattern (the group leaves the search once the pattern is reported)
 *   320  i32: the places the last scan ran the automaton from (`entries`)
 *   324  16 bytes of 0x0f (the nibble mask)
 *   340  the first row as the scan under way uses it (groups gone cleared)
 *   356  i32: the places the last scan's vectors turned up and the table looked at (`checks`)
 * `d1` is the last state of depth 1 (states are numbered breadth-first: 1 to `d1` are of depth 1).
 */
export function setupSkip(tablesAt: usize, d1: u32): void {
  skipTables = tablesAt;
  depth1Max = d1;
}

/**
 * `scan`, for an automaton whose tables `setupSkip` set: the same reports and last state. From the root, a
 * vector of 16 positions at a time is tested for a pair of bytes that starts a pattern (or a one-byte
 * pattern); the automaton runs from the first such position j until it is back at depth 1 or the root (two
 * bytes or more after j), and the search goes on from there. Exact: a state deeper than 1 is reached only
 * through a pattern's first two bytes, so where no pair starts a pattern the automaton stays at depth 1
 * or the root, and a state of depth 1 has the same transitions as the root but on its children's bytes
 * (Aho-Corasick: its fail state is the root).
 * Where those places come thick (`thick`), the rest goes on as `scan`.
 */
/**
 * Whether the places the search turned up in the first `at` bytes come too thick for it to pay (about one
 * in 8 bytes, a run of the automaton counted as two checks): the rest of the input is then scanned as
 * `scan` does, so that no input costs much more than that scan.
 */
@inline
function thick(checks: i32, entries: i32, at: i32): bool {
  return (checks + 2 * entries) << 3 > at + 64;
}

export function scanSkip(input: usize, len: i32, from: u32): i32 {
  reported = 0;
  touchedN = 0;
  // (as in `lanes`)
  ensureRow(from);
  const dl = delta;
  const vs = visited;
  const d1 = depth1Max;
  const t = skipTables;
  let entries: i32 = 0;
  let checks: i32 = 0;
  let s = from;
  let i: i32 = 0;
  let p: i32 = 0;
  if (s != 0) {
    // resumed inside a match: the automaton until it is back at depth 1 or the root
    while (i < len) {
      s = step(s, input, i, dl);
      report(s, vs);
      i++;
      if (s <= d1) break;
    }
    if (i >= len) {
      store<u32>(last, s);
      store<i32>(t + 320, 0);
      return finishScan();
    }
    // the byte before p read from the root leads to the same state (s is of depth 1 or the root)
    p = i - 1;
  }
  // (the tables and the nibble mask loaded, not made, before the loops: V8 keeps loaded vectors in
  // registers, and makes again inside a loop a vector computed from them outside it)
  const hi1 = v128.load(t + 16);
  const lo2 = v128.load(t + 32);
  const hi2 = v128.load(t + 48);
  const low = v128.load(t + 324);
  // the first bytes' low nibbles of the groups still searched for (a copy: one-byte patterns' groups leave it)
  v128.store(t + 340, v128.load(t));
  while (true) {
    // the next place j >= p a pattern can start
    let j: i32 = -1;
    const lo1 = v128.load(t + 340);
    while (true) {
      // 32 positions a turn, then 16: a byte's high nibble from its 16-bit lane shifted (one instruction,
      // where i8x16.shr_u is several) and masked
      let m = i8x16.splat(0);
      while (p + 33 <= len) {
        const v0 = v128.load(input + <usize>p);
        const v1 = v128.load(input + <usize>p + 1);
        const w0 = v128.load(input + <usize>p + 16);
        const w1 = v128.load(input + <usize>p + 17);
        const mv = v128.and(
          v128.and(i8x16.swizzle(lo1, v128.and(v0, low)), i8x16.swizzle(hi1, v128.and(i16x8.shr_u(v0, 4), low))),
          v128.and(i8x16.swizzle(lo2, v128.and(v1, low)), i8x16.swizzle(hi2, v128.and(i16x8.shr_u(v1, 4), low))),
        );
        const mw = v128.and(
          v128.and(i8x16.swizzle(lo1, v128.and(w0, low)), i8x16.swizzle(hi1, v128.and(i16x8.shr_u(w0, 4), low))),
          v128.and(i8x16.swizzle(lo2, v128.and(w1, low)), i8x16.swizzle(hi2, v128.and(i16x8.shr_u(w1, 4), low))),
        );
        if (v128.any_true(v128.or(mv, mw))) {
          if (v128.any_true(mv)) m = mv;
          else {
            m = mw;
            p += 16;
          }
          break;
        }
        p += 32;
      }
      if (!v128.any_true(m) && p + 17 <= len) {
        const v0 = v128.load(input + <usize>p);
        const v1 = v128.load(input + <usize>p + 1);
        m = v128.and(
          v128.and(i8x16.swizzle(lo1, v128.and(v0, low)), i8x16.swizzle(hi1, v128.and(i16x8.shr_u(v0, 4), low))),
          v128.and(i8x16.swizzle(lo2, v128.and(v1, low)), i8x16.swizzle(hi2, v128.and(i16x8.shr_u(v1, 4), low))),
        );
        if (!v128.any_true(m)) p += 16;
      }
      if (!v128.any_true(m)) break; // fewer than 17 bytes left: the tail below
      // the nibble tables pass more pairs than start patterns: those the table turns down stay here
      let bits = i8x16.bitmask(i8x16.ne(m, i8x16.splat(0)));
      while (bits != 0) {
        checks++;
        const k = p + <i32>ctz(bits);
        const u = step(0, input, k, dl);
        if (load<u8>(vs + <usize>u) == 0 || step(u, input, k + 1, dl) > d1) {
          j = k;
          break;
        }
        bits &= bits - 1;
      }
      if (j >= 0) break;
      p += 16;
      if (thick(checks, entries, p)) {
        // no pattern starts in [p - 16, p): the byte before p from the root leads to the true state
        s = lanes(input + <usize>p, len - p, step(0, input, p - 1, dl));
        j = -2;
        break;
      }
    }
    if (j == -2) break;
    if (j < 0) {
      // the last 16 bytes or fewer one at a time, by the table: a one-byte pattern not yet reported, or
      // two bytes leading deeper than depth 1
      for (; p < len; p++) {
        const u = step(0, input, p, dl);
        if (load<u8>(vs + <usize>u) == 0) break;
        if (p + 1 < len && step(u, input, p + 1, dl) > d1) break;
      }
      if (p >= len) {
        // no pattern starts in the rest: the last byte alone decides the state
        if (len > 0) s = step(0, input, len - 1, dl);
        break;
      }
      j = p;
    }
    entries++;
    s = step(0, input, j, dl);
    report(s, vs);
    const gone = load<u8>(t + 64 + <usize>s);
    if (gone != 0) v128.store(t + 340, v128.and(v128.load(t + 340), i8x16.splat(~gone)));
    i = j + 1;
    while (i < len) {
      s = step(s, input, i, dl);
      report(s, vs);
      i++;
      if (s <= d1 && i > j + 1) break;
    }
    if (i >= len) break;
    if (thick(checks, entries, i)) {
      s = lanes(input + <usize>i, len - i, s);
      break;
    }
    p = i - 1;
  }
  store<u32>(last, s);
  store<i32>(t + 320, entries);
  store<i32>(t + 356, checks);
  return finishScan();
}

/**
 * The one's-complement sum of the memory's bytes [from, to) as little-endian 16-bit words (an odd last
 * byte padded with zero), folded to 16 bits: congruent modulo 0xffff to the words' sum, and 0 only when
 * every byte is (RFC 1071; the caller swaps it to the big-endian words' sum). Writes 16 zero bytes at `to`.
 */
export function wordSumLE(from: i32, to: i32): i32 {
  v128.store(<usize>to, i8x16.splat(0));
  let total: u64 = 0;
  let p = from;
  while (p < to) {
    // u32 lanes, each adding two 16-bit words a vector: 2^15 vectors stay below 2^32
    const stop = min(to, p + (1 << 19));
    let a = i32x4.splat(0);
    let b = i32x4.splat(0);
    for (; p + 16 < stop; p += 32) {
      a = i32x4.add(a, i32x4.extadd_pairwise_i16x8_u(v128.load(<usize>p)));
      b = i32x4.add(b, i32x4.extadd_pairwise_i16x8_u(v128.load(<usize>p + 16)));
    }
    if (p < stop) {
      a = i32x4.add(a, i32x4.extadd_pairwise_i16x8_u(v128.load(<usize>p)));
      p += 16;
    }
    const s = i64x2.add(i64x2.extend_low_i32x4_u(a), i64x2.extend_high_i32x4_u(a));
    const t = i64x2.add(i64x2.extend_low_i32x4_u(b), i64x2.extend_high_i32x4_u(b));
    const u = i64x2.add(s, t);
    total += <u64>i64x2.extract_lane(u, 0) + <u64>i64x2.extract_lane(u, 1);
  }
  while (total > 0xffff) total = (total & 0xffff) + (total >> 16);
  return <i32>total;
}
