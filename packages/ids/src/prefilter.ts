/**
 * The first stage of detection, after Pigasus' multi-string filter (Zhao et al., OSDI'20) and the fast
 * pattern of Snort and Suricata: every rule with a positive content on the payload contributes one pattern
 * (its `fast_pattern` content, else its longest), and one pass of an Aho-Corasick automaton (Aho &
 * Corasick, "Efficient string matching", CACM 1975) over the payload finds which patterns occur. A rule
 * whose pattern does not occur cannot match and is not evaluated; rules without such a content always are.
 * The automaton matches case-insensitively (patterns and input folded to lower case): a superset of the
 * case-sensitive matches, which the full matcher then decides. The scan runs in WebAssembly where the
 * module loads (assembly/scan.ts: a long input in two or four parts at once, or, for an automaton whose
 * patterns begin with few pairs of bytes, a search 16 bytes at a time for where they can begin, after
 * Hyperscan's Teddy), else in JavaScript.
 */

import { type SkipGroup, WasmScan, wasmScanAvailable } from './scan-wasm.js';

/** States with more children than this get a row of 256 for the walks before the dense table (`next`). */
const wideChildrenMin = 8;

const fold = new Uint8Array(256).map((_, b) => (b >= 0x41 && b <= 0x5a ? b + 32 : b));

/**
 * Pattern ids in the order a scan marked them: a list emptied by `clear` without giving up its storage (a
 * `number[]` cut to length 0 drops its backing store, and the next pushes allocate it again, per packet).
 * Each id is in it at most once while its mark stands, so the pattern count bounds it; it grows past its
 * initial capacity only if a caller lists more.
 */
export class IdList {
  ids: Int32Array;
  n = 0;

  constructor(capacity: number) {
    this.ids = new Int32Array(Math.max(8, capacity));
  }

  push(id: number): void {
    if (this.n === this.ids.length) {
      const more = new Int32Array(this.ids.length * 2);
      more.set(this.ids);
      this.ids = more;
    }
    this.ids[this.n++] = id;
  }

  clear(): void {
    this.n = 0;
  }

  /** A copy of the ids listed. */
  toArray(): number[] {
    return Array.from(this.ids.subarray(0, this.n));
  }
}

/** Options of a `MultiMatcher`. */
export interface MatcherOptions {
  /**
   * Scan with the WebAssembly module (assembly/scan.ts) where it loads and the states fit 16 bits, else in
   * JavaScript; both mark the same patterns. Default true.
   */
  wasm?: boolean;
  /**
   * Build the dense transition table only once scans have read this many bytes per state of the automaton;
   * until then scans walk the trie's edges and fail links (the same marks; 13-70 ns a byte with the code
   * optimized, 120-230 before, where the table's scan takes 1-4). Default 0: at once. A table costs 512
   * bytes and about 250 ns per state to build, the price of 4-20 bytes of such a walk, so an automaton
   * whose inputs are few (an HTTP buffer such as the URI: 14,019 states for 6.5 KB of URIs on ndpi-mix-a)
   * is better off without one until its inputs have paid for it (then at most about twice the work of
   * knowing in advance). For the table in JavaScript only: the WebAssembly scan's table is built row by
   * row as scans reach the states (assembly/scan.ts, `buildRow`), so it is made at once.
   */
  denseAfterBytesPerState?: number;
  /**
   * The WebAssembly scan searches 16 bytes at a time for the places a pattern can start, and runs the
   * automaton only from them, when its groups of first byte pairs would pass at most this share of
   * positions of random text (`searchStarts`). Default 0.05: on ndpi-mix-a the automata of the packet
   * scans at 0.012-0.014 (4 MB a pass each, 2.4-2.7x faster than the lanes), those of 60 states of depth 1
   * at 0.066-0.088 (as fast either way). 0 never searches; Infinity always does.
   */
  skipCostMax?: number;
}

/**
 * The options a matcher is built with by default. The engine's own builds pass objects of this shape (all
 * three fields, in this order): the constructor runs optimized after its first builds, and options of another
 * shape deoptimized it at every HTTP buffer's automaton (8 a capture of ndpi-mix-a).
 */
export const defaultMatcherOptions: Readonly<Required<MatcherOptions>> = {
  wasm: true,
  denseAfterBytesPerState: 0,
  skipCostMax: 0.05,
};

