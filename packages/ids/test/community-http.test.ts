import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Engine, Pipeline, parseRules, type Rule, runCapture } from '../src/index.js';
import { ACK, FIN, PSH, SYN, sharedIds, tcpFrame } from './helpers.js';

const { shared, have } = sharedIds('rules/snort3-community.rules');
const rulesPath = `${shared}rules/snort3-community.rules`;

/** The community rules that load, and those of them that inspect HTTP buffers. */
function community(): { all: Rule[]; http: Rule[]; engine: Engine } {
  const set = parseRules(readFileSync(rulesPath, 'utf8'), 'snort3-community.rules');
  const engine = new Engine(set.rules);
  const httpSids = new Set(engine.compiled.filter((c) => c.mode === 'http').map((c) => c.rule.sid));
  return { all: set.rules, http: set.rules.filter((r) => httpSids.has(r.sid)), engine };
}

/** One TCP conversation as Ethernet frames: handshake, request writes, response writes, FIN both ways. */
function conversation(client: string, server: string, req: Uint8Array[], resp: Uint8Array[]): Uint8Array[] {
  const C = { src: client, dst: server, sp: 50000, dp: 80 };
  const S = { src: server, dst: client, sp: 80, dp: 50000 };
  let cs = 7001;
  let ss = 9001;
  const f: Uint8Array[] = [
    tcpFrame({ ...C, flags: SYN, seq: cs - 1 }),
    tcpFrame({ ...S, flags: SYN | ACK, seq: ss - 1, ack: cs }),
    tcpFrame({ ...C, flags: ACK, seq: cs, ack: ss }),
  ];
  for (const p of req) {
    f.push(tcpFrame({ ...C, flags: ACK | PSH, seq: cs, ack: ss, payload: p }));
    cs += p.length;
    f.push(tcpFrame({ ...S, flags: ACK, seq: ss, ack: cs }));
  }
  for (const p of resp) {
    f.push(tcpFrame({ ...S, flags: ACK | PSH, seq: ss, ack: cs, payload: p }));
    ss += p.length;
    f.push(tcpFrame({ ...C, flags: ACK, seq: cs, ack: ss }));
  }
  f.push(tcpFrame({ ...C, flags: ACK | FIN, seq: cs, ack: ss }));
  f.push(tcpFrame({ ...S, flags: ACK | FIN, seq: ss, ack: cs + 1 }));
  f.push(tcpFrame({ ...C, flags: ACK, seq: cs + 1, ack: ss + 1 }));
  return f;
}

const b = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

describe.skipIf(!have)('the community ruleset on HTTP traffic', () => {
  const { all, http, engine } = community();

  it('loads at least 95% of the 4,029 rules; every HTTP buffer keyword of the set is among the loaded', () => {
    expect(all.length).toBe(4029); // every keyword of the set is known to the parser
    expect(engine.compiled.length).toBeGreaterThanOrEqual(Math.ceil(0.95 * 4029));
    expect(http.length).toBeGreaterThan(2100);
    // what does not load is reported with a reason, none for lack of HTTP inspection
    for (const s of engine.skipped) expect(s.reason).not.toMatch(/needs HTTP inspection/);
    // every rule of the set loads
    expect(engine.skipped).toEqual([]);
  });

  it('crafted requests and responses raise the rules written for them (all loaded rules running)', () => {
    const p = new Pipeline(all);
    const body = b('path=c:\\x&WriteToFile=1');
    const gz = gzipSync(Buffer.from('<p>Invalid URL</p>'));
    const frames = conversation(
      '8.8.4.4',
      '192.168.1.10',
      [
        b(
          `POST /plugins/framework/script/tree.xms HTTP/1.1\r\nHost: srv\r\nCookie: login=0\r\nContent-Length: ${body.length}\r\n\r\n`,
        ),
        body,
      ],
      [
        b(
          `HTTP/1.1 403 Forbidden\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n${gz.length.toString(16)}\r\n`,
        ),
        new Uint8Array(gz),
        b('\r\n0\r\n\r\n'),
      ],
    );
    const sids = frames.flatMap((data, i) => p.push({ tsUs: i, linkType: 1, data, origLength: data.length }));
    sids.push(...p.finish());
    const got = new Set(sids.map((a) => a.sid));
    // 2549 http_uri + http_client_body; 2441 pkt_data + http_cookie; 1201 http_stat_code; 1200 file_data (gzip)
    for (const sid of [2549, 2441, 1201, 1200]) expect(got, `sid ${sid}`).toContain(sid);
    expect(p.engine.stats.httpRequests).toBe(1);
    expect(p.engine.stats.httpResponses).toBe(1);
  });

  it('the HTTP rules on ndpi-mix-a.pcap: the alerts, the messages parsed, anomalies counted', async () => {
    const r = await runCapture(`${shared}traces/ndpi-mix-a.pcap`, http, { validateChecksums: 'auto' });
    expect(r.alerts.map((a) => a.sid).sort()).toEqual([25521, 25521, 39729]);
    // 62 and 64 before 2026-12-07: two conversations are in IPv6 in IPv4 (6in4), not decoded then
    expect(r.stats.httpRequests).toBe(64);
    expect(r.stats.httpResponses).toBe(66);
    expect(r.reassemblyPeakBytes).toBeLessThan(64 * 2 ** 20);
  }, 50_000);
});
