/**
 * The HTTP rules' prefilter: each rule's fast pattern lies in one HTTP buffer, and one automaton per buffer
 * holds that buffer's patterns; the rules are split by the side of a message they inspect and when (at its
 * headers or complete), each side with the typed arrays its rule loop reads and its candidate index per
 * buffer. The engine (`detect.ts`) asks for a message's candidates and evaluates them.
 */

import type { Compiled } from './compile.js';
import { appendByPattern, fastContent, indexByPattern, PatternSet, sortPrefix } from './groups.js';
import type { HttpBuffers } from './http-buffers.js';
import { defaultMatcherOptions, IdList, MultiMatcher } from './prefilter.js';

/**
 * The HTTP rules of one side of a message at one point (`Engine.runHttp`), in inspection order, with what
 * the rule loop tests before it evaluates a rule in typed arrays: its place in the inspection order, its
 * header class, whether it tests flowbits (isset/isnotset), its fast pattern's buffer (by number, -1: none)
 * and id there.
 */
export interface HttpSideRules {
  rules: Compiled[];
  order: Int32Array;
  headerClass: Int32Array;
  flowbitsTest: Uint8Array;
  fastBuffer: Int32Array;
  fastId: Int32Array;
  /** How many of the first k rules have a fast pattern (`fastBefore[k]`; rules.length + 1 entries). */
  fastBefore: Int32Array;
  /** The rules without a fast pattern (indices, ascending): candidates of every message. */
  always: Int32Array;
  /** The buffers (numbers) the side's rules prefilter on, each with its candidate index. */
  buffers: HttpSideBuffer[];
}

/**
 * One buffer of an `HttpSideRules`: the header classes of the rules keyed on it (the buffer is scanned
 * only when one of them admits the message) and those rules by pattern id (`byFpStart[id]` to
 * `byFpStart[id + 1]` in `byFp`, ascending indices into the side's rules).
 */
export interface HttpSideBuffer {
  buffer: number;
  headerClasses: Int32Array;
  /** A rule of each of `headerClasses` (the class's addresses, ports and direction), for its test. */
  headerRules: Compiled[];
  byFpStart: Int32Array;
  byFp: Int32Array;
}

/** One HTTP buffer's scan: per pattern id whether it occurs (`hit`), and the ids marked (to clear them). */
export interface HttpMarks {
  hit: Uint8Array;
  ids: IdList;
}

/**
 * An HTTP buffer's automaton builds its dense table in JavaScript (where the WebAssembly scan cannot load:
 * the module's table is built row by row as scans reach the states) once its scans have read this many
 * bytes per state (`MatcherOptions.denseAfterBytesPerState`): the URI's 14,019 states would cost 7 MB and 3-5 ms of a
 * pass for the 6.5 KB of URIs in ndpi-mix-a. Low, as the walk before the table is JavaScript that a
 * process's first capture runs mostly unoptimized (few, long calls): 120-230 ns a byte there (13-28 in
 * later passes, 70 for the URI's), against 250-290 ns a state to build the table; on ndpi-mix-a the
 * header, pkt_data and file_data automata (4,677, 2,866, 3,086 states; 63, 637, 675 KB scanned a pass)
 * build theirs after 19, 5 and 3 KB walked, where at 24 bytes per state they walked 63, 56 and 54 KB (29 ms
 * of the first pass's loop, 4 of a later).
 */
const httpDenseAfterBytesPerState = 4;

/** Where `HttpPrefilter.httpSides` keeps the rules of a message kind at its headers or complete. */
function httpSideIndex(kind: 'request' | 'response', complete: boolean): number {
  return (kind === 'response' ? 2 : 0) + (complete ? 1 : 0);
}

/**
 * The HTTP rules of one engine by side, with the automata over their fast patterns. `admits(owner, cls,
 * rule, fd, dir)` says whether the rules of header class `cls` (`rule` one of them) admit the message of
 * flow `fd` in direction `dir`: one function for every engine, the engine passed as `owner` (a closure per
 * engine would be a new call target for code optimized on another).
 */
