/**
 * PCRE, as Snort 3 and Suricata run a rule's `pcre`, rewritten as a JavaScript RegExp over latin1 text.
 *
 * The engines run PCRE in its defaults: 8-bit characters (no UTF, no Unicode properties), newline = LF,
 * ASCII character tables. JavaScript (without the u flag) reads much of the same syntax with other
 * meanings, silently: `\A`, `\z`, `\Z`, `\h`, `\e` are plain letters; `$` without m matches only at the very
 * end (PCRE also before a final newline); with m, `^`, `$` and `.` treat CR as a line end (PCRE only LF);
 * `\s` matches NBSP (0xA0); `[]a]` is an empty class followed by text; `[[:alpha:]]` is a class of
 * punctuation and letters; the i flag folds latin1 letters (0xE9 matches 0xC9). So the pattern is read
 * token by token and written out with the PCRE meaning spelt in JavaScript: anchors and line ends as
 * lookarounds, classes explicit, `\Q...\E`, `\x{..}`, `\o{..}`, POSIX classes, named groups in PCRE's
 * spellings, inline option changes (`(?i)`, `(?-i)`, `(?s:...)`, `(?m)`, `(?x)`), Snort's E (dollar at the
 * end only) and G (ungreedy) flags. What JavaScript cannot express (atomic groups, possessive quantifiers,
 * recursion, conditionals, `\K`, `\G`, Unicode properties, a backreference in a caseless part written out
 * letter by letter) is refused with the reason.
 *
 * Backreferences: JavaScript matches one to an unset group as the empty string (PCRE fails it), clears a
 * repeated group's captures at each iteration (PCRE keeps the last) and matches a lookbehind right to
 * left; so a backreference is taken where its group is surely set, written as never matching where its
 * group is in an earlier alternative (`(a)|b\1`, nothing repeated around both), and refused elsewhere.
 * Under JavaScript's i flag a backreference compares latin1 letters folded, so one to a group that can
 * hold such a letter (`(.)\1` with i) is refused.
 *
 * Not rewritten (JavaScript's matching itself differs): a quantified group whose body can match the empty
 * string, as `(?:a*?)?` or `(x|)+`: past the group's minimum count, JavaScript refuses an iteration that
 * matched empty and backtracks into the body for a longer one, where PCRE takes the empty iteration and
 * stops (`(?:a*?)?` over "a": PCRE matches "", JavaScript "a"); and `{,n}`, text here as in PCRE before
 * 10.43 (Perl 5.34 and PCRE2 10.43 read it as {0,n}).
 *
 * Case: when the whole pattern is caseless (or none of it is) and it names no latin1 letter, the RegExp gets
 * JavaScript's i flag (PCRE and JavaScript fold ASCII alike); otherwise each ASCII letter of a caseless part
 * is written as both cases (`a` -> `[aA]`) and the RegExp has no i flag.
 *
 * Semantics: PCRE2's documentation (pcre2pattern, pcre2api: PCRE2_DOLLAR_ENDONLY, PCRE2_UNGREEDY,
 * PCRE2_ANCHORED, newline and \R defaults), Snort 3's pcre flags (snort_manual: pcre), checked against Perl,
 * whose regular expressions PCRE follows, in test/pcre.test.ts.
 */

import { charSet } from './steps.js';

export type Pcre = {
  re: RegExp;
  /**
   * When the pattern has a `$` (without m) or `\Z`: the same with JavaScript's plain end anchor, exact on
   * a subject that does not end with LF and much faster (V8 tries an end-anchored expression only near the
   * end; the lookahead PCRE's "or before a final LF" needs makes it try every position: 14-38x slower).
   */
  reNoFinalNewline?: RegExp;
  relative: boolean;
  negated: boolean;
  buffer?: string;
  /** Snort's O flag: the match limits are off for this pcre (no backtrack bound, no step machine). */
  unlimited?: boolean;
};

/** Converts a PCRE `/re/flags` to a JavaScript RegExp over latin1 text; undefined when it cannot. */
export function compilePcre(v: string): Pcre | undefined {
  const r = translatePcre(v);
  return typeof r === 'string' ? undefined : r;
}

/** Snort 2 / Suricata pcre flags that select an HTTP buffer. */
const pcreBuffers: Record<string, string> = {
  U: 'http_uri',
  I: 'http_raw_uri',
  P: 'http_client_body',
  Q: 'file_data',
  H: 'http_header',
  D: 'http_raw_header',
  M: 'http_method',
  C: 'http_cookie',
  K: 'http_raw_cookie',
  S: 'http_stat_code',
  Y: 'http_stat_msg',
  V: 'http_user_agent',
  W: 'http_host',
  Z: 'http_raw_host',
};

/** A rule's pcre option value as a RegExp, or why it cannot be one: what a skipped rule's report says. */
export function translatePcre(v: string): Pcre | string {
  let s = v.trim();
  let negated = false;
  if (s.startsWith('!')) {
    negated = true;
    s = s.slice(1).trim();
  }
  if (s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1);
  const m = /^\/(.*)\/([a-zA-Z]*)$/s.exec(s);
  if (!m) return 'expected /regex/flags';
  const o: PcreOptions = {};
  let relative = false;
  let unlimited = false;
  let buffer: string | undefined;
  for (const f of m[2]!) {
    if (f === 'i') o.caseless = true;
    else if (f === 's') o.dotAll = true;
    else if (f === 'm') o.multiline = true;
    else if (f === 'x') o.extended = true;
    else if (f === 'A') o.anchored = true;
    else if (f === 'E') o.dollarEndOnly = true;
    else if (f === 'G') o.ungreedy = true;
    else if (f === 'R') relative = true;
    // B: the raw buffer (which buffer a rule reads is decided elsewhere)
    else if (f === 'B') continue;
    else if (f === 'O') unlimited = true;
    else if (pcreBuffers[f]) buffer = pcreBuffers[f];
    else return `flag '${f}' is not supported`;
  }
  const t = pcreToJs(m[1]!, o);
  if (typeof t === 'string') return t;
  try {
    return {
      re: new RegExp(t.source, t.flags),
      ...(t.sourceNoFinalNewline !== undefined && {
        reNoFinalNewline: new RegExp(t.sourceNoFinalNewline, t.flags),
      }),
      relative,
      negated,
      ...(buffer && { buffer }),
      ...(unlimited && { unlimited }),
    };
  } catch (e) {
    // malformed: V8 quotes the source it was given, which is the rewrite, not the rule's: its reason alone
    // (the rule's pcre heads the report)
    return `does not compile: ${(e as Error).message.replace(/^Invalid regular expression: \/[\s\S]*\/[a-z]*: /, '')}`;
  }
}

