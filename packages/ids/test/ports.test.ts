// Port specs (`any`, N, lo:hi, :hi, lo:, !spec, [list], $VAR) as intervals: the same answers as the
// straightforward reading, and lists of tens of thousands of ports load in linear time.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Engine, parseRules, portTest } from '../src/index.js';

/**
 * The reading of a spec the rules language gives, closure by closure (the engine's before 2026-12-04): a
 * list is its elements' ports less those of its negated elements, or every port less those when all are
 * negated (Suricata's rules format: `[80:100,!99]` is 80-100 but 99, `[1:80,![2,4]]` 1-80 but 2 and 4;
 * Snort's port lists alike). Before 2026-12-07 the engine and this reading took any element that admitted
 * a port, so `[80:100,!99]` admitted every port.
 */
function reference(spec: string, vars: Record<string, string>): (p: number) => boolean {
  const s = spec.trim();
  if (s === 'any') return () => true;
  if (s.startsWith('!')) {
    const t = reference(s.slice(1), vars);
    return (p) => !t(p);
  }
  if (s.startsWith('$')) return reference(vars[s.slice(1)]!, vars);
  if (s.startsWith('[')) {
    const parts: string[] = [];
    let depth = 0;
    let cur = '';
    for (const c of s.slice(1, -1)) {
      if (c === '[') depth++;
      if (c === ']') depth--;
      if (c === ',' && depth === 0) {
        parts.push(cur);
        cur = '';
      } else cur += c;
    }
    parts.push(cur);
    const items = parts.map((x) => x.trim()).filter(Boolean);
    const take = items.filter((x) => !x.startsWith('!')).map((x) => reference(x, vars));
    const drop = items.filter((x) => x.startsWith('!')).map((x) => reference(x.slice(1), vars));
    return (p) => !drop.some((t) => t(p)) && (take.length === 0 || take.some((t) => t(p)));
  }
  const m = /^(\d*):(\d*)$/.exec(s);
  if (m) {
    const lo = m[1] ? Number(m[1]) : 0;
    const hi = m[2] ? Number(m[2]) : 65535;
    return (p) => p >= lo && p <= hi;
  }
  const n = Number(s);
  return (p) => p === n;
}

const port = fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.constantFrom(0, 1, 1023, 1024, 65534, 65535));
const spec: fc.Arbitrary<string> = fc.letrec<{ s: string }>((tie) => ({
  s: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant('any'),
    port.map(String),
    fc.tuple(port, port).map(([a, b]) => `${Math.min(a, b)}:${Math.max(a, b)}`),
    port.map((a) => `${a}:`),
    port.map((a) => `:${a}`),
    fc.constant('$V'),
    tie('s').map((x) => `!${x}`),
    fc.array(tie('s'), { minLength: 1, maxLength: 5 }).map((xs) => `[${xs.join(',')}]`),
  ),
})).s;

describe('port specs', () => {
  it('answer as the reference reading for random specs (lists, negations, ranges, variables) at every interesting port', () => {
    fc.assert(
      fc.property(spec, spec, fc.array(port, { maxLength: 8 }), (s, v, extra) => {
        const vars = { V: v.replaceAll('$V', '80') };
        const t = portTest(s, vars);
        const r = reference(s, vars);
        // the ports each number in the specs names, and its neighbours
        const named = [...`${s} ${vars.V}`.matchAll(/\d+/g)].map((m) => Number(m[0]));
        for (const p of [0, 65535, ...extra, ...named.flatMap((n) => [n - 1, n, n + 1])])
          if (p >= 0 && p <= 65535) expect(t(p), `${s} (V = ${vars.V}) at ${p}`).toBe(r(p));
      }),
      { numRuns: 2000 },
    );
  });

  it('a port past 65535, a range ending before it starts, an empty or unclosed list: errors naming them', () => {
    // each matched nothing, silently (the rule never fired)
    for (const [bad, why] of [
      ['70000', /port 70000 in '70000' is over 65535/],
      ['1024:70000', /port 70000 in '1024:70000' is over 65535/],
      ['80:70', /port range '80:70' ends before it starts/],
      ['[]', /empty port list '\[\]'/],
      ['[80,8080', /port list '\[80,8080' is not closed by \]/],
      ['$V', /port range '90:10' ends before it starts/],
    ] as const)
      expect(() => portTest(bad, { V: '90:10' }), bad).toThrow(why);
    // the rule is listed as skipped with the reason, the others load
    const e = new Engine(
      parseRules(
        'alert tcp any any -> any 70000 (msg:"x"; sid:1;)\nalert tcp any any -> any 80 (msg:"y"; sid:2;)',
      ).rules,
    );
    expect(e.compiled.map((c) => c.rule.sid)).toEqual([2]);
    expect(e.skipped).toEqual([
      expect.objectContaining({ sid: 1, reason: expect.stringMatching(/over 65535/) }),
    ]);
  });

  it('a list of 32,768 ports loads (as intervals: 6.4 s as closures for 60,000) and tells its ports apart', () => {
    const ports = Array.from({ length: 60_000 }, (_, i) => 2 * i + 1).filter((p) => p <= 65535);
    const e = new Engine(
      parseRules(`alert udp any any -> any [${ports.join(',')}] (msg:"odd port"; content:"x"; sid:1;)`).rules,
    );
    expect(e.compiled).toHaveLength(1);
    const t = portTest(`[${ports.join(',')}]`, {});
    expect([t(1), t(2), t(65535), t(65534), t(0)]).toEqual([true, false, true, false, false]);
  });
});