export class HttpPrefilter<O, F> {
  /**
   * `httpOrdered` by message kind and whether the message is complete (`runHttp`): request at its headers,
   * request complete, response at its headers, response complete (`httpSideIndex`).
   */
  private readonly httpSides: HttpSideRules[] = [];
  /** The HTTP buffers holding fast patterns, numbered (`HttpSideRules.fastBuffer`). */
  private readonly httpFastBuffers: string[] = [];
  /**
   * Per HTTP buffer: the automaton over the fast patterns of the HTTP rules whose fast pattern is in it
   * (built with the engine: `buildHttpPrefilter`).
   */
  private readonly httpPrefilter = new Map<string, MultiMatcher>();
  /** Per HTTP fast-pattern buffer (by number): the marks of its scan of the message being inspected. */
  private readonly httpMarks: (HttpMarks | undefined)[] = [];
  /** The candidates of the HTTP message being inspected (`candidates`). */
  readonly cand: Int32Array;

  /**
   * `httpOrdered`: the HTTP rules in inspection order; `prefilter` false: every rule is a candidate of every
   * message (no automata).
   */
  constructor(
    httpOrdered: Compiled[],
    prefilter: boolean,
    private readonly admits: (owner: O, cls: number, c: Compiled, fd: F, dir: number) => boolean,
  ) {
    if (prefilter) this.buildHttpPrefilter(httpOrdered);
    // made at the build, sized for good (see the engine's constructor): every side's rules are some of
    // `httpOrdered`
    this.cand = new Int32Array(httpOrdered.length);
    for (const kind of ['request', 'response'] as const)
      for (const complete of [false, true])
        this.httpSides[httpSideIndex(kind, complete)] = this.httpSide(
          httpOrdered.filter(
            (c) => (c.http!.side === kind || c.http!.side === 'both') && c.http!.needsBody === complete,
          ),
        );
    this.httpFastBuffers.forEach((buffer, b) => {
      const matcher = this.httpPrefilter.get(buffer);
      if (matcher) this.httpMarks[b] = { hit: new Uint8Array(matcher.patterns), ids: new IdList(64) };
    });
  }

  /** The rules of a message of `kind`, at its headers (`complete` false) or complete. */
  side(kind: 'request' | 'response', complete: boolean): HttpSideRules {
    return this.httpSides[httpSideIndex(kind, complete)]!;
  }

  /** Clears the marks of the buffers a message's scans set (`found`, filled by `candidates`). */
  static release(found: (HttpMarks | undefined)[]): void {
    for (const marks of found) {
      if (!marks) continue;
      const ids = marks.ids;
      for (let k = 0; k < ids.n; k++) marks.hit[ids.ids[k]!] = 0;
      ids.clear();
    }
  }

  /**
   * The HTTP rules' prefilter: each rule's fast pattern lies in one buffer (its `fast_pattern` content, else
   * its longest positive one, over all its buffers), and one automaton per buffer holds that buffer's
   * patterns. A message's buffer is scanned once, before its rules, when a rule keyed on it admits the
   * message's header; the rules visited are those whose pattern the scans marked (`candidates`).
   */
  private buildHttpPrefilter(httpOrdered: Compiled[]): void {
    const patterns = new Map<string, PatternSet>();
    for (const c of httpOrdered) {
      const f = fastContent(c.http!.groups);
      if (!f) continue;
      let p = patterns.get(f.buffer);
      if (!p) patterns.set(f.buffer, (p = new PatternSet()));
      c.httpFast = { buffer: f.buffer, id: p.id(f.bytes) };
    }
    // each buffer's automaton built now, once per engine, not at the buffer's first scan in the packet loop
    // (where a process's first capture built them with the construction code still unoptimized); their
    // dense tables still wait for their scans (httpDenseAfterBytesPerState)
    for (const [buffer, p] of patterns)
      this.httpPrefilter.set(
        buffer,
        new MultiMatcher(p.list, undefined, {
          wasm: defaultMatcherOptions.wasm,
          denseAfterBytesPerState: httpDenseAfterBytesPerState,
          skipCostMax: defaultMatcherOptions.skipCostMax,
        }),
      );
  }

