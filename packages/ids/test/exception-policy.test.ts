/**
 * Exception policies (Suricata's): what the engine does at the reassembly memcap, a session picked up
 * midstream, an HTTP parse error and the defragmenter's memory bound, on one thread, on workers and in the
 * CLI.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { captureIo, runCommand } from '@strata/cli';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  commands,
  type Decoded,
  Engine,
  type EngineOptions,
  type EngineStats,
  type ExceptionPolicyOptions,
  encodePcap,
  exceptionKinds,
  exceptionPolicies,
  HttpSession,
  loadRules,
  newHttpAnomalies,
  ParallelRunner,
  Pipeline,
  parseExceptionPolicyArgs,
  parseRule,
  ReassemblyBudget,
  resolveExceptionPolicies,
  runCapture,
} from '../src/index.js';
import { bind } from './dce-wire.js';
import { ACK, fragments, fromServer, handshake, PSH, pkt, RST, SYN, tcpFrame } from './helpers.js';

/** Runs packets through an engine; per packet: dropped, rejected, and how many alerts. */
function run(e: Engine, ps: Decoded[]): { drop: boolean[]; reject: boolean[]; alerts: number[] } {
  const drop: boolean[] = [];
  const reject: boolean[] = [];
  const alerts: number[] = [];
  ps.forEach((p, i) => {
    alerts.push(e.inspect(p, i * 1000).length);
    drop.push(e.verdict.drop);
    reject.push(e.verdict.reject);
  });
  return { drop, reject, alerts };
}

const engine = (rules: string[], opts: EngineOptions) =>
  new Engine(
    rules.map((r) => parseRule(r)),
    opts,
  );