export class MultiMatcher {
  /**
   * Dense transitions: next state = delta[state * 256 + byte], every byte value (an upper-case letter's
   * column is its lower-case one's), 16 bits while the states fit; empty when the WebAssembly module's
   * memory holds them (`wasm`).
   */
  private delta: Uint16Array | Int32Array;
  /** Per state: the first pattern id that ends here (-1 when none), and the next state along the output links. */
  private readonly out: Int32Array;
  private readonly outNext: Int32Array;
  /** Per state: the first state of its output chain (itself when it ends a pattern; -1 when the chain is empty). */
  private readonly outFirst: Int32Array;
  /** Per state: pattern ids ending exactly here beyond the first. */
  private extra: Map<number, number[]>;
  /**
   * Per state: the id of the first pattern on its output chain, or `noOutput` (one past the highest id).
   * A scan tests `seen[headId[state]]` for every byte: one branch that is almost always not taken, where a
   * test of "has an output" is taken at a fifth of the bytes of real traffic, unpredictably. (The
   * WebAssembly scan tests a byte per state instead, set once the scan has been in the state: one load.)
   */
  private readonly headId: Int32Array;
  /** Ids the scan under way has walked from (its chain below them walked too); `seen[noOutput]` stays 1. */
  private readonly seen: Uint8Array;
  private readonly seenList: IdList;
  readonly patterns: number;
  /**
   * The WebAssembly scan, whose memory holds `delta` (built there), or undefined: the scan in JavaScript.
   */
  private wasm: WasmScan | undefined;
  /** Whether `delta` (or the module's table) is built; until then scans walk the trie (`scanSparse`). */
  private dense = false;
  /** Bytes scanned without the table, and how many may be before it is built (`denseAfterBytesPerState`). */
  private sparseBytes = 0;
  private readonly denseAfterBytes: number;
  private readonly useWasm: boolean;
  private readonly skipCostMax: number;
  /** The trie, states numbered breadth-first: each state's children as a list, the byte into each. */
  private readonly firstChild: Int32Array;
  private readonly nextSibling: Int32Array;
  private readonly edgeByte: Uint8Array;
  /** Per state: its fail state (the longest proper suffix of its path that is a state). */
  private readonly fail: Int32Array;
  /**
   * Rows of 256 (by folded byte; -1: no edge) for the root and each state with more than
   * `wideChildrenMin` children (URI patterns mostly begin with `/`: that state has hundreds), at
   * `wide[wideAt[s]]` (-1: none), so no walk along a long list of children.
   */
  private readonly wideAt: Int32Array;
  private readonly wide: Int32Array;
  private readonly noOutput: number;
  private readonly longest: number;

