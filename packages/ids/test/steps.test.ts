import { readFileSync } from 'node:fs';
import { regExpBacktrackLimitWorks } from '@strata/cli';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Engine, type PcreExec, parseRules, pcreRoute } from '../src/index.js';
import { firstExecGuarded, pcreToJs, translatePcre } from '../src/pcre.js';
import { LengthSwitchedRegExp, pumpSubjects, StepBoundedRegExp, StepsSyntaxError } from '../src/steps.js';
import { ACK, PSH, pkt, sharedIds } from './helpers.js';
import { flags as pcreFlags, pattern as pcrePattern, subject as pcreSubject } from './pcre-arbitraries.js';

const rules = sharedIds('rules');
/** The distinct pcre option values of the community rules, as written. */
const communityPcres = () => {
  const text = readFileSync(`${rules.shared}rules/snort3-community.rules`, 'latin1');
  return [...new Set([...text.matchAll(/pcre:"([^"]*)"/g)].map((m) => m[1]!))];
};
/** A budget of n steps an exec, whatever the subject's length. */
const fixed = (n: number) => ({ perByte: 0, min: n });

/**
 * The step machine is V8's RegExp with a budget: on every pattern it takes, its matches (index, text,
 * every group) and lastIndex must be V8's. Patterns are random over the syntax the pcre translation
 * writes (classes, escapes, groups, named groups, alternatives, greedy and lazy counts, backreferences
 * forward and back, lookarounds both ways, anchors, word boundaries) under every flag set.
 */

const literal = fc.constantFrom(
  'a',
  'b',
  'A',
  'B',
  '1',
  '_',
  ' ',
  '\\x0A',
  '\\n',
  '\\r',
  '\\xE9',
  '\\xC9',
  '\\xFF',
  '\\.',
  '-',
);
const cls = fc.constantFrom(
  '[ab]',
  '[^a]',
  '[a-c]',
  '[^\\s]',
  '[\\w\\xE9]',
  '[\\x00-\\x40]',
  '[]',
  '[^]',
  '[\\dB]',
);
const classEscape = fc.constantFrom('\\d', '\\D', '\\w', '\\W', '\\s', '\\S', '.');
const quant = fc.constantFrom('', '', '', '*', '+', '?', '*?', '+?', '??', '{2}', '{0,2}', '{1,}', '{2,3}?');
const assertion = fc.constantFrom('^', '$', '\\b', '\\B');

const body: fc.Arbitrary<string> = fc.letrec<{ re: string; piece: string }>((tie) => ({
  piece: fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.oneof(literal, cls, classEscape), quant).map(([a, q]) => a + q) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom('\\1', '\\2', '\\3'), quant).map(([a, q]) => a + q) },
    { weight: 1, arbitrary: assertion },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom('(', '(', '(?:', '(?=', '(?!', '(?<=', '(?<!'), tie('re'), quant)
        .map(([o, r, q]) => `${o}${r})${o.startsWith('(?') && o !== '(?:' ? '' : q}`),
    },
  ),
  re: fc
    .array(fc.array(tie('piece'), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 3 })
    .map((alts) => alts.map((a) => a.join('')).join('|')),
})).re;

// two groups first, most of the time, so that backreferences have groups to name (a number past the
// groups is a legacy octal escape, which the machine refuses)
const pattern = fc
  .tuple(fc.constantFrom('', '(a|b)(\\w)?', '(.)(A*)', '(?<n>[^a])(b|)', '(\\s+)((?=a))'), body)
  .map(([g, r]) => g + r);

const subject = fc
  .array(fc.constantFrom('a', 'b', 'A', 'B', '1', '_', ' ', '\n', '\r', '\xE9', '\xC9', '\xFF', '.', '-'), {
    maxLength: 12,
  })
  .map((a) => a.join(''));

const flags = fc.subarray(['i', 'm', 's']).map((f) => f.join(''));

/** Up to three execs of the g expression (from each lastIndex), then one without g. */
function run(exec: (s: string) => unknown, s: string, lastIndex: () => number): unknown[] {
  const out: unknown[] = [];
  for (let k = 0; k < 3; k++) {
    const m = exec(s) as (RegExpExecArray & { input: string }) | null;
    out.push(m && { index: m.index, groups: [...m] }, lastIndex());
    if (!m) break;
  }
  return out;
}

function compare(src: string, f: string, s: string): void {
  let v8: RegExp;
  try {
    v8 = new RegExp(src, `${f}g`);
  } catch {
    return; // not a pattern (an unset group number past the count, ...)
  }
  let ours: StepBoundedRegExp;
  try {
    ours = new StepBoundedRegExp(src, `${f}g`, fixed(1_000_000));
  } catch (e) {
    if (e instanceof StepsSyntaxError) return; // refused with the place: the engine keeps V8's
    throw e;
  }
  const got = run(
    (x) => ours.exec(x),
    s,
    () => ours.lastIndex,
  );
  // exponential cases (counts nested over empty iterations) can pass the budget: nothing to compare. The
  // machine's searches for literals can end such a case early where V8 does not: asked without them
  const bare = new StepBoundedRegExp(src, `${f}g`, fixed(1_000_000), undefined, 'off');
  run(
    (x) => bare.exec(x),
    s,
    () => bare.lastIndex,
  );
  if (ours.limitHits > 0 || bare.limitHits > 0) return;
  const want = run(
    (x) => v8.exec(x),
    s,
    () => v8.lastIndex,
  );
  expect({ src, f, s, got }).toEqual({ src, f, s, got: want });
  const plainV8 = new RegExp(src, f).exec(s);
  const plain = new StepBoundedRegExp(src, f, fixed(1_000_000)).exec(s);
  expect(plain && [plain.index, ...plain]).toEqual(plainV8 && [plainV8.index, ...plainV8]);
  // with the searches for needs and the loops' tables from the first step (an exec waits for them until
  // it has taken a step a character, which these short subjects seldom reach)
  const eager = new StepBoundedRegExp(src, `${f}g`, fixed(1_000_000), undefined, 'eager');
  const eagerGot = run(
    (x) => eager.exec(x),
    s,
    () => eager.lastIndex,
  );
  if (eager.limitHits === 0) expect({ src, f, s, eager: eagerGot }).toEqual({ src, f, s, eager: want });
}

/** Sid 2682's pcre: the ((\w+)...\x3a=...\2) family with "layer" as its keyword. */
const layerFamily = String.raw`/((\w+)[\r\n\s]*\x3a=[\r\n\s]*(\x27[^\x27]{128,}\x27|\x22[^\x22]{128,}\x22)[\r\n\s]*\x3b.*layer[\r\n\s]*=>[\r\n\s]*\2|layer\s*=>\s*(\x27[^\x27]{128,}|\x22[^\x22]{128,}))/si`;

