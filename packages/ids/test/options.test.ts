import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Alert,
  type Decoded,
  Engine,
  type PacketLatencyOptions,
  Pipeline,
  parseRate,
  parseRule,
  RateLimiter,
  type RuleLatencyOptions,
} from '../src/index.js';
import { parseThresholdConfig } from '../src/threshold-config.js';
import { pkt } from './helpers.js';

/** Sids that fire on one UDP packet carrying `payload`. */
function fires(rules: string[], payload: string | Uint8Array): number[] {
  const e = new Engine(rules.map((r, i) => parseRule(r, 't.rules', i + 1)));
  expect(e.skipped).toEqual([]);
  return e.inspect(pkt({ proto: 17, payload }), 0).map((a) => a.sid);
}

const bin = (...b: number[]) => Uint8Array.from(b);

describe('byte_test, byte_jump, byte_extract', () => {
  it('byte_test: binary and string numbers, endianness, operators, negation, bitmask, relative', () => {
    const p = bin(0x00, 0x10, 0x01, 0x02, 0x31, 0x32, 0x33, 0x41);
    expect(
      fires(
        [
          'alert udp any any -> any any (byte_test:2,=,16,0; sid:1;)',
          'alert udp any any -> any any (byte_test:2,=,0x1000,0,little; sid:2;)',
          'alert udp any any -> any any (byte_test:3,=,123,4,string,dec; sid:3;)',
          'alert udp any any -> any any (byte_test:1,&,2,3; sid:4;)',
          'alert udp any any -> any any (byte_test:1,!=,2,3; sid:5;)',
          'alert udp any any -> any any (byte_test:1, >, 1, 0, relative; content:"|01|"; sid:6;)',
          'alert udp any any -> any any (content:"|01|"; byte_test:1,=,2,0,relative; sid:7;)',
          'alert udp any any -> any any (byte_test:2,=,1,0,bitmask 0x0ff0; sid:8;)',
          'alert udp any any -> any any (byte_test:2,<,16,0; sid:9;)',
          'alert udp any any -> any any (byte_test:4,>,1,6; sid:10;)',
          'alert udp any any -> any any (byte_test:1,=,0x12,0,string,hex,relative; content:"|31|"; sid:11;)',
        ],
        p,
      ),
    ).toEqual([1, 2, 3, 4, 7, 8]);
  });

  it('byte_jump: relative, multiplier, align, from_beginning, from_end, post_offset (clamped at the start)', () => {
    // a length byte 3 at 0, then 3 bytes, then "XY"
    const p = bin(0x03, 0xaa, 0xbb, 0xcc, 0x58, 0x59);
    expect(
      fires(
        [
          'alert udp any any -> any any (byte_jump:1,0; content:"XY"; within:2; sid:1;)',
          'alert udp any any -> any any (byte_jump:1,0,multiplier 2; content:"XY"; within:2; sid:2;)',
          'alert udp any any -> any any (byte_jump:1,0,from_beginning,post_offset 1; content:"XY"; within:2; sid:3;)',
          'alert udp any any -> any any (byte_jump:0,0,from_end,post_offset -2; content:"XY"; within:2; sid:4;)',
          'alert udp any any -> any any (content:"XY"; byte_jump:0,0,relative,post_offset -100; content:"|03|"; within:1; sid:5;)',
          'alert udp any any -> any any (byte_jump:1,0,align; content:"Y"; within:1; sid:6;)',
          'alert udp any any -> any any (byte_jump:1,5; sid:7;)',
        ],
        p,
      ),
    ).toEqual([1, 3, 4, 5, 6]);
  });

  it('byte_extract: variables in content offset/depth/distance/within, byte_test and byte_jump', () => {
    const p = Buffer.from('2|ab|cdXY', 'latin1');
    expect(
      fires(
        [
          'alert udp any any -> any any (byte_extract:1,0,n,string,dec; content:"ab"; offset:n; depth:n; sid:1;)',
          'alert udp any any -> any any (byte_extract:1,0,n,string,dec; content:"|7c|"; content:"cd"; distance:n; within:n; sid:2;)',
          'alert udp any any -> any any (byte_extract:1,0,n,string,dec; byte_test:1,=,n,0,string,dec; sid:3;)',
          'alert udp any any -> any any (byte_extract:1,0,n,string,dec; byte_jump:n,1; content:"cd"; within:2; sid:4;)',
          'alert udp any any -> any any (byte_extract:1,0,n,string,dec; content:"cd"; offset:n; depth:2; sid:5;)',
        ],
        p,
      ),
    ).toEqual([1, 3]);
  });

  it('unknown modifiers and operators are reported, not guessed', () => {
    const e = new Engine([
      parseRule('alert udp any any -> any any (byte_test:4,=,1,0,biggest; sid:1;)'),
      parseRule('alert udp any any -> any any (byte_test:4,~,1,0; sid:2;)'),
      parseRule('alert udp any any -> any any (byte_jump:4; sid:3;)'),
      parseRule(
        'alert udp any any -> any any (threshold:type sometimes, track by_src, count 1, seconds 1; sid:4;)',
      ),
    ]);
    expect(e.skipped.map((s) => s.sid)).toEqual([1, 2, 3, 4]);
    expect(e.skipped[0]!.reason).toMatch(/modifier 'biggest' is not supported/);
  });

  it("modifier values outside Snort 3's ranges skip the rule with the reason (a fractional bitmask threw at the first packet: the run failed)", () => {
    const bad: [string, RegExp][] = [
      [
        'byte_test:1,>,0,0,bitmask 1.5',
        /byte_test bitmask: expected a whole number from 1 to 4294967295, got '1.5'/,
      ],
      ['byte_test:1,>,0,0,bitmask -1', /bitmask: expected a whole number from 1/],
      ['byte_test:4,>,0,0,bitmask 0x1ffffffff', /bitmask: .* got '0x1ffffffff'/],
      [
        'byte_jump:1,0,multiplier 0',
        /byte_jump multiplier: expected a whole number from 1 to 65535, got '0'/,
      ],
      ['byte_jump:1,0,multiplier 2.5', /multiplier: .* got '2.5'/],
      ['byte_jump:1,0,post_offset 70000', /post_offset: expected a whole number from -65535 to 65535/],
      ['byte_extract:1,0,n,align 3', /byte_extract align: expected 2 or 4, got '3'/],
      ['byte_extract:1,0,n,align 1.5', /byte_extract align: expected 2 or 4, got '1.5'/],
    ];
    const e = new Engine(
      bad.map(([o], i) => parseRule(`alert udp any any -> any any (${o}; sid:${i + 1};)`)),
    );
    expect(e.compiled).toHaveLength(0);
    for (const [i, [o, why]] of bad.entries()) expect(e.skipped[i]!.reason, o).toMatch(why);
    // the largest values of each still load, and a packet runs through them
    const ok = [
      'byte_test:4,>,0,0,bitmask 0xffffffff',
      'byte_jump:1,0,multiplier 65535,post_offset -65535',
      'byte_extract:1,0,n,align 4',
    ].map((o, i) => `alert udp any any -> any any (${o}; sid:${i + 1};)`);
    expect(fires(ok, 'EVIL')).toEqual([1, 3]);
  });
});