export interface PcreOptions {
  caseless?: boolean;
  dotAll?: boolean;
  multiline?: boolean;
  extended?: boolean;
  /** Only at the start of the subject (PCRE2_ANCHORED, Snort's A). */
  anchored?: boolean;
  /** `$` only at the very end, not before a final newline (PCRE2_DOLLAR_ENDONLY, Snort's E). */
  dollarEndOnly?: boolean;
  /** Quantifiers lazy unless followed by `?` (PCRE2_UNGREEDY, Snort's G). */
  ungreedy?: boolean;
}

/**
 * A PCRE pattern as JavaScript RegExp source and flags (i, m or both), or why it cannot be one; with
 * `sourceNoFinalNewline` (see {@link Pcre}) when the pattern has an end-or-final-LF anchor.
 */
export function pcreToJs(
  pattern: string,
  o: PcreOptions = {},
): { source: string; flags: string; sourceNoFinalNewline?: string } | string {
  const m = jsMultiline(o) ? 'm' : '';
  try {
    let flagI = true;
    let t: Translator;
    try {
      t = new Translator(pattern, o, true, false);
      t.run();
    } catch (e) {
      if (e !== mixedCase) throw e;
      flagI = false;
      t = new Translator(pattern, o, false, false);
      t.run();
    }
    const flags = (flagI && o.caseless ? 'i' : '') + m;
    if (!t.usesFinalNewline) return { source: t.source, flags };
    const plain = new Translator(pattern, o, flagI, true);
    plain.run();
    return { source: t.source, flags, sourceNoFinalNewline: plain.source };
  } catch (e) {
    if (e instanceof PcreError) return e.message;
    throw e;
  }
}

/**
 * Whether the RegExp gets JavaScript's m flag: for a multiline pattern, unless it is anchored (Snort's A),
 * where the start without m is JavaScript's ^, which V8 tries at the start only; under m it is a
 * lookbehind V8 tries at every position (about 100x slower over 90 KB).
 */
const jsMultiline = (o: PcreOptions) => !!o.multiline && !o.anchored;

class PcreError extends Error {}
/** Thrown when the pattern cannot take JavaScript's i flag: it is then written out letter by letter. */
const mixedCase = Symbol('mixed case');

interface Mode {
  i: boolean;
  s: boolean;
  m: boolean;
  x: boolean;
}

/** Subject characters PCRE's \s matches (no NBSP: ASCII tables), as class content. */
const spaceItems = '\\t-\\r ';
/** \h, \v (PCRE in 8-bit mode: NBSP and NEL count), as class content. */
const hSpaceItems = '\\t \\xA0';
const vSpaceItems = '\\n-\\r\\x85';
/** Their complements over the 256 characters a latin1 subject holds, as class content. */
const notHSpaceItems = '\\x00-\\x08\\n-\\x1F!-\\x9F\\xA1-\\xFF';
const notVSpaceItems = '\\x00-\\t\\x0E-\\x84\\x86-\\xFF';

/** POSIX class names (ASCII tables) and their members as [lo, hi] ranges. */
const posix: Record<string, [number, number][]> = {
  alpha: [
    [0x41, 0x5a],
    [0x61, 0x7a],
  ],
  digit: [[0x30, 0x39]],
  alnum: [
    [0x30, 0x39],
    [0x41, 0x5a],
    [0x61, 0x7a],
  ],
  upper: [[0x41, 0x5a]],
  lower: [[0x61, 0x7a]],
  space: [
    [0x09, 0x0d],
    [0x20, 0x20],
  ],
  blank: [
    [0x09, 0x09],
    [0x20, 0x20],
  ],
  cntrl: [
    [0x00, 0x1f],
    [0x7f, 0x7f],
  ],
  graph: [[0x21, 0x7e]],
  print: [[0x20, 0x7e]],
  punct: [
    [0x21, 0x2f],
    [0x3a, 0x40],
    [0x5b, 0x60],
    [0x7b, 0x7e],
  ],
  xdigit: [
    [0x30, 0x39],
    [0x41, 0x46],
    [0x61, 0x66],
  ],
  word: [
    [0x30, 0x39],
    [0x41, 0x5a],
    [0x5f, 0x5f],
    [0x61, 0x7a],
  ],
  ascii: [[0x00, 0x7f]],
};

/** What the x option skips: ASCII white space and NEL (PCRE2 and Perl: Unicode's Pattern_White_Space). */
const isExtendedBlank = (c: string) => /^[\t-\r \x85]$/.test(c);
const hex2 = (c: number) => `\\x${c.toString(16).toUpperCase().padStart(2, '0')}`;
const isAsciiLetter = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
/** A latin1 character JavaScript's i flag folds and PCRE's ASCII tables do not (0xE9 <-> 0xC9, ...). */
const foldsInJs = (c: number) => {
  if (c < 0x80) return false;
  const ch = String.fromCharCode(c);
  return ch.toUpperCase() !== ch || ch.toLowerCase() !== ch;
};

/** A character as RegExp source that means that character alone, in or out of a class. */
function litSource(c: number): string {
  if ((c >= 0x30 && c <= 0x39) || isAsciiLetter(c) || c === 0x5f) return String.fromCharCode(c);
  // above 0xFF (a rule's text read as UTF-8): no byte of a latin1 subject is that character
  return c > 0xff ? `\\u${c.toString(16).padStart(4, '0')}` : hex2(c);
}

/**
 * A group being read (or the whole pattern). For backreferences: JavaScript matches a backreference to a
 * group that is unset as the empty string, where PCRE fails; and it clears a quantified group's captures
 * at each iteration, where PCRE keeps the last. So a backreference is taken only where its group is
 * surely set, by what came before it in the alternatives under way (see {@link Translator.surelySet}).
 */
interface Frame {
  saved: Mode;
  at: number;
  /** Its number when it captures. */
  capture?: number;
  /** Where its source starts in the output. */
  outAt: number;
  /** A lookbehind: JavaScript matches its body right to left. */
  behind: boolean;
  /** A negative lookaround: no group in it is set after it. */
  negative: boolean;
  /** Groups surely set by the alternative under way, up to here. */
  set: Set<number>;
  /** Groups surely set by every alternative before it (none before the first |). */
  setByEarlier?: Set<number>;
  /** Capturing groups opened in the alternative under way (at any depth), and in the ones before it. */
  openedInAlt: Set<number>;
  openedInEarlierAlts: Set<number>;
  /** Closed with a quantifier that can repeat it (an iteration may see groups an earlier one set). */
  repeated?: boolean;
  /** Where the alternative under way starts in the output. */
  altOutAt: number;
  /** The alternative under way cannot match: it holds a never-matching backreference of its own (not repeated down to 0). */
  altNever?: boolean;
}

/**
 * An unbounded loop over one character or class X in a translated source (`X+`, `X*`, `X{n,}`, greedy or
 * lazy), X in its group: what the guards below look for.
 */
