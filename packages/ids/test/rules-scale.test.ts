// A rule with very many options loads in time linear in them (the compiler's pass giving each new step its
// buffer went over every step after every option: 20,000 contents took 9.9 s), and one with more steps
// than are matched by recursion is refused with the reason (2,000 contents overflowed the stack on a packet).
import { describe, expect, it } from 'vitest';
import { Engine, inspectionRecursionMaxDefault, parseRules, ruleStepsMax } from '../src/index.js';
import { pkt } from './helpers.js';

describe('rules at scale', () => {
  it(`a rule of ${ruleStepsMax} relative contents matches that many in a row and not one fewer; more are refused with the reason`, () => {
    const rule = (n: number) =>
      `alert udp any any -> any any (msg:"x"; ${'content:"ab"; distance:0; '.repeat(n)} sid:${n};)`;
    const e = new Engine(parseRules(rule(ruleStepsMax)).rules);
    expect(e.compiled).toHaveLength(1);
    const udp = (payload: string) => e.inspect(pkt({ proto: 17, payload }), 0).map((a) => a.sid);
    expect(udp('ab'.repeat(ruleStepsMax))).toEqual([ruleStepsMax]);
    expect(udp('ab'.repeat(ruleStepsMax - 1))).toEqual([]);
    for (const n of [ruleStepsMax + 1, 20_000]) {
      const big = new Engine(parseRules(rule(n)).rules);
      expect(big.compiled).toHaveLength(0);
      expect(big.skipped).toEqual([
        {
          sid: n,
          reason: `${n} detection steps; at most ${ruleStepsMax} are evaluated (one call deep each)`,
        },
      ]);
    }
  });

  it('a rule tries at most inspectionRecursionMax steps over a buffer, so backtracking over relative contents ends', () => {
    // five unanchored relative contents over 4,000 matches of the first four and none of the fifth: tried
    // in full, of the order of 10^12 evaluations
    const five =
      'alert udp any any -> any any (msg:"x"; content:"a"; content:"b"; distance:0; content:"c"; distance:0; content:"d"; distance:0; content:"e"; distance:0; sid:5;)';
    const e = new Engine(parseRules(five).rules);
    const udp = (x: Engine, payload: string) => x.inspect(pkt({ proto: 17, payload }), 0).map((a) => a.sid);
    expect(udp(e, 'abcd'.repeat(1000))).toEqual([]);
    expect(udp(e, 'abcde')).toEqual([5]);
    // a match found after some backtracking: within the default, not within a bound of 10
    const near =
      'alert udp any any -> any any (msg:"y"; content:"a"; content:"b"; distance:0; within:1; sid:6;)';
    const payload = `${'a '.repeat(20)}ab`;
    expect(udp(new Engine(parseRules(near).rules), payload)).toEqual([6]);
    expect(udp(new Engine(parseRules(near).rules, { inspectionRecursionMax: 10 }), payload)).toEqual([]);
    expect(udp(new Engine(parseRules(near).rules, { inspectionRecursionMax: 0 }), payload)).toEqual([6]);
    expect(inspectionRecursionMaxDefault).toBe(3000);
    expect(() => new Engine([], { inspectionRecursionMax: -1 })).toThrow(
      /inspectionRecursionMax must be a non-negative integer, got -1/,
    );
  });

  it('header tests placed before the contents keep their buffers: a packet rule with both', () => {
    const e = new Engine(
      parseRules(
        `alert udp any any -> any any (msg:"x"; content:"ab"; dsize:>3; content:"cd"; distance:0; ttl:64; sid:2;)`,
      ).rules,
    );
    const udp = (payload: string) => e.inspect(pkt({ proto: 17, payload }), 0).map((a) => a.sid);
    expect(udp('abcd')).toEqual([2]);
    expect(udp('abc')).toEqual([]);
    expect(udp('cdab')).toEqual([]);
  });
});
