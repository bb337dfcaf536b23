// The multi-string prefilter: the automaton finds exactly the patterns that occur (case-insensitively),
// and an engine with the prefilter raises exactly the alerts of one without it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Engine, parseRules } from '../src/index.js';
import { MultiMatcher } from '../src/prefilter.js';
import { pkt } from './helpers.js';

const lower = (b: Uint8Array) => Buffer.from(b).toString('latin1').toLowerCase();

describe('MultiMatcher', () => {
  it('marks exactly the patterns that occur, case-insensitively (property, against indexOf)', () => {
    const bytes = fc
      .uint8Array({ minLength: 1, maxLength: 6 })
      .map((b) => b.map((x) => [0x41, 0x61, 0x42, 0x62, 0x00, 0xff][x % 6]!));
    fc.assert(
      fc.property(
        fc.array(bytes, { minLength: 1, maxLength: 20 }),
        bytes.chain(() =>
          fc
            .uint8Array({ maxLength: 200 })
            .map((b) => b.map((x) => [0x41, 0x61, 0x42, 0x62, 0x00, 0xff][x % 6]!)),
        ),
        (patterns, text) => {
          const m = new MultiMatcher(patterns);
          const hit = new Uint8Array(patterns.length);
          const hits: number[] = [];
          m.scan(text, hit, hits);
          const t = lower(text);
          for (const [i, p] of patterns.entries()) expect(hit[i] === 1).toBe(t.includes(lower(p)));
          expect(new Set(hits).size).toBe(hits.length);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('Engine prefilter', () => {
  it('gives the same alerts with and without it (property over rules and payloads)', () => {
    const alphabet = 'abAB|:';
    const word = fc.string({ unit: fc.constantFrom(...alphabet.split('')), minLength: 1, maxLength: 4 });
    const rule = fc.tuple(word, fc.boolean(), fc.option(word), fc.boolean());
    let alerts = 0;
    fc.assert(
      fc.property(
        fc.array(rule, { minLength: 1, maxLength: 12 }),
        fc.array(fc.string({ unit: fc.constantFrom(...alphabet.split('')), maxLength: 40 }), {
          maxLength: 12,
        }),
        (specs, payloads) => {
          const text = specs
            .map(([a, nocase, b, neg], i) => {
              const c1 = `content:"${a.replace(/[|:"]/g, 'x')}";${nocase ? ' nocase;' : ''}`;
              const c2 = b === null ? '' : ` content:${neg ? '!' : ''}"${b.replace(/[|:"]/g, 'x')}";`;
              return `alert udp any any -> any any (msg:"r${i}"; ${c1}${c2} sid:${1000 + i};)`;
            })
            .join('\n');
          const { rules } = parseRules(text, 'gen');
          const run = (prefilter: boolean) => {
            const e = new Engine(rules, { prefilter });
            return payloads.flatMap((p, i) =>
              e
                .inspect(pkt({ proto: 17, sp: 1000 + i, dp: 53, payload: p }), i * 1000, i + 1)
                .map((a) => `${a.pcapCnt}:${a.sid}`),
            );
          };
          const on = run(true);
          alerts += on.length;
          expect(on).toEqual(run(false));
        },
      ),
      { numRuns: 200 },
    );
    expect(alerts).toBeGreaterThan(100); // the comparison is not vacuous
  });
});