  /** `ids`: the id each pattern is reported as (default: its index), for an automaton over part of a set. */
  constructor(patterns: Uint8Array[], ids?: ArrayLike<number>, opts: MatcherOptions = defaultMatcherOptions) {
    this.patterns = patterns.length;
    // the engine passes options of one shape (defaultMatcherOptions'), read before the loops
    const wasmOpt = opts.wasm !== false;
    const denseAfterBytesPerState = opts.denseAfterBytesPerState ?? 0;
    this.skipCostMax = opts.skipCostMax ?? defaultMatcherOptions.skipCostMax;
    // index loops, no iterators: an automaton is built a few times per engine, so this code mostly runs
    // unoptimized, where each step of an iterator is a call and an object.
    // The trie: its edges (key: state * 256 + folded byte, in an open-addressed table of twice the states
    // at most, as key + 1 and child) and each state's children as a list
    let cap = 1;
    for (let i = 0; i < patterns.length; i++) cap += patterns[i]!.length;
    let slotBits = 4;
    while (1 << slotBits < 2 * cap) slotBits++;
    const edgeKey = new Int32Array(1 << slotBits);
    const edgeTo = new Int32Array(1 << slotBits);
    const slotMask = (1 << slotBits) - 1;
    const ends = new Int32Array(cap).fill(-1);
    const firstChild = new Int32Array(cap).fill(-1);
    const nextSibling = new Int32Array(cap);
    const edgeByte = new Uint8Array(cap);
    this.extra = new Map();
    let n = 1;
    for (let i = 0; i < patterns.length; i++) {
      const p = patterns[i]!;
      const id = ids ? ids[i]! : i;
      let s = 0;
      for (let j = 0; j < p.length; j++) {
        const b = fold[p[j]!]!;
        const k = s * 256 + b + 1;
        let slot = Math.imul(k, 0x9e3779b1) >>> (32 - slotBits);
        while (edgeKey[slot] !== 0 && edgeKey[slot] !== k) slot = (slot + 1) & slotMask;
        let t = edgeTo[slot]!;
        if (edgeKey[slot] === 0) {
          t = n++;
          edgeKey[slot] = k;
          edgeTo[slot] = t;
          edgeByte[t] = b;
          nextSibling[t] = firstChild[s]!;
          firstChild[s] = t;
        }
        s = t;
      }
      if (ends[s]! < 0) ends[s] = id;
      else {
        const more = this.extra.get(s);
        if (more) more.push(id);
        else this.extra.set(s, [id]);
      }
    }
    // states numbered breadth-first: the shallow ones, which a scan is in most of the time, are the first
    // rows of the table (fewer pages and cache lines than rows spread over it in the patterns' order)
    const trie = breadthFirst(n, ends, firstChild, nextSibling, edgeByte, this.extra);
    this.extra = trie.extra;
    this.firstChild = trie.firstChild;
    this.nextSibling = trie.nextSibling;
    this.edgeByte = trie.edgeByte;
    let noOutput = 0;
    for (let i = 0; i < patterns.length; i++) noOutput = Math.max(noOutput, (ids ? ids[i]! : i) + 1);
    this.noOutput = noOutput;
    let longest = 0;
    for (let i = 0; i < patterns.length; i++) longest = Math.max(longest, patterns[i]!.length);
    this.longest = longest;
    this.out = trie.ends;
    this.outNext = new Int32Array(n).fill(-1);
    this.outFirst = new Int32Array(n).fill(-1);
    const out = this.out;
    const outNext = this.outNext;
    const outFirst = this.outFirst;
    const fail = new Int32Array(n);
    this.fail = fail;
    this.wideAt = new Int32Array(n).fill(-1);
    let wideRows = 0;
    for (let s = 0; s < n; s++) {
      let children = 0;
      for (let t = trie.firstChild[s]!; t >= 0; t = trie.nextSibling[t]!) children++;
      if (s === 0 || children > wideChildrenMin) this.wideAt[s] = 256 * wideRows++;
    }
    this.wide = new Int32Array(256 * wideRows).fill(-1);
    for (let s = 0; s < n; s++)
      if (this.wideAt[s]! >= 0)
        for (let t = trie.firstChild[s]!; t >= 0; t = trie.nextSibling[t]!)
          this.wide[this.wideAt[s]! + trie.edgeByte[t]!] = t;
    // breadth-first (the states' order): fail links of each state's children (the fail chain's first state
    // with an edge on the child's byte, else the root), and output links (the nearest state on the fail
    // chain that ends a pattern)
    for (let s = 0; s < n; s++) {
      for (let t = trie.firstChild[s]!; t >= 0; t = trie.nextSibling[t]!)
        fail[t] = s === 0 ? 0 : this.next(fail[s]!, trie.edgeByte[t]!);
      if (s === 0) continue;
      const f = fail[s]!;
      outNext[s] = out[f]! >= 0 ? f : outNext[f]!;
      outFirst[s] = out[s]! >= 0 ? s : outNext[s]!;
    }
    this.headId = new Int32Array(n).fill(noOutput);
    for (let s = 1; s < n; s++) if (outFirst[s]! >= 0) this.headId[s] = out[outFirst[s]!]!;
    this.seen = new Uint8Array(noOutput + 1);
    this.seen[noOutput] = 1;
    this.seenList = new IdList(noOutput);
    this.useWasm = wasmOpt && n <= 0x10000 && wasmScanAvailable();
    this.delta = new Uint16Array(0);
    // (the WebAssembly table costs little before scans reach its states: made at once)
    this.denseAfterBytes = this.useWasm ? 0 : denseAfterBytesPerState * n;
    if (this.denseAfterBytes <= 0) this.densify();
  }

  /** The state after `s` on folded byte `b`, by the trie's edges and fail links. */
  private next(s: number, b: number): number {
    const firstChild = this.firstChild;
    const nextSibling = this.nextSibling;
    const edgeByte = this.edgeByte;
    for (;;) {
      const w = this.wideAt[s]!;
      if (w >= 0) {
        const t = this.wide[w + b]!;
        if (t >= 0) return t;
      } else for (let t = firstChild[s]!; t >= 0; t = nextSibling[t]!) if (edgeByte[t] === b) return t;
      if (s === 0) return 0;
      s = this.fail[s]!;
    }
  }