describe('a rule whose evaluation throws', () => {
  it('is counted as no match and named with its error; the other rules and the run go on', () => {
    const e = new Engine(
      [
        'alert udp any any -> any any (msg:"faulty"; byte_test:1,>,0,0,bitmask 3; sid:1;)',
        'alert udp any any -> any any (msg:"fine"; content:"EVIL"; sid:2;)',
      ].map((r) => parseRule(r)),
    );
    // a fault the parser no longer lets through (the bitmask of eff8701), put in the compiled rule
    const step = e.compiled.find((c) => c.rule.sid === 1)!.steps.find((s) => s.kind === 'byte_test')!;
    (step as { bitmask?: number }).bitmask = 1.5;
    const sids = (i: number) =>
      e.inspect(pkt({ proto: 17, sp: 1000 + i, payload: 'EVIL' }), i).map((a) => a.sid);
    expect([sids(0), sids(1)]).toEqual([[2], [2]]);
    expect(e.stats.ruleFaults).toBe(2);
    expect([...e.ruleFaults]).toEqual([
      ['1:1', expect.stringMatching(/^The number 1\.5 cannot be converted to a BigInt .* \(at packet 1\)$/)],
    ]);
  });
});

describe('rule options at inspection (fuzz)', () => {
  it('options given odd numbers are refused when loaded or run without a fault on any packet', () => {
    // what found a fractional byte_test bitmask passing the load and throwing at the first packet
    const nums = ['0', '-1', '-0', '1.5', '1e400', '0x10', '2', '7', '255', '65536', '-65536', '4294967296'];
    const more = ['9007199254740993', '99999999999999999999', 'abc', ''];
    const templates = [
      'byte_test:{n},>,{n},{n}',
      'byte_test:1,>,0,0,bitmask {n}',
      'byte_test:{n},=,1,0,string,dec',
      'byte_jump:{n},{n}',
      'byte_jump:1,0,multiplier {n},post_offset {n}',
      'byte_extract:{n},{n},v; byte_test:1,>,v,0',
      'byte_extract:1,0,v,multiplier {n},align {n}; content:"a"; offset:v',
      'byte_math:bytes {n},offset {n},oper +,rvalue {n},result r',
      'byte_math:bytes 1,offset 0,oper /,rvalue {n},result r; byte_test:1,>,r,0',
      'byte_math:bytes 1,offset 0,oper <<,rvalue {n},result r',
      'isdataat:{n}',
      'content:"a"; isdataat:{n},relative',
      'dsize:{n}<>{n}',
      'urilen:{n}',
      'bufferlen:{n}',
      'bsize:{n}',
      'stream_size:client,>,{n}',
      'content:"ab"; offset:{n}; depth:{n}',
      'content:"a"; content:"b"; distance:{n}; within:{n}',
      'content:"x",depth {n},offset {n}',
      'ttl:{n}',
      'id:{n}',
      'seq:{n}',
      'itype:{n}',
      'icmp_seq:{n}',
      'ip_proto:{n}',
      'flags:S,{n}',
      'threshold:type limit, track by_src, count {n}, seconds {n}',
      'detection_filter:track by_src, count {n}, seconds {n}',
      'priority:{n}',
      'pcre:"/a{{n}}/"',
      'base64_decode:bytes {n},offset {n}; base64_data; content:"a"',
      'asn1:oversize_length {n},absolute_offset {n}',
      'asn1:relative_offset {n}',
      'dce_opnum:{n}',
      'sip_stat_code:{n}',
      'tag:session,{n},packets',
    ];
    const payloads = [
      '',
      'EVIL',
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\n',
      '\x00\x01\x02\x03\x04\x05\x06\x07',
      '12345678901234567890',
      'QUJD\r\n',
      '\x30\x82\xff\xff\x02\x01',
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...templates),
        fc.array(fc.constantFrom(...nums, ...more), { minLength: 6, maxLength: 6 }),
        (t, ns) => {
          let k = 0;
          const text = `alert ip any any -> any any (${t.replace(/\{n\}/g, () => ns[k++]!)}; sid:1;)`;
          let rule: ReturnType<typeof parseRule>;
          try {
            rule = parseRule(text);
          } catch {
            return; // a syntax error naming the option
          }
          const e = new Engine([rule]);
          for (const payload of payloads)
            for (const proto of [6, 17, 1]) e.inspect(pkt({ proto, payload, sp: 1000, dp: 80 }), 0);
          e.finish();
          // a throw is caught and counted now (the run goes on): none may happen
          expect([...e.ruleFaults], text).toEqual([]);
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('threshold and detection_filter', () => {
  const ev = (i: number, src = '10.0.0.1') => ({
    sid: 1,
    gid: 1,
    src,
    dst: '10.0.0.2',
    sp: 1000 + (i % 3),
    dp: 80,
    flowId: 1,
    tsUs: i * 1e6,
  });
  const run = (spec: string, kind: 'threshold' | 'detection_filter', n: number) => {
    const r = new RateLimiter();
    const s = parseRate(kind, spec);
    const out: number[] = [];
    for (let i = 1; i <= n; i++) if (r.allow(s, ev(i))) out.push(i);
    return out;
  };

  it('limit, threshold, both, backoff and detection_filter raise on the right matches', () => {
    expect(run('type limit, track by_src, count 2, seconds 5', 'threshold', 12)).toEqual([1, 2, 7, 8]);
    expect(run('type threshold, track by_src, count 3, seconds 100', 'threshold', 10)).toEqual([3, 6, 9]);
    expect(run('type both, track by_src, count 3, seconds 5', 'threshold', 12)).toEqual([3, 9]);
    expect(run('type backoff, track by_flow, count 2, multiplier 3', 'threshold', 60)).toEqual([
      2, 6, 18, 54,
    ]);
    expect(run('track by_src, count 2, seconds 100', 'detection_filter', 5)).toEqual([3, 4, 5]);
    expect(run('track by_src, count 2, seconds 100, unique_on src_port', 'detection_filter', 5)).toEqual([
      3, 4, 5,
    ]);
    expect(run('track by_src, count 3, seconds 100, unique_on src_port', 'detection_filter', 5)).toEqual([]);
  });

  it('count and seconds are whole numbers, count from 1: without its number either read as 0', () => {
    for (const [spec, why] of [
      ['type limit, track by_src, count, seconds 60', /bad count '' \(a whole number from 1\)/],
      ['type limit, track by_src, count 0, seconds 60', /bad count '0'/],
      ['type limit, track by_src, count 1.5, seconds 60', /bad count '1.5'/],
      ['type limit, track by_src, count 1, seconds', /bad seconds '' \(a whole number\)/],
      ['type limit, track by_src, count 1, seconds -1', /bad seconds '-1'/],
      ['type limit, track by_src, count 1', /bad seconds ''/],
    ] as const)
      expect(() => parseRate('threshold', spec), spec).toThrow(why);
    expect(parseRate('threshold', 'type both, track by_dst, count 2, seconds 0')).toMatchObject({
      count: 2,
      seconds: 0,
    });
  });

  it('tracks keys apart; the engine applies it after the match (flowbits still set)', () => {
    const r = new RateLimiter();
    const s = parseRate('threshold', 'type limit, track by_src, count 1, seconds 60');
    expect([r.allow(s, ev(1, 'a')), r.allow(s, ev(2, 'b')), r.allow(s, ev(3, 'a'))]).toEqual([
      true,
      true,
      false,
    ]);
    const e = new Engine([
      parseRule(
        // dsize makes it a packet rule (an IP-only rule would run on a flow's first packet per direction only)
        'alert udp any any -> any any (dsize:1; flowbits:set,x; threshold:type limit, track by_rule, count 1, seconds 60; sid:1;)',
      ),
      parseRule('alert udp any any -> any any (flowbits:isset,x; sid:2;)'),
    ]);
    const out: Alert[] = [];
    const p: Decoded = pkt({ proto: 17, payload: 'a' });
    for (let i = 0; i < 3; i++) out.push(...e.inspect(p, i));
    expect(out.map((a) => a.sid)).toEqual([1, 2, 2, 2]);
    expect(e.rates.suppressed).toBe(2);
  });
});

describe('flowbits with several names', () => {
  it('isset and isnotset with a|b (any) and a&b (all), for every combination of bits set', () => {
    const rules = [
      'alert udp any any -> any any (content:"A"; flowbits:set,a; flowbits:noalert; sid:1;)',
      'alert udp any any -> any any (content:"B"; flowbits:set,b; flowbits:noalert; sid:2;)',
      'alert udp any any -> any any (content:"Z"; flowbits:isset,a|b; sid:10;)',
      'alert udp any any -> any any (content:"Z"; flowbits:isset,a&b; sid:11;)',
      'alert udp any any -> any any (content:"Z"; flowbits:isnotset,a|b; sid:12;)',
      'alert udp any any -> any any (content:"Z"; flowbits:isnotset,a&b; sid:13;)',
      'alert udp any any -> any any (content:"Z"; flowbits:isset,a; flowbits:isnotset,b; sid:14;)',
    ];
    for (const [a, b] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ]) {
      const e = new Engine(rules.map((r, i) => parseRule(r, 't.rules', i + 1)));
      const sent = [...(a ? ['A'] : []), ...(b ? ['B'] : []), 'Z'];
      const got = sent.flatMap((p, i) => e.inspect(pkt({ proto: 17, payload: p }), i).map((x) => x.sid));
      const want = [
        ...(a || b ? [10] : []),
        ...(a && b ? [11] : []),
        ...(!(a && b) ? [12] : []),
        ...(!a && !b ? [13] : []),
        ...(a && !b ? [14] : []),
      ];
      expect({ a, b, got }).toEqual({ a, b, got: want });
    }
  });

  it('toggle sets a bit that is not set and clears one that is; unset clears it', () => {
    const rules = [
      'alert udp any any -> any any (content:"T"; flowbits:toggle,t; flowbits:noalert; sid:1;)',
      'alert udp any any -> any any (content:"U"; flowbits:unset,t; flowbits:noalert; sid:2;)',
      'alert udp any any -> any any (content:"Q"; flowbits:isset,t; sid:10;)',
    ];
    const e = new Engine(rules.map((r, i) => parseRule(r, 't.rules', i + 1)));
    const got = ['Q', 'T', 'Q', 'T', 'Q', 'T', 'Q', 'U', 'Q', 'U', 'Q'].map(
      (p, i) => e.inspect(pkt({ proto: 17, payload: p }), i).length,
    );
    // the bit: none, set, cleared, set, cleared by unset, still clear
    expect(got).toEqual([0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
  });
});

/**
 * Gives `e` a clock the test drives: each reading advances it by 1 us, or by 1 ms when rule `sid`'s first
 * step was read since the reading before (the engine reads the clock around each evaluation, so each of
 * that rule's evaluations takes 1 ms). Returns the clock's time and a setter.
 */
function slowClock(e: Engine, sid: number): { at: () => number; set: (ms: number) => void } {
  let t = 0;
  let slow = false;
  const c = e.compiled.find((x) => x.rule.sid === sid)!;
  const first = c.steps[0]!;
  c.steps[0] = new Proxy(first, {
    get(target, k) {
      if (k === 'kind') slow = true;
      return target[k as keyof typeof target];
    },
  });
  e.latencyClock = () => {
    t += slow ? 1 : 0.001;
    slow = false;
    return t;
  };
  return { at: () => t, set: (ms) => void (t = ms) };
}

describe('rule latency (Snort 3 latency.rule)', () => {
  const rules = [
    'alert udp any any -> any any (msg:"slow"; content:"EVIL"; sid:1;)',
    'alert udp any any -> any any (msg:"quick"; content:"EVIL"; sid:2;)',
  ].map((r) => parseRule(r));
  function timedEngine(o: RuleLatencyOptions): { e: Engine; at: () => number; set: (ms: number) => void } {
    const e = new Engine(rules, { ruleLatency: o });
    return { e, ...slowClock(e, 1) };
  }
  const sids = (e: Engine, i: number) =>
    e.inspect(pkt({ proto: 17, sp: 1000 + i, payload: 'EVIL' }), i).map((a) => a.sid);

  it('counts evaluations over maxUs per rule and, with suspend, stops evaluating a rule past the threshold', () => {
    const { e, set, at } = timedEngine({ maxUs: 500, suspend: true, suspendThreshold: 3, maxSuspendMs: 100 });
    // three timeouts of sid 1, each still a match; then it is suspended (no match) while sid 2 goes on
    expect([0, 1, 2, 3, 4].map((i) => sids(e, i))).toEqual([[1, 2], [1, 2], [1, 2], [2], [2]]);
    expect(e.stats.ruleEvalTimeouts).toBe(3);
    expect(e.stats.ruleSuspensions).toBe(1);
    expect([...e.ruleLatency]).toEqual([
      ['1:1', { timeouts: 3, suspensions: 1, slowestUs: expect.closeTo(1000, 3) }],
    ]);
    // past maxSuspendMs it is evaluated again, its count from 0
    set(at() + 101);
    expect(sids(e, 5)).toEqual([1, 2]);
    expect(e.stats.ruleReenables).toBe(1);
    expect([6, 7, 8].map((i) => sids(e, i))).toEqual([[1, 2], [1, 2], [2]]);
    expect(e.stats.ruleSuspensions).toBe(2);
    expect(e.ruleLatency.get('1:1')).toMatchObject({ timeouts: 6, suspensions: 2 });
  });

  it('without suspend only counts; maxSuspendMs 0 suspends for the rest of the run; maxUs 0 is off', () => {
    const counting = timedEngine({ maxUs: 500 });
    expect([0, 1, 2, 3, 4, 5, 6].map((i) => sids(counting.e, i).length)).toEqual([2, 2, 2, 2, 2, 2, 2]);
    expect(counting.e.stats.ruleEvalTimeouts).toBe(7);
    expect(counting.e.stats.ruleSuspensions).toBe(0);
    const forever = timedEngine({ maxUs: 500, suspend: true, suspendThreshold: 1, maxSuspendMs: 0 });
    expect(sids(forever.e, 0)).toEqual([1, 2]);
    forever.set(forever.at() + 1e9);
    expect(sids(forever.e, 1)).toEqual([2]);
    expect(forever.e.stats.ruleReenables).toBe(0);
    const off = timedEngine({ maxUs: 0, suspend: true, suspendThreshold: 1 });
    expect([0, 1, 2].map((i) => sids(off.e, i).length)).toEqual([2, 2, 2]);
    expect(off.e.stats.ruleEvalsTimed).toBe(0);
  });

  it('a suspension and its counts end with the run (Engine.reset): the next capture evaluates the rule again', () => {
    const { e } = timedEngine({ maxUs: 500, suspend: true, suspendThreshold: 1, maxSuspendMs: 0 });
    expect([0, 1].map((i) => sids(e, i))).toEqual([[1, 2], [2]]);
    expect(e.stats.ruleSuspensions).toBe(1);
    e.finish();
    e.reset();
    expect(e.ruleLatency.size).toBe(0);
    expect(e.stats.ruleSuspensions).toBe(0);
    // as on a new engine: one timed-out match, then suspended
    expect([0, 1].map((i) => sids(e, i))).toEqual([[1, 2], [2]]);
    expect([...e.ruleLatency]).toEqual([
      ['1:1', { timeouts: 1, suspensions: 1, slowestUs: expect.closeTo(1000, 3) }],
    ]);
  });

  it('refuses settings that are not whole numbers in range', () => {
    const r = [parseRule('alert udp any any -> any any (content:"x"; sid:1;)')];
    expect(() => new Engine(r, { ruleLatency: { maxUs: -1 } })).toThrow(/maxUs: a whole number/);
    expect(() => new Engine(r, { ruleLatency: { maxUs: 1.5 } })).toThrow(/maxUs/);
    expect(() => new Engine(r, { ruleLatency: { maxUs: 5, suspendThreshold: 0 } })).toThrow(
      /suspendThreshold/,
    );
    expect(() => new Engine(r, { ruleLatency: { maxUs: 5, maxSuspendMs: -2 } })).toThrow(/maxSuspendMs/);
    expect(() => new Engine(r, { ruleLatency: 500 as never })).toThrow(TypeError);
  });
});

describe('latency events (gid 134)', () => {
  const rules = [1, 2].map((sid) =>
    parseRule(`alert udp any any -> any any (msg:"r${sid}"; content:"EVIL"; sid:${sid};)`),
  );
  /** The alerts of packets 0..n-1 and the end of input, as gid:sid@packet. */
  function run(e: Engine, n: number, between?: (i: number) => void): string[] {
    const got: string[] = [];
    for (let i = 0; i < n; i++) {
      between?.(i);
      for (const a of e.inspect(pkt({ proto: 17, sp: 3000 + i, payload: 'EVIL' }), i, i + 1))
        got.push(`${a.gid}:${a.sid}@${a.pcapCnt}`);
    }
    for (const a of e.finish()) got.push(`${a.gid}:${a.sid}@${a.pcapCnt}`);
    return got;
  }

  it('a rule suspended and re-enabled, a packet fastpathed: an alert each, on its packet, when asked', () => {
    const e = new Engine(rules, {
      ruleLatency: { maxUs: 500, suspend: true, suspendThreshold: 2, maxSuspendMs: 100, alert: true },
    });
    const clock = slowClock(e, 1);
    const got = run(e, 5, (i) => {
      if (i === 3) clock.set(clock.at() + 101);
    });
    // sid 1 times out on packets 1 and 2 (suspended on 2), is skipped on 3, re-enabled on 4; each event
    // comes with the next packet's alerts, after its own packet's
    expect(got).toEqual([
      '1:1@1',
      '1:2@1',
      '1:1@2',
      '1:2@2',
      '134:1@2',
      '1:2@3',
      '1:1@4',
      '1:2@4',
      '134:2@4',
      '1:1@5',
      '1:2@5',
      // suspended again: its second timeout since re-enabled (given with the end of input)
      '134:1@5',
    ]);
    const a = e.finish();
    expect(a).toEqual([]);
    const quiet = new Engine(rules, { ruleLatency: { maxUs: 500, suspend: true, suspendThreshold: 2 } });
    slowClock(quiet, 1);
    expect(run(quiet, 3).filter((x) => x.startsWith('134:'))).toEqual([]);
    const fast = new Engine(rules, { packetLatency: { maxUs: 500, fastpath: true, alert: true } });
    slowClock(fast, 1);
    expect(run(fast, 2)).toEqual(['1:1@1', '134:3@1', '1:1@2', '134:3@2']);
    expect(fast.stats.alerts).toBe(4);
  });

  it("threshold.config's suppress and event_filter hold latency events as a rule's alerts (on workers: the merger)", () => {
    const fastpath = { maxUs: 500, fastpath: true, alert: true };
    const cfg = (text: string) => parseThresholdConfig(text, 'threshold.config');
    const suppressed = new Engine(rules, {
      packetLatency: fastpath,
      thresholdConfig: cfg('suppress gen_id 134, sig_id 3'),
    });
    slowClock(suppressed, 1);
    expect(run(suppressed, 3)).toEqual(['1:1@1', '1:1@2', '1:1@3']);
    expect(suppressed.stats).toMatchObject({ alerts: 3, alertsSuppressed: 3, packetsFastpathed: 3 });
    expect(suppressed.warnings).toEqual([]);
    const limited = (deferRates: boolean) => {
      const e = new Engine(rules, {
        packetLatency: fastpath,
        deferRates,
        thresholdConfig: cfg(
          'event_filter gen_id 134, sig_id 3, type limit, track by_rule, count 1, seconds 60',
        ),
      });
      slowClock(e, 1);
      return e;
    };
    const one = limited(false);
    expect(run(one, 3)).toEqual(['1:1@1', '134:3@1', '1:1@2', '1:1@3']);
    expect(one.stats.alertsRateFiltered).toBe(2);
    // deferred (what a worker does): every event comes out with its decision for the merger to take
    const deferred = limited(true);
    const got: Alert[] = [];
    for (let i = 0; i < 3; i++)
      got.push(...deferred.inspect(pkt({ proto: 17, sp: 3000 + i, payload: 'EVIL' }), i, i + 1));
    const merger = new RateLimiter();
    const kept = got.filter((a) => !a.rate || merger.allow(a.rate.spec, a.rate.event));
    expect(kept.map((a) => `${a.gid}:${a.sid}@${a.pcapCnt}`)).toEqual(['1:1@1', '134:3@1', '1:1@2', '1:1@3']);
  });
});

describe('threshold.config entries that name no rule', () => {
  it('are warned of by file:line (a rule not loaded, a typo); wildcards and the latency events are not', async () => {
    const rules = [1, 2].map((sid) =>
      parseRule(`alert udp any any -> any any (msg:"r${sid}"; content:"EVIL"; sid:${sid};)`),
    );
    const text = [
      'suppress gen_id 1, sig_id 1',
      'suppress gen_id 1, sig_id 99, track by_src, ip 10.0.0.1',
      'event_filter gen_id 3, sig_id 2, type limit, track by_rule, count 1, seconds 60',
      'suppress gen_id 1, sig_id 0',
      'suppress gen_id 0, sig_id 0',
      'suppress gen_id 134, sig_id 1',
      'event_filter gen_id 1, sig_id 2, type limit, track by_src, count 1, seconds 60',
    ].join('\n');
    const e = new Engine(rules, { thresholdConfig: parseThresholdConfig(text, 't.config') });
    expect(e.warnings).toEqual([
      't.config:2: suppress gen_id 1, sig_id 99: no rule loaded has this gid:sid (the entry does nothing)',
      't.config:3: event_filter gen_id 3, sig_id 2: no rule loaded has this gid:sid (the entry does nothing)',
    ]);
    // a rule that did not load (a duplicate sid's lower rev, a bad option) is no rule either
    const bad = new Engine(
      [parseRule('alert udp any any -> any any (msg:"bad"; content:"x"; classtype:no-such-class; sid:1;)')],
      { thresholdConfig: parseThresholdConfig('suppress gen_id 1, sig_id 1', 'u.config') },
    );
    expect(bad.warnings).toEqual([
      'u.config:1: suppress gen_id 1, sig_id 1: no rule loaded has this gid:sid (the entry does nothing)',
    ]);
    expect(new Engine(rules).warnings).toEqual([]);
    // a rate_filter of the latency events changes nothing: they have no action
    const latency = new Engine(rules, {
      thresholdConfig: parseThresholdConfig(
        [
          'rate_filter gen_id 134, sig_id 1, track by_rule, count 1, seconds 1, new_action drop, timeout 0',
          'rate_filter gen_id 134, sig_id 0, track by_rule, count 1, seconds 1, new_action drop, timeout 0',
          'suppress gen_id 134, sig_id 3',
        ].join('\n'),
        'l.config',
      ),
    });
    expect(latency.warnings).toEqual([
      'l.config:1: rate_filter gen_id 134, sig_id 1: a latency event has no action to change (the entry does nothing)',
      'l.config:2: rate_filter gen_id 134, sig_id 0: a latency event has no action to change (the entry does nothing)',
    ]);
  });
});

describe('rule profiling (Snort 3 profiler.rules)', () => {
  it('sums the evaluations and time of each rule, the most time first; off, nothing is timed', () => {
    const rules = [1, 2].map((sid) =>
      parseRule(`alert udp any any -> any any (msg:"r${sid}"; content:"EVIL"; sid:${sid};)`),
    );
    const e = new Engine(rules, { profileRules: true });
    slowClock(e, 1);
    for (let i = 0; i < 3; i++) e.inspect(pkt({ proto: 17, sp: 4000 + i, payload: 'EVIL' }), i);
    const rows = e.ruleProfile();
    expect(rows.map((r) => [r.rule, r.checks])).toEqual([
      ['1:1', 3],
      ['1:2', 3],
    ]);
    expect(rows[0]!.totalUs).toBeCloseTo(3000, 0);
    expect(rows[0]!.maxUs).toBeCloseTo(1000, 0);
    expect(rows[1]!.totalUs).toBeCloseTo(3, 3);
    // profiling alone does no latency counting
    expect(e.stats.ruleEvalsTimed).toBe(0);
    const off = new Engine(rules);
    off.inspect(pkt({ proto: 17, payload: 'EVIL' }), 0);
    expect(off.ruleProfile()).toEqual([]);
    expect(() => new Engine(rules, { profileRules: 'yes' as never })).toThrow(TypeError);
  });
});

describe('packet latency (Snort 3 latency.packet)', () => {
  // three rules in inspection order; each evaluation of sid 1 takes 1 ms by the driven clock
  const rules = [1, 2, 3].map((sid) =>
    parseRule(`alert udp any any -> any any (msg:"r${sid}"; content:"EVIL"; sid:${sid};)`),
  );
  function engine(o: PacketLatencyOptions): Engine {
    const e = new Engine(rules, { packetLatency: o });
    slowClock(e, 1);
    return e;
  }
  const sids = (e: Engine, i: number) =>
    e.inspect(pkt({ proto: 17, sp: 2000 + i, payload: 'EVIL' }), i).map((a) => a.sid);

  it('counts a packet whose detection runs past maxUs once, and with fastpath evaluates no more of its rules', () => {
    const counting = engine({ maxUs: 500 });
    expect([sids(counting, 0), sids(counting, 1)]).toEqual([
      [1, 2, 3],
      [1, 2, 3],
    ]);
    expect(counting.stats.packetTimeouts).toBe(2);
    expect(counting.stats.packetsFastpathed).toBe(0);
    const fast = engine({ maxUs: 500, fastpath: true });
    // sid 1 runs (the packet is within its bound when it starts) and takes 1 ms; 2 and 3 are skipped
    expect([sids(fast, 0), sids(fast, 1)]).toEqual([[1], [1]]);
    expect(fast.stats).toMatchObject({ packetTimeouts: 2, packetsFastpathed: 2 });
    // a bound the packet stays within: every rule
    const wide = engine({ maxUs: 5000, fastpath: true });
    expect(sids(wide, 0)).toEqual([1, 2, 3]);
    expect(wide.stats.packetTimeouts).toBe(0);
  });

  it('refuses settings that are not whole numbers in range; maxUs 0 is off', () => {
    const r = [rules[0]!];
    expect(() => new Engine(r, { packetLatency: { maxUs: -5 } })).toThrow(/packetLatency.maxUs/);
    expect(() => new Engine(r, { packetLatency: { maxUs: 5, fastpath: 1 as never } })).toThrow(TypeError);
    const off = engine({ maxUs: 0, fastpath: true });
    expect(sids(off, 0)).toEqual([1, 2, 3]);
  });
});

describe('engine and pipeline options out of range', () => {
  it('are errors naming the option at construction: NaN, negative, fractional, huge or of the wrong type (they meant no bound, or no alerts)', () => {
    const r = [parseRule('alert udp any any -> any any (msg:"x"; pcre:"/a+b/"; sid:1;)', 't.rules', 1)];
    const bad: [Record<string, unknown>, RegExp][] = [
      [
        { reassemblyMemcapBytes: Number.NaN },
        /^reassemblyMemcapBytes: a whole number of bytes from 1, got NaN/,
      ],
      [{ reassemblyMemcapBytes: 0 }, /reassemblyMemcapBytes/],
      [{ reassemblyDepthBytes: 1.5 }, /^reassemblyDepthBytes: .* got 1\.5/],
      [{ reassemblyDepthBytes: -1 }, /reassemblyDepthBytes/],
      [{ streamBufferBytesMax: Number.NaN }, /streamBufferBytesMax/],
      [{ streamBufferBytesMax: 0 }, /streamBufferBytesMax/],
      [{ streamChunkBytes: -1 }, /streamChunkBytes/],
      [{ streamChunkBytes: Number.NaN }, /streamChunkBytes/],
      [{ portGroupsMax: Number.NaN }, /portGroupsMax/],
      [{ portGroupsMax: '8' }, /portGroupsMax/],
      [{ pcreBacktracksMax: Number.NaN }, /^pcreBacktracksMax/],
      [{ pcreBacktracksMax: -1 }, /pcreBacktracksMax/],
      [{ pcreStepsPerByte: 0.5 }, /^pcreStepsPerByte/],
      [{ http: { bodyBytesMax: -1 } }, /^http\.bodyBytesMax/],
      [{ http: { decompressedBytesMax: Number.POSITIVE_INFINITY } }, /^http\.decompressedBytesMax/],
      [{ mail: { messageBytesMax: Number.NaN } }, /^mail\.messageBytesMax/],
      [{ mail: { partBytesMax: 2 ** 60 } }, /^mail\.partBytesMax/],
      [{ streamRelease: 'later' }, /^streamRelease: 'ack' or 'immediate', got later/],
      [{ actionOrder: 'drop,alert' }, /^actionOrder/],
      [{ flowsMax: 2 ** 30 }, /^flowsMax must be an integer from 1 to 16777216, got 1073741824/],
      [{ flowTimeouts: { newUs: Number.NaN } }, /^flow timeouts: newUs must be microseconds >= 0, got NaN/],
      [{ flowTimeouts: { tcpEstablishedUs: -1 } }, /tcpEstablishedUs/],
      [{ flowTimeouts: { tcpNew: 5 } }, /^flow timeouts: unknown 'tcpNew' \(one of tcpNewUs, /],
      [{ flowTimeouts: { toString: 5 } }, /unknown 'toString'/],
    ];
    for (const [o, why] of bad) {
      expect(() => new Engine(r, o as never), JSON.stringify(o)).toThrow(why);
      expect(() => new Pipeline(r, o as never), JSON.stringify(o)).toThrow(why);
    }
    const badPipe: [Record<string, unknown>, RegExp][] = [
      [{ defrag: { timeoutUs: Number.NaN } }, /^defrag\.timeoutUs must be microseconds > 0, got NaN/],
      [{ defrag: { fragmentsMax: 0 } }, /^defrag\.fragmentsMax must be a whole number from 1, got 0/],
      [{ defrag: { bytesMax: 1.5 } }, /defrag\.bytesMax/],
      [{ defrag: { datagramsMax: -3 } }, /defrag\.datagramsMax/],
      [{ defrag: 'off' }, /^defrag: true, false or its bounds as an object, got off/],
      [{ validateChecksums: 'yes' }, /^validateChecksums: true, false or 'auto', got yes/],
    ];
    for (const [o, why] of badPipe) expect(() => new Pipeline(r, o as never), JSON.stringify(o)).toThrow(why);
    // what stays allowed: 0 where it has a meaning, the edges, and the defaults
    const good: Record<string, unknown>[] = [
      {},
      {
        reassemblyDepthBytes: 0,
        streamChunkBytes: 0,
        portGroupsMax: 0,
        pcreBacktracksMax: 0,
        pcreStepsPerByte: 0,
      },
      { http: { bodyBytesMax: 0 }, mail: { partBytesMax: 0 }, flowTimeouts: { newUs: 0 } },
      { flowsMax: 2 ** 24, reassemblyMemcapBytes: 1, streamBufferBytesMax: 1, streamRelease: 'immediate' },
    ];
    for (const o of good) {
      const e = new Engine(r, o as never);
      expect(e.skipped, JSON.stringify(o)).toEqual([]);
      expect(e.inspect(pkt({ proto: 17, payload: 'xaab' }), 0).map((a) => a.sid)).toEqual([1]);
    }
    expect(
      new Pipeline(r, { defrag: { timeoutUs: 1, datagramsMax: 1, fragmentsMax: 1, bytesMax: 1 } }).defrag
        ?.timeoutUs,
    ).toBe(1);
  });
});