describe('resolveExceptionPolicies', () => {
  /** The four exceptions' policies in order: reassemblyMemcap, midstream, appLayerError, defragMemcap. */
  const all = (p: ReturnType<typeof resolveExceptionPolicies>) =>
    [p.reassemblyMemcap, p.midstream, p.appLayerError, p.defragMemcap].join(' ');

  it('ignores every exception by default, and the master switch without IPS (Suricata: IPS only)', () => {
    expect(all(resolveExceptionPolicies(undefined, true, false))).toBe('ignore ignore ignore ignore');
    expect(all(resolveExceptionPolicies({ all: 'drop-flow' }, false, false))).toBe(
      'ignore ignore ignore ignore',
    );
  });

  it('auto is drop-flow in IPS mode, drop-packet where only the packet can be acted on, ignore for accepted midstream pick-ups', () => {
    expect(all(resolveExceptionPolicies({ all: 'auto' }, true, false))).toBe(
      'drop-flow drop-flow drop-flow drop-packet',
    );
    expect(all(resolveExceptionPolicies({ all: 'auto' }, true, true))).toBe(
      'drop-flow ignore drop-flow drop-packet',
    );
    expect(all(resolveExceptionPolicies({ all: 'auto' }, false, false))).toBe('ignore ignore ignore ignore');
  });

  it('one exception wins over the master switch; flow policies of a packet-only exception take their packet form', () => {
    const r = resolveExceptionPolicies({ all: 'reject', appLayerError: 'pass-packet' }, true, false);
    expect(all(r)).toBe('reject reject pass-packet reject');
    expect(resolveExceptionPolicies({ defragMemcap: 'drop-flow' }, true, false).defragMemcap).toBe(
      'drop-packet',
    );
    expect(resolveExceptionPolicies({ defragMemcap: 'pass-flow' }, true, false).defragMemcap).toBe(
      'pass-packet',
    );
    expect(resolveExceptionPolicies({ defragMemcap: 'bypass' }, true, false).defragMemcap).toBe('ignore');
    // bypass is pass-flow here (nothing is offloaded, and no app-layer traffic is logged either way)
    expect(resolveExceptionPolicies({ reassemblyMemcap: 'bypass' }, true, false).reassemblyMemcap).toBe(
      'pass-flow',
    );
    // a master switch's packet policy does not reach the midstream exception (a flow's)
    expect(resolveExceptionPolicies({ all: 'drop-packet' }, true, false).midstream).toBe('ignore');
  });

  it('without IPS a drop or reject only stops inspection: nothing is dropped', () => {
    const r = resolveExceptionPolicies(
      {
        reassemblyMemcap: 'drop-flow',
        appLayerError: 'drop-packet',
        midstream: 'reject',
        defragMemcap: 'reject',
      },
      false,
      false,
    );
    expect(all(r)).toBe('pass-flow pass-flow pass-packet pass-packet');
  });

  it('refuses what Suricata refuses to start with, naming the option; and values and names it does not know', () => {
    expect(() => resolveExceptionPolicies({ midstream: 'drop-packet' }, true, false)).toThrow(
      /midstream: drop-packet is not a midstream policy/,
    );
    expect(() => resolveExceptionPolicies({ midstream: 'drop-flow' }, true, true)).toThrow(
      /midstream pick-up on, only pass-flow or ignore/,
    );
    expect(() => resolveExceptionPolicies({ midstream: 'drop-flow' }, false, false)).toThrow(
      /drop-flow needs IPS mode/,
    );
    expect(resolveExceptionPolicies({ midstream: 'pass-flow' }, false, true).midstream).toBe('pass-flow');
    expect(() => resolveExceptionPolicies({ all: 'drop' as never }, true, false)).toThrow(
      /exceptionPolicy.all: one of ignore, auto, .* got "drop"/,
    );
    expect(() => resolveExceptionPolicies({ flowMemcap: 'drop-flow' } as never, true, false)).toThrow(
      /no exception named flowMemcap/,
    );
    expect(() => resolveExceptionPolicies('drop-flow' as never, true, false)).toThrow(TypeError);
    expect(() => engine([], { ips: true, exceptionPolicy: { midstream: 'pass-packet' } })).toThrow(
      /midstream/,
    );
  });

  it('any input: policies of the applied kinds, or a TypeError or RangeError saying what (property)', () => {
    const applied = new Set(['ignore', 'pass-packet', 'drop-packet', 'pass-flow', 'drop-flow', 'reject']);
    const value = fc.oneof(fc.constantFrom(...exceptionPolicies), fc.string(), fc.anything());
    const key = fc.oneof(fc.constantFrom('all', ...exceptionKinds), fc.string());
    fc.assert(
      fc.property(
        fc.oneof(fc.dictionary(key, value), fc.anything()),
        fc.boolean(),
        fc.boolean(),
        (o, ips, mid) => {
          try {
            const r = resolveExceptionPolicies(o as ExceptionPolicyOptions, ips, mid);
            for (const k of exceptionKinds) expect(applied.has(r[k])).toBe(true);
            // nothing is dropped without IPS
            if (!ips) for (const k of exceptionKinds) expect(r[k]).not.toMatch(/drop|reject/);
          } catch (e) {
            expect(e instanceof TypeError || e instanceof RangeError, String(e)).toBe(true);
            expect((e as Error).message).toMatch(/exceptionPolicy/);
          }
        },
      ),
    );
    fc.assert(
      fc.property(fc.array(fc.string()), (args) => {
        try {
          parseExceptionPolicyArgs(args);
        } catch (e) {
          expect(e instanceof RangeError, String(e)).toBe(true);
          expect((e as Error).message).toMatch(/^--exception-policy /);
        }
      }),
    );
  });

  it('parses --exception-policy values', () => {
    expect(
      parseExceptionPolicyArgs([
        'drop-flow',
        'midstream=ignore',
        'app-layer-error=pass-packet',
        'defrag-memcap=reject',
      ]),
    ).toEqual({
      all: 'drop-flow',
      midstream: 'ignore',
      appLayerError: 'pass-packet',
      defragMemcap: 'reject',
    });
    expect(parseExceptionPolicyArgs(['reassembly-memcap=bypass'])).toEqual({ reassemblyMemcap: 'bypass' });
    expect(() => parseExceptionPolicyArgs(['flow-memcap=drop-flow'])).toThrow(
      /no exception named flow-memcap/,
    );
    expect(() => parseExceptionPolicyArgs(['midstream=dropflow'])).toThrow(/dropflow is not a policy/);
    // nothing an object inherits is a name
    expect(() => parseExceptionPolicyArgs(['constructor=drop-flow'])).toThrow(
      /no exception named constructor/,
    );
    expect(() => parseExceptionPolicyArgs(['__proto__=ignore'])).toThrow(/no exception named __proto__/);
  });
});