  /**
   * Builds the dense table: each state's row is its fail state's (complete, as that is shallower: the
   * states are numbered breadth-first) with its own edges on top. In WebAssembly the module builds each row
   * the first time a scan reaches its state (assembly/scan.ts, `buildRow`), from the trie given here.
   */
  private densify(): void {
    const n = this.out.length;
    const firstChild = this.firstChild;
    const nextSibling = this.nextSibling;
    const edgeByte = this.edgeByte;
    const fail = this.fail;
    this.dense = true;
    if (this.useWasm) {
      const wasm = new WasmScan(n, this.noOutput);
      // breadth-first, a state's children are consecutive and follow those of the states before it
      const kids = new Int32Array(n + 1);
      kids[0] = 1;
      for (let s = 0; s < n; s++) {
        let c = 0;
        for (let t = firstChild[s]!; t >= 0; t = nextSibling[t]!) c++;
        kids[s + 1] = kids[s]! + c;
      }
      wasm.ready(this.headId, this.longest, fail, kids, edgeByte);
      this.wasm = wasm;
      if (this.skipCostMax > 0) this.searchStarts(wasm);
      return;
    }
    const delta = n <= 0x10000 ? new Uint16Array(n * 256) : new Int32Array(n * 256);
    for (let s = 0; s < n; s++) {
      const sb = s * 256;
      if (s > 0) {
        const fb = fail[s]! * 256;
        delta.copyWithin(sb, fb, fb + 256);
      }
      for (let t = firstChild[s]!; t >= 0; t = nextSibling[t]!) setEdge(delta, sb, edgeByte[t]!, t);
    }
    this.delta = delta;
  }

