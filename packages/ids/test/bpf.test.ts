// Capture filters (`--bpf`, PipelineOptions.filter): the pcap-filter language's primitives and operators
// against decoded packets, every syntax error's message, a fuzz of the parser, and runs over captures (the
// stats, IPS passing what the filter refuses, fragments tested as their datagram, workers, the CLI).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { captureIo, runCommand } from '@strata/cli';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfSyntaxError, compileFilter } from '../src/bpf.js';
import { commands, encodePcap, loadRules, ParallelRunner, runCapture } from '../src/index.js';
import { type PktSpec, pkt, tcpFrame } from './helpers.js';

/** A decoded IPv6 packet: `pkt`'s, with these addresses (hex, 32 digits each). */
const v6 = (s: PktSpec, src6: string, dst6: string) => ({
  ...pkt(s),
  ipVersion: 6 as const,
  srcAddr: Uint8Array.from(Buffer.from(src6, 'hex')),
  dstAddr: Uint8Array.from(Buffer.from(dst6, 'hex')),
});

const packets = {
  web: pkt({ src: '10.0.0.1', dst: '192.0.2.80', sp: 40000, dp: 80 }),
  dns: pkt({ proto: 17, src: '10.0.0.2', dst: '192.0.2.53', sp: 5353, dp: 53 }),
  ping: pkt({ proto: 1, src: '192.0.2.9', dst: '10.0.0.1', sp: 0, dp: 0 }),
  six: v6({ sp: 443, dp: 50000 }, '20010db8000000000000000000000001', '20010db8000000000000000000000002'),
  tagged: { ...pkt({ src: '10.1.1.1', dst: '10.1.1.2', sp: 2000, dp: 8080 }), vlans: [7] },
};
type Name = keyof typeof packets;

/** The packets (by name, in order) `filter` passes. */
function passing(filter: string): Name[] {
  const f = compileFilter(filter);
  return (Object.keys(packets) as Name[]).filter((n) => f(packets[n]));
}