const loopItem = String.raw`(\[(?:[^\]\\]|\\.)*\]|\\[dDwWsS]|\\x[0-9A-Fa-f]{2}|[A-Za-z0-9_ ])(?:[+*]|\{\d+,\})\??`;
const loopAtStart = new RegExp(`^${loopItem}`);
/** Such a loop first, or first inside groups opened at the start (the openings in group 1). */
const leadingLoop = new RegExp(String.raw`^((?:\((?:\?:|\?<[A-Za-z_]\w*>)?)*)${loopItem}`);

/**
 * The JavaScript source of a translated pcre with `(?<!X)` in front when every match starts with an
 * unbounded loop over one character or class X (`X+`, `X*`, `X{n,}`, greedy or lazy): the loop first, or
 * first inside groups opened at the start (`((\w+)...`) none of which holds an alternative or is repeated
 * down to zero times, and no alternative at the top level nor (then) a backreference. Undefined
 * otherwise. Its first match from the start of a subject is the plain expression's: a match starting at p
 * after a character in X means one starting at p - 1 (the loop takes that character too, and the rest
 * matches as before), so the leftmost match never starts after one. V8 tries every start, and each such try
 * runs the loop to the end of the run of X: `[^&]+&...` over 8 KiB without a match took 70-125 ms
 * (quadratic; the backtrack bound does not count a loop's steps), guarded under 1 ms; sid 21438's
 * `([@\x2da-z0-9]+?\x5e){10}` 30-38 ms, guarded 0.05 ms. Later matches of a g expression (from lastIndex)
 * must use the plain source: there the character before lastIndex belongs to the previous match.
 */
export function leadingLoopGuarded(source: string): string | undefined {
  const m = leadingLoop.exec(source);
  if (!m) return undefined;
  const opened = (m[1]!.match(/\(/g) ?? []).length;
  // per open group, whether it is one of the leading ones: none of those (nor the top level) may hold an
  // alternative of its own, or be repeated down to zero times
  const leading: boolean[] = [];
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      // a backreference would see an enclosing group's text grow by the character taken
      if (opened > 0 && /^\\(?:[1-9]|k<)/.test(source.slice(i, i + 3))) return undefined;
      i++;
    } else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(') leading.push(i < m[1]!.length);
    else if (c === ')') {
      if (leading.pop()) {
        const q = /^(?:[?*]|\{(\d*)(?:,\d*)?\})/.exec(source.slice(i + 1, i + 16));
        if (q && (q[1] === undefined || Number(q[1] || 0) === 0)) return undefined;
      }
    } else if (c === '|' && (leading.length === 0 || leading.at(-1))) return undefined;
  }
  return `(?<!${m[2]})${source}`;
}

/**
 * The JavaScript source of a translated pcre (flags `flags`) that starts with a fixed run L of single
 * characters (literals, classes: `filename=`, `\sLIST\s`) and then an unbounded loop over one character or
 * class X (`filename=[^\n]*\.jpeg`, `ssid=[^&]*?(...)`, `[\t-\r ]LIST[\t-\r ][^\n]*?\s\{`), with no
 * alternative at the top level: L is followed by a lookbehind that skips an occurrence of L whose characters
 * X all takes, coming after an earlier occurrence with only characters of X between them
 * (`L(?<!LX*?L')X*...`, L' each of L's classes cut to what X takes). Undefined for other shapes, and where
 * some class of L has nothing in common with X. Its first match from the start of a subject is the plain
 * expression's: a match from such an occurrence p means one from the earlier occurrence q (L at q, the
 * loop takes the characters up to p's loop, p's L among them, and then what it took from there; the rest
 * is at the same places), so the leftmost match never starts at one. V8 tries every occurrence, each
 * running the loop to the end of the run of X: 8 KiB of `filename=` 6-12 ms, 64 KiB about 0.4 s; 64 KiB of
 * ` LIST ` for the IMAP rules' `\sLIST\s[^\n]*?\s\{` 122 ms (quadratic, and not counted by the backtrack
 * bound); guarded, each occurrence's lookbehind finds the one before it. Later matches (from lastIndex)
 * must use the plain source: the earlier occurrence may be inside the match before.
 */
export function literalLoopGuarded(source: string, flags: string): string | undefined {
  const atoms: string[] = [];
  for (let at = 0; ; ) {
    const m = oneCharAtom.exec(source.slice(at));
    if (!m) break;
    atoms.push(m[0]);
    at += m[0].length;
  }
  // (an atom before a quantifier is not read: it is the loop's item, or not a fixed run)
  const lit = atoms.join('');
  if (atoms.length === 0 || topLevelAlternative(source)) return undefined;
  // the loop, maybe after one optional character it takes too (`awstats.pl?[^\r\n]*`: the earlier
  // occurrence's loop takes that character where the later one's took it)
  const opt = optionalAtom.exec(source.slice(lit.length));
  const loop = loopAtStart.exec(source.slice(lit.length + (opt?.[0].length ?? 0)));
  if (!loop) return undefined;
  const set = (atom: string) => charSet(atom, flags.includes('i'), flags.includes('s'));
  const x = set(loop[1]!);
  if (opt && set(opt[1]!).some((c, k) => c === 1 && x[k] === 0)) return undefined;
  // L': each atom cut to what the loop takes (under i the sets are closed under case, so the class reads
  // the same); an atom with nothing in common makes L' match nothing: no guard
  const cut: string[] = [];
  for (const a of atoms) {
    const own = set(a);
    const both: number[] = [];
    let all = true;
    for (let c = 0; c < 256; c++)
      if (own[c]) {
        if (x[c]) both.push(c);
        else all = false;
      }
    if (both.length === 0) return undefined;
    cut.push(all ? a : classOf(both));
  }
  return `${lit}(?<!${lit}${loop[1]}*?${cut.join('')})${source.slice(lit.length)}`;
}

/** A single-character atom of a translated source: a literal, an escape or a class. */
const charAtom = String.raw`\\x[0-9A-Fa-f]{2}|\\[^A-Za-z0-9]|\\[dDwWsS]|\[(?:[^\]\\]|\\.)*\]|[^\\^$.|?*+()[\]{}]`;
/** One at the start, not quantified. */
const oneCharAtom = new RegExp(`^(?:${charAtom})(?![?*+{])`);
/** One at the start with a `?` (greedy or lazy). */
const optionalAtom = new RegExp(`^(${charAtom})\\?\\??`);

/** A class of exactly these latin1 characters (codes, ascending), runs of three or more as ranges. */
function classOf(codes: number[]): string {
  let out = '';
  for (let k = 0; k < codes.length; ) {
    let e = k;
    while (e + 1 < codes.length && codes[e + 1] === codes[e]! + 1) e++;
    if (e - k >= 2) out += `${hex2(codes[k]!)}-${hex2(codes[e]!)}`;
    else for (let j = k; j <= e; j++) out += hex2(codes[j]!);
    k = e + 1;
  }
  return `[${out}]`;
}

