import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  alertFast,
  classDescription,
  classifications,
  conversationFrames,
  encodePcap,
  eveJson,
  loadRules,
  runCapture,
} from '../src/index.js';
import { sharedIds } from './helpers.js';

const rules = sharedIds('rules');

/** The alerts of `ruleText` over one conversation whose response carries `uid=0(root)`. */
async function alertsOf(ruleText: string) {
  const frames = conversationFrames(
    [
      [0, 'GET /id HTTP/1.0\r\n\r\n'],
      [1, 'HTTP/1.0 200 OK\r\n\r\nuid=0(root)\n'],
    ],
    { serverPort: 80, fin: true },
  );
  const pcap = encodePcap(frames.map((data, i) => ({ tsUs: 1_700_000_000_000_000 + i, data })));
  return (await runCapture(Readable.from([Buffer.from(pcap)]), loadRules(ruleText, 't.rules').rules)).alerts;
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
    ).then((x) => [...x].sort((p, q) => p.sid - q.sid));
    expect(alertFast(a!)).toContain('[**] [Classification: Potentially Bad Traffic] [Priority: 2] {TCP}');
    expect(eveJson(a!)).toMatchObject({ alert: { category: 'Potentially Bad Traffic', severity: 2 } });
    expect(alertFast(b!)).toContain('[Classification: Potentially Bad Traffic] [Priority: 4]');
    expect(eveJson(b!)).toMatchObject({ alert: { severity: 4 } });
    expect(alertFast(c!)).toContain('[Classification: none] [Priority: 3]');
    expect(eveJson(c!)).toMatchObject({ alert: { category: '', severity: 3 } });
    // a class the table does not hold: its name, and the default priority
    expect(alertFast(d!)).toContain('[Classification: local-thing] [Priority: 3]');
  });

  it('holds every classtype of the community rules, each with a priority from 1 to 4', () => {
    expect(classDescription('attempted-admin')).toBe('Attempted Administrator Privilege Gain');
    expect(classifications.get('tcp-connection')).toEqual({
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