  /** `HttpSideRules` for `rules` (HTTP rules, in inspection order). */
  private httpSide(rules: Compiled[]): HttpSideRules {
    const fastBuffer = new Int32Array(rules.length).fill(-1);
    const fastId = new Int32Array(rules.length);
    const fastBefore = new Int32Array(rules.length + 1);
    const always: number[] = [];
    // per buffer number, the header classes of its rules (and one rule of each, to test it)
    const classes = new Map<number, Map<number, Compiled>>();
    rules.forEach((c, k) => {
      fastBefore[k + 1] = fastBefore[k]! + (c.httpFast ? 1 : 0);
      if (!c.httpFast) {
        always.push(k);
        return;
      }
      let b = this.httpFastBuffers.indexOf(c.httpFast.buffer);
      if (b < 0) b = this.httpFastBuffers.push(c.httpFast.buffer) - 1;
      fastBuffer[k] = b;
      fastId[k] = c.httpFast.id;
      let cs = classes.get(b);
      if (!cs) classes.set(b, (cs = new Map()));
      if (!cs.has(c.headerClass)) cs.set(c.headerClass, c);
    });
    const buffers: HttpSideBuffer[] = [];
    for (const [b, cs] of classes) {
      // the side's rules by their pattern in this buffer (the other rules: none)
      const ids = fastId.map((id, k) => (fastBuffer[k] === b ? id : -1));
      const patterns = this.httpPrefilter.get(this.httpFastBuffers[b]!)!.patterns;
      const { start, byPattern } = indexByPattern(ids, patterns);
      buffers.push({
        buffer: b,
        headerClasses: Int32Array.from(cs.keys()),
        headerRules: [...cs.values()],
        byFpStart: start,
        byFp: byPattern,
      });
    }
    return {
      rules,
      order: Int32Array.from(rules, (c) => c.order),
      headerClass: Int32Array.from(rules, (c) => c.headerClass),
      flowbitsTest: Uint8Array.from(rules, (c) =>
        c.flowbits.some((fb) => fb.op === 'isset' || fb.op === 'isnotset') ? 1 : 0,
      ),
      fastBuffer,
      fastId,
      fastBefore,
      always: Int32Array.from(always),
      buffers,
    };
  }

  /**
   * The rules of `side` a message visits, as ascending indices into its rules (`cand[0, n)`;
   * returns n): those without a fast pattern and those whose pattern the scan of its buffer marked. Each
   * buffer is scanned here, once a message, when a rule keyed on it admits the message's header (Pigasus'
   * order: strings, then the rest, one candidate list instead of a visit of every rule).
   */
  candidates(
    side: HttpSideRules,
    owner: O,
    fd: F,
    dir: number,
    bufs: HttpBuffers,
    found: (HttpMarks | undefined)[],
  ): number {
    const cand = this.cand;
    cand.set(side.always);
    let n = side.always.length;
    for (const sb of side.buffers) {
      let admitted = false;
      for (let j = 0; j < sb.headerClasses.length && !admitted; j++) {
        admitted = this.admits(owner, sb.headerClasses[j]!, sb.headerRules[j]!, fd, dir);
      }
      if (!admitted) continue;
      let marks = found[sb.buffer];
      if (!marks) {
        const buffer = this.httpFastBuffers[sb.buffer]!;
        const matcher = this.httpPrefilter.get(buffer)!;
        marks = this.httpMarks[sb.buffer] ??= {
          hit: new Uint8Array(matcher.patterns),
          ids: new IdList(64),
        };
        found[sb.buffer] = marks;
        matcher.scan(bufs.get(buffer), marks.hit, marks.ids);
      }
      n = appendByPattern(cand, n, marks.ids, sb.byFpStart, sb.byFp);
    }
    sortPrefix(cand, n);
    return n;
  }
}