/**
 * PCRE's line start as a RegExp with JavaScript's m flag spells it: after an LF (not a CR), but not after
 * one that ends the subject.
 */
const jsLineStart = '^(?<!\\r)(?!(?<=\\n)(?![\\s\\S]))';

/**
 * The JavaScript source of a translated multiline pcre that starts at a line start with an unbounded loop
 * over a class X that takes LF (`^\s*Content-Type...`), with no alternative at the top level: the line
 * start is followed by lookbehinds that skip one right after an empty line (`(?<!\n\n)`, and LF first in
 * the subject). Undefined for other shapes. Its first match from the start of a subject is the plain
 * expression's: a match from a line start p that follows an empty line means one from the line start p - 1
 * (the loop takes the LF too), so the leftmost match never starts there. V8 tries every line start, each
 * running the loop over the LFs after it: sids 3461 and 3462 over 8 KiB of line ends 20-60 ms (quadratic).
 * Later matches (from lastIndex) must use the plain source.
 */
export function lineStartLoopGuarded(source: string, flags: string): string | undefined {
  if (!flags.includes('m') || !source.startsWith(jsLineStart)) return undefined;
  const rest = source.slice(jsLineStart.length);
  const loop = loopAtStart.exec(rest);
  if (
    !loop ||
    topLevelAlternative(source) ||
    !charSet(loop[1]!, flags.includes('i'), flags.includes('s'))[10]
  )
    return undefined;
  return `${jsLineStart}(?<!\\n\\n)(?<!(?<![\\s\\S])\\n)${rest}`;
}

/**
 * The source a translated pcre's first exec from the start of a text runs: one of the guards above where
 * its shape allows (the same first match, fewer starts tried), else undefined (the plain source).
 */
export function firstExecGuarded(source: string, flags: string): string | undefined {
  return (
    leadingLoopGuarded(source) ?? literalLoopGuarded(source, flags) ?? lineStartLoopGuarded(source, flags)
  );
}

/** Whether the source has a `|` outside every group and class. */
function topLevelAlternative(source: string): boolean {
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) return true;
  }
  return false;
}

/** How deep groups may nest: PCRE2's default parentheses nesting limit (pcre2api: PARENS_NEST_LIMIT). */
export const pcreNestMax = 250;

/** Latin1 characters JavaScript's i flag folds, as one string (for testing a class against them). */
const foldingLatin1 = Array.from({ length: 0x80 }, (_, k) => k + 0x80)
  .filter(foldsInJs)
  .map((c) => String.fromCharCode(c))
  .join('');

class Translator {
  private pos = 0;
  private out = '';
  private mode: Mode;
  private readonly root: Frame = {
    saved: { i: false, s: false, m: false, x: false },
    at: 0,
    outAt: 0,
    behind: false,
    negative: false,
    set: new Set(),
    openedInAlt: new Set(),
    openedInEarlierAlts: new Set(),
    altOutAt: 0,
  };
  private readonly groups: Frame[] = [];
  /** The atom being read is a backreference written as never matching (`refsNever`). */
  private neverAtom = false;
  /** Capturing groups opened so far (PCRE's rule for \N: a backreference when N < 10 or N <= this). */
  private captures = 0;
  /** The largest group number a backreference names. */
  private maxRef = 0;
  /** Group names and their numbers. */
  private readonly names = new Map<string, number>();
  /** The first backreference to a name no group had before it (reported at the end: none, or later). */
  private refToName?: { name: string; at: number };
  /** The first backreference whose group may be unset where it stands. */
  private refUnset?: { n: number; at: number };
  /**
   * Backreferences to a group in an earlier alternative (`(a)|b\1`): unset there, so they never match
   * (written `(?!)`), unless one of these groups repeats.
   */
  private readonly refsNever: { at: number; frames: Frame[] }[] = [];
  /** Capturing groups that can hold a latin1 letter JavaScript's i flag folds. */
  private readonly foldable = new Set<number>();

  // Anchors. The RegExp gets JavaScript's m flag when the pattern is multiline (V8 finds line starts fast
  // for a ^ under m, and a lookbehind in its place made /(^|&)id=/im about 20x slower); its ^ and $ then
  // take CR as a line end as well, which the lookarounds after them rule out. Without the m flag, ^ and $
  // are the subject's start and end, and a (?m) part spells line starts with a lookbehind.
  private readonly start: string;
  private readonly end: string;
  private readonly endOrFinalNewline: string;
  private readonly lineStart: string;
  private readonly lineEnd: string;

  constructor(
    private readonly p: string,
    private readonly o: PcreOptions,
    /** true: the RegExp gets the i flag (if the pattern is caseless) and no part may differ. */
    private readonly flagI: boolean,
    /** true: "the end, or before a final LF" is written as the end alone (for subjects without one). */
    plainEnd: boolean,
  ) {
    this.mode = { i: !!o.caseless, s: !!o.dotAll, m: !!o.multiline, x: !!o.extended };
    const jsM = jsMultiline(o);
    this.start = jsM ? '(?<![\\s\\S])' : '^';
    this.end = jsM ? '(?![\\s\\S])' : '$';
    this.endOrFinalNewline = plainEnd ? this.end : jsM ? '(?=\\n?(?![\\s\\S]))' : '(?=\\n?$)';
    // PCRE: after an LF (not a CR), but not after one that ends the subject
    this.lineStart = jsM ? jsLineStart : '(?:^|(?<=\\n)(?!$))';
    // PCRE: before an LF (not a CR), or at the end
    this.lineEnd = jsM ? '$(?!\\r)' : '(?=\\n|$)';
  }

  private fail(what: string, at = this.pos): never {
    throw new PcreError(`${what} (at offset ${at})`);
  }

  /** The RegExp source, once {@link run} has returned. */
  source = '';
  /** Whether an anchor was written as "the end, or before an LF that ends the subject". */
  usesFinalNewline = false;

  run(): void {
    const p = this.p;
    while (this.pos < p.length) this.atom();
    const open = this.groups.at(-1);
    if (open) throw new PcreError(`missing ) for the ( at offset ${open.at}`);
    this.endAlternative(this.root);
    if (this.maxRef > this.captures)
      this.fail(`a backreference to group ${this.maxRef}, which does not exist`);
    const named = this.refToName;
    if (named && !this.names.has(named.name))
      this.fail(`a backreference to a group named '${named.name}', which does not exist`, named.at);
    const unset = named ?? this.refUnset ?? this.refsNever.find((r) => r.frames.some((f) => f.repeated));
    if (unset)
      this.fail(
        'a backreference where its group may be unset (before the group, in it, after an alternative or a ' +
          'quantifier that can skip it, or in a lookbehind): JavaScript matches it as empty, PCRE fails',
        unset.at,
      );
    this.source = this.o.anchored ? `${this.start}(?:${this.out})` : this.out;
  }

