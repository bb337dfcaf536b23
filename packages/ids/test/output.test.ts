import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseClassificationConfig } from '../src/classification.js';
import {
  alertFast,
  classDescription,
  classifications,
  conversationFrames,
  encodePcap,
  eveJson,
  eveTimestamp,
  loadRules,
  runCapture,
} from '../src/index.js';
import type { PipelineOptions } from '../src/run.js';
import { sharedIds } from './helpers.js';

const rules = sharedIds('rules');

/** The alerts of `ruleText` over one conversation whose response carries `uid=0(root)`. */
async function alertsOf(ruleText: string, opts: PipelineOptions = {}) {
  const frames = conversationFrames(
    [
      [0, 'GET /id HTTP/1.0\r\n\r\n'],
      [1, 'HTTP/1.0 200 OK\r\n\r\nuid=0(root)\n'],
    ],
    { serverPort: 80, fin: true },
  );
  const pcap = encodePcap(frames.map((data, i) => ({ tsUs: 1_700_000_000_000_000 + i, data })));
  return (await runCapture(Readable.from([Buffer.from(pcap)]), loadRules(ruleText, 't.rules').rules, opts))
    .alerts;
}

describe('alert outputs: classifications', () => {
  it("print a classtype's description and take its priority, as Snort and Suricata do; a rule's priority wins", async () => {
    const [a, b, c, d] = await alertsOf(
      [
        'alert tcp any 80 -> any any (msg:"root"; content:"uid=0|28|root|29|"; classtype:bad-unknown; sid:1;)',
        'alert tcp any 80 -> any any (msg:"root, own priority"; content:"uid=0"; classtype:bad-unknown; priority:4; sid:2;)',
        'alert tcp any 80 -> any any (msg:"no class"; content:"uid"; sid:3;)',
        'alert tcp any 80 -> any any (msg:"a class of its own"; content:"root"; classtype:local-thing; sid:4;)',
      ].join('\n'),
      // a class of its own comes from a classification.config (a rule naming an undefined one is refused)
      {
        classifications: parseClassificationConfig(
          'config classification: local-thing,A Local Thing,3',
          'classification.config',
        ),
      },
    ).then((x) => [...x].sort((p, q) => p.sid - q.sid));
    expect(alertFast(a!)).toContain('[**] [Classification: Potentially Bad Traffic] [Priority: 2] {TCP}');
    expect(eveJson(a!)).toMatchObject({ alert: { category: 'Potentially Bad Traffic', severity: 2 } });
    expect(alertFast(b!)).toContain('[Classification: Potentially Bad Traffic] [Priority: 4]');
    expect(eveJson(b!)).toMatchObject({ alert: { severity: 4 } });
    expect(alertFast(c!)).toContain('[Classification: none] [Priority: 3]');
    expect(eveJson(c!)).toMatchObject({ alert: { category: '', severity: 3 } });
    // a class the built-in table does not hold: alertFast prints its name (the CLI puts the file's
    // description in its place), the priority is the file's
    expect(alertFast(d!)).toContain('[Classification: local-thing] [Priority: 3]');
  });

  it('holds every classtype of the community rules, each with a priority from 1 to 4', () => {
    expect(classDescription('attempted-admin')).toBe('Attempted Administrator Privilege Gain');
    expect(classifications.get('tcp-connection')).toEqual({
      name: 'tcp-connection',
      description: 'A TCP connection was detected',
      priority: 4,
    });
    for (const c of classifications.values()) expect([1, 2, 3, 4]).toContain(c.priority);
    if (!rules.have) return;
    const text = readFileSync(`${rules.shared}rules/snort3-community.rules`, 'latin1');
    const used = new Set([...text.matchAll(/classtype:\s*([\w-]+)/g)].map((m) => m[1]!));
    expect(used.size).toBeGreaterThan(20);
    for (const c of used) expect(classifications.has(c), c).toBe(true);
  });
});

describe('alert outputs: times', () => {
  it("give an eve record's time to the microsecond with +0000, as Suricata does, and the same instant as alert_fast", async () => {
    // until 2026-12-06 (late) the eve time was Date's ISO form: milliseconds, the capture's microseconds lost
    const [a] = await alertsOf('alert tcp any 80 -> any any (msg:"root"; content:"uid=0"; sid:1;)');
    const us = a!.tsUs - 1_700_000_000_000_000; // the packet's index in the conversation: a few microseconds
    expect(us).toBeGreaterThan(0);
    expect(eveJson(a!).timestamp).toBe(`2023-11-14T22:13:20.00000${us}+0000`);
    expect(alertFast(a!)).toMatch(new RegExp(`^11/14-22:13:20\\.00000${us} `));
    expect(eveTimestamp(1_700_000_000_152_870)).toBe('2023-11-14T22:13:20.152870+0000');
    expect(eveTimestamp(0)).toBe('1970-01-01T00:00:00.000000+0000');
    expect(eveTimestamp(-1)).toBe('1969-12-31T23:59:59.999999+0000');
    // every instant a capture can hold (classic pcap: u32 seconds; pcapng: up to 2^53 us) reads back
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 40), max: 2 ** 53 - 1 }), (us) => {
        const t = eveTimestamp(us);
        expect(t).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000$/);
        const ms = Date.parse(`${t.slice(0, 23)}Z`);
        expect(BigInt(ms) * 1000n + BigInt(t.slice(23, 26))).toBe(BigInt(us));
      }),
    );
  });
});

describe('alert outputs: ICMP', () => {
  it("give an ICMP alert's type and code in eve, without ports, as Suricata does", async () => {
    // until 2026-12-06 (late) an ICMP alert's eve record had src_port and dest_port 0 and no type or code
    const echo = (type: number, code: number) => {
      const f = new Uint8Array(20 + 8 + 4);
      f.set([0x45, 0, 0, f.length, 0, 1, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
      f.set([type, code, 0, 0, 0x12, 0x34, 0, 7, 0x61, 0x62, 0x63, 0x64], 20);
      return f;
    };
    const pcap = encodePcap(
      [echo(8, 0), echo(3, 1)].map((data, i) => ({ tsUs: 1_700_000_000_000_000 + i, data })),
      101,
    );
    const rules = loadRules(
      [
        'alert icmp any any -> any any (msg:"echo"; itype:8; sid:1;)',
        'alert icmp any any -> any any (msg:"unreachable"; itype:3; content:"abcd"; sid:2;)',
        'alert tcp any any -> any 80 (msg:"web"; content:"GET"; sid:3;)',
      ].join('\n'),
      't.rules',
    ).rules;
    const { alerts } = await runCapture(Readable.from([pcap]), rules, { validateChecksums: false });
    const eve = alerts.map(eveJson);
    expect(eve.map((e) => [e.proto, e.icmp_type, e.icmp_code, 'src_port' in e, 'dest_port' in e])).toEqual([
      ['ICMP', 8, 0, false, false],
      ['ICMP', 3, 1, false, false],
    ]);
    expect(alertFast(alerts[0]!)).toMatch(/\{ICMP\} 10\.0\.0\.1 -> 10\.0\.0\.2$/);
    // a TCP alert keeps its ports and has no ICMP fields
    const [web] = await alertsOf('alert tcp any any -> any 80 (msg:"web"; content:"GET"; sid:3;)');
    expect(eveJson(web!)).toMatchObject({ src_port: 40000, dest_port: 80 });
    expect('icmp_type' in eveJson(web!)).toBe(false);
  });
});