describe('capture filters: the pcap-filter language', () => {
  it('reads primitives with their qualifiers, as tcpdump does', () => {
    const cases: [string, Name[]][] = [
      ['', ['web', 'dns', 'ping', 'six', 'tagged']],
      ['tcp', ['web', 'six', 'tagged']],
      ['udp', ['dns']],
      ['icmp', ['ping']],
      ['ip', ['web', 'dns', 'ping', 'tagged']],
      ['ip6', ['six']],
      ['host 10.0.0.1', ['web', 'ping']],
      ['src host 10.0.0.1', ['web']],
      ['dst host 10.0.0.1', ['ping']],
      ['10.0.0.1', ['web', 'ping']],
      ['src 10.0.0.2', ['dns']],
      ['net 10.0.0.0/8', ['web', 'dns', 'ping', 'tagged']],
      ['dst net 192.0.2.0/24', ['web', 'dns']],
      ['src and dst net 10.0.0.0/8', ['tagged']],
      ['src or dst net 192.0.2.0/24', ['web', 'dns', 'ping']],
      ['ip6 net 2001:db8::/32', ['six']],
      ['ip host 10.0.0.1', ['web', 'ping']],
      ['port 80', ['web']],
      ['port 53', ['dns']],
      ['tcp port 53', []],
      ['udp dst port 53', ['dns']],
      ['src port 443', ['six']],
      ['portrange 50-8080', ['web', 'dns', 'six', 'tagged']],
      ['tcp portrange 443-443', ['six']],
      ['vlan', ['tagged']],
      ['vlan 7', ['tagged']],
      ['vlan 8', []],
      ['proto 17', ['dns']],
      ['ip proto 1', ['ping']],
      ['ip6 proto 6', ['six']],
    ];
    for (const [f, want] of cases) expect(passing(f), f).toEqual(want);
  });

  it('combines with and, or, not, parentheses, and a bare value takes the qualifiers before it', () => {
    const cases: [string, Name[]][] = [
      ['tcp and not port 80', ['six', 'tagged']],
      ['tcp && !port 80', ['six', 'tagged']],
      ['udp or icmp', ['dns', 'ping']],
      ['udp || icmp', ['dns', 'ping']],
      ['not (udp or icmp)', ['web', 'six', 'tagged']],
      ['host 10.0.0.1 or 10.0.0.2', ['web', 'dns', 'ping']],
      ['tcp dst port 80 or 8080', ['web', 'tagged']],
      ['(tcp or udp) and src net 10.0.0.0/8 and not vlan', ['web', 'dns']],
      ['not not icmp', ['ping']],
      // 'and' binds tighter than 'or'
      ['icmp or tcp and port 80', ['web', 'ping']],
    ];
    for (const [f, want] of cases) expect(passing(f), f).toEqual(want);
  });

  it('names where a filter cannot be read', () => {
    const bad: [string, string][] = [
      [
        'port http',
        "filter at 6: expected a port number from 0 to 65535, got 'http' (no service names: give the number)",
      ],
      ['port 70000', "filter at 6: expected a port number from 0 to 65535, got '70000'"],
      [
        'host example.com',
        "filter at 6: host 'example.com': not an IPv4 or IPv6 address (no host names: give the address)",
      ],
      ['host 10.0.0.0/8', "filter at 6: host '10.0.0.0/8': a host is one address (net takes a prefix)"],
      ['net 10.0.0.0/33', "filter at 5: net '10.0.0.0/33'"],
      ['tcp host 10.0.0.1', "filter at 5: 'tcp host': a protocol qualifies port or portrange"],
      ['ip port 80', "filter at 4: 'ip port': ip or ip6 qualify host or net"],
      ['portrange 90-80', "filter at 11: portrange '90-80': expected LOW-HIGH"],
      ['tcp and', 'filter at 8: expected a primitive (host, net, port, tcp, ...), got the end'],
      ['(tcp or udp', "filter at 12: expected ')', got the end"],
      ['tcp udp', "filter at 5: expected 'and', 'or' or the end, got 'udp'"],
      ['arp', "filter at 1: host 'arp': not an IPv4 or IPv6 address"],
      ['ether host 00:11:22:33:44:55', "filter at 1: host 'ether'"],
      ['src src host 10.0.0.1', "filter at 5: expected host, net, port or portrange, got 'src'"],
      ['tcp src 10.0.0.1', "filter at 9: expected host, net, port or portrange, got '10.0.0.1'"],
      ['vlan 5000', "filter at 6: expected a VLAN id from 0 to 4095, got '5000'"],
      ['proto tcp', "filter at 7: expected a protocol number from 0 to 255, got 'tcp'"],
      [`${'('.repeat(100)}tcp${')'.repeat(100)}`, 'nested more than 64 deep'],
      ['x'.repeat(5000), 'filter: 5000 characters, more than 4096'],
    ];
    for (const [f, msg] of bad) {
      expect(() => compileFilter(f), f).toThrow(BpfSyntaxError);
      expect(() => compileFilter(f), f).toThrow(msg);
    }
    expect(() => compileFilter(7 as never)).toThrow(TypeError);
  });

  it('never throws anything but its own error on random text, and what it compiles runs on any packet (fuzz)', () => {
    const piece = fc.constantFrom(
      'tcp',
      'udp',
      'icmp',
      'ip',
      'ip6',
      'vlan',
      'proto',
      'src',
      'dst',
      'host',
      'net',
      'port',
      'portrange',
      'and',
      'or',
      'not',
      '(',
      ')',
      '!',
      '&&',
      '||',
      '10.0.0.1',
      '10.0.0.0/8',
      '2001:db8::/32',
      '80',
      '1-2',
      '7',
      ' ',
    );
    const all = Object.values(packets);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 60 }),
          fc.array(piece, { maxLength: 24 }).map((p) => p.join(' ')),
        ),
        (text) => {
          let f: ((d: (typeof all)[number]) => boolean) | undefined;
          try {
            f = compileFilter(text);
          } catch (e) {
            expect(e).toBeInstanceOf(BpfSyntaxError);
            expect((e as Error).message).toMatch(/^filter( at \d+)?: /);
            return;
          }
          for (const d of all) expect(typeof f(d)).toBe('boolean');
          // 'not (F)' is the complement of F, for every filter that compiles
          if (text.trim() !== '') {
            const g = compileFilter(`not (${text})`);
            for (const d of all) expect(g(d)).toBe(!f(d));
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('capture filters: runs', () => {
  const root = mkdtempSync(join(tmpdir(), 'ids-bpf-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const rules = loadRules(
    [
      'alert tcp any any -> any any (msg:"mark"; content:"MARK"; sid:1;)',
      'drop tcp any any -> any any (msg:"drop"; content:"DROP"; sid:2;)',
    ].join('\n'),
    't.rules',
  ).rules;
  // one packet a flow: MARK to ports 80 and 81 from two sources, DROP to port 80
  const frames = [
    tcpFrame({ src: '10.0.0.1', dst: '10.9.9.9', sp: 20000, dp: 80, seq: 1, payload: 'MARK' }),
    tcpFrame({ src: '10.0.0.1', dst: '10.9.9.9', sp: 20001, dp: 81, seq: 1, payload: 'MARK' }),
    tcpFrame({ src: '10.0.0.2', dst: '10.9.9.9', sp: 20002, dp: 80, seq: 1, payload: 'MARK' }),
    tcpFrame({ src: '10.0.0.2', dst: '10.9.9.9', sp: 20003, dp: 80, seq: 1, payload: 'DROP' }),
  ];
  const pcap = encodePcap(frames.map((data, i) => ({ tsUs: 1_700_000_000_000_000 + i * 1000, data })));
  const file = join(root, 'c.pcap');
  writeFileSync(file, pcap);
  const alerted = (r: { alerts: { sid: number; pcapCnt?: number }[] }) =>
    r.alerts.map((a) => `${a.sid}@${a.pcapCnt}`);

  it('inspects only what the filter passes, counts the rest, and with IPS passes them on unexamined', async () => {
    const all = await runCapture(file, rules);
    expect(alerted(all)).toEqual(['1@1', '1@2', '1@3', '2@4']);
    expect(all.packetsFiltered).toBeUndefined();
    const some = await runCapture(file, rules, { filter: 'dst port 80 and not src host 10.0.0.2' });
    expect(alerted(some)).toEqual(['1@1']);
    expect(some.packetsFiltered).toBe(3);
    const ips = await runCapture(file, rules, { ips: true, filter: 'src host 10.0.0.1' });
    expect(alerted(ips)).toEqual(['1@1', '1@2']);
    expect(ips.verdicts).toMatchObject({ passed: 4, dropped: 0 });
    await expect(runCapture(file, rules, { filter: 'port http' })).rejects.toThrow(BpfSyntaxError);
  });

  it('gives the same alerts on 2 workers, whoever reads the capture', async () => {
    for (const reader of ['main', 'workers'] as const) {
      const pool = new ParallelRunner(2);
      const r = await pool.run(file, rules, { reader, filter: 'port 80' }).finally(() => pool.close());
      expect(alerted(r).sort(), reader).toEqual(['1@1', '1@3', '2@4']);
      expect(r.packetsFiltered, reader).toBe(1);
    }
  });

  it('strata ids --bpf: the filter, the count on stderr; a bad one is a usage error before any capture', async () => {
    writeFileSync(
      join(root, 't.rules'),
      'alert tcp any any -> any any (msg:"mark"; content:"MARK"; sid:1;)\n',
    );
    const ids = async (args: string[]) => {
      const c = captureIo('', {}, root);
      const rc = await runCommand(commands[0]!, ['--rules', 't.rules', 'c.pcap', ...args], c.io);
      return { rc, out: c.stdout(), err: c.stderr() };
    };
    const ok = await ids(['--bpf', 'tcp dst port 81']);
    expect(ok.rc).toBe(0);
    expect(ok.out.trim().split('\n')).toHaveLength(1);
    expect(ok.err).toContain('4 packets (3 not inspected: --bpf)');
    const bad = await ids(['--bpf', 'tcp port']);
    expect(bad.rc).toBe(2);
    expect(bad.err).toContain("--bpf: filter at 9: expected the port's value, got the end");
    expect(bad.out).toBe('');
  });

  it('reads from a stream too (stdin)', async () => {
    const r = await runCapture(Readable.from([Buffer.from(pcap)]), rules, { filter: 'port 81' });
    expect(alerted(r)).toEqual(['1@2']);
  });
});