describe('midstream pick-up', () => {
  const evil = 'alert tcp any any -> any 80 (msg:"evil"; content:"evil"; sid:1;)';
  // a session whose handshake was not captured: data with an ACK first, then the server's ACK and more data
  const midstream = () => [
    pkt({ flags: ACK | PSH, seq: 2000, ack: 7000, payload: 'evil one' }),
    fromServer({ flags: ACK, seq: 7000, ack: 2008 }),
    pkt({ flags: ACK | PSH, seq: 2008, ack: 7000, payload: 'evil two' }),
  ];

  it('ignored, its packets are inspected one by one (no stream); pass-flow inspects none of them', () => {
    expect(run(engine([evil], {}), midstream()).alerts).toEqual([1, 0, 1]);
    const e = engine([evil], { exceptionPolicy: { midstream: 'pass-flow' } });
    expect(run(e, midstream()).alerts).toEqual([0, 0, 0]);
    expect(e.stats).toMatchObject({ exceptionMidstream: 1, flowsPassed: 1, packetsDropped: 0 });
  });

  it('IPS drop-flow drops the flow from its first packet; reject also answers that packet', () => {
    const e = engine([evil], { ips: true, exceptionPolicy: { midstream: 'drop-flow' } });
    const r = run(e, midstream());
    expect(r.drop).toEqual([true, true, true]);
    expect(r.alerts).toEqual([0, 0, 0]);
    expect(r.reject).toEqual([false, false, false]);
    expect(e.stats).toMatchObject({ exceptionMidstream: 1, flowsDropped: 1, packetsDropped: 3 });
    const j = engine([evil], { ips: true, exceptionPolicy: { midstream: 'reject' } });
    const rj = run(j, midstream());
    expect(rj.drop).toEqual([true, true, true]);
    expect(rj.reject).toEqual([true, false, false]);
    // the master switch reaches it (auto: drop-flow in IPS mode)
    const a = engine([evil], { ips: true, exceptionPolicy: { all: 'auto' } });
    expect(run(a, midstream()).drop).toEqual([true, true, true]);
  });

  it('a session that begins with its SYN is no exception, nor one whose first packet is a reset; a SYN/ACK first is', () => {
    const opts: EngineOptions = { ips: true, exceptionPolicy: { midstream: 'drop-flow' } };
    const e = engine([evil], opts);
    const r = run(e, [...handshake(), pkt({ flags: ACK | PSH, seq: 1001, ack: 5001, payload: 'evil' })]);
    expect(r.drop).toEqual([false, false, false, false]);
    expect(r.alerts).toEqual([0, 0, 0, 1]);
    expect(e.stats.exceptionMidstream).toBe(0);
    const rst = engine([evil], opts);
    expect(run(rst, [pkt({ flags: RST | ACK, seq: 1, ack: 1 })]).drop).toEqual([false]);
    expect(rst.stats.exceptionMidstream).toBe(0);
    const synAck = engine([evil], opts);
    const s = [fromServer({ flags: SYN | ACK, seq: 5000, ack: 1001 })];
    expect(run(synAck, s).drop).toEqual([true]);
    expect(synAck.stats.exceptionMidstream).toBe(1);
  });

  it('with midstream pick-up on, pass-flow: the session is picked up but not inspected', () => {
    expect(run(engine([evil], { midstream: true }), midstream()).alerts.some((n) => n > 0)).toBe(true);
    const e = engine([evil], { midstream: true, exceptionPolicy: { midstream: 'pass-flow' } });
    expect(run(e, midstream()).alerts).toEqual([0, 0, 0]);
    expect(e.stats.exceptionMidstream).toBe(1);
  });
});

describe('reassembly memcap', () => {
  // every packet with an ACK alerts, so a packet left uninspected shows
  const ack = 'alert tcp any any -> any any (msg:"ack"; flags:A+; sid:2;)';
  const seg = (off: number) =>
    pkt({ flags: ACK | PSH, seq: 1001 + off, ack: 5001, payload: new Uint8Array(1000) });
  // out of order behind a hole at the stream's start, so nothing is released: the fourth segment finds the
  // 3,000-byte memcap full; then the server's acknowledgment
  const packets = () => [
    ...handshake(),
    seg(1000),
    seg(2000),
    seg(3000),
    seg(4000),
    fromServer({ flags: ACK, seq: 5001, ack: 1001 }),
  ];
  const memcap = (opts: EngineOptions) => engine([ack], { reassemblyMemcapBytes: 3000, ...opts });

  it('ignored: the segment is not reassembled and the packet is inspected', () => {
    const e = memcap({});
    expect(run(e, packets()).alerts).toEqual([0, 1, 1, 1, 1, 1, 1, 1]);
    expect(e.stats).toMatchObject({ segmentsDropped: 1, exceptionReassemblyMemcap: 0 });
  });

  it('pass-packet leaves that packet uninspected; pass-flow the rest of the flow', () => {
    const p = memcap({ exceptionPolicy: { reassemblyMemcap: 'pass-packet' } });
    expect(run(p, packets()).alerts).toEqual([0, 1, 1, 1, 1, 1, 0, 1]);
    expect(p.stats).toMatchObject({ exceptionReassemblyMemcap: 1, flowsPassed: 0 });
    const f = memcap({ exceptionPolicy: { reassemblyMemcap: 'pass-flow' } });
    expect(run(f, packets()).alerts).toEqual([0, 1, 1, 1, 1, 1, 0, 0]);
    expect(f.stats).toMatchObject({ exceptionReassemblyMemcap: 1, flowsPassed: 1 });
    // the flow's buffered bytes went back with it
    expect(f.budget.bytes).toBe(0);
  });

  it("a packet whose inspection fails after its exception leaves the next packet's inspection whole", () => {
    const e = memcap({ ips: true, exceptionPolicy: { reassemblyMemcap: 'pass-packet' } });
    const ps = packets();
    // the delivery right after the memcap's segment fails (a fault of the engine's: counted, the run goes on)
    const inner = e as unknown as { deliver: (...a: unknown[]) => unknown };
    const deliver = inner.deliver.bind(e);
    let at = -1;
    inner.deliver = (...a: unknown[]) => {
      if (at === 6) throw new Error('broken delivery');
      return deliver(...a);
    };
    const alerts = ps.map((p, i) => {
      at = i;
      return e.inspect(p, i * 1000).length;
    });
    expect(e.packetFaults.length).toBe(1);
    expect(alerts).toEqual([0, 1, 1, 1, 1, 1, 0, 1]);
  });

  it('IPS: drop-packet drops that packet, drop-flow the flow from it, reject answers it too; without IPS drop-flow drops nothing', () => {
    const dp = memcap({ ips: true, exceptionPolicy: { reassemblyMemcap: 'drop-packet' } });
    expect(run(dp, packets()).drop).toEqual([false, false, false, false, false, false, true, false]);
    const df = memcap({ ips: true, exceptionPolicy: { reassemblyMemcap: 'drop-flow' } });
    const r = run(df, packets());
    expect(r.drop).toEqual([false, false, false, false, false, false, true, true]);
    expect(r.alerts).toEqual([0, 1, 1, 1, 1, 1, 0, 0]);
    expect(df.stats).toMatchObject({ exceptionReassemblyMemcap: 1, flowsDropped: 1, packetsDropped: 2 });
    const rj = memcap({ ips: true, exceptionPolicy: { all: 'reject' } });
    const j = run(rj, packets());
    expect(j.reject).toEqual([false, false, false, false, false, false, true, false]);
    expect(j.drop.slice(6)).toEqual([true, true]);
    const ids = memcap({ exceptionPolicy: { reassemblyMemcap: 'drop-flow' } });
    const i = run(ids, packets());
    expect(i.drop.every((d) => !d)).toBe(true);
    expect(i.alerts).toEqual([0, 1, 1, 1, 1, 1, 0, 0]);
    expect(ids.stats).toMatchObject({ flowsPassed: 1, flowsDropped: 0, packetsDropped: 0 });
  });
});

