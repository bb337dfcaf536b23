import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { boundedRegExp, regExpBacktrackLimitWorks } from '../src/regexp.js';

describe('boundedRegExp', () => {
  it('has its bound on this runtime, and leaves natives syntax off', () => {
    expect(regExpBacktrackLimitWorks()).toBe(true);
    boundedRegExp('a', '', 10);
    // biome-ignore lint/security/noGlobalEval: checking that V8's natives syntax was switched off again
    expect(() => eval('%IsSmi(1)')).toThrow(SyntaxError);
  });

  it('still bounds after V8 has dropped its compiled code (a process that made RegExps, worked, made more)', () => {
    // --stress-flush-code: every collection drops the bytecode of functions not running, as V8 does by
    // default to a function left unused through a few major collections (an IDS worker loading its next
    // rule set: every pcre refused with "Unexpected token '%'"); the call compiles it again
    const url = new URL('../src/regexp.ts', import.meta.url).href;
    const code = `
      import(${JSON.stringify(url)}).then((m) => {
        const subject = 'a'.repeat(20) + 'b';
        const out = [];
        for (let round = 0; round < 3; round++) {
          out.push(m.boundedRegExp('^(?:a|a)*c|^a*b', '', 1000).exec(subject) === null);
          for (let k = 0; k < 4; k++) globalThis.gc();
        }
        console.log(JSON.stringify(out));
      }, (e) => { console.log(String(e)); });`;
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--expose-gc',
        '--flush-bytecode',
        '--stress-flush-code',
        '--input-type=module',
        '-e',
        code,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('[true,true,true]');
  });

  it('gives up after the bound, where a plain RegExp backtracks on to a match', () => {
    // the first alternative fails after about 2^20 backtracks; the second matches
    const source = '^(?:a|a)*c|^a*b';
    const subject = `${'a'.repeat(20)}b`;
    expect(new RegExp(source).exec(subject)?.[0]).toBe(subject);
    expect(boundedRegExp(source, '', 1 << 24).exec(subject)?.[0]).toBe(subject);
    expect(boundedRegExp(source, '', 10_000).exec(subject)).toBeNull();
    expect(boundedRegExp(source, '', 10_000).test(subject)).toBe(false);
  });

  it('ends on subjects that would hold a plain RegExp for hours', () => {
    // 2^60 paths; one exec would outlive the run (each extra letter doubles it)
    const words = boundedRegExp('^(\\w+\\s?)*$', '', 100_000);
    expect(words.exec(`${'a'.repeat(60)}!`)).toBeNull();
    // community rule sid 2417's pcre over 4 KiB of blanks and a %: 14 s without a bound (polynomial: the
    // loops over \s and . are not counted, their alternatives are)
    const rule = boundedRegExp('\\s+.*?%.*?%', 'gsm', 10_000);
    expect(rule.exec(`${' '.repeat(4_096)}%`)).toBeNull();
    // and still matches what it should afterwards (the count is per exec, not per RegExp)
    rule.lastIndex = 0;
    expect(rule.exec('SITE EXEC %p%p')?.index).toBe(4);
  });

  it('is a RegExp like the plain one: flags, lastIndex, groups, errors', () => {
    const r = boundedRegExp('(?<k>[a-z]+)=(\\d+)', 'gi', 1000);
    expect(r).toBeInstanceOf(RegExp);
    expect(r.flags).toBe('gi');
    const text = 'A=1 b=22 c=x';
    expect([...text.matchAll(r)].map((m) => [m.index, m.groups?.k, m[2]])).toEqual([
      [0, 'A', '1'],
      [4, 'b', '22'],
    ]);
    expect(text.replace(r, '$<k>')).toBe('A b c=x');
    expect(() => boundedRegExp('(a', '', 1000)).toThrow(SyntaxError);
    expect(() => boundedRegExp('a', 'q', 1000)).toThrow(SyntaxError);
    expect(() => boundedRegExp('a', '', 0)).toThrow(RangeError);
  });

  it('matches as a plain RegExp does whenever the bound is not reached (property)', () => {
    // small patterns over a three-letter alphabet: alternation, groups, lazy and greedy counts,
    // classes, anchors, backreferences, lookarounds
    const atom = fc.constantFrom('a', 'b', '.', '[ab]', '[^a]', '\\b', '^', '$', '(a|b)', '(?:ab|a)', '\\1');
    const quant = fc.constantFrom('', '', '*', '+', '?', '*?', '+?', '{1,2}', '{2}?');
    const piece = fc.tuple(atom, quant).map(([a, q]) => (/^[\\^$]|^\\b/.test(a) && q !== '' ? a : a + q));
    const branch = fc.array(piece, { minLength: 1, maxLength: 5 }).map((p) => p.join(''));
    const pattern = fc
      .tuple(fc.array(branch, { minLength: 1, maxLength: 3 }), fc.constantFrom('', '(?=a)', '(?<!b)'))
      .map(([b, look]) => `(${b.join('|')})${look}`);
    const subject = fc.string({ unit: fc.constantFrom('a', 'b', 'c'), maxLength: 24 });
    fc.assert(
      fc.property(pattern, fc.constantFrom('', 'g', 'y', 'gi'), subject, (source, flags, s) => {
        const plain = new RegExp(source, flags);
        const bounded = boundedRegExp(source, flags, 1 << 24);
        for (let k = 0; k < 3; k++) {
          const a = plain.exec(s);
          const b = bounded.exec(s);
          expect(b === null ? null : [...b]).toEqual(a === null ? null : [...a]);
          expect(b?.index).toBe(a?.index);
          expect(bounded.lastIndex).toBe(plain.lastIndex);
          if (a === null) break;
        }
      }),
      { numRuns: 400 },
    );
  });
});
