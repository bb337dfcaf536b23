/**
 * The first stage of detection, after Pigasus' multi-string filter (Zhao et al., OSDI'20) and the fast
 * pattern of Snort and Suricata: every rule with a positive content on the payload contributes one pattern
 * (its `fast_pattern` content, else its longest), and one pass of an Aho-Corasick automaton (Aho &
 * Corasick, "Efficient string matching", CACM 1975) over the payload finds which patterns occur. A rule
 * whose pattern does not occur cannot match and is not evaluated; rules without such a content always are.
 * The automaton matches case-insensitively (patterns and input folded to lower case): a superset of the
 * case-sensitive matches, which the full matcher then decides.
 */

const fold = new Uint8Array(256).map((_, b) => (b >= 0x41 && b <= 0x5a ? b + 32 : b));

export class MultiMatcher {
  /** Dense transitions: next state = delta[state * 256 + byte]. */
  private readonly delta: Int32Array;
  /** Per state: the first pattern id that ends here (-1 when none), and the next state along the output links. */
  private readonly out: Int32Array;
  private readonly outNext: Int32Array;
  /** Per state: pattern ids ending exactly here beyond the first. */
  private readonly extra: Map<number, number[]>;
  readonly patterns: number;

  constructor(patterns: Uint8Array[]) {
    this.patterns = patterns.length;
    // the trie's edges (key: state * 256 + byte), then the dense table of the states it has (0: no edge,
    // as no edge leads back to the root)
    const edges = new Map<number, number>();
    let cap = 1;
    for (const p of patterns) cap += p.length;
    const ends = new Int32Array(cap).fill(-1);
    this.extra = new Map();
    let n = 1;
    for (const [id, p] of patterns.entries()) {
      let s = 0;
      for (const raw of p) {
        const k = s * 256 + fold[raw]!;
        let t = edges.get(k);
        if (t === undefined) {
          t = n++;
          edges.set(k, t);
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
    const delta = new Int32Array(n * 256);
    for (const [k, t] of edges) delta[k] = t;
    this.out = ends.slice(0, n);
    this.delta = delta;
    this.outNext = new Int32Array(n).fill(-1);
    const out = this.out;
    const outNext = this.outNext;
    const fail = new Int32Array(n);
    // breadth-first: fail links, the missing transitions (those of the fail state, already complete as it
    // is shallower), output links (the nearest state on the fail chain that ends a pattern)
    const queue = new Int32Array(n);
    let qn = 0;
    for (let b = 0; b < 256; b++) {
      const t = delta[b]!;
      if (t > 0) queue[qn++] = t;
    }
    for (let qi = 0; qi < qn; qi++) {
      const s = queue[qi]!;
      const f = fail[s]!;
      const sb = s * 256;
      const fb = f * 256;
      for (let b = 0; b < 256; b++) {
        const t = delta[sb + b]!;
        if (t === 0) delta[sb + b] = delta[fb + b]!;
        else {
          fail[t] = delta[fb + b]!;
          queue[qn++] = t;
        }
      }
      outNext[s] = out[f]! >= 0 ? f : outNext[f]!;
    }
  }

  /** Marks `hit[id] = 1` for every pattern occurring in `data`, listing newly marked ids in `hits`. */
  scan(data: Uint8Array, hit: Uint8Array, hits: number[]): void {
    this.scanFrom(0, data, hit, hits);
  }

  /**
   * `scan` resumed in `state` (where an earlier scan of the bytes before `data` ended; 0 at the start):
   * marks every pattern that ends in `data`, also those that began before it. Returns the state to resume
   * the next bytes in.
   */
  scanFrom(state: number, data: Uint8Array, hit: Uint8Array, hits: number[]): number {
    const delta = this.delta;
    const out = this.out;
    const outNext = this.outNext;
    let s = state;
    for (let i = 0; i < data.length; i++) {
      s = delta[s * 256 + fold[data[i]!]!]!;
      // walk the output chain only from states that end a pattern; a pattern marked before was marked
      // with every pattern below it on its chain, so the walk stops there
      for (let t = out[s]! >= 0 ? s : outNext[s]!; t >= 0; t = outNext[t]!) {
        const id = out[t]!;
        if (hit[id] === 1) break;
        hit[id] = 1;
        hits.push(id);
        const more = this.extra.get(t);
        if (more)
          for (const x of more) {
            if (hit[x] === 1) continue;
            hit[x] = 1;
            hits.push(x);
          }
      }
    }
    return s;
  }
}