  private finalNewline(): string {
    this.usesFinalNewline = true;
    return this.endOrFinalNewline;
  }

  /** A caseless literal must be written out (no i flag), or must not be (i flag on the whole RegExp). */
  private caseCheck(c: number): void {
    if (!this.flagI || !(isAsciiLetter(c) || foldsInJs(c))) return;
    if (this.mode.i !== !!this.o.caseless) throw mixedCase;
    if (this.mode.i && foldsInJs(c)) throw mixedCase;
  }

  private literal(c: number): string {
    this.caseCheck(c);
    if (foldsInJs(c)) this.markFoldable();
    if (!this.flagI && this.mode.i && isAsciiLetter(c))
      return `[${String.fromCharCode(c | 0x20)}${String.fromCharCode(c & ~0x20)}]`;
    return litSource(c);
  }

  private atom(): void {
    const p = this.p;
    const c = p[this.pos]!;
    if (this.mode.x && isExtendedBlank(c)) {
      this.pos++;
      return;
    }
    if (this.mode.x && c === '#') {
      while (this.pos < p.length && p[this.pos] !== '\n') this.pos++;
      return;
    }
    const start = this.pos;
    let quantifiable = true;
    /** The groups a closing ) surely set, unless a quantifier lets them be skipped. */
    let closed: Set<number> | undefined;
    let closedFrame: Frame | undefined;
    switch (c) {
      case '\\':
        quantifiable = this.escape();
        break;
      case '[':
        this.out += this.charClass();
        break;
      case '(':
        // nothing to repeat right after an opening, an option change or a comment; a (?P=name) can be
        quantifiable = this.open();
        break;
      case ')':
        if (this.groups.length === 0) this.fail('unmatched )');
        {
          const f = this.groups.pop()!;
          this.endAlternative(f);
          closedFrame = f;
          this.mode = f.saved;
          closed = f.negative ? new Set() : surelyAfter(f);
          if (f.capture !== undefined) closed.add(f.capture);
          // JavaScript refuses a quantifier on a lookbehind, not on a group around it, where it means what
          // PCRE's does on an assertion: taken once, or skipped when the minimum is 0
          if (f.behind) this.out = `${this.out.slice(0, f.outAt)}(?:${this.out.slice(f.outAt)})`;
        }
        this.out += ')';
        this.pos++;
        break;
      case '|': {
        const f = this.frame();
        this.endAlternative(f);
        f.setByEarlier = surelyAfter(f);
        f.set = new Set();
        for (const n of f.openedInAlt) f.openedInEarlierAlts.add(n);
        f.openedInAlt = new Set();
        this.out += '|';
        f.altOutAt = this.out.length;
        this.pos++;
        return;
      }
      case '.':
        this.markFoldable();
        this.out += this.mode.s ? '[\\s\\S]' : '[^\\n]';
        this.pos++;
        break;
      case '^':
        this.out += this.mode.m ? this.lineStart : this.start;
        this.pos++;
        quantifiable = false;
        break;
      case '$':
        this.out += this.mode.m ? this.lineEnd : this.o.dollarEndOnly ? this.end : this.finalNewline();
        this.pos++;
        quantifiable = false;
        break;
      case '*':
      case '+':
      case '?':
        this.fail('quantifier does not follow a repeatable item');
        break;
      case '{':
        if (quantifierAt(p, this.pos) > 0) this.fail('quantifier does not follow a repeatable item');
        this.out += '\\{';
        this.pos++;
        break;
      default:
        this.out += this.literal(c.charCodeAt(0));
        this.pos++;
    }
    const q = this.pos > start ? this.quantifier(quantifiable) : undefined;
    // a never-matching backreference that must be taken: its alternative cannot match
    if (this.neverAtom && !this.mode.x && (q === undefined || q.min > 0)) this.frame().altNever = true;
    this.neverAtom = false;
    if (closed && q?.min !== 0) for (const n of closed) this.frame().set.add(n);
    if (closedFrame && q && q.max > 1) closedFrame.repeated = true;
  }

  private frame(): Frame {
    return this.groups.at(-1) ?? this.root;
  }

  /**
   * Whether group n is surely set where the pattern has got to: set by what came before in the
   * alternatives under way, outside any lookbehind being read (JavaScript reads a lookbehind's body right
   * to left, so a group in it before a backreference is matched after it).
   */
  private surelySet(n: number): boolean {
    for (const f of [this.root, ...this.groups]) {
      if (f.behind) return false;
      if (f.set.has(n)) return true;
    }
    return false;
  }

  /** The capturing groups being read can hold a latin1 letter that JavaScript's i flag folds. */
  private markFoldable(): void {
    for (const f of this.groups) if (f.capture !== undefined) this.foldable.add(f.capture);
  }

