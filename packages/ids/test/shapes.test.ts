// A second engine in a process (a rule reload, the bench's measured engine) must not deoptimize the packet
// code the first one got optimized: its first packets then ran unoptimized, 12% slower a pass on
// ndpi-mix-a (README, "A new engine's first pass").
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Engine, FlowTable, loadRules, portTest } from '../src/index.js';

const rulesText = [
  'alert tcp $HOME_NET any -> $EXTERNAL_NET [80,8080] (msg:"a"; content:"GET"; sid:1; rev:1;)',
  'alert tcp $EXTERNAL_NET 21 <> $HOME_NET any (msg:"b"; content:"USER"; sid:2; rev:1;)',
  'alert udp !$HOME_NET any -> 10.0.0.0/8 53 (msg:"c"; content:"x"; sid:3; rev:1;)',
].join('\n');
const vars = { HOME_NET: '[10.0.0.0/8,192.168.0.0/16]', EXTERNAL_NET: '!$HOME_NET' };

describe("a second engine meets the first one's optimized code", () => {
  it('keeps the packet path optimized and the shapes it was optimized on (a child process with V8 natives)', () => {
    const r = spawnSync(
      process.execPath,
      ['--allow-natives-syntax', '--import', 'tsx', new URL('./shapes-child.ts', import.meta.url).pathname],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual({
      alerts: 1,
      optimizedBefore: true,
      optimizedAfter: true,
      record: true,
      prepared: true,
      verdict: true,
    });
  });

  it('gets the same address and port tests and the same flow key as the first', () => {
    const rules = loadRules(rulesText, 't.rules').rules;
    const [a, b] = [new Engine(rules, { vars }), new Engine(rules, { vars })];
    expect(a.compiled).toHaveLength(3);
    for (let i = 0; i < a.compiled.length; i++)
      for (const k of ['src', 'dst', 'sp', 'dp'] as const)
        expect(b.compiled[i]![k], `${i} ${k}`).toBe(a.compiled[i]![k]);
    // other variables make other tests; the same spec under them is still right
    const c = new Engine(rules, { vars: { ...vars, HOME_NET: '172.16.0.0/12' } });
    expect(c.compiled[0]!.src).not.toBe(a.compiled[0]!.src);
    const addr = Uint8Array.of(172, 16, 1, 1);
    expect([a.compiled[0]!.src(addr), c.compiled[0]!.src(addr)]).toEqual([false, true]);
    expect(portTest('[80,8080]', {})).toBe(portTest('[8080, 80]', {}));
    expect(portTest('80', {})).not.toBe(portTest('81', {}));
    const key = (t: FlowTable<unknown>) => (t as unknown as { hashKey: Uint8Array }).hashKey;
    expect(key(new FlowTable())).toBe(key(new FlowTable()));
    const own = new Uint8Array(32).fill(7);
    expect(key(new FlowTable({ hashKey: own }))).toBe(own);
  });
});