/** A pcre's translation, which these tests expect to exist. */
function translated(pcre: string): RegExp {
  const t = translatePcre(pcre);
  if (typeof t === 'string') throw new Error(t);
  return t.re;
}

/** A match as index and groups, for comparing ours with V8's. */
const asArray = (m: { index: number; [k: number]: string | undefined; length: number } | null) =>
  m && [m.index, ...Array.from(m)];

describe('StepBoundedRegExp', () => {
  it('matches as V8 does: index, text, every group, lastIndex (property)', () => {
    fc.assert(
      fc.property(pattern, flags, subject, (src, f, s) => compare(src, f, s)),
      { numRuns: 6000 },
    );
  });

  it('matches as V8 does where a pattern needs a literal after its start: in and out of lookarounds, alternatives and counts (property)', () => {
    // the Need instructions: a branch fails at once when its literal is nowhere from the position on
    const lit = fc
      .array(fc.constantFrom('a', 'b', 'B', '1', ':', '='), { minLength: 2, maxLength: 4 })
      .map((a) => a.join(''));
    const loose = fc.constantFrom(
      '\\w*',
      '.*',
      '.*?',
      '.{2,}',
      '[ab]+',
      '(\\w)',
      '\\1',
      '(?:ab|b)',
      '\\b',
      '',
    );
    const wrap = fc.constantFrom(
      '%',
      '(%)',
      '(?:%)+',
      '(?:%){2}',
      '(?=%)',
      '(?!%)',
      '(?<=%)',
      '(?<!%)',
      '(?:%|b)',
    );
    const needy = fc
      .array(fc.tuple(loose, wrap, lit), { minLength: 1, maxLength: 3 })
      .chain((parts) =>
        fc
          .constantFrom('', '|a:', '|\\w+=')
          .map((tail) => parts.map(([l, w, t]) => l + w.replace('%', t)).join('') + tail),
      );
    const text = fc
      .array(fc.constantFrom('a', 'b', 'A', 'B', '1', ':', '=', ' ', 'ab', 'a:=', 'b1'), { maxLength: 16 })
      .map((a) => a.join(''));
    fc.assert(
      fc.property(needy, flags, text, (src, f, s) => compare(src, f, s)),
      { numRuns: 3000 },
    );
  });

  it('matches as V8 does on sequences of loops, where what failed is remembered (property)', () => {
    const part = fc.constantFrom(
      'a*',
      'a+',
      'a*?',
      '[ab]*',
      '[ab]*?',
      'b+?',
      '.*',
      '.*?',
      '[^c]*?',
      'c',
      'a',
      'b',
      '(?:ab)',
      '(a|ab)',
      '(?:a*b){2}',
      '(?:[ab]*?c)+',
      '(?=a)',
      '\\b',
      '$',
      '(b*)',
    );
    const text = fc.array(fc.constantFrom('a', 'b', 'c', 'x'), { maxLength: 14 }).map((a) => a.join(''));
    fc.assert(
      fc.property(fc.array(part, { minLength: 2, maxLength: 5 }), text, (ps, s) =>
        compare(ps.join(''), '', s),
      ),
      { numRuns: 6000 },
    );
  });

  it('matches as V8 does on counts of groups holding loops, where failures in the count are remembered (property)', () => {
    // what a count's body may hold: loops that trade characters with each other and with the count
    const piece = fc.constantFrom(
      'a*',
      'a+',
      'b*',
      '[ab]*',
      '[ab]+?',
      '\\s*',
      '\\s+',
      '\\r?\\n',
      'a',
      'b',
      '(a)',
      'x?',
      '(?:ab)?',
      '.*',
      '\\b',
      '(?=a)',
      '$',
      '(?:a*b)+',
      '(?:a+b?){2}',
      '(?:[ab]*c){1,2}',
    );
    const body = fc
      .array(fc.array(piece, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 3 })
      .map((alts) => alts.map((a) => a.join('')).join('|'));
    const count = fc.constantFrom('*', '+', '*?', '+?', '{2,}', '{0,}?', '?', '{1,3}');
    const pat = fc
      .tuple(
        fc.constantFrom('', '^', 'x', '(b)'),
        fc.constantFrom('(?:%)', '(%)'),
        count,
        fc.constantFrom('c', 'b', '$', 'a\\s', '(?:c|\\n)', 'c|a+b', ''),
      )
      .chain(([head, group, q, tail]) => body.map((b) => head + group.replace('%', b) + q + tail));
    const text = fc
      .array(fc.constantFrom('a', 'b', 'c', 'x', ' ', '\r', '\n', 'ab', ' \r\n '), { maxLength: 14 })
      .map((a) => a.join(''));
    fc.assert(
      fc.property(pat, fc.constantFrom('', 'm', 'i'), text, (src, f, s) => compare(src, f, s)),
      { numRuns: 5000 },
    );
  });

  it('matches as V8 does on what the pcre translation writes, and on the first-exec guards (property)', () => {
    fc.assert(
      fc.property(pcrePattern, pcreFlags, pcreSubject, (p, f, s) => {
        const t = pcreToJs(p, {
          caseless: f.includes('i'),
          dotAll: f.includes('s'),
          multiline: f.includes('m'),
          extended: f.includes('x'),
        });
        if (typeof t === 'string') return; // refused by the translation
        for (const src of [t.source, t.sourceNoFinalNewline, firstExecGuarded(t.source, t.flags)])
          if (src !== undefined) compare(src, t.flags, s);
      }),
      { numRuns: 4000 },
    );
  });

  it('matches as V8 does on hand-picked cases of ECMAScript semantics', () => {
    const cases: [string, string, string][] = [
      ['(a)|b\\1', '', 'b'], // a backreference to an unset group matches empty
      ['(?:(a)|b)+', '', 'ab'], // a repeated group's captures cleared at each iteration
      ['(a*)*', '', 'b'], // an empty iteration past the minimum is refused
      ['(a*)+', '', 'b'],
      ['(?:a*?)?', '', 'a'],
      ['(?<=(\\d+)(\\d+))$', '', '1053'], // a lookbehind matches right to left: greedy from the right
      ['(?<=\\1(a))b', '', 'aab'],
      ['(?!(a)b)\\1c', '', 'ac'], // a negative lookaround leaves its groups unset
      ['(?=(a+))a*b\\1', '', 'baaabac'],
      ['(?<a>x)\\k<a>', '', 'xx'],
      ['\\k<a>(?<a>x)', '', 'x'],
      ['(a)\\1', 'i', 'aA'],
      ['(\\xE9)\\1', 'i', '\xE9\xC9'],
      ['(\\xFF)\\1', 'i', '\xFF\xFF'],
      ['^b', 'm', 'a\rb'],
      ['a$', 'm', 'a\r\nb'],
      ['\\bA', 'i', ' a'],
      ['.', '', '\r'],
      ['.', 's', '\r'],
      ['a{2,3}?', '', 'aaaa'],
      ['(a|ab)(c|bcd)(d*)', '', 'abcd'],
      // what is remembered as failed: a loop's rest after one start, its whole run from another
      ['(?:a*b){2}c', '', 'abababc'], // inside a count: the count decides too (not remembered)
      ['a*[ab]*?b', '', 'acxaaxbx'],
      ['a*[ab]*?[ab]*b', '', 'aacxbcxbcb'],
    ];
    for (const [src, f, s] of cases) compare(src, f, s);
  });

  it('ends an exec past its budget as no match, counted, and starts afresh at the next', () => {
    let calls = 0;
    // \d is in \w: each start's \w+ gives its letters back one by one for \d, quadratic in a run of them
    // (the := at the end: without it, the search ends at once, its Need failing)
    const quadratic = '(\\w+)\\d:=.*\\1';
    const re = new StepBoundedRegExp(quadratic, 'g', fixed(10_000), () => calls++);
    const long = `${'a'.repeat(8192)}:=`;
    expect(re.exec(long)).toBeNull();
    expect(re.limitHits).toBe(1);
    expect(calls).toBe(1);
    expect(re.lastIndex).toBe(0);
    expect(re.exec('ab1:= x ab')?.index).toBe(0);
    expect(re.lastSteps).toBeLessThan(100);
    // the budget is the exec's, every start included: what it takes grows with the subject
    const big = new StepBoundedRegExp(quadratic, 'g', fixed(1e9));
    big.exec(`${'a'.repeat(100)}:=`);
    const s100 = big.lastSteps;
    big.exec(`${'a'.repeat(200)}:=`);
    expect(big.lastSteps).toBeGreaterThan(3.5 * s100);
    // per byte: linear in the subject, at least the minimum
    const perByte = new StepBoundedRegExp(quadratic, 'g', { perByte: 64, min: 1000 });
    for (const n of [300, 1000, 8192]) {
      perByte.exec(`${'a'.repeat(n - 2)}:=`);
      expect(perByte.lastSteps).toBe(64 * n);
    }
    expect(perByte.limitHits).toBe(3);
    // 2^20 ways (with the backreference, nothing remembered): past the least budget, not 64 x 20
    const least = new StepBoundedRegExp('^(a|a)*\\1b', '', { perByte: 64, min: 5000 });
    expect(least.exec('a'.repeat(20))).toBeNull();
    expect(least.lastSteps).toBe(5000);
    expect(perByte.exec(`${'b '.repeat(4000)}x1:= x`)?.index).toBe(8000); // about 2 steps a byte
  });

  it('reads a run once for all the starts inside it (the community family is linear here, quadratic in V8)', () => {
    const re = new StepBoundedRegExp('(\\w+)\\s*:=.*\\1', 'g', fixed(1e9));
    const steps = (n: number) => {
      re.exec('a'.repeat(n));
      return re.lastSteps;
    };
    const s1k = steps(1000);
    expect(steps(8000)).toBeLessThan(8.5 * s1k);
    expect(s1k).toBeLessThan(20 * 1000);
    // ^ without m: no start but the first (as V8 tries it): 5.5 steps a byte here, 7.5 trying every start
    const http = ' HTTP/'.repeat(1366);
    const anchored = new StepBoundedRegExp(
      '^[^\\x0A]*\\x20HTTP\\x2F(0\\x2E9|1\\x2E[01])[\\t-\\r ]*\\x0A',
      'i',
      fixed(1e9),
    );
    expect(anchored.exec(http)).toBeNull();
    expect(anchored.lastSteps).toBeLessThan(6 * http.length);
    // a run read to its end by one start, then entered by another start inside it
    expect(re.exec('abcd := x bcd')?.index).toBe(1);
    expect(re.exec('abcd := x bcd')).toBeNull(); // from lastIndex
  });

  it("gives nothing back from a loop what follows it cannot start with (PCRE's auto-possessification)", () => {
    const steps = (src: string, text: string) => {
      const re = new StepBoundedRegExp(src, '', fixed(1e9));
      re.exec(text);
      return re.lastSteps;
    };
    const n = 1000;
    const letters = 'a'.repeat(n);
    // with a backreference (nothing remembered, below): each start takes the rest of the run (read once)
    // and fails after it, a few steps a start; giving the letters back one at a time would be about n^2 / 2
    expect(steps('(\\w+)\\s*:\\1', letters)).toBeLessThan(20 * n);
    expect(steps('(\\w+)(?:\\s|:)\\1', letters)).toBeLessThan(20 * n);
    // a lookahead or a character the loop takes next: each given back is tried
    expect(steps('(\\w+)(?=:)\\1', letters)).toBeGreaterThan(0.4 * n * n);
    expect(steps('(\\w+)[\\s1]\\1', letters)).toBeGreaterThan(0.4 * n * n);
  });

  it('remembers where the rest failed, without a backreference: polynomial patterns run in linear steps', () => {
    const steps = (src: string, flags: string, text: string) => {
      const re = new StepBoundedRegExp(src, flags, fixed(1e9));
      re.exec(text);
      return re.lastSteps;
    };
    // what V8 takes quadratic time over (sid 2417's, the log4j rules', loops given back one at a time)
    for (const [src, flags, unit] of [
      ['[\\t-\\r ]+[\\s\\S]*?\\x25[\\s\\S]*?\\x25', 'm', '\n'],
      [
        '\\x24\\x7B([jJ][nN][dD][iI]|[^\\x7D\\x80-\\xFF]*?\\x24\\x7B[^\\x7D\\x80-\\xFF]*?\\x3A[^\\x7D]*?\\x7D)',
        '',
        '${',
      ],
      ['\\s+.*%.*%', 's', ' '],
      ['(\\w+)(?=:)', '', 'a'],
      ['(\\w+)[\\s1]', '', 'a'],
    ] as const) {
      const small = steps(src, flags, unit.repeat(1000));
      const big = steps(src, flags, unit.repeat(8000));
      expect(big, src).toBeLessThan(8.5 * small);
      expect(small / (1000 * unit.length), src).toBeLessThan(20);
    }
  });

  it('runs a short subject in V8 and a long one in the machine, one lastIndex between them', () => {
    const src = '\\s+.*?%.*?%';
    const long = new StepBoundedRegExp(src, 'sg', fixed(1e6));
    const re = new LengthSwitchedRegExp(new RegExp(src, 'sg'), long, 16);
    expect([re.source, re.flags]).toEqual([src, 'gs']);
    expect(re.exec(' %a% b %c%')?.index).toBe(0); // 10 characters: V8
    expect(long.lastSteps).toBe(0);
    expect(re.lastIndex).toBe(4);
    const text = ` %a% b %c%${' '.repeat(20)}`;
    expect(re.exec(text)?.index).toBe(4); // from lastIndex 4, in the machine
    expect(long.lastSteps).toBeGreaterThan(0);
    expect(re.lastIndex).toBe(10);
    expect(re.exec(text)).toBeNull();
    expect(re.lastIndex).toBe(0);
    // which pcres: a backreference always, loops V8 may take polynomial time over by their length
    expect(StepBoundedRegExp.ambiguousLoops('\\s+.*?%.*?%')).toBe(true);
    expect(StepBoundedRegExp.ambiguousLoops('\\x24\\x7B(jndi|[^\\x7D]*?\\x24\\x7B[^\\x7D]*?\\x3A)')).toBe(
      true,
    );
    expect(StepBoundedRegExp.ambiguousLoops('(?:a*b)+')).toBe(true);
    expect(StepBoundedRegExp.ambiguousLoops('a*[ab]*')).toBe(true);
    expect(StepBoundedRegExp.ambiguousLoops('a*b*')).toBe(false); // disjoint: one way to split a text
    expect(StepBoundedRegExp.ambiguousLoops('a*ba*')).toBe(false); // b ends what the first loop takes
    expect(StepBoundedRegExp.ambiguousLoops('[^\\n]*\\nfoo[^\\n]*')).toBe(false);
    expect(StepBoundedRegExp.ambiguousLoops('(?:ab)+c')).toBe(false);
    expect(StepBoundedRegExp.ambiguousLoops('a*A*', 'i')).toBe(true); // under the flags the pcre has
    expect(StepBoundedRegExp.ambiguousLoops('a*A*')).toBe(false);
  });

  it('finds a loop that a search enters again from each start in its run', () => {
    const r = StepBoundedRegExp.restartableLoop;
    expect(r('uid=\\d{1,5}\\S+\\s+gid=')).toBe(true); // uid=0 is all \S
    expect(r('(\\{(?=\\d+\\})|AUTH\\s[^\\n]*?\\{)', 'i')).toBe(true); // in an alternative
    expect(r('IHDR(?!.*?PLTE).*?tRNS', 's')).toBe(true); // in a lookahead, and after it
    expect(r('a[^a]*b')).toBe(false); // a run of [^a] holds no start
    expect(r('^User-Agent:[^\\r\\n]*iPod')).toBe(false); // one start: ^ without m
    expect(r('^Host:[^\\r\\n]*x', 'm')).toBe(false); // a line start needs a line end the run does not hold
    expect(r('^Host:[^\\n]*x', 'm')).toBe(true); // under m a JavaScript line starts after CR too
    expect(r('(?:^|&)arg=[^&]*?;', 'm')).toBe(true); // [^&] holds the line ends
    expect(r('(?=^[a-z]{9,}$).*?x')).toBe(false); // the lookahead's ^ holds at the start only
    expect(r('a((?!--).)*?b[^x]*c')).toBe(false); // a counted group: the machine would not be linear
    expect(r('([a-z]+?\\^){10}')).toBe(false); // nor for a loop in a bounded count
    expect(r('ab{2,5}c')).toBe(false); // no unbounded loop
  });

  it("builds subjects against a pattern's loops that lead into them and make them run", () => {
    const subjects = (src: string, flags = '') => pumpSubjects(src, flags, 64) ?? [];
    // the lead-in and a character the loop takes, and both repeated: every start enters the loop again
    expect(subjects('filename=[^\\n]*\\.jpeg', 'i')).toEqual(
      expect.arrayContaining([`filename=${'a'.repeat(55)}`, 'filename=a'.repeat(7).slice(0, 64)]),
    );
    // a character the loop and what follows both take: where the two trade the run
    expect(subjects('\\s+.*?%.*?%')).toContain(' '.repeat(64));
    expect(subjects('x(?:ab)+y')).toContain(`x${'ab'.repeat(40)}`.slice(0, 64));
    expect(subjects('a.{0,200}b', 's')).toContain(`a${'b'.repeat(63)}`);
    for (const s of subjects('uid=\\d{1,5}\\S+\\s+gid=', 'i')) expect(s).toHaveLength(64);
    expect(subjects('abc')).toEqual([]); // no loop
    expect(subjects('a(?=b+)c')).toEqual([]); // a lookaround's loop runs apart
    expect(pumpSubjects('a{2', '', 64)).toBeUndefined();
    // counts whose shortest text would be 10^12 characters, and a thousand loops: cut, at once
    expect(subjects('((a{10000}){10000}){10000}b+')).toEqual([]);
    expect(pumpSubjects(Array.from({ length: 1000 }, (_, k) => `x${k}y+`).join('|'), '', 64, 8)).toHaveLength(
      8,
    );
  });

  it('builds subjects of the length asked for from any pattern it reads, or says it does not read it (property)', () => {
    fc.assert(
      fc.property(pattern, flags, fc.integer({ min: 1, max: 300 }), (src, f, n) => {
        let readable = true;
        try {
          new StepBoundedRegExp(src, f, fixed(10));
        } catch {
          readable = false;
        }
        const got = pumpSubjects(src, f, n, 12);
        if (!readable) return got === undefined;
        expect(got).toBeDefined();
        expect(got!.length).toBeLessThanOrEqual(12);
        for (const s of got!) expect(s).toHaveLength(n);
        return true;
      }),
      { numRuns: 2000 },
    );
  });

  it.skipIf(!rules.have)(
    'takes steps linear in the subject on every community pcre the engine runs in it for a restarting loop',
    () => {
      // subjects built against each such pcre's loops, 8 and 32 KiB: within the default budget, and the
      // steps per byte no more than 1.5 times as many over the longer subject
      let checked = 0;
      for (const v of communityPcres()) {
        const t = translatePcre(v);
        if (typeof t === 'string') continue;
        const { source, flags } = t.re;
        // switched for a restarting loop alone, as the engine routes it
        if (pcreRoute(source, flags) !== 'switched' || StepBoundedRegExp.ambiguousLoops(source, flags))
          continue;
        const short = pumpSubjects(source, flags, 8192) ?? [];
        const long = pumpSubjects(source, flags, 32768) ?? [];
        expect(long.length).toBe(short.length);
        for (let k = 0; k < short.length; k++) {
          const perByte = (s: string) => {
            const re = new StepBoundedRegExp(source, `${flags}g`, fixed(1e8));
            re.exec(s);
            return re.lastSteps / s.length;
          };
          const a = perByte(short[k]!);
          const b = perByte(long[k]!);
          expect(b, `${v} over ${JSON.stringify(long[k]!.slice(0, 20))}`).toBeLessThanOrEqual(
            Math.max(1.5 * a, 1),
          );
          expect(b, `${v} over ${JSON.stringify(long[k]!.slice(0, 20))}`).toBeLessThan(64);
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(100);
    },
  );

  it('is where the engine runs a pcre with a backreference, and one V8 may be polynomial on over a long buffer', () => {
    const rules = parseRules(
      [
        'alert tcp any any -> any any (content:"x"; pcre:"/(\\w+)\\s*:=.*\\1/si"; sid:1;)',
        'alert tcp any any -> any any (content:"x"; pcre:"/\\s+.*?%.*?%/smi"; sid:2;)',
        'alert tcp any any -> any any (content:"x"; pcre:"/\\/[^\\r\\n]*\\x20.pl/i"; sid:3;)',
        'alert tcp any any -> any any (content:"x"; pcre:"/foo\\d+bar/"; sid:4;)',
        'alert tcp any any -> any any (content:"x"; pcre:"/uid=\\d{1,5}\\S+\\s+gid=/"; sid:5;)',
      ].join('\n'),
      'test',
    ).rules;
    const kinds = (opts: { pcreStepsPerByte?: number }) =>
      new Engine(rules, opts).compiled.map((c) => {
        const s = c.steps.find((x) => x.kind === 'pcre') as { reG: object; reGFirst?: object };
        return [s.reG.constructor.name, s.reGFirst?.constructor.name];
      });
    expect(kinds({})).toEqual([
      ['StepBoundedRegExp', undefined],
      ['LengthSwitchedRegExp', undefined],
      ['RegExp', 'RegExp'], // guarded for its first exec, in V8 (a guard's lookbehind is not taken for a loop)
      ['RegExp', undefined],
      ['LengthSwitchedRegExp', undefined], // a loop every uid= enters again, no guard for the shape
    ]);
    expect(kinds({ pcreStepsPerByte: 0 }).map(([g]) => g)).toEqual([
      'RegExp',
      'RegExp',
      'RegExp',
      'RegExp',
      'RegExp',
    ]);
  });

  it.runIf(regExpBacktrackLimitWorks())("takes Snort's O flag: that pcre runs with no match limit", () => {
    const twice = parseRules(
      [
        'alert tcp any any -> any any (content:"x"; pcre:"/^(?:(a|a)*b|a*c)$/"; sid:1;)',
        'alert tcp any any -> any any (content:"x"; pcre:"/^(?:(a|a)*b|a*c)$/O"; sid:2;)',
        'alert tcp any any -> any any (content:"x"; pcre:"/(\\w+)\\d:=.*\\1/O"; sid:3;)',
      ].join('\n'),
      'test',
    ).rules;
    const [limited, unlimited, refs] = new Engine(twice).compiled.map(
      (c) => (c.steps.find((x) => x.kind === 'pcre') as unknown as { reG: PcreExec }).reG,
    );
    // 2^16 ways through the first alternative before the second matches: past 10,000 backtracks
    const text = `${'a'.repeat(16)}c`;
    expect(limited!.exec(text)).toBeNull();
    expect(unlimited!.exec(text)?.index).toBe(0);
    expect(refs).toBeInstanceOf(RegExp); // not the step machine either
  });

  it('keeps each instance its own state where instances of one source share its compiled program', () => {
    const a = new StepBoundedRegExp('(\\w)\\1', 'g', fixed(1000));
    const b = new StepBoundedRegExp('(\\w)\\1', 'g', fixed(1000));
    const text = 'aa bb cc';
    expect(a.exec(text)?.[1]).toBe('a');
    expect(b.exec(text)?.[1]).toBe('a');
    expect(a.exec(text)?.[1]).toBe('b');
    expect([a.lastIndex, b.lastIndex]).toEqual([5, 2]);
  });

  it('keeps no large backtrack stack once an exec is over (each rule holds an instance)', () => {
    // exponential (a backreference: nothing remembered), each way deeper in the stack
    const re = new StepBoundedRegExp('(a|a)*\\1b', '', { perByte: 64, min: 100_000 });
    const stack = () => (re as unknown as { stack: Int32Array }).stack.length * 4;
    expect(re.exec('a'.repeat(65536))).toBeNull();
    expect(re.limitHits).toBe(1);
    expect(stack()).toBeLessThanOrEqual(256 * 1024); // it took 16.8 MB during the exec
    expect(re.exec('aab')?.index).toBe(0);
  });

  it('runs a deep repetition without the call stack (200,000 iterations of a group)', () => {
    const re = new StepBoundedRegExp('^(?:(a)|b)*$', '', fixed(10_000_000));
    const s = 'ab'.repeat(100_000);
    expect(re.exec(s)?.[1]).toBeUndefined(); // cleared by the last iteration, a b
    expect(new StepBoundedRegExp('^(?:(a)b)*$', '', fixed(10_000_000)).exec(s)?.[1]).toBe('a');
  });

  it('refuses what it does not read with the place, and V8 errors as V8 words them', () => {
    expect(() => new StepBoundedRegExp('a{2', '', fixed(100))).toThrow(
      /'\{' that is not a count at offset 1/,
    );
    expect(() => new StepBoundedRegExp('\\8', '', fixed(100))).toThrow(/legacy octal escape/);
    expect(() => new StepBoundedRegExp('(?=a)*', '', fixed(100))).toThrow(/quantifier after an assertion/);
    expect(() => new StepBoundedRegExp('a', 'u', fixed(100))).toThrow(StepsSyntaxError);
    expect(() => new StepBoundedRegExp('(', '', fixed(100))).toThrow(/Invalid regular expression/);
    expect(() => new StepBoundedRegExp('a', '', fixed(0))).toThrow(/no steps at all/);
    expect(() => new StepBoundedRegExp('a', '', { perByte: 1.5, min: 0 })).toThrow(/budget\.perByte/);
    expect(() => new StepBoundedRegExp('a', '', fixed(100)).exec('\u0100')).toThrow(/latin1.*offset 0/);
  });

  it.skipIf(!rules.have)(
    "matches the community's ((\\w+)...\\x3a=...=>\\2) pcres as V8 does, on text built to match them",
    () => {
      const family = communityPcres().filter((p) => p.includes('\\x3a='));
      expect(family.length).toBeGreaterThan(50);
      let matched = 0;
      for (const p of family) {
        const t = translatePcre(p);
        if (typeof t === 'string') throw new Error(`${p}: ${t}`);
        const kw = /\.\*(\w+)\[\\r\\n\\s\]\*=>/.exec(p)?.[1] ?? 'x';
        const long = 'A'.repeat(1100);
        const subjects: string[] = [];
        for (const q of ["'", '"'])
          for (const [name, ref] of [
            ['v_x', 'v_x'], // the whole word
            ['abc', 'bc'], // a match that starts inside the word
            ['abc', 'zz'], // none
          ])
            for (const pre of ['', 'begin lorem ipsum; '.repeat(40)]) {
              subjects.push(`${pre}${name} := ${q}${long}${q}; x; ${kw} => ${ref}`);
              subjects.push(`${pre}${name}\r\n:=\n${q}${long}${q}\n;${kw.toUpperCase()}=>${ref}`);
            }
        for (const s of subjects) {
          const ours = new StepBoundedRegExp(t.re.source, `${t.re.flags}g`, { perByte: 64, min: 100_000 });
          const got = ours.exec(s);
          const want = new RegExp(t.re.source, `${t.re.flags}g`).exec(s);
          expect(ours.limitHits).toBe(0);
          expect(got && [got.index, ...got]).toEqual(want && [want.index, ...want]);
          if (want) matched++;
        }
      }
      expect(matched).toBeGreaterThan(family.length * 8); // half the subjects or so match
    },
  );

  it.skipIf(!rules.have)(
    'raises the alerts V8 raises with every community pcre it takes, over payloads built from their words',
    () => {
      // the pcres it runs, on a packet's own payload: no buffer flag, not relative
      const taken = communityPcres().filter((v) => {
        const t = translatePcre(v);
        if (typeof t === 'string' || t.buffer || t.relative) return false;
        return pcreRoute(t.re.source, t.re.flags) !== 'v8';
      });
      expect(taken.length).toBeGreaterThan(150);
      const ruleText = taken
        .map(
          (v, i) =>
            `alert tcp-pkt any any -> any any (msg:"m"; pcre:"${v.replace(/^"|"$/g, '')}"; sid:${i + 1};)`,
        )
        .join('\n');
      const set = parseRules(ruleText, 'taken');
      expect(set.rules.length).toBe(taken.length);
      // payloads of 2-3 KiB (the machine's side of pcreShortMax) of each pcre's words, quotes, := => < % $ { } & = ? ..
      const words = [...new Set(taken.flatMap((v) => v.match(/[A-Za-z_]{3,}/g) ?? []))];
      const bits = fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...words) },
        {
          weight: 4,
          arbitrary: fc.constantFrom(
            ' ',
            ':=',
            ' => ',
            "'",
            '"',
            ';',
            '<',
            '%',
            '${',
            '}',
            '\r\n',
            '\n',
            'A'.repeat(1100),
          ),
        },
        // the pieces of the query-string and IMAP pcres (restarting loops), less often: among the others they
        // made the family's matches rare enough that a run raised 3 alerts
        { weight: 1, arbitrary: fc.constantFrom('{', '&', '=', '?', '..') },
      );
      const payload = fc
        .array(bits, { minLength: 20, maxLength: 400, size: 'max' })
        .map((a) => a.join('').slice(0, 3000))
        .filter((p) => p.length > 2048);
      const alerts = (e: Engine, p: string, i: number) =>
        e
          .inspect(pkt({ sp: 40000 + i, dp: 80, flags: ACK | PSH, seq: 1, ack: 1, payload: p }), i)
          .map((x) => x.sid)
          .sort((x, y) => x - y);
      // each payload on fresh engines, so nothing carries over: V8 with a backtrack bound 10,000 times the
      // default (with none an exponential case would have no end). Shared engines, V8's bounded at
      // 1,000,000, once disagreed: V8's raised none of 5 family alerts on a payload that a fresh engine, V8
      // unbounded and the machine all raise (a CI run at c85c77c; not explained; rule faults, should one
      // come again, are in the message)
      let raising = 0;
      let limited = 0;
      fc.assert(
        fc.property(payload, fc.nat(1000), (p, i) => {
          const v8 = new Engine(set.rules, { pcreStepsPerByte: 0, pcreBacktracksMax: 100_000_000 });
          const ours = new Engine(set.rules);
          const want = alerts(v8, p, i);
          const faults = `V8's rule faults ${JSON.stringify([...v8.ruleFaults])}, the machine's ${JSON.stringify([...ours.ruleFaults])}`;
          // also where an exec ran out of steps: the alerts are V8's
          expect(alerts(ours, p, i), faults).toEqual(want);
          if (want.length > 0) raising++;
          if (ours.stats.pcreStepLimits > 0) limited++;
        }),
        { numRuns: 60 },
      );
      // payloads that raise an alert: 7-18 of 60 in ten runs (alerts come in bunches: one payload raised 17)
      expect(raising).toBeGreaterThan(2);
      // Payloads on which an exec runs out of steps: none in most runs, but these payloads could be the worst
      // case of the ((\w+)...\x3a=...\2) family (the next test): about one in 2,000 (2026-12-06: 1 of
      // 3,600 sampled; two CI runs of 60 had one, whose execs of the family's variants all ran out), and V8
      // raised nothing on them either. Since the Need instructions such a payload runs out only if it also
      // holds "layer" after the word (the rules' words include it). More than two of 60 would be a budget
      // too small for this text.
      expect(limited).toBeLessThanOrEqual(2);
    },
    // 14-16 s alone; 60+ s when other machines load the shared host (2026-12-05 22:57, load 4.2)
    180_000,
  );

  it("takes linear steps on the ((\\w+)...\\x3a=...\\2) family's quadratic case without the literal it needs, where V8 is quadratic", () => {
    // Found by the test above (2026-12-06): a long word right before := and a single-quoted string of 128+
    // characters followed by ;, and no "layer" after it: every start of (\w+) in the word matched up to the ;
    // and then .*layer read the rest of the text, 1,148 steps a byte over the 3,000 bytes it was found in,
    // past the budget of 64 (as PCRE's match limit bounds Snort's execs). Each alternative now begins with
    // a Need: "layer" (case-insensitive), looked for once per exec from the end; from every start after its
    // last occurrence the alternative fails at once.
    const t = { re: translated(layerFamily) };
    const text = `${'A'.repeat(1100)}tst:='${'x'.repeat(130)}';${' =>'.repeat(500)}`;
    const machine = new StepBoundedRegExp(t.re.source, t.re.flags, { perByte: 64, min: 100_000 });
    expect(machine.exec(text)).toBeNull();
    expect(machine.limitHits).toBe(0);
    expect(machine.lastSteps / text.length).toBeLessThan(8);
    const steps = (n: number) => {
      machine.exec(`${'A'.repeat(n)}tst:='${'x'.repeat(130)}';${' =>'.repeat(n)}`);
      return machine.lastSteps;
    };
    expect(steps(8000)).toBeLessThan(8.5 * steps(1000));
    expect(new RegExp(t.re.source, t.re.flags).exec(text)).toBeNull();
    // "LaYeR" (the i flag) counts: with "layer =>" and the end of the word after it, the text matches where
    // that end starts, in V8 and in the machine (quadratic again there: each start reads on to the literal)
    const unbounded = new StepBoundedRegExp(t.re.source, t.re.flags, { perByte: 0, min: 1e9 });
    const matching = `${text}LaYeR => tst`;
    expect(new RegExp(t.re.source, t.re.flags).exec(matching)?.index).toBe(1100);
    expect(unbounded.exec(matching)?.index).toBe(1100);
    // the literal before the start does not count
    expect(unbounded.exec(`layer => ${text}`)).toBeNull();
    expect(new RegExp(t.re.source, t.re.flags).exec(`layer => ${text}`)).toBeNull();
  });

  it('looks for a literal a pattern needs once per exec: at once where every start may be tried, late where one is', () => {
    const n = 8000;
    // sid 2577's shape: nested loops over blanks, then URL; with m each line start may be tried, and the
    // Need for "URL" ends the search at its first instruction (the exec without it ran out of 1e6 steps)
    const nested = new StepBoundedRegExp('^Location:(\\s*|\\s*\\r?\\n\\s+)*URL\\s*:', 'mi', fixed(1_000_000));
    expect(nested.exec(`Location:${' '.repeat(n)}`)).toBeNull();
    expect(nested.limitHits).toBe(0);
    expect(nested.lastSteps).toBeLessThan(2 * n);
    expect(nested.exec(`Location: \r\n url :`)?.index).toBe(0);
    // one start only (^ without m): a start that fails at once does not pay a search of the subject
    const anchored = new StepBoundedRegExp('^([A-F0-9]{4})\\r\\n\\1', '', fixed(1_000_000));
    expect(anchored.exec('a'.repeat(n))).toBeNull();
    expect(anchored.lastSteps).toBeLessThan(10);
    expect(anchored.exec('BEEF\r\nBEEF')?.index).toBe(0);
  });

  it('gives a loop back only to where the literal after it starts, and looks for each literal a branch needs', () => {
    const t = { re: translated(layerFamily) };
    const re = new StepBoundedRegExp(t.re.source, t.re.flags, { perByte: 0, min: 1e10 });
    const v8 = new RegExp(t.re.source, t.re.flags);
    // the literal present, after every start in a long word: each start's .* was given back a character at
    // a time down to "layer" and past it (1,583 steps a byte over 3 KiB, 26,126 over 48 KiB); now only to
    // where "layer" starts, and the backreference is charged the characters it compares
    const perByte = (n: number) => {
      const text = `${'A'.repeat(n)}tst:='${'x'.repeat(130)}';${' =>'.repeat(n / 4)}layer => tst ${'B'.repeat(n)}`;
      expect(re.exec(text)?.index).toBe(n);
      expect(v8.exec(text)?.index).toBe(n);
      return re.lastSteps / text.length;
    };
    const small = perByte(1000);
    expect(perByte(16_000)).toBeLessThan(1.2 * small);
    expect(small).toBeLessThan(40);
    // a loop before an alternation of keywords (75 community rules: `.*(sname|oname|type|gname)`) is given
    // back to where any of them starts: 3,230 steps a byte over 4 KiB and 69,598 over 49 KiB before
    const keywords = String.raw`/((\w+)[\r\n\s]*\x3a=[\r\n\s]*(\x27[^\x27]{1075,}\x27|\x22[^\x22]{1075,}\x22)[\r\n\s]*\x3b.*(sname|oname|type|gname)[\r\n\s]*=>[\r\n\s]*\2|(sname|oname|type|gname)\s*=>\s*(\x27[^\x27]{1075,}|\x22[^\x22]{1075,}))/si`;
    const k = { re: translated(keywords) };
    const kre = new StepBoundedRegExp(k.re.source, k.re.flags, { perByte: 0, min: 1e10 });
    const kPerByte = (n: number) => {
      const text = `${'A'.repeat(n)}tst:='${'x'.repeat(1080)}';${' =>'.repeat(n / 4)}oname => tst ${'B'.repeat(n)}`;
      expect(kre.exec(text)?.index).toBe(n);
      expect(new RegExp(k.re.source, k.re.flags).exec(text)?.index).toBe(n);
      return kre.lastSteps / text.length;
    };
    expect(kPerByte(16_000)).toBeLessThan(1.5 * kPerByte(1000));
    // sid 2717's shape: := present but no => anywhere; the branch's two needs are both looked for, and
    // 30 assignments of 1,075 letters end at once (the family's execs over such text ran out of steps)
    const src = String.raw`((\w+)[\t-\r ]*:=[\t-\r ]*('[^']{1075,}'|"[^"]{1075,}")[\t-\r ]*;[\s\S]*(oname1|oname2)[\t-\r ]*=>[\t-\r ]*\2|(oname1|oname2)\s*=>\s*('[^']{1075,}|"[^"]{1075,}))`;
    const assignments = `a:='${'a'.repeat(1075)}';`.repeat(30);
    const two = new StepBoundedRegExp(src, 'i', { perByte: 64, min: 1000 });
    expect(two.exec(assignments)).toBeNull();
    expect(two.limitHits).toBe(0);
    expect(two.lastSteps / assignments.length).toBeLessThan(16);
    expect(new RegExp(src, 'i').exec(assignments)).toBeNull();
    expect(two.exec(`${assignments}oname2 => a`)?.index).toBe(
      new RegExp(src, 'i').exec(`${assignments}oname2 => a`)?.index,
    );
    // the tables are the thread's, shared by instances: two patterns' execs in turn, eager, as V8 has them
    const x = new StepBoundedRegExp('(\\w)[\\s\\S]*ab\\1', '', fixed(1e6), undefined, 'eager');
    const y = new StepBoundedRegExp('(\\w)[\\s\\S]*ba\\1', '', fixed(1e6), undefined, 'eager');
    for (const text of ['xabxab', 'zbaz ba', 'ab ab ba', 'qbaqabq', 'cabcbacab']) {
      for (const [re, src] of [
        [x, '(\\w)[\\s\\S]*ab\\1'],
        [y, '(\\w)[\\s\\S]*ba\\1'],
      ] as const) {
        const want = new RegExp(src).exec(text);
        const got = re.exec(text);
        expect(got && [got.index, ...got]).toEqual(want && [want.index, ...want]);
      }
    }
    // a lazy loop before its literal, with a backreference (no memo): each start took characters one at a
    // time up to "KEY=" (1,509 steps a byte over 3 KiB, 24,009 over 48 KiB); now up to where it starts
    const lazy = new StepBoundedRegExp('(\\w+):.*?KEY=\\1;', 's', fixed(1e10));
    const lazyPerByte = (n: number, tail: string) => {
      const text = `${'a'.repeat(n)}:${' x'.repeat(n)} KEY=${tail}; ${'b'.repeat(n)}`;
      const want = /(\w+):.*?KEY=\1;/s.exec(text);
      const got = lazy.exec(text);
      expect(got && [got.index, ...got]).toEqual(want && [want.index, ...want]);
      return lazy.lastSteps / text.length;
    };
    expect(lazyPerByte(16_000, 'zz')).toBeLessThan(1.2 * lazyPerByte(1000, 'zz'));
    expect(lazyPerByte(1000, 'zz')).toBeLessThan(20);
    lazyPerByte(1000, 'aaa'); // a match: the last three letters of the word
    // a long capture that differs from the text at its first character costs a step, not its length
    const ref = new StepBoundedRegExp('(\\w+),\\1', '', fixed(1e9));
    const word = 'a'.repeat(4000);
    ref.exec(`${word},b${word}`);
    expect(ref.lastSteps).toBeLessThan(40 * 4000); // 22 a start; 8 million when charged the length
  });

  it('takes linear steps over a count of a group holding loops, where it took exponential or quadratic ones', () => {
    // sid 2577's `^Location\x3a(\s*|\s*\r?\n\s+)*URL` with its URL later in the text: each way of cutting
    // blanks into iterations was tried (out of 2e8 steps over 64 of them); (x\s+)*y tried each x again
    const cases: [string, string, (n: number) => string][] = [
      ['^Location:(\\s*|\\s*\\r?\\n\\s+)*URL\\s*:', 'mi', (n) => `Location:${' '.repeat(n)}x URL:`],
      ['^Location:(\\s*|\\s*\\r?\\n\\s+)*URL\\s*:', 'i', (n) => `Location:${' \r\n '.repeat(n / 4)}x URL:`],
      ['(a+|b)*c', '', (n) => `${'a'.repeat(n)}d c`],
      ['(?:a+)+b', '', (n) => `${'a'.repeat(n)}x`],
      ['(a|aa)+$', '', (n) => `${'a'.repeat(n)}x`],
      ['(?:x\\s+)*y', '', (n) => `${'x '.repeat(n / 2)}z y`],
      ['(?:a|\\w+b)+;', '', (n) => `${'a'.repeat(n)};`.replace(/a;$/, '?;')],
    ];
    for (const [src, f, text] of cases) {
      const re = new StepBoundedRegExp(src, f, fixed(1e9));
      const v8 = new RegExp(src, f);
      const perByte = (n: number) => {
        const t = text(n);
        const got = re.exec(t);
        if (n <= 16) expect(asArray(got)).toEqual(asArray(v8.exec(t)));
        return re.lastSteps / t.length;
      };
      // V8 compared where it is quick (it is exponential on the first five)
      expect(perByte(16)).toBeGreaterThan(0);
      expect(perByte(1024), src).toBeLessThan(64);
      expect(perByte(16_384), src).toBeLessThan(1.2 * perByte(1024));
    }
    // a match after such a run is still found, with V8's groups
    const loc = new StepBoundedRegExp('^Location:(\\s*|\\s*\\r?\\n\\s+)*URL\\s*:', 'mi', fixed(1e6));
    const found = `Location:${' \r\n '.repeat(500)}URL :`;
    expect(asArray(loc.exec(found))).toEqual(asArray(/^Location:(\s*|\s*\r?\n\s+)*URL\s*:/im.exec(found)));
    // with a backreference nothing is remembered (what follows depends on the captures too)
    const ref = new StepBoundedRegExp('^(a|a)*\\1b', '', fixed(100_000));
    expect(ref.exec('a'.repeat(40))).toBeNull();
    expect(ref.limitHits).toBe(1);
  });

  it("raises sid 2682's alert when a long word comes before the attack (it ran out of steps there, as PCRE's match limit would)", () => {
    // the community rule with its header opened up and no flow option, over one packet
    const rule =
      'alert tcp any any -> any any (msg:"SERVER-ORACLE mdsys.md2.validate_geom buffer overflow attempt"; content:"mdsys.md2.validate_geom",nocase; pcre:"/((\\w+)[\\r\\n\\s]*\\x3a=[\\r\\n\\s]*(\\x27[^\\x27]{128,}\\x27|\\x22[^\\x22]{128,}\\x22)[\\r\\n\\s]*\\x3b.*layer[\\r\\n\\s]*=>[\\r\\n\\s]*\\2|layer\\s*=>\\s*(\\x27[^\\x27]{128,}|\\x22[^\\x22]{128,})|\\(\\s*(\\x27[^\\x27]{128,}|\\x22[^\\x22]{128,}))/si"; sid:2682;)';
    const engine = new Engine(parseRules(rule, 'test').rules);
    // 3,000 letters glued to the assignment's name: every start in them is tried before the name's own
    const attack = `tst:='${'x'.repeat(200)}'; mdsys.md2.validate_geom(layer => tst)`;
    const payload = `begin ${'A'.repeat(3000)}${attack}`;
    const sids = engine.inspect(pkt({ payload }), 1).map((a) => a.sid);
    expect(sids).toEqual([2682]);
    expect(engine.stats.pcreStepLimits).toBe(0);
  });

  it.skipIf(!rules.have)(
    'reads every translated community pcre; those with a backreference are the ones it runs',
    () => {
      const pcres = communityPcres();
      let withRef = 0;
      for (const p of pcres) {
        const t = translatePcre(p);
        if (typeof t === 'string') continue;
        expect(() => new StepBoundedRegExp(t.re.source, `${t.re.flags}g`, fixed(1000))).not.toThrow();
        if (StepBoundedRegExp.hasBackreference(t.re.source)) withRef++;
      }
      expect(pcres.length).toBeGreaterThan(700);
      expect(withRef).toBe(55);
    },
  );
});