  /**
   * Turns on the WebAssembly scan's search for the places a pattern can start (`WasmScan.skipBetween`)
   * when the automaton's first two levels fit groups that few positions of text would pass
   * (`skipCostMax`). One group for each state of depth 1 with children (its byte, then its children's)
   * and one for each one-byte pattern (its byte, then any); merged, two at a time, the pair whose merge
   * adds the least to the share of positions the groups pass (as nibbles: a group passes the product of
   * its nibble sets; counted for uniformly random bytes) until 8 are left. A one-byte pattern's group is
   * merged last: alone, it leaves the search once its pattern is reported.
   */
  private searchStarts(wasm: WasmScan): void {
    const firstChild = this.firstChild;
    const nextSibling = this.nextSibling;
    const edgeByte = this.edgeByte;
    // the groups' nibble masks (16 bits each) and one-byte pattern states; at most 48 of them (on
    // ndpi-mix-a every automaton with more, 57-63, ended past the default skipCostMax, and merging that
    // many costs an engine's first pass about 5 ms)
    const most = 48;
    let n = 0;
    let d1 = 0;
    for (let c = firstChild[0]!; c >= 0; c = nextSibling[c]!) {
      d1 = c; // states are numbered breadth-first: the root's children are 1 to d1
      if (this.outFirst[c]! >= 0) n++;
      if (firstChild[c]! >= 0) n++;
    }
    // (256 states of depth 1 at most: the one-byte pattern table's index)
    if (d1 > 255 || n > most) return;
    const lo1 = new Int32Array(n);
    const hi1 = new Int32Array(n);
    const lo2 = new Int32Array(n);
    const hi2 = new Int32Array(n);
    const one = new Int32Array(n);
    let g = 0;
    for (let c = firstChild[0]!; c >= 0; c = nextSibling[c]!) {
      const b = edgeByte[c]!;
      if (this.outFirst[c]! >= 0) {
        lo1[g] = lowNibbles(b);
        hi1[g] = highNibbles(b);
        lo2[g] = 0xffff;
        hi2[g] = 0xffff;
        one[g++] = c;
      }
      if (firstChild[c]! < 0) continue;
      lo1[g] = lowNibbles(b);
      hi1[g] = highNibbles(b);
      for (let e = firstChild[c]!; e >= 0; e = nextSibling[e]!) {
        lo2[g] = lo2[g]! | lowNibbles(edgeByte[e]!);
        hi2[g] = hi2[g]! | highNibbles(edgeByte[e]!);
      }
      g++;
    }
    // merged two at a time, the pair whose merge adds least (a pair with a one-byte pattern's group 1 more)
    const share = (a: number, b: number) =>
      (popcount16(lo1[a]! | lo1[b]!) *
        popcount16(hi1[a]! | hi1[b]!) *
        popcount16(lo2[a]! | lo2[b]!) *
        popcount16(hi2[a]! | hi2[b]!)) /
      65536;
    const own = new Float64Array(n);
    for (let k = 0; k < n; k++) own[k] = share(k, k);
    const more = new Float64Array(n * n);
    const cost = (a: number, b: number) =>
      (one[a]! > 0 || one[b]! > 0 ? 1 : 0) + share(a, b) - own[a]! - own[b]!;
    for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) more[a * n + b] = cost(a, b);
    const alive = new Uint8Array(n).fill(1);
    for (let left = n; left > 8; left--) {
      let best = Number.POSITIVE_INFINITY;
      let bi = 0;
      let bj = 1;
      for (let a = 0; a < n; a++) {
        if (!alive[a]) continue;
        for (let b = a + 1; b < n; b++)
          if (alive[b] && more[a * n + b]! < best) {
            best = more[a * n + b]!;
            bi = a;
            bj = b;
          }
      }
      lo1[bi]! |= lo1[bj]!;
      hi1[bi]! |= hi1[bj]!;
      lo2[bi]! |= lo2[bj]!;
      hi2[bi]! |= hi2[bj]!;
      one[bi] = 0;
      own[bi] = share(bi, bi);
      alive[bj] = 0;
      for (let k = 0; k < n; k++)
        if (alive[k] && k !== bi) more[Math.min(k, bi) * n + Math.max(k, bi)] = cost(k, bi);
    }
    const groups: SkipGroup[] = [];
    let total = 0;
    for (let k = 0; k < n; k++) {
      if (!alive[k]) continue;
      groups.push({ lo1: lo1[k]!, hi1: hi1[k]!, lo2: lo2[k]!, hi2: hi2[k]!, one: one[k]! });
      total += own[k]!;
    }
    if (total <= this.skipCostMax) wasm.skipBetween(groups, d1);
  }

  /** Whether scans search for the places a pattern can start (`MatcherOptions.skipCostMax`). */
  get searching(): boolean {
    return this.wasm?.skipping ?? false;
  }

  /** What the last scan's search did (`WasmScan.skipCounts`); zeros when it did not search. */
  get searchCounts(): { entries: number; checks: number } {
    return this.wasm?.skipping ? this.wasm.skipCounts() : { entries: 0, checks: 0 };
  }

  /** The length of the longest pattern. */
  get longestPattern(): number {
    return this.longest;
  }

  /** The automaton's states (its dense table, once built, holds 256 entries for each). */
  get states(): number {
    return this.out.length;
  }

  /**
   * The dense table's rows built: every state's once the table is built in JavaScript; in WebAssembly the
   * root's and those of the states scans have reached (0 before the table).
   */
  get rowsBuilt(): number {
    if (!this.dense) return 0;
    return this.wasm ? this.wasm.rowsBuilt : this.out.length;
  }

  /** Whether scans run in WebAssembly (`MatcherOptions.wasm`). */
  get inWasm(): boolean {
    return this.wasm !== undefined;
  }

  /** Marks `hit[id] = 1` for every pattern occurring in `data`, listing newly marked ids in `hits`. */
  scan(data: Uint8Array, hit: Uint8Array, hits: IdList): void {
    this.scanFrom(0, data, hit, hits);
  }

  /**
   * `scan` resumed in `state` (where an earlier scan of the bytes before `data` ended; 0 at the start):
   * marks every pattern that ends in `data`, also those that began before it. Returns the state to resume
   * the next bytes in.
   */
  scanFrom(state: number, data: Uint8Array, hit: Uint8Array, hits: IdList): number {
    if (!this.dense) {
      this.sparseBytes += data.length;
      if (this.sparseBytes <= this.denseAfterBytes) return this.scanSparse(state, data, hit, hits);
      this.densify();
    }
    if (this.wasm) return this.scanWasm(state, data, hit, hits);
    const delta = this.delta;
    const headId = this.headId;
    const seen = this.seen;
    let s = state;
    for (let i = 0; i < data.length; i++) {
      s = delta[s * 256 + data[i]!]!;
      // walk the output chain only from states that end a pattern, and only the first time this scan
      // meets its head (everything below it on the chain was walked then)
      if (seen[headId[s]!] === 0) this.mark(s, hit, hits);
    }
    this.clearSeen();
    return s;
  }

  /** Forgets the output-chain heads this scan met (so the next scan walks them again). */
  private clearSeen(): void {
    const seen = this.seen;
    const list = this.seenList;
    for (let k = 0; k < list.n; k++) seen[list.ids[k]!] = 0;
    list.clear();
  }

  /** `scanFrom` before the dense table is built: the trie's edges and fail links, the same marks. */
  private scanSparse(state: number, data: Uint8Array, hit: Uint8Array, hits: IdList): number {
    const headId = this.headId;
    const seen = this.seen;
    let s = state;
    for (let i = 0; i < data.length; i++) {
      s = this.next(s, fold[data[i]!]!);
      if (seen[headId[s]!] === 0) this.mark(s, hit, hits);
    }
    this.clearSeen();
    return s;
  }

  /**
   * `scanFrom` in WebAssembly: the module reports the states whose output-chain heads are new to the scan
   * (each once), and their chains are marked here as the JavaScript scan marks them.
   */
  private scanWasm(state: number, data: Uint8Array, hit: Uint8Array, hits: IdList): number {
    const w = this.wasm!;
    const n = w.scan(data, state);
    const reported = w.reported;
    const headId = this.headId;
    const seen = this.seen;
    for (let k = 0; k < n; k++) {
      const s = reported[k]!;
      if (seen[headId[s]!] === 0) this.mark(s, hit, hits);
    }
    this.clearSeen();
    return w.lastState();
  }

  private mark(s: number, hit: Uint8Array, hits: IdList): void {
    const out = this.out;
    const outNext = this.outNext;
    const seen = this.seen;
    for (let t = this.outFirst[s]!; t >= 0; t = outNext[t]!) {
      const id = out[t]!;
      if (seen[id] === 1) break;
      seen[id] = 1;
      this.seenList.push(id);
      if (hit[id] === 0) {
        hit[id] = 1;
        hits.push(id);
      }
      const more = this.extra.get(t);
      if (more)
        for (const x of more) {
          if (hit[x] === 1) continue;
          hit[x] = 1;
          hits.push(x);
        }
    }
  }
}

