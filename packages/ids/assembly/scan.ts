// The prefilter's automaton scan in AssemblyScript (src/prefilter.ts drives it, src/scan-wasm.ts loads it).
// A scan is a chain of dependent table loads, one per byte: each next state's address needs the state
// before it, so one chain runs at the latency of a load. A long input is scanned in parts at once,
// independent chains: two halves from 256 bytes, four quarters from 1,024, and parts at least twice
// `overlap` long. The first part runs from the state the scan resumes in; each other part from the root
// `overlap` bytes before its start (a match ending in a part is at most `overlap` + 1 bytes long, so it
// began there or later).
//
// Memory (imported, laid out by the loader; addresses in globals set by `setup`):
//   delta   u16[states * 256]  next state = delta[state * 256 + byte]
//   headId  i32[states]        the id of the first pattern on a state's output chain, or the no-output id
//   seen    u8[ids + 1]        heads reported by the scan under way (the no-output id's stays 1; the
//                              others are cleared again before `scan` returns)
//   out     i32[ids + 1]       the states reported, each with a head not reported before in this scan
//   visited u8[states]         per state, 1 when a scan need not look at it: a state without output
//                              always, one with output once the scan under way has been in it (cleared
//                              again before `scan` returns); the scan's test at every byte is one load
//   touched i32[states]        the states with output the scan under way has been in
//   input   the bytes to scan (the rest of the memory)

let delta: usize = 0;
let headId: usize = 0;
let seen: usize = 0;
let out: usize = 0;
let visited: usize = 0;
let touched: usize = 0;
let touchedN: i32 = 0;
let overlap: i32 = 0;
let reported: i32 = 0;
/** The state after the last scan's input. */
let state: u32 = 0;

/** Inputs shorter than this are scanned as one chain. */
const twoLanesBytesMin: i32 = 256;
/** Inputs this long and more are scanned as four quarters at once. */
const fourLanesBytesMin: i32 = 1024;

export function setup(
  deltaAt: usize,
  headIdAt: usize,
  seenAt: usize,
  outAt: usize,
  visitedAt: usize,
  touchedAt: usize,
  longest: i32,
): void {
  delta = deltaAt;
  headId = headIdAt;
  seen = seenAt;
  out = outAt;
  visited = visitedAt;
  touched = touchedAt;
  overlap = longest > 0 ? longest - 1 : 0;
}

/** A state with output not visited before in this scan: marked, and reported if its chain's head is new. */
function visit(s: u32): void {
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
function report3(s1: u32, s2: u32, s3: u32, vs: usize): void {
  if (seen3(s1, s2, s3, vs) == 0) {
    report(s1, vs);
    report(s2, vs);
    report(s3, vs);
  }
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
 * marks them during the scan and is clear again after it); `lastState` gives the state to resume the next
 * bytes in.
 */
export function scan(input: usize, len: i32, from: u32): i32 {
  reported = 0;
  touchedN = 0;
  // the globals in locals: the loops below read them at every byte
  const dl = delta;
  const vs = visited;
  let s = from;
  if (len >= fourLanesBytesMin && len >= 8 * overlap) {
    // four quarters: lanes 1-3 first run the `overlap` bytes before their quarters, then all four at once
    const q = len >> 2;
    let s1: u32 = 0;
    let s2: u32 = 0;
    let s3: u32 = 0;
    let j1 = q - overlap;
    let j2 = 2 * q - overlap;
    let j3 = 3 * q - overlap;
    for (; j1 < q; j1++, j2++, j3++) {
      s1 = step(s1, input, j1, dl);
      s2 = step(s2, input, j2, dl);
      s3 = step(s3, input, j3, dl);
      report3(s1, s2, s3, vs);
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
  state = s;
  for (let k = 0; k < reported; k++)
    store<u8>(seen + <usize>load<i32>(headId + (<usize>load<i32>(out + (<usize>k << 2)) << 2)), 0);
  for (let k = 0; k < touchedN; k++) store<u8>(visited + <usize>load<i32>(touched + (<usize>k << 2)), 0);
  return reported;
}

/** The state after the last scan's input. */
export function lastState(): u32 {
  return state;
}
