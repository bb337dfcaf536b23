/**
 * A JavaScript regular expression (no u or v flag) run by a backtracking machine of our own that counts
 * its steps: an exec that needs more than its budget ends as no match, as PCRE's match limit ends one.
 *
 * Why: V8's bound on a RegExp (`boundedRegExp` in @strata/cli) counts backtracks, not the characters a
 * greedy loop takes or the starts it tries, and no guard can skip starts of an expression whose
 * backreference makes a match inside a word independent of one a character earlier. So a pcre such as
 * the community rules' `((\w+)[\r\n\s]*\x3a=...=>[\r\n\s]*\2|...)/si` costs time quadratic in its subject
 * (41-89 ms over 8 KiB of letters, seconds over 64 KiB), and so do patterns whose loops can take the same
 * text in many ways (`\s+.*?%.*?%`, the log4j rules'). Here every step counts: each instruction run, each
 * character a loop takes, each character a backreference compares, each backtrack. And the machine does
 * not repeat itself where it need not: a loop reads a run of its set once for all the starts inside it, gives
 * nothing back where what follows cannot start with what it takes, (without a backreference) remembers
 * the runs it failed from whole and, in an unbounded count of a group, the places where entering the
 * count's loop or ending a count of its loops failed, fails a branch at once where a literal it must take
 * after its start occurs nowhere further on (a Need), and moves a loop's count straight to where the
 * literal after it starts, so those patterns take steps linear in their subject.
 *
 * Semantics are ECMAScript's (ECMA-262, 22.2.2 "Pattern Semantics", with Annex B's syntax as far as
 * below): leftmost match, alternatives in order, greedy and lazy counts, a quantified group's captures
 * cleared at each iteration and an iteration past the minimum that matches empty refused, lookarounds
 * atomic (a negative one leaves its groups unset), a lookbehind's body matched right to left, a
 * backreference to an unset group matching empty, ^ $ \b \B with m. What one character matches (a
 * literal, an escape, a class, the dot under s and i) is asked of V8 itself, once per distinct atom, over
 * the 256 characters of a latin1 subject: subjects are latin1 text (every code unit below 0x100), as the
 * engine's are. Syntax outside that (a `{` that is not a count, a legacy octal escape, a quantified
 * assertion, `\k` without named groups) is refused with the place.
 */

/** Thrown while compiling: what is not supported, and where. */
export class StepsSyntaxError extends SyntaxError {}

type Node =
  | { t: 'set'; set: Uint8Array }
  | { t: 'seq'; items: Node[] }
  | { t: 'alt'; alts: Node[] }
  | { t: 'group'; n: number; body: Node }
  | { t: 'rep'; min: number; max: number; greedy: boolean; body: Node; capFrom: number; capTo: number }
  | { t: 'look'; behind: boolean; negative: boolean; body: Node; capFrom: number; capTo: number }
  | { t: 'ref'; n: number; name?: string }
  | { t: 'assert'; k: '^' | '$' | 'b' | 'B' };

// ---- what one character atom matches, asked of V8

const setCache = new Map<string, Uint8Array>();

/** Which of the 256 latin1 characters one character atom matches (1 or 0 each) under i and s, as V8 reads it. */
export function charSet(atom: string, i: boolean, s: boolean): Uint8Array {
  const flags = (i ? 'i' : '') + (s ? 's' : '');
  const key = `${flags}/${atom}`;
  let set = setCache.get(key);
  if (set) return set;
  const re = new RegExp(`^(?:${atom})$`, flags);
  set = new Uint8Array(256);
  for (let c = 0; c < 256; c++) set[c] = re.test(String.fromCharCode(c)) ? 1 : 0;
  setCache.set(key, set);
  return set;
}

/** ECMAScript's Canonicalize without u (22.2.2.7.3) over latin1: what i compares backreferences by. */
const canon = new Int32Array(256);
for (let c = 0; c < 256; c++) {
  const u = String.fromCharCode(c).toUpperCase();
  canon[c] = u.length !== 1 || (c >= 128 && u.charCodeAt(0) < 128) ? c : u.charCodeAt(0);
}

const notLatin1 = /[^\x00-\xFF]/;
const isWord = (c: number) =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || (c >= 0x61 && c <= 0x7a);
const isLineEnd = (c: number) => c === 0x0a || c === 0x0d || c === 0x2028 || c === 0x2029;

// ---- the parser

class Parser {
  i = 0;
  groups = 0;
  readonly names = new Map<string, number>();
  readonly refs: { t: 'ref'; n: number; name?: string }[] = [];
  readonly totalGroups: number;

  /** @param sets whether to work out what each character atom matches (not to only read the syntax) */
  constructor(
    readonly src: string,
    readonly ci: boolean,
    readonly dotAll: boolean,
    readonly sets = true,
  ) {
    this.totalGroups = countGroups(src);
  }

  fail(what: string): never {
    throw new StepsSyntaxError(`${what} at offset ${this.i} of /${this.src}/`);
  }

  parse(): Node {
    const n = this.alt();
    if (this.i < this.src.length) this.fail(`unmatched ')'`);
    for (const r of this.refs) {
      if (r.name === undefined) continue;
      const n = this.names.get(r.name);
      if (n === undefined) this.fail(`\\k<${r.name}> names no group`);
      r.n = n;
    }
    return n;
  }

  private alt(): Node {
    const alts = [this.seq()];
    while (this.src[this.i] === '|') {
      this.i++;
      alts.push(this.seq());
    }
    return alts.length === 1 ? alts[0]! : { t: 'alt', alts };
  }

  private seq(): Node {
    const items: Node[] = [];
    while (this.i < this.src.length && this.src[this.i] !== '|' && this.src[this.i] !== ')') {
      items.push(this.term());
    }
    return items.length === 1 ? items[0]! : { t: 'seq', items };
  }

  private term(): Node {
    const { src } = this;
    const c = src[this.i]!;
    if (c === '^' || c === '$') {
      this.i++;
      return this.unquantified({ t: 'assert', k: c });
    }
    if (c === '\\' && (src[this.i + 1] === 'b' || src[this.i + 1] === 'B')) {
      this.i += 2;
      return this.unquantified({ t: 'assert', k: src[this.i - 1] as 'b' | 'B' });
    }
    const capFrom = this.groups + 1;
    let atom: Node;
    if (c === '(') {
      const look = /^\(\?(<?)([=!])/.exec(src.slice(this.i, this.i + 4));
      if (look) {
        this.i += look[0].length;
        const body = this.alt();
        this.close();
        return this.unquantified({
          t: 'look',
          behind: look[1] === '<',
          negative: look[2] === '!',
          body,
          capFrom,
          capTo: this.groups + 1,
        });
      }
      if (src.startsWith('(?:', this.i)) {
        this.i += 3;
        atom = this.alt();
        this.close();
      } else {
        let name: string | undefined;
        if (src.startsWith('(?', this.i)) {
          const m = /^\(\?<([A-Za-z_$][\w$]*)>/.exec(src.slice(this.i));
          if (!m) this.fail('unsupported group');
          name = m[1]!;
          this.i += m[0].length;
        } else this.i++;
        const n = ++this.groups;
        if (name !== undefined) {
          if (this.names.has(name)) this.fail(`group name '${name}' repeated`);
          this.names.set(name, n);
        }
        const body = this.alt();
        this.close();
        atom = { t: 'group', n, body };
      }
    } else atom = this.atom();
    return this.quantified(atom, capFrom);
  }

  private close(): void {
    if (this.src[this.i] !== ')') this.fail(`expected ')'`);
    this.i++;
  }

  private unquantified(n: Node): Node {
    if (this.quantifierAhead()) this.fail('a quantifier after an assertion');
    return n;
  }

  private quantifierAhead(): boolean {
    const c = this.src[this.i];
    return (
      c === '*' || c === '+' || c === '?' || (c === '{' && /^\{\d+(,\d*)?\}/.test(this.src.slice(this.i)))
    );
  }

  private quantified(body: Node, capFrom: number): Node {
    const { src } = this;
    const c = src[this.i];
    let min: number;
    let max: number;
    if (c === '*') [min, max] = [0, Infinity];
    else if (c === '+') [min, max] = [1, Infinity];
    else if (c === '?') [min, max] = [0, 1];
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(this.i));
      if (!m) this.fail(`'{' that is not a count`);
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (max < min) this.fail('numbers out of order in a count');
      this.i += m[0].length - 1;
    } else return body;
    this.i++;
    const greedy = src[this.i] !== '?';
    if (!greedy) this.i++;
    if (this.quantifierAhead()) this.fail('nothing to repeat');
    return { t: 'rep', min, max, greedy, body, capFrom, capTo: this.groups + 1 };
  }