/** Bit n for the low nibble n of folded byte `b`, and of its upper case for a letter (a 16-bit mask). */
function lowNibbles(b: number): number {
  // a letter's cases differ only in their high nibble
  return 1 << (b & 15);
}

/** Bit n for the high nibble n of folded byte `b`, and of its upper case for a letter (a 16-bit mask). */
function highNibbles(b: number): number {
  return b >= 0x61 && b <= 0x7a ? (1 << (b >> 4)) | (1 << ((b - 32) >> 4)) : 1 << (b >> 4);
}

function popcount16(x: number): number {
  let n = 0;
  for (; x !== 0; x &= x - 1) n++;
  return n;
}

/** Sets the transition on folded byte `b` of the row at `row`, and on its upper-case form for a letter. */
function setEdge(delta: Uint16Array | Int32Array, row: number, b: number, t: number): void {
  delta[row + b] = t;
  if (b >= 0x61 && b <= 0x7a) delta[row + b - 32] = t;
}

/** A trie's arrays (as `MultiMatcher`'s constructor builds them) with its `n` states renumbered breadth-first. */
function breadthFirst(
  n: number,
  ends: Int32Array,
  firstChild: Int32Array,
  nextSibling: Int32Array,
  edgeByte: Uint8Array,
  extra: Map<number, number[]>,
) {
  const order = new Int32Array(n);
  const renum = new Int32Array(n);
  let on = 1;
  for (let k = 0; k < on; k++)
    for (let t = firstChild[order[k]!]!; t >= 0; t = nextSibling[t]!) {
      renum[t] = on;
      order[on++] = t;
    }
  const next = {
    ends: new Int32Array(n),
    firstChild: new Int32Array(n),
    nextSibling: new Int32Array(n),
    edgeByte: new Uint8Array(n),
    extra: new Map<number, number[]>(),
  };
  for (let k = 0; k < n; k++) {
    const s = order[k]!;
    next.ends[k] = ends[s]!;
    next.edgeByte[k] = edgeByte[s]!;
    next.firstChild[k] = firstChild[s]! >= 0 ? renum[firstChild[s]!]! : -1;
    next.nextSibling[k] = k > 0 && nextSibling[s]! >= 0 ? renum[nextSibling[s]!]! : -1;
  }
  for (const [s, more] of extra) next.extra.set(renum[s]!, more);
  return next;
}