describe('app-layer error (HTTP)', () => {
  const rules = [
    'alert tcp any any -> any any (msg:"ack"; flags:A+; sid:2;)',
    'alert http any any -> any any (msg:"uri"; http.uri; content:"/never"; sid:9;)',
  ];
  const bad = 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n';
  const packets = (request: string) => [
    ...handshake(),
    pkt({ flags: ACK | PSH, seq: 1001, ack: 5001, payload: request }),
    fromServer({
      flags: ACK,
      seq: 5001,
      ack: 1001 + request.length,
    }),
    pkt({ flags: ACK | PSH, seq: 1001 + request.length, ack: 5001, payload: 'more' }),
  ];

  it('a request whose Content-Length is not a number stops its direction: the policy acts on the packet that delivered it', () => {
    const ignored = engine(rules, { ips: true });
    expect(run(ignored, packets(bad)).alerts).toEqual([0, 1, 1, 1, 1, 1]);
    expect(ignored.httpAnomalies.badContentLength).toBe(1);
    expect(ignored.stats.exceptionAppLayerError).toBe(0);
    // inline (IPS), the request's own packet
    const df = engine(rules, { ips: true, exceptionPolicy: { appLayerError: 'drop-flow' } });
    expect(run(df, packets(bad)).drop).toEqual([false, false, false, true, true, true]);
    expect(df.stats).toMatchObject({ exceptionAppLayerError: 1, flowsDropped: 1 });
    const pp = engine(rules, { ips: true, exceptionPolicy: { appLayerError: 'pass-packet' } });
    expect(run(pp, packets(bad)).alerts).toEqual([0, 1, 1, 0, 1, 1]);
    // without IPS the request is parsed once the server acknowledges it: the policy falls on that packet
    const ids = engine(rules, { exceptionPolicy: { appLayerError: 'pass-packet' } });
    expect(run(ids, packets(bad)).alerts).toEqual([0, 1, 1, 1, 0, 1]);
    expect(ids.stats.exceptionAppLayerError).toBe(1);
  });

  it('each way an HTTP direction stops on what it cannot parse is an error: a bad chunk size, a request coding other than chunked, a header section past its bound, a line that starts no message', () => {
    const cases: [string, keyof Engine['httpAnomalies']][] = [
      ['POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'badChunkSize'],
      [
        `POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${'1'.repeat(1100)}`,
        'badChunkSize',
      ],
      ['POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n', 'badTransferEncoding'],
      [`GET /a HTTP/1.1\r\nX-Long: ${'a'.repeat(70_000)}`, 'headerTooLong'],
      ['GET /a HTTP/1.1\r\nHost: x\r\n\r\n\u0001\u0002 not a request\r\n\r\n', 'badStartLine'],
    ];
    for (const [request, anomaly] of cases) {
      const e = engine(rules, { ips: true, exceptionPolicy: { appLayerError: 'drop-flow' } });
      const r = run(e, packets(request));
      expect(e.httpAnomalies[anomaly], anomaly).toBeGreaterThan(0);
      expect(e.stats.exceptionAppLayerError, anomaly).toBe(1);
      expect(r.drop, anomaly).toEqual([false, false, false, true, true, true]);
    }
  });

  it('a well-formed request and another protocol are no errors', () => {
    const opts: EngineOptions = { ips: true, exceptionPolicy: { appLayerError: 'drop-flow' } };
    for (const request of ['GET /a HTTP/1.1\r\nHost: x\r\n\r\n', 'SSH-2.0-OpenSSH_9.6\r\n']) {
      const e = engine(rules, opts);
      expect(run(e, packets(request)).drop.some((d) => d)).toBe(false);
      expect(e.stats.exceptionAppLayerError).toBe(0);
    }
  });
});

describe('app-layer error (TLS)', () => {
  const hello = 'alert tcp any any -> any 443 (msg:"hello"; ssl_state:client_hello; sid:5;)';
  // a record holding a ClientHello message header (type 1, no body), then `next`
  const record = Uint8Array.from([22, 3, 3, 0, 4, 1, 0, 0, 0]);
  const packets = (first: Uint8Array | string, next: string) => [
    ...handshake('10.0.0.1', '10.0.0.2', 40000, 443),
    pkt({ dp: 443, flags: ACK | PSH, seq: 1001, ack: 5001, payload: first }),
    pkt({ dp: 443, flags: ACK | PSH, seq: 1001 + first.length, ack: 5001, payload: next }),
    pkt({ dp: 443, flags: ACK | PSH, seq: 1001 + first.length + next.length, ack: 5001, payload: 'more' }),
  ];

  it('a record header that is not TLS after valid records is an error; bytes that are not TLS from the start are not', () => {
    const opts: EngineOptions = { ips: true, exceptionPolicy: { appLayerError: 'drop-flow' } };
    const e = engine([hello], opts);
    const r = run(e, packets(record, 'junk!'));
    expect(r.alerts).toEqual([0, 0, 0, 1, 0, 0]);
    expect(r.drop).toEqual([false, false, false, false, true, true]);
    expect(e.stats.exceptionAppLayerError).toBe(1);
    const other = engine([hello], opts);
    expect(run(other, packets('SSH-2.0-x\r\n', 'junk!')).drop.some((d) => d)).toBe(false);
    expect(other.stats.exceptionAppLayerError).toBe(0);
  });
});

describe('app-layer error (DCE/RPC over TCP, SMB)', () => {
  const dce =
    'alert tcp any any -> any any (msg:"dce"; dce_iface:4b324fc8-1670-01d3-1278-5a47bf6ee188; sid:6;)';
  const opts: EngineOptions = { ips: true, exceptionPolicy: { appLayerError: 'drop-flow' } };
  const packets = (port: number, first: Uint8Array | string, next: Uint8Array | string, last = next) => [
    ...handshake('10.0.0.1', '10.0.0.2', 40000, port),
    pkt({ dp: port, flags: ACK | PSH, seq: 1001, ack: 5001, payload: first }),
    pkt({ dp: port, flags: ACK | PSH, seq: 1001 + first.length, ack: 5001, payload: next }),
    pkt({ dp: port, flags: ACK | PSH, seq: 1001 + first.length + next.length, ack: 5001, payload: last }),
  ];
  const junk = 'junk! not a DCE/RPC PDU header';
  // NetBIOS session messages: a session message (type 0) of a few bytes, and a type NetBIOS has not (7)
  const session = Uint8Array.from([0, 0, 0, 4, 0xfe, 0x53, 0x4d, 0x42]);
  const broken = Uint8Array.from([7, 0, 0, 4, 1, 2, 3, 4]);

  it('a PDU header that is not DCE/RPC after a PDU is an error; a connection that never was DCE/RPC is not', () => {
    const e = engine([dce], opts);
    expect(run(e, packets(135, bind([[1, '4b324fc8-1670-01d3-1278-5a47bf6ee188', 1]]), junk)).drop).toEqual([
      false,
      false,
      false,
      false,
      true,
      true,
    ]);
    expect(e.stats.exceptionAppLayerError).toBe(1);
    const other = engine([dce], opts);
    expect(run(other, packets(135, junk, junk)).drop.some((d) => d)).toBe(false);
    expect(other.stats.exceptionAppLayerError).toBe(0);
  });

  it('NetBIOS framing broken after a session message is an error; a connection that never was NetBIOS is not', () => {
    const e = engine([dce], opts);
    expect(run(e, packets(445, session, broken)).drop).toEqual([false, false, false, false, true, true]);
    expect(e.stats.exceptionAppLayerError).toBe(1);
    // a connection begun with a type NetBIOS has not stops there without an error; session messages only
    // have none
    for (const first of [broken, session]) {
      const other = engine([dce], opts);
      expect(run(other, packets(445, first, session, session)).drop.some((d) => d)).toBe(false);
      expect(other.stats.exceptionAppLayerError).toBe(0);
    }
  });
});

describe('app-layer error (SIP over TCP)', () => {
  const sip = 'alert tcp any any -> any 5060 (msg:"invite"; sip_method:invite; sid:8;)';
  const invite = 'INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP a\r\nContent-Length: 0\r\n\r\n';
  const packets = (first: string, next: string) => [
    ...handshake('10.0.0.1', '10.0.0.2', 40000, 5060),
    pkt({ dp: 5060, flags: ACK | PSH, seq: 1001, ack: 5001, payload: first }),
    pkt({ dp: 5060, flags: ACK | PSH, seq: 1001 + first.length, ack: 5001, payload: next }),
    pkt({ dp: 5060, flags: ACK | PSH, seq: 1001 + first.length + next.length, ack: 5001, payload: invite }),
  ];
  const opts: EngineOptions = { ips: true, exceptionPolicy: { appLayerError: 'drop-flow' } };

  it('a line that starts no SIP message after a message, or a header section past its bound, is an error; a stream that never was SIP is not', () => {
    for (const next of [
      '\u0001\u0002 not SIP at all\r\n',
      `INVITE sip:x SIP/2.0\r\nX: ${'a'.repeat(9000)}`,
    ]) {
      const e = engine([sip], opts);
      const r = run(e, packets(invite, next));
      expect(r.alerts).toEqual([0, 0, 0, 1, 0, 0]);
      expect(r.drop).toEqual([false, false, false, false, true, true]);
      expect(e.stats.exceptionAppLayerError).toBe(1);
    }
    const other = engine([sip], opts);
    expect(run(other, packets('SSH-2.0-x\r\n', invite)).drop.some((d) => d)).toBe(false);
    expect(other.stats.exceptionAppLayerError).toBe(0);
    const fine = engine([sip], opts);
    expect(run(fine, packets(invite, invite)).alerts).toEqual([0, 0, 0, 1, 1, 1]);
    expect(fine.stats.exceptionAppLayerError).toBe(0);
  });
});

describe('HttpParser.errors', () => {
  it("counts the stops on what cannot be parsed, not a gap (bytes the capture lost: the engine delivers them at a flow's end)", () => {
    const anomalies = newHttpAnomalies();
    const none = { headers: () => undefined, message: () => undefined };
    const http = new HttpSession({ request: none, response: none }, anomalies, new ReassemblyBudget());
    http.request.push(Buffer.from('GET /a HTTP/1.1\r\nHo'));
    http.request.gap(10);
    expect(anomalies.gap).toBe(1);
    expect(http.request.errors).toBe(0);
    const bad = new HttpSession({ request: none, response: none }, anomalies, new ReassemblyBudget());
    bad.request.push(Buffer.from('POST /a HTTP/1.1\r\nContent-Length: x\r\n\r\n'));
    expect(bad.request.errors).toBe(1);
  });
});

describe('defragmenter memcap', () => {
  // a TCP segment of 40 bytes of data cut in two fragments (24 and 36 bytes of IP payload): with a
  // 30-byte bound the second finds the memory full, and its datagram is dropped
  const frames = () => fragments(tcpFrame({ sp: 40000, seq: 1, payload: 'x'.repeat(40) }), 7);
  const verdicts = (opts: ExceptionPolicyOptions | undefined, ips: boolean) => {
    const pipe = new Pipeline([], {
      ips,
      defrag: { bytesMax: 30 },
      ...(opts && { exceptionPolicy: opts }),
    });
    const drop = frames().map((data, i) => {
      pipe.push({ tsUs: i, linkType: 1, origLength: data.length, data });
      return pipe.verdict.drop;
    });
    return { drop, n: pipe.engine.stats.exceptionDefragMemcap, memory: pipe.defrag!.stats.dropped.memory };
  };

  it('drop-packet (IPS) drops the fragment that found the memory full; ignored or without IPS it is passed on', () => {
    expect(verdicts(undefined, true)).toEqual({ drop: [false, false], n: 0, memory: 1 });
    expect(verdicts({ defragMemcap: 'drop-packet' }, true)).toEqual({ drop: [false, true], n: 1, memory: 1 });
    expect(verdicts({ all: 'drop-flow' }, true)).toEqual({ drop: [false, true], n: 1, memory: 1 });
    expect(verdicts({ defragMemcap: 'reject' }, true)).toEqual({ drop: [false, true], n: 1, memory: 1 });
    expect(verdicts({ defragMemcap: 'drop-packet' }, false)).toEqual({
      drop: [false, false],
      n: 1,
      memory: 1,
    });
  });
});

/**
 * A capture with a session that begins with its handshake (client port 40001), one picked up midstream
 * (40002), one whose request's Content-Length is not a number (40004), a datagram whose fragments do not
 * fit a 30-byte defragmenter, and last one whose out-of-order segments pass a 3,500-byte reassembly memcap
 * at the fourth (40003; last, as the bytes it holds would leave no room for the others' otherwise; the
 * memcap bounds all flows together, and the others' stream and HTTP state hold about 120 bytes then).
 */
function mixedCapture(): Uint8Array {
  const C = (sp: number) => ({ src: '10.0.0.1', dst: '10.0.0.2', sp, dp: 80 });
  const S = (dp: number) => ({ src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp });
  const hs = (sp: number) => [
    tcpFrame({ ...C(sp), flags: SYN, seq: 1000 }),
    tcpFrame({ ...S(sp), flags: SYN | ACK, seq: 5000, ack: 1001 }),
    tcpFrame({ ...C(sp), flags: ACK, seq: 1001, ack: 5001 }),
  ];
  const data = (sp: number, off: number, payload: string | Uint8Array) =>
    tcpFrame({ ...C(sp), flags: ACK | PSH, seq: 1001 + off, ack: 5001, payload });
  const acked = (sp: number, off: number) => tcpFrame({ ...S(sp), flags: ACK, seq: 5001, ack: 1001 + off });
  const bad = 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n';
  const frames = [
    ...hs(40001), // 1-3
    data(40001, 0, 'evil one'), // 4
    acked(40001, 8),
    tcpFrame({ ...C(40002), flags: ACK | PSH, seq: 2000, ack: 7000, payload: 'evil two' }), // 6
    tcpFrame({ ...S(40002), flags: ACK, seq: 7000, ack: 2008 }),
    ...hs(40004), // 8-10
    data(40004, 0, bad), // 11
    acked(40004, bad.length), // 12
    data(40004, bad.length, 'evil three'), // 13
    ...fragments(tcpFrame({ ...C(40005), seq: 1, payload: 'x'.repeat(40) }), 9), // 14-15
    data(40001, 8, 'evil four'), // 16
    acked(40001, 17),
    ...hs(40003), // 18-20
    ...[1000, 2000, 3000, 4000].map((off) => data(40003, off, new Uint8Array(1000))), // 21-24
    acked(40003, 0), // 25
  ];
  return encodePcap(frames.map((f, i) => ({ tsUs: 1_700_000_000e6 + i * 1000, data: f })));
}

const mixedRules = () =>
  loadRules(
    [
      'alert tcp any any -> any 80 (msg:"evil"; content:"evil"; sid:1;)',
      'alert tcp any any -> any any (msg:"ack"; flags:A+; sid:2;)',
      'alert http any any -> any any (msg:"uri"; http.uri; content:"/never"; sid:9;)',
    ].join('\n'),
    'mixed.rules',
  ).rules;

/** The exception counters of a run's stats, as `reassemblyMemcap N, midstream N, appLayerError N, defragMemcap N`. */
const exceptionCounts = (
  s: Pick<
    EngineStats,
    'exceptionReassemblyMemcap' | 'exceptionMidstream' | 'exceptionAppLayerError' | 'exceptionDefragMemcap'
  >,
) =>
  `reassemblyMemcap ${s.exceptionReassemblyMemcap}, midstream ${s.exceptionMidstream}, appLayerError ${s.exceptionAppLayerError}, defragMemcap ${s.exceptionDefragMemcap}`;

describe('on workers as on one thread', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ids-exceptions-'));
  const pool = new ParallelRunner(2);
  afterAll(async () => {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('IPS: the same verdicts, output pcap, alerts and exception counts with 1 and 2 workers', async () => {
    const pcap = mixedCapture();
    const rules = mixedRules();
    const opts = {
      ips: true,
      reassemblyMemcapBytes: 7000, // 3,500 per worker's engine (the bound is shared out), as the one below
      defrag: { bytesMax: 30 },
      exceptionPolicy: { all: 'drop-flow', appLayerError: 'reject' } as ExceptionPolicyOptions,
    };
    const one = await runCapture(Readable.from([pcap]), rules, {
      ...opts,
      reassemblyMemcapBytes: 3500,
      out: join(dir, 'one.pcap'),
    });
    const two = await pool.run(Readable.from([pcap]), rules, { ...opts, out: join(dir, 'two.pcap') });
    const expected = 'reassemblyMemcap 1, midstream 1, appLayerError 1, defragMemcap 1';
    expect(exceptionCounts(one.stats)).toEqual(expected);
    expect(exceptionCounts(two.stats)).toEqual(expected);
    // dropped: the midstream session's 2 packets, the bad request with the ACK and data after it, the
    // second fragment, the segment past the memcap and the ACK after it; a reset answers the bad request
    expect(one.verdicts).toMatchObject({ dropped: 8, responses: 1 });
    expect(two.verdicts).toEqual(one.verdicts);
    expect(readFileSync(join(dir, 'two.pcap'))).toEqual(readFileSync(join(dir, 'one.pcap')));
    const sids = (r: typeof one) => r.alerts.map((a) => `${a.pcapCnt}:${a.sid}`);
    expect(sids(two)).toEqual(sids(one));
    // the handshaken session's evil, both times; none from the midstream or the dropped sessions
    expect(one.alerts.filter((a) => a.sid === 1).map((a) => a.pcapCnt)).toEqual([4, 16]);
  }, 60_000);

  it('IDS, with either reader: the same alerts and counts (policies stop inspection, drop nothing)', async () => {
    const path = join(dir, 'mixed.pcap');
    writeFileSync(path, mixedCapture());
    const rules = mixedRules();
    const policy: ExceptionPolicyOptions = {
      midstream: 'pass-flow',
      reassemblyMemcap: 'pass-packet',
      defragMemcap: 'drop-packet',
    };
    const one = await runCapture(path, rules, {
      reassemblyMemcapBytes: 3500,
      defrag: { bytesMax: 30 },
      exceptionPolicy: policy,
    });
    expect(exceptionCounts(one.stats)).toBe(
      'reassemblyMemcap 1, midstream 1, appLayerError 0, defragMemcap 1',
    );
    for (const reader of ['main', 'workers'] as const) {
      const two = await pool.run(path, rules, {
        reassemblyMemcapBytes: 7000,
        defrag: { bytesMax: 30 },
        exceptionPolicy: policy,
        reader,
      });
      expect(exceptionCounts(two.stats), reader).toEqual(exceptionCounts(one.stats));
      expect(
        two.alerts.map((a) => `${a.pcapCnt}:${a.sid}`),
        reader,
      ).toEqual(one.alerts.map((a) => `${a.pcapCnt}:${a.sid}`));
    }
  }, 60_000);
});

describe('strata ids --exception-policy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ids-exceptions-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // an HTTP rule too, so that HTTP is parsed (and can fail)
  writeFileSync(
    join(dir, 'mixed.rules'),
    'alert tcp any any -> any 80 (msg:"evil"; content:"evil"; sid:1;)\nalert http any any -> any any (msg:"uri"; http.uri; content:"/never"; sid:9;)\n',
  );
  writeFileSync(join(dir, 'mixed.pcap'), mixedCapture());
  const ids = async (...args: string[]) => {
    const c = captureIo('', {}, dir);
    const rc = await runCommand(commands[0]!, ['--rules', 'mixed.rules', ...args], c.io);
    return { rc, out: c.stdout(), err: c.stderr() };
  };

  it('sets each exception or all of them, and counts them in the stats', async () => {
    const plain = await ids('mixed.pcap');
    expect(plain.rc, plain.err).toBe(0);
    expect(plain.out.match(/\[1:1:0\]/g)?.length).toBe(4);
    const r = await ids(
      '--exception-policy',
      'midstream=pass-flow',
      '--exception-policy',
      'app-layer-error=pass-flow',
      '--reassembly-memcap',
      '3500',
      '--stats',
      'stats.json',
      'mixed.pcap',
    );
    expect(r.rc, r.err).toBe(0);
    // the midstream session's evil and the bad request's session's are not inspected
    expect(r.out.match(/\[1:1:0\]/g)?.length).toBe(2);
    const stats = JSON.parse(readFileSync(join(dir, 'stats.json'), 'utf8'));
    // the default defragmenter rebuilds the fragmented segment: its session (an ACK first) is a second
    // midstream pick-up
    expect(exceptionCounts(stats)).toBe('reassemblyMemcap 0, midstream 2, appLayerError 1, defragMemcap 0');
    const ips = await ids(
      '--ips',
      '--exception-policy',
      'auto',
      '--reassembly-memcap',
      '3500',
      '--stats',
      's2.json',
      'mixed.pcap',
    );
    expect(ips.rc, ips.err).toBe(0);
    const s2 = JSON.parse(readFileSync(join(dir, 's2.json'), 'utf8'));
    expect(exceptionCounts(s2)).toBe('reassemblyMemcap 1, midstream 2, appLayerError 1, defragMemcap 0');
    expect(s2.flowsDropped).toBe(4);
  });

  it('refuses a policy that does not fit, an unknown one, and a memcap of 0, before reading anything', async () => {
    for (const [args, message] of [
      [['--exception-policy', 'midstream=drop-packet'], /midstream: drop-packet is not a midstream policy/],
      [['--midstream', '--exception-policy', 'midstream=drop-flow'], /only pass-flow or ignore/],
      [['--exception-policy', 'midstream=drop-flow'], /drop-flow needs IPS mode/],
      [['--exception-policy', 'drop'], /drop is not a policy/],
      [['--exception-policy', 'flow-memcap=drop-flow'], /no exception named flow-memcap/],
      [['--reassembly-memcap', '0'], /at least 1 byte/],
    ] as const) {
      const r = await ids(...args, 'missing.pcap');
      expect(r.rc, args.join(' ')).toBe(2);
      expect(r.err).toMatch(message);
    }
  });
});
