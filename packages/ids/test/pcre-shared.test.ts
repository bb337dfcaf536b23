// Rules with the same pcre over one buffer run it once (`firstMatches` in detect.ts): 237 community rules
// share 8 pcres, each rule with its own content, and a crafted window holding many of their contents and
// a long run of word characters made every one of them run its 8-17 ms exec.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Engine, parseRules, type Rule, StepBoundedRegExp } from '../src/index.js';
import { ACK, handshake, PSH, pkt, sharedIds } from './helpers.js';

const { shared, have } = sharedIds('rules/snort3-community.rules');
const exec = RegExp.prototype.exec;
const stepsExec = StepBoundedRegExp.prototype.exec;

/** The community rules whose pcre is the one of sid 2709 (the `gname` one). */
function gnameFamily(): Rule[] {
  const all = parseRules(readFileSync(`${shared}rules/snort3-community.rules`, 'utf8'), 'community').rules;
  const pcreOf = (r: Rule) => r.options.find((o) => o.keyword === 'pcre')?.value;
  const want = pcreOf(all.find((r) => r.sid === 2709)!);
  return all.filter((r) => pcreOf(r) === want);
}

/** One client segment to the Oracle port after a handshake, and the server's ACK of it; the alerts. */
function inspect(e: Engine, body: string): number[] {
  const c = '203.0.113.5';
  const s = '10.0.0.2';
  const sids: number[] = [];
  const take = (as: { sid: number }[]) => sids.push(...as.map((a) => a.sid));
  for (const p of handshake(c, s, 40000, 1521)) take(e.inspect(p, 0));
  take(
    e.inspect(
      pkt({ src: c, dst: s, sp: 40000, dp: 1521, flags: ACK | PSH, seq: 1001, ack: 5001, payload: body }),
      1,
    ),
  );
  take(
    e.inspect(
      pkt({ src: s, dst: c, sp: 1521, dp: 40000, flags: ACK, seq: 5001, ack: 1001 + body.length }),
      2,
    ),
  );
  take(e.finish());
  return sids.sort((a, b) => a - b);
}

describe.runIf(have)('a pcre shared by many rules, over one buffer', () => {
  afterEach(() => vi.restoreAllMocks());

  /** Execs from the start of the text of the family's expression (plain or guarded) while `f` runs. */
  function familyExecs(f: () => void): number {
    let n = 0;
    // the family has a backreference: it runs in the step machine (a RegExp with --pcre-steps 0)
    vi.spyOn(RegExp.prototype, 'exec').mockImplementation(function (this: RegExp, s: string) {
      if (this.lastIndex === 0 && this.source.includes('gname')) n++;
      return exec.call(this, s);
    });
    vi.spyOn(StepBoundedRegExp.prototype, 'exec').mockImplementation(function (
      this: StepBoundedRegExp,
      s: string,
    ) {
      if (this.lastIndex === 0 && this.source.includes('gname')) n++;
      return stepsExec.call(this, s);
    });
    try {
      f();
    } finally {
      vi.restoreAllMocks();
    }
    return n;
  }

  it('runs once for all of them, and each rule still alerts on its own match', () => {
    const fam = gnameFamily();
    expect(fam.length).toBeGreaterThan(100);
    const names = fam.slice(0, 30).map((r) => Buffer.from(r.contents[0]!.bytes).toString('latin1'));
    const e = new Engine(fam);
    // the pcre matches: name := '<1,100 characters>'; ... gname => name
    const hit = `${names.join(' ')} v := '${'A'.repeat(1100)}'; x gname => v`;
    let sids: number[] = [];
    const execs = familyExecs(() => {
      sids = inspect(e, hit);
    });
    expect(sids).toEqual(
      fam
        .slice(0, 30)
        .map((r) => r.sid)
        .sort((a, b) => a - b),
    );
    expect(execs).toBe(1);
    // no match, over a long run of word characters: one exec for the 30 rules, none alert
    const miss = `${names.join(' ')} ${'a'.repeat(1400)}`;
    const e2 = new Engine(fam);
    let none: number[] = [];
    const execs2 = familyExecs(() => {
      none = inspect(e2, miss);
    });
    expect(none).toEqual([]);
    expect(execs2).toBe(1);
  });
});