  /** One character atom or a backreference. */
  private atom(): Node {
    const { src } = this;
    const at = this.i;
    const c = src[at]!;
    if (c === '*' || c === '+' || c === '?' || c === '{') this.fail('nothing to repeat');
    if (c === '[') {
      let j = at + 1;
      if (src[j] === '^') j++;
      while (j < src.length && src[j] !== ']') j += src[j] === '\\' ? 2 : 1;
      if (j >= src.length) this.fail('unterminated character class');
      this.i = j + 1;
      return this.set(src.slice(at, this.i));
    }
    if (c !== '\\') {
      this.i++;
      return this.set(c);
    }
    const e = src[at + 1];
    if (e === undefined) this.fail('\\ at the end of the pattern');
    if (e >= '1' && e <= '9') {
      const m = /^\d+/.exec(src.slice(at + 1))!;
      const n = Number(m[0]);
      if (n > this.totalGroups) this.fail(`\\${m[0]} (a legacy octal escape) is not supported`);
      this.i = at + 1 + m[0].length;
      const r = { t: 'ref' as const, n };
      this.refs.push(r);
      return r;
    }
    if (e === 'k') {
      const m = /^\\k<([A-Za-z_$][\w$]*)>/.exec(src.slice(at));
      if (!m || this.totalNamed() === 0) this.fail('\\k without a named group');
      this.i = at + m[0].length;
      const r = { t: 'ref' as const, n: 0, name: m[1]! };
      this.refs.push(r);
      return r;
    }
    if (e === '0' && /[0-9]/.test(src[at + 2] ?? '')) this.fail('a legacy octal escape is not supported');
    let len = 2;
    if (e === 'x' && /^[0-9A-Fa-f]{2}/.test(src.slice(at + 2))) len = 4;
    else if (e === 'u' && /^[0-9A-Fa-f]{4}/.test(src.slice(at + 2))) len = 6;
    else if (e === 'c' && /^[A-Za-z]/.test(src[at + 2] ?? '')) len = 3;
    else if (e === 'c') this.fail('\\c without a letter is not supported');
    this.i = at + len;
    return this.set(src.slice(at, this.i));
  }

  private totalNamed(): number {
    return (this.src.match(/\(\?<[A-Za-z_$]/g) ?? []).length;
  }

  private set(atom: string): Node {
    return { t: 'set', set: this.sets ? charSet(atom, this.ci, this.dotAll) : noSet };
  }
}

/** Capturing groups in a source: `(` not followed by `?`, or `(?<name>`; outside classes and escapes. */
function countGroups(src: string): number {
  let n = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') i++;
    else if (c === '[') {
      i++;
      if (src[i] === '^') i++;
      while (i < src.length && src[i] !== ']') i += src[i] === '\\' ? 2 : 1;
    } else if (c === '(' && (src[i + 1] !== '?' || /^\(\?<[A-Za-z_$]/.test(src.slice(i, i + 4)))) n++;
  }
  return n;
}

// ---- the program

// operations (plain numbers: a TypeScript enum is an object V8 reads at each use)
const opSet = 0;
/** A count over one character set: its loop runs in place, one backtrack entry for all of it (none when possessive). */
const opStar = 1;
const opSplit = 2;
const opJmp = 3;
const opOpen = 4;
const opClose = 5;
const opAssert = 6;
const opRef = 7;
const opLook = 8;
const opRepInit = 9;
const opRepLoop = 10;
const opRepBody = 11;
const opRepEnd = 12;
const opMatch = 13;
/** A Split whose branch must start with a character of `set`: without one, straight to the other branch. */
const opSplitIf = 14;
/**
 * Fails unless the subject holds the program's need `n` (a run of character sets, `needsOf`) somewhere from
 * the position on: what follows cannot match without it.
 */
const opNeed = 15;

/** One instruction; every one has every field (one shape for V8). */
interface Ins {
  op: number;
  set: Uint8Array;
  min: number;
  max: number;
  greedy: boolean;
  /**
   * Star: no backtrack entry, as PCRE's auto-possessification: what must come next cannot start with a
   * character of the set, so giving one back never lets the rest match.
   */
  possessive: boolean;
  /** Split, SplitIf: the other branch; Jmp, RepLoop: where to; RepEnd: the loop's RepLoop. */
  to: number;
  /** RepLoop: the body's first instruction. */
  body: number;
  /**
   * Open, Close, Ref: the group; RepInit, RepLoop, RepBody, RepEnd: the count's first register; Star: its
   * slot for the run it read last; Need: the need's index.
   */
  n: number;
  k: '^' | '$' | 'b' | 'B';
  /**
   * Star: its index among the loops whose failures are remembered (`StepBoundedRegExp`'s `entryFrom`), or
   * -1. Only an unbounded loop run forward, where nothing but the position decides whether the rest
   * matches: no backreference in the pattern, no count of a group around the loop. A memo of Davis et al.'s kind ("Using Selective
   * Memoization to Defeat Regular Expression Denial of Service", IEEE S&P 2021: the state of a loop's entry
   * and position), kept as one run per loop.
   */
  memo: number;
  /**
   * Where failures in the body of an unbounded count of a group are remembered (`loopTables`), or -1:
   * RepLoop: its slot for the positions where an entry into its loop (the minimum reached) failed.
   * Star (greedy, in such a count's body, not in a count inside it): its slot for the positions its count
   * ended at where everything after failed, to skip when it gives back. Only counts past the Star's
   * minimum are recorded (those it gave back from), which end past where the count's iteration started:
   * from there what follows depends on the position alone (at the iteration's start the end of the body
   * may refuse an empty iteration).
   */
  loop: number;
  /**
   * Star, forward: the index of the runs of sets (in `nexts`) one of which must come right after it, or -1.
   * Greedy, it is given back to the places where one of them starts (`prevAt`); lazy, it takes more up to
   * the next such place (`nextAt`).
   */
  next: number;
  sub: Program | undefined;
  negative: boolean;
  capFrom: number;
  capTo: number;
}

const noSet = new Uint8Array(256);
const noRegs = new Int32Array(0);

function ins(op: number, o: Partial<Ins> = {}): Ins {
  return {
    op,
    set: noSet,
    min: 0,
    max: 0,
    greedy: true,
    possessive: false,
    to: 0,
    body: 0,
    n: 0,
    k: '^',
    memo: -1,
    loop: -1,
    next: -1,
    sub: undefined,
    negative: false,
    capFrom: 0,
    capTo: 0,
    ...o,
  };
}

interface Program {
  code: Ins[];
  /** A lookbehind's body: matched right to left. */
  back: boolean;
}

/**
 * What comes next after a node: the characters it must start with (all zero: nothing more is needed,
 * the match may end there), or undefined when it is not known (an assertion, a lookaround or a
 * backreference comes first, or the program runs right to left).
 */
type Follow = Uint8Array | undefined;

class Compiler {
  /** Registers past the captures' 2 per group (0 included) and the open positions' 1 per group. */
  regs: number;
  /** Star instructions, in every program (lookaround bodies too). */
  stars = 0;
  /** Stars whose failures are remembered (see `Ins.memo`). */
  memos = 0;
  /** Slots of remembered failures in the bodies of counts of groups (see `Ins.loop`). */
  loops = 0;
  /** What the Need instructions look for (`opNeed`), by index. */
  readonly needs: Need[] = [];
  /** What the Stars' counts move to (`Ins.next`), by index: runs, one of which follows the Star. */
  readonly nexts: Need[][] = [];
  /** Per entry of `nexts`, how many sets each run shares with the one before it (its runs are sorted so). */
  readonly nextShared: Int32Array[] = [];
  /** Counts of groups open around what is being emitted. */
  private reps = 0;
  constructor(
    readonly groups: number,
    /** Whether the pattern has a backreference (then what matches depends on the groups too). */
    readonly refs: boolean,
  ) {
    this.regs = 3 * (groups + 1);
  }

  program(node: Node, back: boolean): Program {
    const code: Ins[] = [];
    // an alternation's branches get a need each (below)
    if (!back && node.t !== 'alt') this.need(node, code);
    // nothing follows the end of a program: its Match takes any position
    this.emit(node, back, code, back ? undefined : noSet, undefined);
    code.push(ins(opMatch));
    return { code, back };
  }

  /**
   * Need instructions for what a node run forward must find from where it starts, if it must find any:
   * the ((\w+)...\x3a=...layer...\2|layer...) family's search tried each start of a long word and read the
   * rest of the subject for "layer" from each (quadratic); the first Need there fails at once.
   */
  private need(node: Node, code: Ins[]): void {
    for (const need of needsOf(node)) code.push(ins(opNeed, { n: this.needIndex(need) }));
  }

  /**
   * The index of a Star's `next` runs in `nexts` (one entry for equal ones), sorted so that runs sharing
   * their first sets come together: a table's search compares those sets once for them all (`%2524`, `%24`).
   */
  private nextIndex(runs: Need[]): number {
    const sorted = [...runs].sort(byRun);
    const i = indexIn(
      this.nexts,
      sorted,
      (a) => a.length === sorted.length && a.every((r, j) => sameRun(r, sorted[j]!)),
    );
    if (i === this.nextShared.length)
      this.nextShared.push(Int32Array.from(sorted, (r, j) => (j === 0 ? 0 : sharedSets(sorted[j - 1]!, r))));
    return i;
  }

  /**
   * Whether failures of a loop being emitted can be remembered: where nothing but the position decides
   * whether what follows it matches (unbounded, forward, outside any count of a group, no backreference).
   */
  private remembers(back: boolean, max: number): boolean {
    return !this.refs && this.reps === 0 && !back && max === Infinity;
  }

  /** The index of a run in `needs` (one entry for equal runs: an exec looks for each once). */
  private needIndex(run: Need): number {
    return indexIn(this.needs, run, (r) => sameRun(r, run));
  }