  /**
   * A quantifier after an item, if one follows (in extended mode, after blanks and comments): its counts,
   * undefined when there is none.
   */
  private quantifier(quantifiable: boolean): { min: number; max: number } | undefined {
    const p = this.p;
    // what PCRE reads as nothing may stand between an item and its quantifier: a (?#...) comment, \E, an
    // empty \Q\E (a(?#c)+ and a\E+ repeat the a)
    for (;;) {
      if (this.mode.x) this.skipExtended();
      const end = p.startsWith('(?#', this.pos) ? p.indexOf(')', this.pos) : -1;
      if (end >= 0) this.pos = end + 1;
      else if (p.startsWith('\\E', this.pos)) this.pos += 2;
      else if (p.startsWith('\\Q\\E', this.pos)) this.pos += 4;
      else break;
    }
    const c = p[this.pos];
    let len = 0;
    if (c === '*' || c === '+' || c === '?') len = 1;
    else if (c === '{') len = quantifierAt(p, this.pos);
    if (len === 0) return undefined;
    const counts = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(this.pos));
    const min = c === '+' ? 1 : counts ? Number(counts[1]) : 0;
    const max =
      c === '?'
        ? 1
        : !counts
          ? Number.POSITIVE_INFINITY
          : !counts[2]
            ? min
            : counts[3]
              ? Number(counts[3])
              : Number.POSITIVE_INFINITY;
    if (!quantifiable) this.fail('quantifier does not follow a repeatable item');
    // PCRE reads {n,m} with blanks inside only as text; quantifierAt takes the strict form
    this.out += p.slice(this.pos, this.pos + len);
    this.pos += len;
    // in extended mode, blanks and comments may stand between a quantifier and its ? or + (PCRE2, Perl)
    if (this.mode.x) this.skipExtended();
    const next = p[this.pos];
    if (next === '+') this.fail('possessive quantifiers (atomic matching) are not supported');
    const lazy = next === '?';
    if (lazy) this.pos++;
    if (lazy !== !!this.o.ungreedy) this.out += '?';
    return { min, max };
  }

  private skipExtended(): void {
    const p = this.p;
    for (;;) {
      const c = p[this.pos];
      if (c === undefined) return;
      if (c === '#') {
        while (this.pos < p.length && p[this.pos] !== '\n') this.pos++;
      } else if (isExtendedBlank(c)) this.pos++;
      else return;
    }
  }

  /** `(`: a group, an option change or a comment; false when what it leaves cannot take a quantifier. */
  private open(): boolean {
    const p = this.p;
    const at = this.pos;
    if (p[at + 1] !== '?' && p[at + 1] !== '*') {
      this.opened(++this.captures);
      this.push('(', at, {}, this.captures);
      this.pos++;
      return false;
    }
    if (p[at + 1] === '*') this.fail('verbs such as (*UTF) and (*FAIL) are not supported');
    const rest = p.slice(at + 2);
    if (rest.startsWith('#')) {
      const end = p.indexOf(')', at);
      if (end < 0) this.fail('missing ) after a comment');
      this.pos = end + 1;
      return false;
    }
    for (const [sign, js, kind] of [
      [':', '(?:', {}],
      ['=', '(?=', {}],
      ['!', '(?!', { negative: true }],
      ['<=', '(?<=', { behind: true }],
      ['<!', '(?<!', { behind: true, negative: true }],
    ] as const)
      if (rest.startsWith(sign)) {
        this.push(js, at, kind);
        this.pos = at + 2 + sign.length;
        return false;
      }
    const named = /^(?:P?<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)')/.exec(rest);
    if (named) {
      this.opened(++this.captures);
      this.names.set(named[1] ?? named[2]!, this.captures);
      this.push(`(?<${named[1] ?? named[2]}>`, at, {}, this.captures);
      this.pos = at + 2 + named[0].length;
      return false;
    }
    const ref = /^P=([A-Za-z_]\w*)\)/.exec(rest);
    if (ref) {
      this.backref(ref[1]!, at);
      this.pos = at + 2 + ref[0].length;
      return true;
    }
    if (rest.startsWith('>')) this.fail('atomic groups (?>...) are not supported');
    if (rest.startsWith('|')) this.fail('branch reset groups (?|...) are not supported');
    if (rest.startsWith('(')) this.fail('conditional groups (?(...)...) are not supported');
    if (/^(?:R|[+-]?\d|&|P>)/.test(rest)) this.fail('recursion and subroutine calls are not supported');
    // option letters: (?imsx-imsx) for the rest of the group, (?imsx-imsx:...) for a group of its own
    const opts = /^([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])/.exec(rest);
    if (!opts) this.fail(`unknown group syntax '(?${rest.slice(0, 3)}'`);
    const mode = { ...this.mode };
    for (const [letters, on] of [
      [opts[1]!, true],
      [opts[2] ?? '', false],
    ] as const)
      for (const f of letters) {
        if (f === 'i' || f === 's' || f === 'm' || f === 'x') mode[f] = on;
        else this.fail(`inline option '${f}' is not supported`, at);
      }
    this.pos = at + 2 + opts[0].length;
    if (opts[3] === ':') {
      this.push('(?:', at, {});
      this.mode = mode;
      return false;
    }
    this.mode = mode;
    return false;
  }

  private opened(n: number): void {
    for (const f of [this.root, ...this.groups]) f.openedInAlt.add(n);
  }

  private push(
    js: string,
    at: number,
    kind: { behind?: boolean; negative?: boolean },
    capture?: number,
  ): void {
    // PCRE2 refuses deeper nesting by default too; here each open group tracks the groups opened inside
    // it, so 16,000 nested groups took minutes and 4 GB before this bound
    if (this.groups.length >= pcreNestMax)
      this.fail(`parentheses nested more than ${pcreNestMax} deep (PCRE2's default limit)`, at);
    this.groups.push({
      saved: { ...this.mode },
      at,
      outAt: this.out.length,
      behind: !!kind.behind,
      negative: !!kind.negative,
      set: new Set(),
      openedInAlt: new Set(),
      openedInEarlierAlts: new Set(),
      altOutAt: this.out.length + js.length,
      ...(capture !== undefined && { capture }),
    });
    this.out += js;
  }

  /**
   * Ends frame f's alternative under way: one that cannot match (`altNever`) is written as `(?!)` and an
   * empty group for each group it opened, so the groups keep their numbers and names. V8 would otherwise
   * run it up to the backreference at every start: three community pcres (sid 2609's, `((\w+)...\2|...|
   * (\w+)...\2|...)`) spent half their time in the third alternative, which cannot match.
   */
  private endAlternative(f: Frame): void {
    if (f.altNever) {
      const byNumber = new Map([...this.names].map(([name, n]) => [n, name]));
      const groups = [...f.openedInAlt]
        .sort((a, b) => a - b)
        .map((n) => (byNumber.has(n) ? `(?<${byNumber.get(n)}>)` : '()'));
      this.out = `${this.out.slice(0, f.altOutAt)}(?!)${groups.join('')}`;
    }
    f.altNever = false;
  }

  /** A backreference at `at` to group `ref` (a number or a name). */
  private backref(ref: number | string, at: number): void {
    // a caseless backreference matches its group's text in any case: JavaScript does that only with i
    if (this.mode.i && !this.flagI)
      this.fail('a backreference in a caseless part written out letter by letter');
    if (this.flagI && this.mode.i !== !!this.o.caseless) throw mixedCase;
    const n = typeof ref === 'number' ? ref : this.names.get(ref);
    if (n === undefined) this.refToName ??= { name: ref as string, at };
    else if (!this.surelySet(n)) {
      // in an earlier alternative of a group being read: PCRE's match fails there (so JavaScript's must)
      const stack = [this.root, ...this.groups];
      const k = stack.findLastIndex((f) => f.openedInEarlierAlts.has(n));
      if (k < 0) this.refUnset ??= { n, at };
      else {
        this.refsNever.push({ at, frames: stack.slice(0, k + 1) });
        this.neverAtom = true;
      }
      this.out += '(?:(?!))';
      return;
    } else {
      // JavaScript's i flag compares the group's text with latin1 letters folded (0xE9 with 0xC9)
      if (this.flagI && this.mode.i && this.foldable.has(n))
        this.fail(
          'a caseless backreference to a group that can hold a latin1 letter (JavaScript would fold it)',
          at,
        );
      if (this.foldable.has(n)) this.markFoldable();
    }
    this.out += typeof ref === 'number' ? `(?:\\${ref})` : `(?:\\k<${ref}>)`;
  }

  /** An escape outside a class; false when it is an assertion (no quantifier). */
  private escape(): boolean {
    const p = this.p;
    const at = this.pos;
    const e = p[at + 1];
    if (e === undefined) this.fail('\\ at the end of the pattern', at);
    this.pos = at + 2;
    switch (e) {
      case 'A':
        this.out += this.start;
        return false;
      case 'z':
        this.out += this.end;
        return false;
      case 'Z':
        this.out += this.finalNewline();
        return false;
      case 'b':
      case 'B':
        this.out += `\\${e}`;
        return false;
      case 'd':
      case 'w':
        this.out += `\\${e}`;
        return true;
      case 'D':
      case 'W':
        this.markFoldable();
        this.out += `\\${e}`;
        return true;
      case 's':
        this.out += `[${spaceItems}]`;
        return true;
      case 'S':
        this.markFoldable();
        this.out += `[^${spaceItems}]`;
        return true;
      case 'h':
        this.out += `[${hSpaceItems}]`;
        return true;
      case 'H':
        this.markFoldable();
        this.out += `[^${hSpaceItems}]`;
        return true;
      case 'v':
        this.out += `[${vSpaceItems}]`;
        return true;
      case 'V':
        this.markFoldable();
        this.out += `[^${vSpaceItems}]`;
        return true;
      case 'R':
        // atomic in PCRE: a CR before an LF is never taken alone (\R\n does not match CR LF)
        this.out += '(?:\\r\\n|\\r(?!\\n)|[\\n-\\f\\x85])';
        return true;
      case 'N':
        // \N{U+hh} names a character only in UTF mode, which PCRE2 refuses here; \N{2} is a quantifier
        if (p[this.pos] === '{' && quantifierAt(p, this.pos) === 0)
          this.fail('\\N{...} (a character by name or code point) is not supported', at);
        this.markFoldable();
        this.out += '[^\\n]';
        return true;
      case 'Q': {
        let end = p.indexOf('\\E', this.pos);
        if (end < 0) end = p.length;
        const text = p.slice(this.pos, end);
        this.pos = Math.min(end + 2, p.length);
        if (text.length === 0) return false;
        // a quantifier after \Q...\E repeats its last character, as after that character written alone
        for (let k = 0; k < text.length - 1; k++) this.out += this.literal(text.charCodeAt(k));
        this.out += this.literal(text.charCodeAt(text.length - 1));
        return true;
      }
      case 'E':
        return false;
      case 'g':
      case 'k':
        this.namedOrNumberedRef(e, at);
        return true;
      case 'G':
        this.fail('\\G is not supported', at);
        break;
      case 'K':
        this.fail('\\K is not supported', at);
        break;
      case 'p':
      case 'P':
      case 'X':
        this.fail(`\\${e} (Unicode properties) is not supported`, at);
        break;
      case 'C':
        this.fail('\\C is not supported', at);
        break;
    }
    if (e >= '1' && e <= '9') {
      const digits = /^\d+/.exec(p.slice(at + 1))![0];
      const n = Number(digits);
      // PCRE: a backreference when under 10, starting with 8 or 9, or naming a group already opened;
      // else octal
      if (n < 10 || e >= '8' || n <= this.captures) {
        this.pos = at + 1 + digits.length;
        this.maxRef = Math.max(this.maxRef, n);
        this.backref(n, at);
        return true;
      }
    }
    const c = this.escapedChar(at, false);
    this.out += this.literal(c);
    return true;
  }

  /** \g{N}, \gN, \g{-N}, \g{name}, \k<name>, \k'name', \k{name}. */
  private namedOrNumberedRef(e: string, at: number): void {
    const rest = this.p.slice(at + 2);
    const m =
      e === 'g'
        ? /^(?:\{(-?\d+)\}|(-?\d+)|\{([A-Za-z_]\w*)\})/.exec(rest)
        : /^(?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)'|\{([A-Za-z_]\w*)\})/.exec(rest);
    if (!m) this.fail(`\\${e} must be followed by a group number or name`, at);
    this.pos = at + 2 + m[0].length;
    const name = e === 'k' ? (m[1] ?? m[2] ?? m[3]) : m[3];
    if (name !== undefined) {
      this.backref(name, at);
      return;
    }
    let n = Number(m[1] ?? m[2]);
    if (n < 0) n = this.captures + 1 + n;
    if (n <= 0) this.fail(`\\g refers to a group that does not exist`, at);
    this.maxRef = Math.max(this.maxRef, n);
    this.backref(n, at);
  }

  /**
   * The character an escape at `at` stands for (its letters consumed): control escapes, octal, hex, \c, or
   * a punctuation character itself. `inClass`: in a class, \1-\7 start octal and \b is a backspace.
   */
  private escapedChar(at: number, inClass: boolean): number {
    const p = this.p;
    const e = p[at + 1]!;
    this.pos = at + 2;
    const simple: Record<string, number> = { a: 7, e: 0x1b, f: 0x0c, n: 0x0a, r: 0x0d, t: 0x09 };
    if (simple[e] !== undefined) return simple[e]!;
    if (inClass && e === 'b') return 8;
    if (e === 'x') {
      const braced = /^\{([0-9a-fA-F]+)\}/.exec(p.slice(at + 2));
      if (!braced && p[at + 2] === '{') this.fail('\\x{ must be followed by hex digits and }', at);
      const h = braced ?? /^[0-9a-fA-F]{0,2}/.exec(p.slice(at + 2))!;
      this.pos = at + 2 + h[0].length;
      const c = h[0].length === 0 ? 0 : parseInt(braced ? braced[1]! : h[0], 16);
      if (c > 0xff) this.fail(`\\x{${braced![1]}} is above 0xFF, which no byte of the subject is`, at);
      return c;
    }
    if (e === 'o') {
      const m = /^\{([0-7]+)\}/.exec(p.slice(at + 2));
      if (!m) this.fail('\\o must be followed by {octal digits}', at);
      this.pos = at + 2 + m[0].length;
      const c = parseInt(m[1]!, 8);
      if (c > 0xff) this.fail(`\\o{${m[1]}} is above 0xFF, which no byte of the subject is`, at);
      return c;
    }
    if (e === 'c') {
      const x = p[at + 2];
      if (x === undefined || x.charCodeAt(0) < 0x20 || x.charCodeAt(0) > 0x7e)
        this.fail('\\c must be followed by a printable ASCII character', at);
      this.pos = at + 3;
      return x.toUpperCase().charCodeAt(0) ^ 0x40;
    }
    if (e >= '0' && e <= '7') {
      // octal: up to three digits (outside a class, \1-\7 get here only past the groups opened)
      const m = /^[0-7]{1,3}/.exec(p.slice(at + 1))!;
      this.pos = at + 1 + m[0].length;
      const c = parseInt(m[0], 8);
      if (c > 0xff) this.fail(`\\${m[0]} is above 0xFF, which no byte of the subject is`, at);
      return c;
    }
    // in a class, \8 and \9 are the digits
    if (e === '8' || e === '9') return e.charCodeAt(0);
    if (/[A-Za-z0-9]/.test(e)) this.fail(`unrecognized escape \\${e}`, at);
    return e.charCodeAt(0);
  }

  /** A character class from `[` to its `]`, as JavaScript class source. */
  private charClass(): string {
    const p = this.p;
    const at = this.pos;
    this.pos++;
    let negated = false;
    if (p[this.pos] === '^') {
      negated = true;
      this.pos++;
    }
    let items = '';
    const ranges: [number, number][] = [];
    let first = true;
    for (;;) {
      if (this.pos >= p.length) this.fail('missing ] of a character class', at);
      const c = p[this.pos]!;
      if (c === ']' && !first) {
        this.pos++;
        break;
      }
      const wasFirst: boolean = first;
      first = false;
      if (c === '[') {
        if (/^\[([.=])[^\]]*\1\]/.test(p.slice(this.pos)))
          this.fail('POSIX collating elements ([.x.], [=x=]) are not supported');
        const px = /^\[:(\^?)([a-z]+):\]/.exec(p.slice(this.pos));
        if (px) {
          // caseless, PCRE reads [:lower:] and [:upper:] as [:alpha:] (so [:^lower:] takes no letter)
          const name = this.mode.i && (px[2] === 'lower' || px[2] === 'upper') ? 'alpha' : px[2]!;
          const set = Object.hasOwn(posix, name) ? posix[name] : undefined;
          if (!set) this.fail(`unknown POSIX class [:${px[2]}:]`);
          for (const [lo, hi] of px[1] ? complement(set) : set) ranges.push([lo, hi]);
          this.pos += px[0].length;
          continue;
        }
      }
      let single: number | undefined;
      if (c === '\\') {
        const e = p[this.pos + 1];
        const start = this.pos;
        this.pos += 2;
        if (e === 'd' || e === 'D' || e === 'w' || e === 'W') items += `\\${e}`;
        else if (e === 's') items += spaceItems;
        // JavaScript's \S leaves out NBSP, which PCRE's \S takes
        else if (e === 'S') items += '\\S\\xA0';
        else if (e === 'h') items += hSpaceItems;
        else if (e === 'H') items += notHSpaceItems;
        else if (e === 'v') items += vSpaceItems;
        else if (e === 'V') items += notVSpaceItems;
        else if (e === 'Q') {
          let end = p.indexOf('\\E', this.pos);
          if (end < 0) end = p.length;
          for (let k = this.pos; k < end - 1; k++) ranges.push([p.charCodeAt(k), p.charCodeAt(k)]);
          // the last quoted character may start a range, as PCRE2 reads [\Qa\E-c]
          if (end > this.pos) single = p.charCodeAt(end - 1);
          // an empty \Q\E (as \E) is nothing: a ] after it at the start is still a member
          else first = wasFirst;
          this.pos = Math.min(end + 2, p.length);
        } else if (e === 'E') {
          first = wasFirst;
          continue;
        } else if (e !== undefined && 'ABGKNRXCZzpPgk'.includes(e))
          this.fail(`\\${e} is not allowed in a character class`, start);
        else single = this.escapedChar(start, true);
        if (single === undefined) {
          continue;
        }
      } else {
        single = c.charCodeAt(0);
        this.pos++;
      }
      // an empty \Q\E or a lone \E between a character and a - is nothing ([a\Q\E-c] is a range)
      for (;;) {
        if (p.startsWith('\\E', this.pos)) this.pos += 2;
        else if (p.startsWith('\\Q\\E', this.pos)) this.pos += 4;
        else break;
      }
      // a range: x-y, where y is a character (not a class escape or the closing ])
      if (p[this.pos] === '-' && p[this.pos + 1] !== undefined && p[this.pos + 1] !== ']') {
        const hiAt = this.pos + 1;
        let hi: number;
        if (p[hiAt] === '\\') {
          const e = p[hiAt + 1];
          if (e !== undefined && 'dDwWsShHvVQE'.includes(e))
            this.fail('a range ends in a class escape', hiAt);
          hi = this.escapedChar(hiAt, true);
        } else if (p[hiAt] === '[' && /^\[:\^?[a-z]+:\]/.test(p.slice(hiAt))) {
          this.fail('a range ends in a POSIX class', hiAt);
        } else {
          hi = p.charCodeAt(hiAt);
          this.pos = hiAt + 1;
        }
        if (hi < single) this.fail('range out of order in a character class', hiAt);
        ranges.push([single, hi]);
        continue;
      }
      ranges.push([single, single]);
    }
    // case: written out (both cases of each ASCII letter in the ranges) or left to the i flag
    for (const [lo, hi] of ranges) for (let c = lo; c <= hi && c <= 0xff; c++) this.caseCheck(c);
    if (!this.flagI && this.mode.i) for (const r of [...ranges]) ranges.push(...otherCase(r));
    for (const [lo, hi] of ranges) items += lo === hi ? litSource(lo) : `${litSource(lo)}-${litSource(hi)}`;
    const js = items === '' ? (negated ? '[\\s\\S]' : '[]') : `[${negated ? '^' : ''}${items}]`;
    if (this.groups.some((f) => f.capture !== undefined) && new RegExp(js).test(foldingLatin1))
      this.markFoldable();
    return js;
  }
}

/** The groups a group's alternatives all surely set (only those of its one alternative if it has no |). */
function surelyAfter(f: Frame): Set<number> {
  if (!f.setByEarlier) return new Set(f.set);
  return new Set([...f.set].filter((n) => f.setByEarlier!.has(n)));
}

/** The ASCII letters of a range in the other case, as ranges. */
function otherCase([lo, hi]: [number, number]): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, z, d] of [
    [0x41, 0x5a, 0x20],
    [0x61, 0x7a, -0x20],
  ] as const) {
    const l = Math.max(lo, a);
    const h = Math.min(hi, z);
    if (l <= h) out.push([l + d, h + d]);
  }
  return out;
}

/** The complement of sorted, disjoint ranges over 0-255. */
function complement(set: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  let next = 0;
  for (const [lo, hi] of set) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= 0xff) out.push([next, 0xff]);
  return out;
}

/** Length of a {n}, {n,} or {n,m} quantifier at `at`, 0 if the brace is a literal (as PCRE reads it). */
function quantifierAt(p: string, at: number): number {
  const m = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(at, at + 24));
  if (!m) return 0;
  if (m[3] && Number(m[3]) < Number(m[1]))
    throw new PcreError(`numbers out of order in the quantifier ${m[0]} (at offset ${at})`);
  if (Number(m[1]) > 65535 || Number(m[3] || 0) > 65535)
    throw new PcreError(`a number in the quantifier ${m[0]} is above 65535 (at offset ${at})`);
  return m[0].length;
}