  /**
   * @param follow the characters what follows may start with (see `Follow`)
   * @param then forward, runs of sets one of which what follows always starts with, when known
   */
  private emit(node: Node, back: boolean, code: Ins[], follow: Follow, then: Need[] | undefined): void {
    switch (node.t) {
      case 'set':
        code.push(ins(opSet, { set: node.set }));
        return;
      case 'seq': {
        const items = back ? [...node.items].reverse() : node.items;
        // what follows each item, from the last one back
        const after: Follow[] = [];
        let next = back ? undefined : follow;
        for (let k = items.length - 1; k >= 0; k--) {
          after[k] = next;
          if (back) continue;
          const l = lead(items[k]!);
          next = l.nullable ? union(l.set, next) : l.set;
        }
        items.forEach((it, k) => {
          // what follows matters to a loop over one set, and to the groups and branches that may end with one
          const takes = it.t === 'group' || it.t === 'alt' || (it.t === 'rep' && it.body.t === 'set');
          this.emit(it, back, code, after[k], back || !takes ? undefined : startRuns(items, k + 1, then));
        });
        return;
      }
      case 'alt': {
        const jumps: Ins[] = [];
        node.alts.forEach((a, k) => {
          // forward, a branch that must start with a character of a set is skipped without one
          const l = lead(a);
          const known = !back && !l.nullable && l.set !== undefined;
          const split =
            k < node.alts.length - 1 ? (known ? ins(opSplitIf, { set: l.set }) : ins(opSplit)) : undefined;
          if (split) code.push(split);
          if (!back) this.need(a, code);
          this.emit(a, back, code, follow, then);
          if (split) {
            const j = ins(opJmp);
            code.push(j);
            jumps.push(j);
            split.to = code.length;
          }
        });
        for (const j of jumps) j.to = code.length;
        return;
      }
      case 'group':
        code.push(ins(opOpen, { n: node.n }));
        this.emit(node.body, back, code, follow, then);
        code.push(ins(opClose, { n: node.n }));
        return;
      case 'assert':
        code.push(ins(opAssert, { k: node.k }));
        return;
      case 'ref':
        code.push(ins(opRef, { n: node.n }));
        return;
      case 'look':
        code.push(
          ins(opLook, {
            sub: this.program(node.body, node.behind),
            negative: node.negative,
            capFrom: node.capFrom,
            capTo: node.capTo,
          }),
        );
        return;
      case 'rep': {
        const { min, max, greedy } = node;
        if (node.body.t === 'set') {
          const set = node.body.set;
          const possessive = greedy && follow !== undefined && disjoint(set, follow);
          const memo = this.remembers(back, max) ? this.memos++ : -1;
          const next = !back && !possessive && then !== undefined ? this.nextIndex(then) : -1;
          code.push(ins(opStar, { set, min, max, greedy, possessive, n: this.stars++, memo, next }));
          return;
        }
        const r = this.regs;
        this.regs += 2; // the iteration count, and where the iteration under way started
        code.push(ins(opRepInit, { n: r }));
        // remembered where, as for a Star, nothing but the position decides whether what follows an entry
        // into the loop with its minimum reached matches: unbounded, forward, outside other counts, no
        // backreference. (a+|b)*c took exponential steps over a run of a's with no c after it, (x\s+)*y
        // quadratic over x's
        const memo = this.remembers(back, max) ? this.loops++ : -1;
        const loop = ins(opRepLoop, { n: r, min, max, greedy, loop: memo });
        const at = code.length;
        code.push(loop);
        loop.body = code.length;
        code.push(ins(opRepBody, { n: r, capFrom: node.capFrom, capTo: node.capTo }));
        // after the body: another iteration or what follows the count
        const l = lead(node.body);
        this.reps++;
        this.emit(node.body, back, code, back ? undefined : union(l.set, follow), undefined);
        this.reps--;
        code.push(ins(opRepEnd, { n: r, min, to: at }));
        loop.to = code.length;
        // the greedy Stars of the body (not of a count inside it): what follows one, from past where the
        // iteration started, depends on the position alone once an iteration reaches the count's minimum,
        // which a count of at most 1 does after its first: `(\s*|\s*\r?\n\s+)*` gave each of n entries up
        // to n counts of its loops to try, each reaching the count's loop again
        if (memo >= 0 && min <= 1) {
          let depth = 0;
          for (let k = loop.body; k < code.length - 1; k++) {
            const c = code[k]!;
            if (c.op === opRepInit) depth++;
            else if (c.op === opRepEnd) depth--;
            else if (depth === 0 && c.op === opStar && c.greedy && !c.possessive) c.loop = this.loops++;
          }
        }
        return;
      }
    }
  }
}

/**
 * The characters a node's match starts with, and whether it can be empty; set undefined when a zero-width
 * test or a backreference may come first (it may decide by more than the next character).
 */
function lead(node: Node, zeroWidth = false): Lead {
  const memo = zeroWidth ? starts : leads;
  let l = memo.get(node);
  if (!l) memo.set(node, (l = leadOf(node, zeroWidth)));
  return l;
}

type Lead = { set: Follow; nullable: boolean };
/** Each node's, worked out once (a node's is asked at every level above it). */
const leads = new WeakMap<Node, Lead>();
const starts = new WeakMap<Node, Lead>();

/**
 * With `zeroWidth`, assertions and lookarounds are passed over (they take no character: the first one a
 * match takes is still the next node's), which is right for where a match may start, not for what may
 * follow a loop (a lookahead decides by more than one character).
 */
function leadOf(node: Node, zeroWidth: boolean): Lead {
  if (zeroWidth && (node.t === 'assert' || node.t === 'look')) return { set: noSet, nullable: true };
  switch (node.t) {
    case 'set':
      return { set: node.set, nullable: false };
    case 'group':
      return lead(node.body, zeroWidth);
    case 'rep': {
      const l = lead(node.body, zeroWidth);
      return { set: l.set, nullable: l.nullable || node.min === 0 };
    }
    case 'alt': {
      const set = new Uint8Array(256);
      let nullable = false;
      for (const a of node.alts) {
        const l = lead(a, zeroWidth);
        if (l.set === undefined) return { set: undefined, nullable: true };
        nullable ||= l.nullable;
        orInto(set, l.set);
      }
      return { set, nullable };
    }
    case 'seq': {
      const set = new Uint8Array(256);
      for (const it of node.items) {
        const l = lead(it, zeroWidth);
        if (l.set === undefined) return { set: undefined, nullable: true };
        orInto(set, l.set);
        if (!l.nullable) return { set, nullable: false };
      }
      return { set, nullable: true };
    }
    default:
      return { set: undefined, nullable: true };
  }
}

function disjoint(a: Uint8Array, b: Uint8Array): boolean {
  for (let c = 0; c < 256; c++) if (a[c]! & b[c]!) return false;
  return true;
}

/**
 * A run of character sets that every match of a node holds one after another somewhere in what it takes
 * (the characters of a literal, each set those one atom matches under the flags).
 */
type Need = Uint8Array[];
/** A need's sets hold at most this many characters each (a letter under i: 2). */
const needSetMax = 4;
/** Needs shorter than this are not looked for; longer ones are cut to `needLengthMax`. */
const needLengthMin = 2;
const needLengthMax = 16;

const smallSets = new WeakMap<Uint8Array, boolean>();
/** Whether a set holds 1 to `needSetMax` characters (worked out once per set: sets are shared by atom). */
function small(set: Uint8Array): boolean {
  let is = smallSets.get(set);
  if (is === undefined) {
    let n = 0;
    for (let c = 0; c < 256; c++) n += set[c]!;
    smallSets.set(set, (is = n > 0 && n <= needSetMax));
  }
  return is;
}

/** A run of sets a node's match holds, and whether it starts where the node does (`needRuns`). */
interface NeedRun {
  run: Need;
  leading: boolean;
}

/**
 * The runs of small sets a node run forward must take, into `out`; returns the run the node always takes
 * whole (empty for a zero-width node), undefined when it does not take one fixed run, for its caller to
 * join with its neighbours'. `atStart`: the node starts where the search does. Not for a lookbehind's body
 * (what it takes lies before the position); a positive lookahead's body matches from the position on.
 */
function needRuns(node: Node, out: NeedRun[], atStart: boolean): Need | undefined {
  switch (node.t) {
    case 'set':
      return small(node.set) ? [node.set] : undefined;
    case 'group':
      return needRuns(node.body, out, atStart);
    case 'rep': {
      if (node.max === 0) return [];
      if (node.min === 0) return undefined;
      // one iteration at least: the body's runs
      const body = needRuns(node.body, out, atStart);
      if (body === undefined || node.min !== node.max || body.length * node.min > needLengthMax) {
        if (body !== undefined && body.length > 0) out.push({ run: body, leading: atStart });
        return undefined;
      }
      const exact: Need = [];
      for (let k = 0; k < node.min; k++) exact.push(...body);
      return exact;
    }
    case 'look':
      if (!node.behind && !node.negative) {
        const body = needRuns(node.body, out, atStart);
        if (body !== undefined && body.length > 0) out.push({ run: body, leading: atStart });
      }
      return [];
    case 'assert':
      return [];
    case 'seq': {
      let run: Need = [];
      let leading = atStart;
      let consumed = false;
      let exact = true;
      for (const it of node.items) {
        const here = atStart && !consumed;
        const e = needRuns(it, out, here);
        if (e === undefined) {
          if (run.length > 0) out.push({ run, leading });
          run = [];
          exact = false;
          consumed = true;
          continue;
        }
        if (run.length === 0) leading = here;
        for (const set of e) if (run.length < needLengthMax) run.push(set);
        if (e.length > 0) consumed = true;
      }
      if (exact) return run;
      if (run.length > 0) out.push({ run, leading });
      return undefined;
    }
    default:
      // an alternation (its branches get needs of their own) or a backreference
      return undefined;
  }
}

/** Needs looked for per branch at most: which of them a subject lacks is not known when compiling. */
const needsPerBranchMax = 3;

/**
 * What a node run forward must find from where it starts: its runs of small sets that do not start where
 * the node does (those the machine compares as it goes, a step a character), longest first, at most
 * `needsPerBranchMax`, each its own (a run inside another is left out).
 */
function needsOf(node: Node): Need[] {
  const out: NeedRun[] = [];
  const whole = needRuns(node, out, true);
  if (whole !== undefined && whole.length > 0) out.push({ run: whole, leading: true });
  const runs = out
    .filter((r) => !r.leading && r.run.length >= needLengthMin)
    .map((r) => r.run.slice(0, needLengthMax))
    .sort((a, b) => b.length - a.length);
  const picked: Need[] = [];
  for (const run of runs) {
    if (picked.length === needsPerBranchMax) break;
    if (!picked.some((p) => holds(p, run))) picked.push(run);
  }
  return picked;
}

/** Alternatives a Star's `next` holds at most. */
const startRunsMax = 8;

/**
 * Runs of small sets, one of which any match of `items[from..]` starts with, followed by one of `after`
 * (what follows them) when they take a fixed run whole; undefined when not known. Forward only.
 * @param to the items read end there at most: a run is cut at needLengthMax sets, and at most twice that
 *   many items are read (zero-width ones add none), so the work per item stays bounded and a sequence of
 *   thousands of groups compiles in linear time
 */
function startRuns(
  items: Node[],
  from: number,
  after: Need[] | undefined,
  to = Math.min(items.length, from + 2 * needLengthMax),
): Need[] | undefined {
  const run: Need = [];
  for (let j = from; j < to; j++) {
    const it = items[j]!;
    const e = needRuns(it, [], false);
    if (e !== undefined) {
      for (const set of e) if (run.length < needLengthMax) run.push(set);
      if (run.length === needLengthMax) return [run];
      continue;
    }
    if (it.t === 'rep' && it.min === 0 && it.max === 1) {
      // optional (`\r?\n`): what follows starts with it or without it
      const rest = startRuns(items, j + 1, after, to);
      if (rest === undefined) return alone(run);
      const body = needRuns(it.body, [], false);
      const taken = body === undefined ? startRunsOf(it.body) : joined(body, rest);
      if (taken === undefined || taken.length + rest.length > startRunsMax) return alone(run);
      return joined(run, [...taken, ...rest]);
    }
    const p = startRunsOf(it);
    return p === undefined ? alone(run) : joined(run, p);
  }
  // every item read is fixed: what follows them, when all were read and it is known
  return to < items.length || after === undefined ? alone(run) : joined(run, after);
}

/** What is known when nothing after `run` is: the run itself, if it holds any set. */
function alone(run: Need): Need[] | undefined {
  return run.length > 0 ? [run] : undefined;
}

/** `run` followed by each of `then`, each cut to `needLengthMax`. */
function joined(run: Need, then: Need[]): Need[] {
  return then.map((t) => [...run, ...t].slice(0, needLengthMax));
}

/** Runs one of which any match of a node that is not a fixed run starts with (an alternation's branches'), or undefined. */
function startRunsOf(node: Node): Need[] | undefined {
  switch (node.t) {
    case 'group':
      return startRunsOf(node.body);
    case 'seq':
      return startRuns(node.items, 0, undefined);
    case 'rep':
      return node.min === 0 ? undefined : startRuns([node.body], 0, undefined);
    case 'alt': {
      const out: Need[] = [];
      for (const a of node.alts) {
        const p = startRuns([a], 0, undefined);
        if (p === undefined || out.length + p.length > startRunsMax) return undefined;
        out.push(...p);
      }
      return out;
    }
    default:
      return undefined;
  }
}

/** Sets by identity, in the order first seen: what runs are sorted by. */
const setIds = new WeakMap<Uint8Array, number>();
let setIdNext = 0;
function setId(s: Uint8Array): number {
  let id = setIds.get(s);
  if (id === undefined) setIds.set(s, (id = setIdNext++));
  return id;
}

/** Runs in the order of their sets' ids, set by set (a run before the runs it starts). */
function byRun(a: Need, b: Need): number {
  for (let j = 0; j < Math.min(a.length, b.length); j++) {
    const d = setId(a[j]!) - setId(b[j]!);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** How many sets two runs share from their start (the same sets, by identity). */
function sharedSets(a: Need, b: Need): number {
  let j = 0;
  while (j < a.length && j < b.length && a[j] === b[j]) j++;
  return j;
}

/** Whether two runs are the same sets in the same order. */
function sameRun(a: Need, b: Need): boolean {
  return a.length === b.length && sharedSets(a, b) === a.length;
}

/** The index of the entry of `list` that `same` takes for `x`, added at the end when there is none. */
function indexIn<T>(list: T[], x: T, same: (e: T) => boolean): number {
  const i = list.findIndex(same);
  if (i >= 0) return i;
  list.push(x);
  return list.length - 1;
}

/** Whether run `a` holds run `b` (the same sets, in order, somewhere in it). */
function holds(a: Need, b: Need): boolean {
  for (let i = 0; i + b.length <= a.length; i++) if (b.every((set, j) => a[i + j] === set)) return true;
  return false;
}

/** A source compiled: what every instance of it shares (its registers and stack are its own). */
interface Compiled {
  main: Program;
  groups: number;
  regs: number;
  stars: number;
  memos: number;
  loops: number;
  first: Uint8Array | undefined;
  /** Every match starts with ^. */
  atStart: boolean;
  /** What the Need instructions look for. */
  needs: Need[];
  /** What the Stars' counts move to. */
  nexts: Need[][];
  /** How many sets each of those runs shares with the one before it. */
  nextShared: Int32Array[];
}

/**
 * The sources compiled last, as V8 keeps its RegExps' code: the community rules hold 237 pcres with a
 * backreference in 55 sources, each rule's own instance (compiling each took an engine's build from 65 to
 * 110 ms). Emptied when full.
 */
const compiledCache = new Map<string, Compiled>();
const compiledCacheMax = 4096;

function compiled(source: string, ci: boolean, dotAll: boolean): Compiled {
  const key = `${ci ? 'i' : ''}${dotAll ? 's' : ''}/${source}`;
  let c = compiledCache.get(key);
  if (c) return c;
  const p = new Parser(source, ci, dotAll);
  const ast = p.parse();
  const k = new Compiler(p.groups, p.refs.length > 0);
  const main = k.program(ast, false);
  c = {
    main,
    groups: p.groups,
    regs: k.regs,
    stars: k.stars,
    memos: k.memos,
    loops: k.loops,
    first: firstChars(ast),
    atStart: startsAtLineStart(ast),
    needs: k.needs,
    nexts: k.nexts,
    nextShared: k.nextShared,
  };
  if (compiledCache.size >= compiledCacheMax) compiledCache.clear();
  compiledCache.set(key, c);
  return c;
}

// ---- the machine

// backtrack entries, 4 numbers each: a tag and its three values
/** Resume at (pc, pos). */
const btAlt = 0;
/** Restore register a to b. */
const btUndo = 1;
/** A greedy Star at pc from pos, to try again with count c. */
const btStarGreedy = 2;
/** A lazy Star at pc from pos, to try again with count c. */
const btStarLazy = 3;
/** A remembered unbounded Star at pc a entered at pos b: popped, every count of it failed. */
const btEntry = 4;
/** A remembered count's loop (`Ins.loop` of a RepLoop) a entered at pos b: popped, everything after it failed. */
const btLoop = 5;

const outOfSteps = Symbol('out of steps');
/**
 * Per index of a Star's `next`, for each position of the subject of the exec under way the last place at
 * or before it where one of its runs starts (-1: none): the tables of `StepBoundedRegExp.prevAt`, shared by
 * every instance in the thread (an exec runs to its end before another starts, and each exec marks which it
 * made). Tables longer than `tableKept` (subjects past 64 KiB) are dropped when their exec ends.
 */
const prevTables: (Int32Array | undefined)[] = [];
/** The same for the first place at or after each position (`StepBoundedRegExp.nextAt`). */
const nextTables: (Int32Array | undefined)[] = [];
const tableKept = (1 << 16) + 1;
/**
 * Per slot of remembered failures in a count's body (`Ins.loop`), the positions recorded failed in the
 * exec under way: those holding `loopStamp`, a number each exec takes anew (so no table is cleared between
 * execs). Shared by the thread's instances as the tables above, dropped past the same length.
 */
const loopTables: (Uint32Array | undefined)[] = [];
let loopStamp = 0;
/** The longest backtrack stack an instance keeps between execs, in numbers (256 KB). */
const stackKept = 1 << 16;

/** Steps of one exec: `perByte` for each character of the subject, at least `min`. */
export interface StepsBudget {
  perByte: number;
  min: number;
}

/** What `exec` returns: RegExp's match array (index, the match and each group, undefined when unset). */
export type StepsMatch = [string, ...(string | undefined)[]] & { index: number; input: string };

/** What the engine execs a rule's pcre with: V8's RegExp or this machine. */
export interface PcreExec {
  lastIndex: number;
  readonly source: string;
  readonly flags: string;
  exec(text: string): { index: number; 0: string } | null;
}

export class StepBoundedRegExp implements PcreExec {
  lastIndex = 0;
  readonly global: boolean;
  readonly sticky: boolean;
  /** Execs that ran out of steps (each ended as no match). */
  limitHits = 0;
  /** Steps the last exec took. */
  lastSteps = 0;
  private readonly main: Program;
  private readonly regs: Int32Array;
  private readonly groups: number;
  private readonly multiline: boolean;
  private readonly ignoreCase: boolean;
  /** Characters a match can start with (skipping the others); undefined when a match may be empty or not known. */
  private readonly first: Uint8Array | undefined;
  private readonly atStart: boolean;
  /**
   * Per Star (forward), the run it read to its end last in this exec, [runFrom, runEnd): from anywhere in
   * it the loop takes the rest of it. -1: none.
   */
  private readonly runFrom: Int32Array;
  private readonly runEnd: Int32Array;
  /**
   * Per remembered unbounded Star (forward), the run it was last entered in and failed from whole, in this
   * exec: [entryFrom, entryEnd], every position it may be entered at again and fail. -1: none.
   */
  private readonly entryFrom: Int32Array;
  private readonly entryEnd: Int32Array;
  /**
   * Per slot of remembered failures (`Ins.loop`), positions [loopLo, loopHi] recorded failed in this exec,
   * all of them (the last such stretch recorded; the rest are in `loopTables`): a Star skips them at once.
   */
  private readonly loopLo: Int32Array;
  private readonly loopHi: Int32Array;
  private readonly needs: Need[];
  private readonly nexts: Need[][];
  private readonly nextShared: Int32Array[];
  /** Per need, where its last occurrence in the subject starts (-1: none), found at its first use in an exec; -2: not yet. */
  private readonly needAt: Int32Array;
  /** The steps left from which on this exec looks for needs (`opNeed`): Infinity, from its start. */
  private needsFrom = 0;
  /** Which of `prevTables` and `nextTables` this exec made (`prevAt`, `nextAt`). */
  private readonly prevMade: Uint8Array;
  private readonly nextMade: Uint8Array;
  /**
   * The steps left from which on this exec makes those tables and remembers failures in counts of groups
   * (`Ins.loop`): once it has taken a step a character (never with `searches: 'off'`), so an exec that stays
   * cheap pays nothing for either.
   */
  private tablesFrom = 0;
  private stack = new Int32Array(256);
  private sp = 0;
  private steps = 0;
  private text = '';

  /** In V8's order (`gims...`), as RegExp's flags read. */
  readonly flags: string;

  /**
   * @param budget the steps of one exec (every start it tries included): `perByte` for each character of
   *   the subject, at least `min`; past it the exec returns null and counts in `limitHits`, and `onLimit`
   *   is called.
   */
  constructor(
    readonly source: string,
    flags: string,
    readonly budget: StepsBudget,
    private readonly onLimit?: () => void,
    /**
     * When an exec looks for needs and makes the loops' tables: `late` (once it has taken a step a
     * character, where it tries one start only), `eager` (from its first step) or `off` (never, and
     * nothing remembered in counts of groups: the machine a backtracking matcher as V8's is, for tests that
     * must know where V8 may take exponential time).
     */
    private readonly searches: 'late' | 'eager' | 'off' = 'late',
  ) {
    for (const k of ['perByte', 'min'] as const)
      if (!Number.isSafeInteger(budget[k]) || budget[k] < 0)
        throw new RangeError(`budget.${k} must be a whole number, got ${budget[k]}`);
    if (budget.perByte === 0 && budget.min === 0) throw new RangeError('budget: no steps at all');
    const bad = /[^gimsy]/.exec(flags);
    if (bad || new Set(flags).size !== flags.length)
      throw new StepsSyntaxError(`flags '${flags}': only g, i, m, s and y, once each, are supported`);
    this.flags = new RegExp(source, flags).flags; // the pattern's own errors, in V8's words
    this.global = flags.includes('g');
    this.sticky = flags.includes('y');
    this.multiline = flags.includes('m');
    this.ignoreCase = flags.includes('i');
    const c = compiled(source, this.ignoreCase, flags.includes('s'));
    this.groups = c.groups;
    this.main = c.main;
    this.regs = new Int32Array(c.regs);
    this.runFrom = new Int32Array(c.stars);
    this.runEnd = new Int32Array(c.stars);
    this.entryFrom = new Int32Array(c.memos);
    this.entryEnd = new Int32Array(c.memos);
    this.loopLo = new Int32Array(c.loops);
    this.loopHi = new Int32Array(c.loops);
    this.first = c.first;
    this.atStart = c.atStart;
    this.needs = c.needs;
    this.nexts = c.nexts;
    this.nextShared = c.nextShared;
    this.needAt = new Int32Array(c.needs.length);
    this.prevMade = new Uint8Array(c.nexts.length);
    this.nextMade = new Uint8Array(c.nexts.length);
  }

  /** Whether the expression holds a backreference (what the engine runs through this machine). */
  static hasBackreference(source: string): boolean {
    try {
      const p = new Parser(source, false, false, false);
      p.parse();
      return p.refs.length > 0;
    } catch {
      return false;
    }
  }

  /**
   * Whether two unbounded loops over intersecting characters can take the same text one after the other
   * (nothing between them the first does not take), or an unbounded count repeats a loop: where a
   * backtracking matcher such as V8's may take time polynomial (or exponential) in its subject, and this
   * machine, remembering what failed, takes linear steps (when the pattern has no backreference). A test of
   * the shape, not a proof.
   */
  static ambiguousLoops(source: string, flags = ''): boolean {
    const ast = parsed(source, flags);
    return ast !== undefined && ambiguous(ast);
  }

  /**
   * Whether a search may enter an unbounded loop again from every start inside the loop's run, reading the
   * run to its end each time (`restartable` below): quadratic in a backtracking matcher such as V8's, linear
   * in this machine's steps. A test of the shape, not a proof.
   */
  static restartableLoop(source: string, flags = ''): boolean {
    const ast = parsed(source, flags);
    return ast !== undefined && restartable(ast, flags.includes('m'));
  }

  exec(text: string): StepsMatch | null {
    const anchored = this.global || this.sticky;
    let start = anchored ? this.lastIndex : 0;
    if (start > text.length) {
      if (anchored) this.lastIndex = 0;
      return null;
    }
    const wide = notLatin1.exec(text);
    if (wide)
      throw new TypeError(
        `StepBoundedRegExp reads latin1 text: a code unit above 0xFF at offset ${wide.index}`,
      );
    this.text = text;
    const stepsMax = Math.max(this.budget.min, this.budget.perByte * text.length);
    this.steps = stepsMax;
    this.runFrom.fill(-1);
    this.entryFrom.fill(-1);
    this.loopLo.fill(-1);
    this.loopHi.fill(-1);
    if (this.loopLo.length > 0 && ++loopStamp > 0xffffffff) {
      for (const t of loopTables) t?.fill(0);
      loopStamp = 1;
    }
    this.needAt.fill(-2);
    const mode = this.searches;
    const late =
      mode === 'off' ? Number.NEGATIVE_INFINITY : mode === 'eager' ? stepsMax : stepsMax - text.length;
    this.needsFrom =
      mode === 'off' || this.sticky || (this.atStart && !this.multiline) ? late : Number.POSITIVE_INFINITY;
    this.tablesFrom = late;
    this.prevMade.fill(0);
    this.nextMade.fill(0);
    const { first, regs } = this;
    let end = -1;
    try {
      for (; start <= text.length; start++) {
        if (!this.sticky && first !== undefined) {
          while (start < text.length && first[text.charCodeAt(start) & 0xff] === 0) start++;
          if (start === text.length) break;
        }
        regs.fill(-1, 0, 2 * (this.groups + 1));
        this.sp = 0;
        if (--this.steps < 0) throw outOfSteps;
        end = this.run(this.main, start, 0);
        // a match must start where ^ holds: without m, at 0 only (as V8 tries it)
        if (end >= 0 || this.sticky || (this.atStart && !this.multiline)) break;
      }
    } catch (e) {
      if (e !== outOfSteps) throw e;
      this.lastSteps = stepsMax;
      this.limitHits++;
      this.onLimit?.();
      if (anchored) this.lastIndex = 0;
      return null;
    } finally {
      this.text = '';
      // a stack grown by one exec (up to 16 bytes a step of its budget: 17 MB for (a|a)*b over 64 KiB) is not
      // kept by the instance; every rule holds its own
      if (this.stack.length > stackKept) this.stack = new Int32Array(256);
      if (text.length + 1 > tableKept)
        for (const tables of [prevTables, nextTables, loopTables])
          for (let i = 0; i < tables.length; i++)
            if ((tables[i]?.length ?? 0) > tableKept) tables[i] = undefined;
    }
    this.lastSteps = stepsMax - this.steps;
    if (end < 0) {
      if (anchored) this.lastIndex = 0;
      return null;
    }
    if (anchored) this.lastIndex = end;
    const m = [text.slice(start, end)] as unknown as StepsMatch;
    for (let g = 1; g <= this.groups; g++) {
      const s = regs[2 * g]!;
      m.push(s < 0 ? undefined : text.slice(s, regs[2 * g + 1]!));
    }
    m.index = start;
    m.input = text;
    return m;
  }

  private push(tag: number, a: number, b: number, c: number): void {
    if (this.sp + 4 > this.stack.length) {
      const s = new Int32Array(this.stack.length * 2);
      s.set(this.stack);
      this.stack = s;
    }
    const st = this.stack;
    st[this.sp] = tag;
    st[this.sp + 1] = a;
    st[this.sp + 2] = b;
    st[this.sp + 3] = c;
    this.sp += 4;
  }

  private setReg(r: number, v: number): void {
    this.push(btUndo, r, this.regs[r]!, 0);
    this.regs[r] = v;
  }

  /** Runs a program from pos; its end position, or -1 when it cannot match (its entries popped to base). */
  private run(p: Program, pos: number, base: number): number {
    const { code, back } = p;
    const { text, regs } = this;
    const len = text.length;
    const open = 2 * (this.groups + 1);
    let pc = 0;
    for (;;) {
      if (--this.steps < 0) throw outOfSteps;
      const ins = code[pc]!;
      let ok = true;
      switch (ins.op) {
        case opSet: {
          const q = back ? pos - 1 : pos;
          if (q < 0 || q >= len || ins.set[text.charCodeAt(q) & 0xff] === 0) ok = false;
          else {
            pos = back ? q : q + 1;
            pc++;
          }
          break;
        }
        case opStar: {
          const set = ins.set;
          const min = ins.min;
          const want = ins.greedy ? ins.max : min;
          if (ins.memo >= 0) {
            // entered before in this run of its set, and everything after every count failed: each count
            // from here is one of those
            const m = ins.memo;
            if (this.entryFrom[m]! >= 0 && this.entryFrom[m]! <= pos && pos <= this.entryEnd[m]!) {
              ok = false;
              break;
            }
            this.push(btEntry, pc, pos, 0);
          }
          let n = 0;
          const from = this.runFrom[ins.n]!;
          if (from >= 0 && from <= pos && pos <= this.runEnd[ins.n]!) {
            // inside a run this loop has read to its end in this exec: no need to read it again (else each
            // start in a run of n letters reads to its end, n^2 / 2 steps for `(\w+)...`)
            n = Math.min(want, this.runEnd[ins.n]! - pos);
            this.steps--;
          } else if (back) {
            while (n < want && pos - n > 0 && set[text.charCodeAt(pos - n - 1) & 0xff] === 1) n++;
            this.steps -= n;
          } else {
            n = Math.min(want, this.runTo(set, pos, want, from, this.runEnd[ins.n]!) - pos);
            if (n < want) {
              this.runFrom[ins.n] = pos;
              this.runEnd[ins.n] = pos + n;
            }
          }
          // a count that reaches the run failed from a later entry goes where that entry's counts went
          if (ins.greedy && ins.memo >= 0) n = Math.min(n, this.coveredFrom(ins, pos) - 1 - pos);
          if (ins.loop >= 0 && this.steps <= this.tablesFrom) n = this.loopSkip(ins, pos, n);
          if (n < min) {
            ok = false;
            break;
          }
          if (ins.greedy) {
            if (n > min && !ins.possessive) this.push(btStarGreedy, pc, pos, n - 1);
          } else if (n < ins.max) this.push(btStarLazy, pc, pos, n + 1);
          pos = back ? pos - n : pos + n;
          pc++;
          break;
        }
        case opSplitIf:
        case opSplit:
          // SplitIf: the branch cannot start here, so straight to the next one, nothing to come back to
          if (ins.op === opSplitIf && (pos >= len || ins.set[text.charCodeAt(pos) & 0xff] === 0)) pc = ins.to;
          else {
            this.push(btAlt, ins.to, pos, 0);
            pc++;
          }
          break;
        case opJmp:
          pc = ins.to;
          break;
        case opNeed: {
          let at = this.needAt[ins.n]!;
          if (at === -2) {
            // an exec that tries one start only (^ without m, or sticky) looks for none until it has taken
            // a step a character: one that fails early pays nothing for it, and the search costs the rest
            // at most that much again; where every start may be tried, the starts cost that much anyway
            if (this.steps > this.needsFrom) {
              pc++;
              break;
            }
            this.needAt[ins.n] = at = this.lastOf(this.needs[ins.n]!);
          }
          if (at < pos) ok = false;
          else pc++;
          break;
        }
        case opOpen:
          this.setReg(open + ins.n, pos);
          pc++;
          break;
        case opClose: {
          const o = regs[open + ins.n]!;
          this.setReg(2 * ins.n, back ? pos : o);
          this.setReg(2 * ins.n + 1, back ? o : pos);
          pc++;
          break;
        }
        case opAssert:
          ok = this.assert(ins.k, pos);
          if (ok) pc++;
          break;
        case opRef: {
          const s = regs[2 * ins.n]!;
          if (s < 0) {
            pc++;
            break;
          }
          const n = regs[2 * ins.n + 1]! - s;
          const from = back ? pos - n : pos;
          if (from < 0 || from + n > len) {
            ok = false;
            break;
          }
          // a step a character compared (not the group's length: a long capture that differs at once is cheap)
          let k = 0;
          for (; k < n && ok; k++) {
            const a = text.charCodeAt(s + k);
            const b = text.charCodeAt(from + k);
            ok = a === b || (this.ignoreCase && canon[a & 0xff] === canon[b & 0xff]);
          }
          this.steps -= k;
          if (ok) {
            pos = back ? from : from + n;
            pc++;
          }
          break;
        }
        case opLook: {
          const from = 2 * ins.capFrom;
          const to = 2 * ins.capTo;
          const saved = from === to ? noRegs : regs.slice(from, to);
          const mark = this.sp;
          const r = this.run(ins.sub!, pos, mark);
          this.sp = mark; // atomic: the body's other ways are dropped
          if (ins.negative) {
            regs.set(saved, from);
            ok = r < 0;
          } else if (r < 0) ok = false;
          else
            for (let k = from; k < to; k++) {
              if (regs[k] !== saved[k - from]) this.push(btUndo, k, saved[k - from]!, 0);
            }
          if (ok) pc++;
          break;
        }
        case opRepInit:
          this.setReg(ins.n, 0);
          pc++;
          break;
        case opRepLoop: {
          const count = regs[ins.n]!;
          if (count < ins.min) pc = ins.body;
          else if (count >= ins.max) pc = ins.to;
          else {
            if (ins.loop >= 0 && this.steps <= this.tablesFrom) {
              // entered here before in this exec, and everything after it failed
              if (this.loopFailedAt(ins.loop, pos)) {
                ok = false;
                break;
              }
              this.push(btLoop, ins.loop, pos, 0);
            }
            if (ins.greedy) {
              this.push(btAlt, ins.to, pos, 0);
              pc = ins.body;
            } else {
              this.push(btAlt, ins.body, pos, 0);
              pc = ins.to;
            }
          }
          break;
        }
        case opRepBody:
          this.setReg(ins.n + 1, pos);
          for (let g = ins.capFrom; g < ins.capTo; g++) {
            if (regs[2 * g]! >= 0) {
              this.setReg(2 * g, -1);
              this.setReg(2 * g + 1, -1);
            }
          }
          pc++;
          break;
        case opRepEnd: {
          const count = regs[ins.n]!;
          if (count >= ins.min && pos === regs[ins.n + 1]) ok = false;
          else {
            this.setReg(ins.n, count + 1);
            pc = ins.to;
          }
          break;
        }
        case opMatch:
          return pos;
      }
      if (ok) continue;
      // backtrack
      for (;;) {
        if (this.sp === base) return -1;
        if (--this.steps < 0) throw outOfSteps;
        this.sp -= 4;
        const st = this.stack;
        const tag = st[this.sp]!;
        const a = st[this.sp + 1]!;
        const b = st[this.sp + 2]!;
        let c = st[this.sp + 3]!;
        if (tag === btUndo) {
          regs[a] = b;
          continue;
        }
        if (tag === btAlt) {
          pc = a;
          pos = b;
          break;
        }
        if (tag === btEntry) {
          // every count of the Star at a entered at b failed: so does an entry anywhere in the run
          const star = code[a]!;
          const m = star.memo;
          this.entryEnd[m] = this.runTo(
            star.set,
            b,
            Number.POSITIVE_INFINITY,
            this.entryFrom[m]!,
            this.entryEnd[m]!,
          );
          this.entryFrom[m] = b;
          continue;
        }
        if (tag === btLoop) {
          this.loopFailed(a, b);
          continue;
        }
        const star = code[a]!;
        if (tag === btStarGreedy) {
          // everything after count c + 1 failed (past the Star's minimum: see `Ins.loop`)
          const remembered = star.loop >= 0 && this.steps <= this.tablesFrom;
          if (remembered) this.loopFailed(star.loop, b + c + 1);
          for (;;) {
            if (star.next >= 0 && this.steps <= this.tablesFrom) {
              // only a count after which the run that must follow starts: the largest such up to c
              c = this.prevAt(star.next)[b + c]! - b;
              if (c < star.min) break;
            }
            // and not one whose end failed before
            const skipped = remembered ? this.loopSkip(star, b, c) : c;
            if (skipped === c) break;
            c = skipped;
            if (c < star.min) break;
          }
          if (c < star.min) continue;
          if (c > star.min) this.push(btStarGreedy, a, b, c - 1);
        } else {
          // lazy: one more character, if the set takes it
          const q = back ? b - c : b + c - 1;
          if (q < 0 || q >= len || star.set[text.charCodeAt(q) & 0xff] === 0) continue;
          if (star.next >= 0 && this.steps <= this.tablesFrom) {
            // more characters, up to the next place where a run that must follow starts, if the loop's set
            // takes all of them
            const at = this.nextAt(star.next)[b + c]!;
            if (at < 0 || at - b > star.max || at > this.lazyRunEnd(star, q)) continue;
            c = at - b;
          }
          if (star.memo >= 0 && b + c >= this.coveredFrom(star, b)) continue;
          if (c < star.max) this.push(btStarLazy, a, b, c + 1);
        }
        pos = back ? b - c : b + c;
        pc = a + 1;
        break;
      }
    }
  }

  /** Whether position pos is recorded failed in slot m (`Ins.loop`) in this exec. */
  private loopFailedAt(m: number, pos: number): boolean {
    if (this.loopLo[m]! <= pos && pos <= this.loopHi[m]!) return true;
    const t = loopTables[m];
    return t !== undefined && pos < t.length && t[pos] === loopStamp;
  }

  /** Records position pos failed in slot m (`Ins.loop`): everything after it tried. */
  private loopFailed(m: number, pos: number): void {
    let t = loopTables[m];
    if (t === undefined || t.length <= this.text.length)
      loopTables[m] = t = new Uint32Array(this.text.length + 1);
    t[pos] = loopStamp;
    const lo = this.loopLo[m]!;
    const hi = this.loopHi[m]!;
    if (lo >= 0 && pos >= lo - 1 && pos <= hi + 1) {
      if (pos < lo) this.loopLo[m] = pos;
      if (pos > hi) this.loopHi[m] = pos;
    } else {
      this.loopLo[m] = pos;
      this.loopHi[m] = pos;
    }
  }

  /**
   * The largest count up to c of a greedy Star in a count's body (`Ins.loop`) entered at b whose end is not
   * recorded failed (less than its minimum when none): a stretch of such ends (`loopLo`..`loopHi`) a step.
   */
  private loopSkip(star: Ins, b: number, c: number): number {
    const m = star.loop;
    while (c >= star.min && this.loopFailedAt(m, b + c)) {
      if (--this.steps < 0) throw outOfSteps;
      const p = b + c;
      c = this.loopLo[m]! <= p && p <= this.loopHi[m]! ? this.loopLo[m]! - 1 - b : c - 1;
    }
    return c;
  }

  /** For each position of the subject, the last place at or before it where one of `nexts[i]` starts (-1: none). */
  private prevAt(i: number): Int32Array {
    if (this.prevMade[i] === 1) return prevTables[i]!;
    this.prevMade[i] = 1;
    return this.places(i, prevTables, true);
  }

  /** For each position of the subject, the first place at or after it where one of `nexts[i]` starts (-1: none). */
  private nextAt(i: number): Int32Array {
    if (this.nextMade[i] === 1) return nextTables[i]!;
    this.nextMade[i] = 1;
    return this.places(i, nextTables, false);
  }

  /**
   * Fills `tables[i]` for this exec's subject: for each position, the last place at or before it (`last`)
   * or the first at or after it where one of the runs of `nexts[i]` starts, -1 where none does. Each
   * character compared a step; sets a run shares with the run before it are not compared again.
   */
  private places(i: number, tables: (Int32Array | undefined)[], last: boolean): Int32Array {
    const { text } = this;
    const len = text.length;
    let table = tables[i];
    if (table === undefined || table.length < len + 1) tables[i] = table = new Int32Array(len + 1);
    const runs = this.nexts[i]!;
    const shared = this.nextShared[i]!;
    let found = -1;
    let compared = 0;
    for (let k = 0; k <= len; k++) {
      const q = last ? k : len - k;
      // how far the run before matched here (up to the subject's end)
      let before = -1;
      for (let r = 0; r < runs.length; r++) {
        const run = runs[r]!;
        let j: number;
        // it failed within the sets this run shares with it: so does this one
        if (r > 0 && before < shared[r]!) j = before;
        else {
          const from = r > 0 ? shared[r]! : 0;
          j = this.matched(run, q, from);
          compared += j - from + 1;
        }
        if (j === run.length) {
          found = q;
          break;
        }
        before = j;
      }
      table[q] = found;
    }
    this.steps -= compared;
    if (this.steps < 0) throw outOfSteps;
    return table;
  }

  /**
   * Where the run of a lazy Star's set that holds position q ends (forward), read once per run: the Star's
   * run slot keeps it (as a greedy Star's does).
   */
  private lazyRunEnd(star: Ins, q: number): number {
    const from = this.runFrom[star.n]!;
    const end = this.runEnd[star.n]!;
    if (from >= 0 && from <= q && q < end) return end;
    const e = this.runTo(star.set, q, Number.POSITIVE_INFINITY, from, end);
    this.runFrom[star.n] = q;
    this.runEnd[star.n] = e;
    return e;
  }

  /**
   * Where the last occurrence of a need in the subject starts, -1 when it has none: read from the end, each
   * character compared a step.
   */
  private lastOf(need: Need): number {
    let compared = 0;
    let s = this.text.length - need.length;
    for (; s >= 0; s--) {
      const j = this.matched(need, s);
      compared += Math.max(j, 1);
      if (j === need.length) break;
    }
    this.steps -= compared;
    if (this.steps < 0) throw outOfSteps;
    return Math.max(s, -1);
  }

  /**
   * How many sets of `run` the subject matches from position q on, one after another, up to its end; the
   * first `from` of them known to.
   */
  private matched(run: Need, q: number, from = 0): number {
    const { text } = this;
    const end = Math.min(run.length, text.length - q);
    let j = from;
    while (j < end && run[j]![text.charCodeAt(q + j) & 0xff] === 1) j++;
    return j;
  }

  /**
   * Where the run of `set` from pos ends (forward), at most `want` characters on; reading stops at `known`,
   * the start of a run already read to `knownEnd` (-1: none). The characters read count as steps.
   */
  private runTo(set: Uint8Array, pos: number, want: number, known: number, knownEnd: number): number {
    const { text } = this;
    const end = Math.min(text.length, pos + want);
    let q = pos;
    while (q < end && set[text.charCodeAt(q) & 0xff] === 1) {
      if (q === known) break;
      q++;
    }
    this.steps -= q - pos;
    return q === known ? Math.min(end, knownEnd) : q;
  }

  /**
   * For a remembered unbounded Star entered at pos (forward): the first position its counts may reach whose
   * continuation is known to fail, because a later entry failed whole (its counts reached every position
   * from its entry plus min to its run's end); Infinity when none is known. Counts from pos reach that
   * entry only if it is in the same run, and then they go where its counts went.
   */
  private coveredFrom(star: Ins, pos: number): number {
    const from = this.entryFrom[star.memo]!;
    // none, or not later (an entry inside that run fails at once)
    return from <= pos ? Number.POSITIVE_INFINITY : from + star.min;
  }

  private assert(k: '^' | '$' | 'b' | 'B', pos: number): boolean {
    const { text } = this;
    switch (k) {
      case '^':
        return pos === 0 || (this.multiline && isLineEnd(text.charCodeAt(pos - 1)));
      case '$':
        return pos === text.length || (this.multiline && isLineEnd(text.charCodeAt(pos)));
      default: {
        const a = pos > 0 && isWord(text.charCodeAt(pos - 1));
        const b = pos < text.length && isWord(text.charCodeAt(pos));
        return (a !== b) === (k === 'b');
      }
    }
  }
}

/** Whether every match of the node starts with `^` (its first item, in every alternative). */
function startsAtLineStart(node: Node): boolean {
  switch (node.t) {
    case 'assert':
      return node.k === '^';
    case 'group':
      return startsAtLineStart(node.body);
    case 'seq':
      return node.items.length > 0 && startsAtLineStart(node.items[0]!);
    case 'alt':
      return node.alts.every(startsAtLineStart);
    default:
      return false;
  }
}

/** The characters every match starts with (for skipping starts), or undefined when that is not known. */
function firstChars(node: Node): Uint8Array | undefined {
  const l = lead(node, true);
  return l.nullable ? undefined : l.set;
}

function orInto(to: Uint8Array, from: Uint8Array): void {
  for (let c = 0; c < 256; c++) to[c]! |= from[c]!;
}

function union(a: Uint8Array | undefined, b: Uint8Array | undefined): Uint8Array | undefined {
  if (a === undefined || b === undefined) return undefined;
  const u = new Uint8Array(256);
  for (let c = 0; c < 256; c++) u[c] = a[c]! | b[c]!;
  return u;
}

/** The character sets of the unbounded loops over one set in a node, at any depth but in lookarounds. */
function loopsIn(node: Node, out: Uint8Array[] = []): Uint8Array[] {
  switch (node.t) {
    case 'rep':
      if (node.max === Infinity && node.body.t === 'set') out.push(node.body.set);
      else loopsIn(node.body, out);
      break;
    case 'seq':
      for (const it of node.items) loopsIn(it, out);
      break;
    case 'alt':
      for (const a of node.alts) loopsIn(a, out);
      break;
    case 'group':
      loopsIn(node.body, out);
      break;
    // a lookaround's loops run apart, atomic: they take nothing from the loops around it
  }
  return out;
}

/** Every character a node may take (zero-width nodes none); undefined for a backreference. */
function charsOf(node: Node): Follow {
  switch (node.t) {
    case 'set':
      return node.set;
    case 'rep':
    case 'group':
      return charsOf(node.body);
    case 'seq':
    case 'alt': {
      const set = new Uint8Array(256);
      for (const x of node.t === 'seq' ? node.items : node.alts) {
        const c = charsOf(x);
        if (c === undefined) return undefined;
        orInto(set, c);
      }
      return set;
    }
    case 'ref':
      return undefined;
    default:
      return noSet;
  }
}

function ambiguous(node: Node): boolean {
  switch (node.t) {
    case 'rep':
      if (node.max === Infinity && node.body.t !== 'set' && loopsIn(node.body).length > 0) return true;
      return ambiguous(node.body);
    case 'group':
    case 'look':
      return ambiguous(node.body);
    case 'alt':
      return node.alts.some(ambiguous);
    case 'seq': {
      const { items } = node;
      for (let i = 0; i < items.length; i++)
        for (const a of loopsIn(items[i]!))
          for (let j = i + 1; j < items.length; j++) {
            if (loopsIn(items[j]!).some((b) => !disjoint(a, b))) return true;
            const c = charsOf(items[j]!);
            if (c === undefined || !disjoint(c, complement(a))) break; // it takes what the loop does not
          }
      return items.some(ambiguous);
    }
    default:
      return false;
  }
}

/** The pattern's tree under its i and s flags, with what one character matches; undefined for one it does not read. */
function parsed(source: string, flags: string): Node | undefined {
  try {
    return new Parser(source, flags.includes('i'), flags.includes('s')).parse();
  } catch {
    return undefined;
  }
}

// ---- subjects built against a pattern's loops

/** The order characters are picked from a set in: letters, digits, blank, punctuation, then the rest. */
const pickOrder = (() => {
  const order: number[] = [];
  const add = (from: number, to: number) => {
    for (let c = from; c <= to; c++) if (!order.includes(c)) order.push(c);
  };
  add(0x61, 0x7a);
  add(0x41, 0x5a);
  add(0x30, 0x39);
  add(0x20, 0x20);
  add(0x21, 0x7e);
  add(0x0a, 0x0a);
  add(0x0d, 0x0d);
  add(0x09, 0x09);
  add(0, 0xff);
  return order;
})();

/** A character of `set` (not of `avoid`), in `pickOrder`; undefined when there is none. */
function pick(set: Uint8Array, avoid?: Uint8Array): number | undefined {
  for (const c of pickOrder) if (set[c] && !avoid?.[c]) return c;
  return undefined;
}

/**
 * A shortest text the node takes, zero-width tests passed over and a backreference taking nothing, cut
 * after `cap` + 1 characters (`(a{1000}){1000}` would be a million).
 */
function shortest(node: Node, cap: number): string {
  switch (node.t) {
    case 'set': {
      const c = pick(node.set);
      return c === undefined ? '' : String.fromCharCode(c);
    }
    case 'seq': {
      let s = '';
      for (const it of node.items) {
        s += shortest(it, cap);
        if (s.length > cap) return s.slice(0, cap + 1);
      }
      return s;
    }
    case 'alt':
      return node.alts.map((a) => shortest(a, cap)).reduce((a, b) => (b.length < a.length ? b : a));
    case 'group':
      return shortest(node.body, cap);
    case 'rep': {
      const one = node.min === 0 ? '' : shortest(node.body, cap);
      return one.length === 0
        ? ''
        : one.repeat(Math.min(node.min, Math.ceil((cap + 1) / one.length))).slice(0, cap + 1);
    }
    default:
      return '';
  }
}

/** A count up to at least this many is a loop to pump. */
const pumpCountMin = 16;

/**
 * Subjects of `length` characters built against a pattern's loops, where a backtracking matcher spends its
 * time: for each loop (a count up to at least 16, outside lookarounds), the shortest text that leads to it
 * followed by one piece its body takes, repeated; and that lead-in and the piece together, repeated (every
 * start enters the loop again: `filename=[^\n]*\.jpeg` over `filename=a` repeated). The pieces of a loop
 * over one set of characters: one character that it and what follows it both take (the two trade the
 * run), one that it takes and what follows does not (it runs to the end and fails there), and its set's
 * first; of another loop, its body's shortest text. Zero-width tests are passed over, a backreference
 * takes nothing, so a subject may not reach its loop. A search aid (the pcre bench, tests of the step
 * machine's linear steps), not a proof that a pattern is safe. At most `max` subjects, undefined for a
 * pattern the machine does not read.
 */
export function pumpSubjects(source: string, flags: string, length: number, max = 32): string[] | undefined {
  const ast = parsed(source, flags);
  if (ast === undefined) return undefined;
  const out = new Set<string>();
  const fill = (s: string) => (s.length === 0 ? '' : s.repeat(Math.ceil(length / s.length)).slice(0, length));
  const emit = (into: string, piece: string) => {
    if (out.size >= max || piece.length === 0 || into.length + piece.length >= length) return;
    out.add((into + fill(piece)).slice(0, length));
    if (into.length > 0) out.add(fill(into + piece));
  };
  /** `after`: the nodes that follow, innermost first (what the loop's run may be traded with). */
  const walk = (node: Node, into: string, after: Node[]): void => {
    if (out.size >= max) return;
    switch (node.t) {
      case 'seq':
        for (let i = 0, at = into; i < node.items.length; i++) {
          walk(node.items[i]!, at, [...node.items.slice(i + 1), ...after]);
          at = (at + shortest(node.items[i]!, length)).slice(0, length + 1);
        }
        return;
      case 'alt':
        for (const a of node.alts) walk(a, into, after);
        return;
      case 'group':
        walk(node.body, into, after);
        return;
      case 'rep': {
        if (node.max >= pumpCountMin) {
          const body = node.body;
          if (body.t === 'set') {
            const follow = lead({ t: 'seq', items: after }, true).set ?? noSet;
            for (const c of [pick(body.set, complement(follow)), pick(body.set, follow), pick(body.set)])
              if (c !== undefined) emit(into, String.fromCharCode(c));
          } else emit(into, shortest(body, length));
        }
        // a loop inside is entered after the count's minimum less one turn
        const one = node.min > 1 ? shortest(node.body, length) : '';
        const turns =
          one.length === 0 ? '' : one.repeat(Math.min(node.min - 1, Math.ceil((length + 1) / one.length)));
        walk(node.body, (into + turns).slice(0, length + 1), [{ ...node, min: 0 }, ...after]);
        return;
      }
      default:
        return; // a lookaround's loops run apart; sets, tests and references hold no loop
    }
  };
  walk(ast, '', []);
  return [...out].slice(0, max);
}

/**
 * Whether the node can take a text whose characters are all in `set`, at a position inside a run of them:
 * `^` only under m after a line end in the set, other zero-width tests taken as passing.
 */
function fits(node: Node, set: Uint8Array, multiline: boolean): boolean {
  switch (node.t) {
    case 'assert':
      return node.k !== '^' || (multiline && (set[0x0a] === 1 || set[0x0d] === 1));
    case 'set':
      return !disjoint(node.set, set);
    case 'seq':
      return node.items.every((x) => fits(x, set, multiline));
    case 'alt':
      return node.alts.some((x) => fits(x, set, multiline));
    case 'group':
      return fits(node.body, set, multiline);
    case 'rep':
      return node.min === 0 || fits(node.body, set, multiline);
    case 'look':
      // a lookahead that must hold there: its own anchors count (`(?=^...)` under no m never holds inside)
      return node.negative || node.behind || fits(node.body, set, multiline);
    default:
      return true;
  }
}

/**
 * Whether a count repeats a group without bound, or repeats one that holds a loop: the machine remembers
 * no runs for the loops inside such a count (only, for an unbounded one, where entering it or ending a
 * count of its loops failed: `Ins.loop`), so a search that enters it again from each start is not
 * known to be linear there.
 */
function groupLoop(node: Node): boolean {
  switch (node.t) {
    case 'rep':
      if (node.body.t === 'set') return false;
      return node.max === Infinity || (node.max > 1 && loopsIn(node.body).length > 0) || groupLoop(node.body);
    case 'seq':
      return node.items.some(groupLoop);
    case 'alt':
      return node.alts.some(groupLoop);
    case 'group':
    case 'look':
      return groupLoop(node.body);
    default:
      return false;
  }
}

/**
 * Whether an unbounded loop over one set of characters can be reached by a text of its own characters
 * (lookarounds included): then a run of those characters holding the pattern's start again and again
 * makes a search start the loop from each of them and read the run to its end each time, time quadratic
 * in the run (`uid=\d{1,5}\S+\s+gid=` over `uid=0a` repeated: every `uid=` starts a `\S+` to the end).
 * Not where a count repeats a group (`groupLoop`): the machine would not be linear there either.
 */
function restartable(node: Node, multiline: boolean): boolean {
  const walk = (n: Node, before: Node[]): boolean => {
    switch (n.t) {
      case 'seq':
        return n.items.some((x, i) => walk(x, [...before, ...n.items.slice(0, i)]));
      case 'alt':
        return n.alts.some((x) => walk(x, before));
      case 'group':
      case 'look':
        return walk(n.body, before);
      case 'rep':
        if (n.max === Infinity && n.body.t === 'set') {
          const set = n.body.set;
          if (before.every((x) => fits(x, set, multiline))) return true;
        }
        return walk(n.body, before);
      default:
        return false;
    }
  };
  return !groupLoop(node) && walk(node, []);
}

function complement(a: Uint8Array): Uint8Array {
  const c = new Uint8Array(256);
  for (let k = 0; k < 256; k++) c[k] = a[k]! ^ 1;
  return c;
}

/**
 * V8's RegExp for a subject of up to `shortMax` characters and the step machine beyond, one lastIndex
 * between them: for a pattern V8 may take polynomial time over (`StepBoundedRegExp.ambiguousLoops`) and
 * runs about 20 times faster than the machine where the subject is short.
 */
export class LengthSwitchedRegExp implements PcreExec {
  lastIndex = 0;
  constructor(
    readonly short: RegExp,
    readonly long: StepBoundedRegExp,
    readonly shortMax: number,
  ) {}

  get source(): string {
    return this.long.source;
  }

  get flags(): string {
    return this.long.flags;
  }

  exec(text: string): { index: number; 0: string } | null {
    const re = text.length <= this.shortMax ? this.short : this.long;
    re.lastIndex = this.lastIndex;
    const m = re.exec(text);
    this.lastIndex = re.lastIndex;
    return m;
  }
}
