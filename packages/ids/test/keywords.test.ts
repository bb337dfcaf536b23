import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import { describe, expect, it } from 'vitest';
import {
  DceDatagramDefrag,
  DceSession,
  dceDatagramCallsMax,
  dceDatagramFragmentsMax,
  dceDefragBytesMax,
  rpcHttpHeadBytesMax,
} from '../src/dcerpc.js';
import {
  type Alert,
  commands,
  Engine,
  type EngineOptions,
  encodePcap,
  ParallelRunner,
  parseRule,
  type RunOptions,
  runCapture,
} from '../src/index.js';
import { bind, bindAck, le16, le32, request, uuidLe } from './dce-wire.js';
import { ACK, conversationFrames, FIN, handshake, PSH, pkt } from './helpers.js';

const bin = (...b: number[]) => Uint8Array.from(b);
const cat = (...parts: (Uint8Array | string)[]) =>
  new Uint8Array(
    Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p)))),
  );
const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');

function engineOf(rules: string[], opts: EngineOptions = {}): Engine {
  const e = new Engine(
    rules.map((r, i) => parseRule(r, 't.rules', i + 1)),
    opts,
  );
  expect(e.skipped).toEqual([]);
  return e;
}

/** Sids that fire on one UDP packet carrying `payload`. */
function fires(rules: string[], payload: string | Uint8Array): number[] {
  return engineOf(rules)
    .inspect(pkt({ proto: 17, payload }), 0)
    .map((a) => a.sid);
}

/** Why a rule does not load (the engine's reason), or undefined when it does. */
function refused(rule: string): string | undefined {
  const e = new Engine([parseRule(rule, 't.rules', 1)]);
  return e.skipped[0]?.reason;
}

/**
 * Alerts of a TCP session (client 10.0.0.1:40000, server 10.0.0.2 on `port`) whose segments go in order,
 * each acknowledged, with stream data inspected as it arrives.
 */
function session(
  rules: string[],
  segments: [0 | 1, Uint8Array][],
  port = 443,
  engine?: (e: Engine) => void,
): Alert[] {
  const e = engineOf(rules, { streamRelease: 'immediate' });
  engine?.(e);
  const C = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000, dp: port };
  const S = { src: '10.0.0.2', dst: '10.0.0.1', sp: port, dp: 40000 };
  const out: Alert[] = [];
  let ts = 0;
  for (const p of handshake('10.0.0.1', '10.0.0.2', 40000, port)) out.push(...e.inspect(p, ts++));
  const seq = [1001, 5001];
  for (const [dir, data] of segments) {
    const [from, to] = dir === 0 ? [C, S] : [S, C];
    out.push(
      ...e.inspect(pkt({ ...from, flags: ACK | PSH, seq: seq[dir], ack: seq[1 - dir], payload: data }), ts++),
    );
    seq[dir]! += data.length;
    out.push(...e.inspect(pkt({ ...to, flags: ACK, seq: seq[1 - dir], ack: seq[dir] }), ts++));
  }
  out.push(...e.inspect(pkt({ ...C, flags: ACK | FIN, seq: seq[0], ack: seq[1] }), ts++));
  out.push(...e.inspect(pkt({ ...S, flags: ACK | FIN, seq: seq[1], ack: seq[0]! + 1 }), ts++));
  out.push(...e.finish());
  return out;
}

const sidsOf = (a: Alert[]) => a.map((x) => x.sid).sort((x, y) => x - y);

describe('asn1', () => {
  const rule = (opts: string, sid: number, pre = '') =>
    `alert udp any any -> any any (${pre}asn1:${opts}; sid:${sid};)`;

  it('oversize_length: an element longer than N, nested ones too, and a length the packet does not carry', () => {
    // SEQUENCE (length 12) { OCTET STRING (length 10) }
    const seq = bin(0x30, 0x0c, 0x04, 0x0a, ...new Array(10).fill(0x41));
    expect(
      fires(
        [rule('oversize_length 11', 1), rule('oversize_length 12', 2), rule('oversize_length 9', 3)],
        seq,
      ),
    ).toEqual([1, 3]);
    // an OCTET STRING claiming 65,536 bytes (long form, 3 octets) in a 7-byte datagram
    const claim = bin(0x04, 0x83, 0x01, 0x00, 0x00, 0x41, 0x41);
    expect(fires([rule('oversize_length 1024', 1), rule('oversize_length 65536', 2)], claim)).toEqual([1]);
  });

  it('bitstring_overflow: a primitive BIT STRING whose unused-bit count exceeds its bits; nested; not constructed', () => {
    const bad = bin(0x30, 0x05, 0x03, 0x03, 0xff, 0x00, 0x00); // 255 unused of 16 bits, inside a SEQUENCE
    const edge = bin(0x03, 0x03, 0x10, 0x00, 0x00); // 16 unused of 16: not more
    const over = bin(0x03, 0x03, 0x11, 0x00, 0x00); // 17 unused of 16
    const constructed = bin(0x23, 0x03, 0xff, 0x00, 0x00); // constructed: its contents are elements
    const r = [rule('bitstring_overflow', 1)];
    expect(fires(r, bad)).toEqual([1]);
    expect(fires(r, edge)).toEqual([]);
    expect(fires(r, over)).toEqual([1]);
    expect(fires(r, constructed)).toEqual([]);
  });

  it('double_overflow: a decimal-form REAL longer than 256 bytes', () => {
    const real = (len: number, first: number) =>
      cat(bin(0x09, 0x82, len >> 8, len & 0xff, first), new Uint8Array(len - 1).fill(0x31));
    const r = [rule('double_overflow', 1)];
    expect(fires(r, real(257, 0x03))).toEqual([1]);
    expect(fires(r, real(256, 0x03))).toEqual([]);
    expect(fires(r, real(300, 0x80))).toEqual([]); // binary form
    // the tests are ORed
    expect(fires([rule('bitstring_overflow, double_overflow', 2)], real(257, 0x03))).toEqual([2]);
  });

  it('absolute_offset and relative_offset choose where decoding starts; malformed data ends it', () => {
    // a 5-octet length is malformed: decoding from 0 stops there and never reaches the bad BIT STRING
    const p = cat(bin(0x04, 0x85, 0x00), bin(0x03, 0x01, 0xff));
    expect(
      fires(
        [
          rule('bitstring_overflow', 1),
          rule('bitstring_overflow, absolute_offset 0', 2),
          rule('bitstring_overflow, absolute_offset 3', 3),
          rule('bitstring_overflow, relative_offset 0', 4, 'content:"|04 85 00|"; '),
          rule('bitstring_overflow, relative_offset -1', 5, 'content:"|04 85 00 03|"; '),
          rule('bitstring_overflow, relative_offset 1', 6, 'content:"|04 85 00|"; '),
          rule('bitstring_overflow, absolute_offset 6', 7),
        ],
        p,
      ),
    ).toEqual([3, 4, 5]);
  });

  it('deep nesting and long runs of elements are bounded, never a throw', () => {
    const deep = new Uint8Array(20_000);
    for (let i = 0; i < deep.length; i += 2) deep.set([0x30, 0x80], i);
    expect(fires([rule('oversize_length 100000', 1)], deep)).toEqual([]);
    const many = new Uint8Array(8_000).fill(0x05).map((v, i) => (i % 2 ? 0 : v)); // NULLs
    expect(fires([rule('bitstring_overflow', 1)], cat(many, bin(0x03, 0x01, 0xff)))).toEqual([]);
  });

  it('bad arguments are refused with the reason', () => {
    expect(refused(rule('foo', 1))).toMatch(/asn1: unknown argument 'foo'/);
    expect(refused(rule('absolute_offset 0', 1))).toMatch(/needs at least one of/);
    expect(refused(rule('oversize_length', 1))).toMatch(/oversize_length needs an integer/);
    expect(refused(rule('double_overflow, absolute_offset 0, relative_offset 1', 1))).toMatch(
      /exclude each other/,
    );
  });
});

describe('base64_decode and base64_data', () => {
  it('decodes from the cursor and matches in the decoded bytes only', () => {
    const rules = [
      'alert udp any any -> any any (content:"GET http://",depth 11; base64_decode:relative; base64_data; content:"clk="; content:"&bid=",distance 0; sid:1;)',
      'alert udp any any -> any any (content:"GET http://",depth 11; base64_decode:relative; base64_data; content:"nope"; sid:2;)',
      // the decoded buffer is its own: offset/depth count from its start
      'alert udp any any -> any any (content:"GET http://"; base64_decode:relative; base64_data; content:"clk=",depth 4; sid:3;)',
      'alert udp any any -> any any (base64_decode; base64_data; content:"clk="; sid:4;)',
    ];
    const p = `GET http://${b64('clk=6&bid=42&aid=7')} HTTP/1.1\r\n`;
    expect(fires(rules, p)).toEqual([1, 3]);
    // the plain text is not the decoded buffer
    expect(fires(rules, 'GET http://clk=6&bid=42 HTTP/1.1\r\n')).toEqual([]);
  });

  it('bytes, offset, folded lines and the end of the encoded data', () => {
    const r = (opts: string, want: string, sid: number) =>
      `alert udp any any -> any any (base64_decode${opts}; base64_data; content:"${want}"; sid:${sid};)`;
    const hello = b64('hello'); // aGVsbG8=
    expect(fires([r(':bytes 4', 'hel', 1), r(':bytes 4', 'hell', 2)], hello)).toEqual([1]);
    expect(fires([r(':offset 2', 'hello', 1), r('', 'hello', 2)], `xx${hello}`)).toEqual([1]);
    expect(fires([r('', 'hello', 1)], 'aGVs\r\n bG8=')).toEqual([1]); // folded
    expect(fires([r('', 'hello', 1), r('', 'hel', 2)], 'aGVs\r\nbG8=')).toEqual([2]); // not folded: ends
    expect(fires([r('', 'hello', 1)], 'aGVs!bG8=')).toEqual([]); // outside the alphabet: ends
  });

  it('on an HTTP buffer: an Authorization header decoded', () => {
    const rules = [
      'alert tcp any any -> any 80 (flow:to_server,established; http_header; content:"Authorization: Basic "; base64_decode:relative; base64_data; content:"${jndi:"; sid:1;)',
      'alert tcp any any -> any 80 (flow:to_server,established; http_header; content:"Authorization: Basic "; base64_decode:relative; base64_data; content:"${lower:"; sid:2;)',
    ];
    const req = `GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ${b64(['$', '{jndi:ldap://e/a}'].join(''))}\r\n\r\n`;
    expect(sidsOf(session(rules, [[0, cat(req)]], 80))).toEqual([1]);
  });

  it('needs both keywords, in order, with nothing between them', () => {
    expect(refused('alert udp any any -> any any (base64_data; content:"a"; sid:1;)')).toMatch(
      /base64_data needs a base64_decode before it/,
    );
    expect(refused('alert udp any any -> any any (base64_decode; content:"a"; sid:1;)')).toMatch(
      /base64_decode needs a base64_data after it/,
    );
    expect(refused('alert udp any any -> any any (base64_decode; content:"a"; base64_data; sid:1;)')).toMatch(
      /must follow its base64_decode/,
    );
    expect(refused('alert udp any any -> any any (base64_decode:bytes 0; base64_data; sid:1;)')).toMatch(
      /bytes must be positive/,
    );
    expect(refused('alert udp any any -> any any (base64_decode:depth 3; base64_data; sid:1;)')).toMatch(
      /unknown argument 'depth 3'/,
    );
  });
});

describe('isdataat with a byte_extract variable', () => {
  it('tests the extracted length; an unset variable fails', () => {
    const r = ['alert udp any any -> any any (byte_extract:1,0,len; isdataat:!len,relative; sid:1;)'];
    expect(fires(r, bin(5, 1, 2, 3))).toEqual([1]); // 5 more bytes are not there
    expect(fires(r, bin(3, 1, 2, 3))).toEqual([]); // 3 are
    // absolute: byte n exists (counting from 0)
    const abs = ['alert udp any any -> any any (byte_extract:1,0,n; isdataat:n; sid:1;)'];
    expect(fires(abs, bin(2, 1, 2))).toEqual([1]);
    expect(fires(abs, bin(3, 1, 2))).toEqual([]);
  });
});

describe('SIP', () => {
  const invite =
    'INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nUser-Agent: () { :; }; x\r\nContent-Length: 9\r\n\r\nbody-text';
  const notFound = 'SIP/2.0 404 Not Found\r\nVia: SIP/2.0/UDP 10.0.0.1\r\n\r\n';
  const r = (opts: string, sid: number) => `alert udp any any -> any any (${opts}; sid:${sid};)`;

  it('sip_method: listed methods (any case), negation, requests only', () => {
    const rules = [
      r('sip_method:invite', 1),
      r('sip_method:options', 2),
      r('sip_method:!invite', 3),
      r('sip_method:bye,INVITE', 4),
      r('sip_method:!bye', 5),
    ];
    expect(fires(rules, invite)).toEqual([1, 4, 5]);
    expect(fires(rules, notFound)).toEqual([]);
    expect(fires(rules, 'INVITE / HTTP/1.1\r\n\r\n')).toEqual([]); // not SIP
  });

  it('sip_stat_code: exact codes and class digits, responses only', () => {
    const rules = [r('sip_stat_code:4', 1), r('sip_stat_code:404', 2), r('sip_stat_code:180,5', 3)];
    expect(fires(rules, notFound)).toEqual([1, 2]);
    expect(fires(rules, 'SIP/2.0 180 Ringing\r\n\r\n')).toEqual([3]);
    expect(fires(rules, invite)).toEqual([]);
  });

  it('sip_header and sip_body are the message parts, not the whole payload', () => {
    const rules = [
      r('sip_header; content:"() {"', 1),
      r('sip_header; content:"body-text"', 2),
      r('sip_body; content:"body-text"', 3),
      r('sip_body; content:"() {"', 4),
      r('sip_header; content:"INVITE"', 5), // the start line is not a header field
      r('sip_header; content:"Via:",depth 4', 6), // the buffer starts at the first field
    ];
    expect(fires(rules, invite)).toEqual([1, 3, 6]);
  });

  it('over TCP: the message at the start of the delivered stream bytes', () => {
    const rules = [
      'alert tcp any any -> any 5060 (flow:to_server,established,only_stream; sip_method:options; content:"SIP/2.0",nocase; sid:1;)',
      'alert tcp any 5060 -> any any (flow:to_client,established,only_stream; sip_stat_code:180; sid:2;)',
    ];
    const a = session(
      rules,
      [
        [0, cat('OPTIONS sip:x SIP/2.0\r\nVia: y\r\n\r\n')],
        [1, cat('SIP/2.0 180 Ringing\r\n\r\n')],
      ],
      5060,
    );
    expect(sidsOf(a)).toEqual([1, 2]);
  });

  it('over TCP: every message of a delivery, a header in pieces, bodies by Content-Length', () => {
    const rules = [
      'alert tcp any any -> any 5060 (flow:to_server,established; sip_method:bye; sid:1;)',
      'alert tcp any any -> any 5060 (flow:to_server,established; sip_method:invite; sip_body; content:"v=0"; sid:2;)',
      'alert tcp any any -> any 5060 (flow:to_server,established; sip_method:cancel; sip_header; content:"X-Evil"; sid:3;)',
      'alert tcp any any -> any 5060 (flow:to_server,established; sip_method:register; sid:4;)',
    ];
    // a body that looks like a message, two messages in one segment, then a header cut in two
    const invite =
      'INVITE sip:b SIP/2.0\r\nContent-Length: 33\r\n\r\nv=0\r\nREGISTER sip:x SIP/2.0\r\n\r\n..';
    const a = session(
      rules,
      [
        [0, cat(invite, 'BYE sip:b SIP/2.0\r\nl: 0\r\n\r\n')],
        [0, cat('CANCEL sip:b SIP/2.0\r\nX-Ev')],
        [0, cat('il: 1\r\n\r\n')],
      ],
      5060,
    );
    // the REGISTER line is body: no sid 4; sip_header of the CANCEL is whole although it came in two pieces
    expect(sidsOf(a)).toEqual([1, 2, 3]);
  });

  it('a header section in pieces is charged to the reassembly budget until it completes, all given back', () => {
    const held = (rules: string[]) => {
      const e = engineOf(rules, { streamRelease: 'immediate' });
      const C = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000, dp: 5060 };
      let ts = 0;
      for (const p of handshake('10.0.0.1', '10.0.0.2', 40000, 5060)) e.inspect(p, ts++);
      const part = cat('INVITE sip:b SIP/2.0\r\nVia: x\r\n');
      e.inspect(pkt({ ...C, flags: ACK | PSH, seq: 1001, ack: 5001, payload: part }), ts++);
      const during = e.budget.bytes;
      e.finish();
      return { during, after: e.budget.bytes, part: part.length };
    };
    const sip = held(['alert tcp any any -> any 5060 (sip_method:invite; sid:1;)']);
    const plain = held(['alert tcp any any -> any 5060 (content:"INVITE"; sid:1;)']);
    expect(sip.during - plain.during).toBe(sip.part);
    expect([sip.after, plain.after]).toEqual([0, 0]);
  });

  it('bad values are refused with the reason', () => {
    expect(refused(r('sip_stat_code:42', 1))).toMatch(/sip_stat_code: expected a status code/);
    expect(refused(r('sip_method:in vite', 1))).toMatch(/sip_method: expected a method name/);
    expect(refused(r('sip_header:x', 1))).toMatch(/sip_header takes no value/);
  });
});

/** A TLS record. */
const record = (type: number, version: number, body: Uint8Array) =>
  cat(bin(type, version >> 8, version & 0xff, body.length >> 8, body.length & 0xff), body);
/** A handshake message. */
const hs = (type: number, body: Uint8Array) =>
  cat(bin(type, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff), body);

describe('ssl_state and ssl_version', () => {
  const clientHello = record(22, 0x0301, hs(1, cat(bin(0x03, 0x03), new Uint8Array(40))));
  // ServerHello and a Certificate naming MyCompany Ltd in one record, then a ServerKeyExchange
  const serverFlight = record(
    22,
    0x0303,
    cat(hs(2, cat(bin(0x03, 0x03), new Uint8Array(38))), hs(11, cat('..|0E|', 'MyCompany Ltd', '..'))),
  );
  const ske = record(22, 0x0303, hs(12, new Uint8Array(64)));
  const ckx = cat(record(22, 0x0303, hs(16, new Uint8Array(70))), record(20, 0x0303, bin(1)));
  const appData = (s: string) => record(23, 0x0303, cat(s));

  const rules = [
    'alert tcp any any -> any 443 (flow:to_server,established; ssl_state:client_hello; sid:1;)',
    'alert tcp any 443 -> any any (flow:to_client,established; ssl_state:server_hello; content:"MyCompany Ltd"; sid:2;)',
    'alert tcp any 443 -> any any (flow:to_client,established; ssl_state:server_keyx; sid:3;)',
    'alert tcp any any -> any 443 (flow:to_server,established; ssl_state:client_keyx; sid:4;)',
    'alert tcp any any -> any 443 (flow:to_server,established; ssl_state:!client_hello; content:"secret"; sid:5;)',
    'alert tcp any 443 -> any any (flow:to_client,established; ssl_version:tls1.2; content:"MyCompany"; sid:6;)',
    'alert tcp any 443 -> any any (flow:to_client,established; ssl_version:sslv3,sslv2; content:"MyCompany"; sid:7;)',
    'alert tcp any any -> any 443 (flow:to_server,established; ssl_state:unknown; sid:8;)',
  ];

  it('handshake messages by delivery, however records and messages are split; versions of the session', () => {
    const a = session(rules, [
      [0, clientHello],
      [1, serverFlight],
      // a ServerKeyExchange whose record and message headers are split across two segments
      [1, ske.subarray(0, 3)],
      [1, ske.subarray(3, 7)],
      [1, ske.subarray(7)],
      [0, ckx],
      // the certificate's name again, later, in application data: no server_hello in that delivery
      [1, appData('MyCompany Ltd')],
      [0, appData('secret')],
    ]);
    // sid 6 fires twice (the certificate and the application data: tls1.2 holds for the session)
    expect(sidsOf(a)).toEqual([1, 2, 3, 4, 5, 6, 6]);
    // the server_keyx alert is raised on the segment that completed the message header
    expect(a.filter((x) => x.sid === 3)).toHaveLength(1);
  });

  it('an SSLv2 ClientHello (the community rules 2656/2657 shape); a stream that is not TLS is unknown', () => {
    // 2-byte header (0x80 | length), CLIENT-HELLO 1, version 0x0002, cipher-spec length 0x0015 ...
    const v2 = cat(bin(0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10), new Uint8Array(37));
    const r2 = [
      'alert tcp any any -> any 443 (flow:to_server,established; ssl_version:sslv2; ssl_state:client_hello; content:"|01 00 02|",depth 3,offset 2; byte_test:2,>,20,5; sid:1;)',
      'alert tcp any any -> any 443 (flow:to_server,established; ssl_version:tls1.0; ssl_state:client_hello; sid:2;)',
      rules[7]!,
    ];
    expect(sidsOf(session(r2, [[0, v2]]))).toEqual([1]);
    expect(sidsOf(session(r2, [[0, cat('GET / HTTP/1.1\r\n\r\n')]]))).toEqual([8]);
    // packets alone (no stream) carry no SSL state
    expect(
      engineOf([r2[0]!])
        .inspect(pkt({ dp: 443, payload: v2 }), 0)
        .map((x) => x.sid),
    ).toEqual([]);
  });

  it('bad values are refused with the reason', () => {
    expect(refused('alert tcp any any -> any any (ssl_state:client_helo; sid:1;)')).toMatch(
      /ssl_state: unknown state 'client_helo'/,
    );
    expect(refused('alert tcp any any -> any any (ssl_version:tls1.4; sid:1;)')).toMatch(
      /ssl_version: unknown version 'tls1.4'/,
    );
  });
});

describe('pcre: PCRE features JavaScript lacks, rewritten', () => {
  const r = (pcre: string, sid: number, pre = '') =>
    `alert udp any any -> any any (${pre}pcre:"${pcre}"; sid:${sid};)`;

  it('(?-i) part-way: case-insensitive before it, exact after it', () => {
    const rules = [r('/^Authorization\\x3a\\s*Basic\\s+(?-i)YWRt[=\\s]/smi', 1)];
    expect(fires(rules, 'AUTHORIZATION:  basic YWRt=')).toEqual([1]);
    expect(fires(rules, 'Authorization: Basic ywrt=')).toEqual([]);
    expect(fires(rules, 'Authorization: Basic YWRT=')).toEqual([]);
  });

  it('A anchors at the start of the buffer, or at the cursor with R; not after a newline', () => {
    const rules = [r('/abc/A', 1), r('/abc/AR', 2, 'content:"x"; '), r('/abc/Am', 3), r('/abc/', 4)];
    expect(fires(rules, 'abc')).toEqual([1, 3, 4]);
    expect(fires(rules, 'xabc')).toEqual([2, 4]);
    expect(fires(rules, 'xzabc')).toEqual([4]);
    expect(fires(rules, 'z\nabc')).toEqual([4]);
  });

  it('$ matches at the end and before a final LF, whichever expression the engine picks', () => {
    const rules = [r('/abc$/', 1), r('/abc\\Z/', 2), r('/abc$/E', 3), r('/^abc$/m', 4)];
    expect(fires(rules, 'abc')).toEqual([1, 2, 3, 4]);
    expect(fires(rules, 'xabc\n')).toEqual([1, 2]);
    expect(fires(rules, 'abc\r\n')).toEqual([]);
    expect(fires(rules, 'abc\nabc\n')).toEqual([1, 2, 4]);
    expect(fires(rules, 'abc\n\n')).toEqual([4]);
  });

  it('inline option changes anywhere; what is still not expressible is refused with the reason', () => {
    // (?i) part-way and (?-i) after a class: both cases of each letter where caseless
    expect(fires([r('/a(?i)b/', 1)], 'aB')).toEqual([1]);
    expect(fires([r('/a(?i)b/', 1)], 'AB')).toEqual([]);
    expect(fires([r('/[a-z]x(?-i)b/i', 1)], 'QXb')).toEqual([1]);
    expect(fires([r('/[a-z]x(?-i)b/i', 1)], 'QXB')).toEqual([]);
    expect(refused(r('/a/iJ', 1))).toMatch(/flag 'J' is not supported/);
    expect(refused(r('abc', 1))).toMatch(/expected \/regex\/flags/);
    // malformed, and PCRE that JavaScript lacks: the reason and where
    expect(refused(r('/(a/', 1))).toBe(`pcre '"/(a/"': missing ) for the ( at offset 0`);
    expect(refused(r('/a++/', 1))).toMatch(/possessive quantifiers \(atomic matching\) are not supported/);
    expect(refused(r('/(a/A', 1))).toBe(`pcre '"/(a/A"': missing ) for the ( at offset 0`);
    expect(refused(r('/ab(?-i)(c/i', 1))).toBe(`pcre '"/ab(?-i)(c/i"': missing ) for the ( at offset 7`);
    // what V8 alone refuses: its reason, not the rewritten source it quotes
    expect(refused(r('/(?<n>a)(?<n>b)/', 1))).toBe(
      `pcre '"/(?<n>a)(?<n>b)/"': does not compile: Duplicate capture group name`,
    );
  });
});

describe('duplicate gid:sid', () => {
  it('a higher rev replaces the rule loaded before it; an equal or lower one is refused (as Suricata)', () => {
    const rule = (sid: number, rev: number, content: string, gid = 1) =>
      `alert udp any any -> any any (msg:"r${rev}"; content:"${content}"; gid:${gid}; sid:${sid}; rev:${rev};)`;
    const texts = [
      rule(7, 1, 'one'),
      rule(7, 3, 'three'),
      rule(7, 2, 'two'),
      rule(7, 3, 'again'),
      rule(7, 1, 'other gid', 2),
    ];
    const e = new Engine(texts.map((r, i) => parseRule(r, 't.rules', i + 1)));
    expect(e.compiled.map((c) => [c.rule.gid, c.rule.sid, c.rule.rev, c.rule.msg])).toEqual([
      [1, 7, 3, 'r3'],
      [2, 7, 1, 'r1'],
    ]);
    expect(e.skipped).toHaveLength(3);
    const fire = (payload: string) => e.inspect(pkt({ proto: 17, payload }), 0).map((a) => a.msg);
    expect(fire('one two again three')).toEqual(['r3']);
  });
});

describe('pcre: a match limit, as PCRE has', () => {
  // community rule sid 2417 (PROTOCOL-FTP format string attempt), its pcre over UDP here
  const rule = 'alert udp any any -> any any (content:"%"; pcre:"/\\s+.*?%.*?%/smi"; sid:2417;)';
  const sids = (payload: string, opts: EngineOptions = {}) =>
    engineOf([rule], opts)
      .inspect(pkt({ proto: 17, payload }), 0)
      .map((a) => a.sid);

  it('a payload built against a rule ends its pcre after the bound: no alert, no hang', () => {
    // blanks and one % over a 4 KiB buffer (the stream window): every start, every first % and every place
    // after it are tried, more than 3 s here without a bound (growing with the cube of the length)
    const evil = `SITE ${' '.repeat(4_090)}%`;
    // a hang detector, not a speed target: about 15 ms with the default bound, 14 s without one
    const t0 = performance.now();
    expect(sids(evil)).toEqual([]);
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(sids(evil, { pcreBacktracksMax: 1_000 })).toEqual([]);
  });

  it('a pcre that starts with a loop is not tried at every start of a run the loop would take', () => {
    // sid 26951's shape: V8 tries each start and runs [^&]+ to the end of the run from each (no bound
    // counts that): quadratic, about 4.6 s over 64 KB here; guarded by a lookbehind, one start per run
    const loop = 'alert udp any any -> any any (content:"&"; pcre:"/[^&]+&[a-z]=[a-f0-9]{16}$/"; sid:9;)';
    const fire = (payload: string) =>
      engineOf([loop], { pcreBacktracksMax: 0 })
        .inspect(pkt({ proto: 17, payload }), 0)
        .map((a) => a.sid);
    const t0 = performance.now();
    expect(fire(`${'a'.repeat(65_000)}&`)).toEqual([]);
    // a hang detector, not a speed target: a few ms guarded
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(fire(`${'a'.repeat(1_000)}&b=${'0'.repeat(16)}`)).toEqual([9]);
    expect(fire(`x&y&b=${'0'.repeat(16)}`)).toEqual([9]);
    expect(fire(`x&y&b=${'0'.repeat(15)}`)).toEqual([]);
  });

  it('matches as without a bound while the bound is not reached, and 0 turns it off', () => {
    expect(sids('SITE EXEC %p%p')).toEqual([2417]);
    expect(sids('SITE EXEC %p%p', { pcreBacktracksMax: 0 })).toEqual([2417]);
    // a match found after about 2^12 backtracks (the first alternative fails, the second matches): within
    // the default bound, past a tiny one
    const alt = 'alert udp any any -> any any (content:"b"; pcre:"/^(?:a|a)*c|^a*b/"; sid:7;)';
    const late = (opts: EngineOptions = {}) =>
      engineOf([alt], opts)
        .inspect(pkt({ proto: 17, payload: `${'a'.repeat(12)}b` }), 0)
        .map((a) => a.sid);
    expect(late()).toEqual([7]);
    expect(late({ pcreBacktracksMax: 0 })).toEqual([7]);
    expect(late({ pcreBacktracksMax: 10 })).toEqual([]);
  });

  it("an engine made after V8 dropped the bound maker's code loads its pcre rules (they were all refused)", () => {
    // a worker's first engine, work, the next rule set: V8 drops the bytecode of a function unused through
    // a few major collections (--stress-flush-code: at every one), then compiles it again at its call; in
    // a full test run a worker lost every pcre rule so, and with it an alert the one-engine run raised
    const url = new URL('../src/index.ts', import.meta.url).href;
    const code = `
      import(${JSON.stringify(url)}).then(({ Engine, parseRule }) => {
        const rule = parseRule(${JSON.stringify(rule)});
        const out = [];
        for (let round = 0; round < 3; round++) {
          const e = new Engine([rule]);
          out.push(e.compiled.length + '/' + e.skipped.map((s) => s.reason).join());
          for (let k = 0; k < 4; k++) globalThis.gc();
        }
        console.log(out.join(' '));
      }, (e) => console.log(String(e)));`;
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--expose-gc',
        '--flush-bytecode',
        '--stress-flush-code',
        '--input-type=module',
        '-e',
        code,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.stdout.trim()).toBe('1/ 1/ 1/');
  }, 60_000);
});

describe('DCE/RPC: dce_iface, dce_opnum, dce_stub_data, byte_* dce', () => {
  const lsass = '3919286a-b10c-11d0-9ba8-00c04fd92ef5';
  const winreg = '338cd001-2244-31f1-aaaa-900038001003';

  /** A connectionless request (80-byte header) in a datagram. */
  function clRequest(
    iface: string,
    opnum: number,
    stub: number[],
    o: { big?: boolean; frag?: number; flags1?: number; seq?: number } = {},
  ) {
    const h = new Uint8Array(80);
    h[0] = 4;
    h[2] = o.flags1 ?? 0;
    h[4] = o.big ? 0x00 : 0x10;
    h.set(le32(o.seq ?? 0), 64);
    const u = uuidLe(iface);
    h.set(o.big ? [...Buffer.from(iface.replace(/-/g, ''), 'hex')] : u, 24);
    const put16 = (at: number, v: number) => h.set(o.big ? [v >> 8, v & 0xff] : le16(v), at);
    h.set(o.big ? [0, 0, 0, 1] : le32(1), 60); // interface version 1
    put16(68, opnum);
    put16(74, stub.length);
    put16(76, o.frag ?? 0);
    return cat(h, Uint8Array.from(stub));
  }

  it('connectionless (UDP): interface, opnum, first fragment, stub byte order for byte_test dce', () => {
    const r = (opts: string, sid: number) => `alert udp any any -> any 135 (${opts}; sid:${sid};)`;
    const rules = [
      r(`dce_iface:uuid ${lsass}; dce_opnum:"9"; dce_stub_data; byte_test:4,>,256,0,dce`, 1),
      r(`dce_iface:uuid ${lsass}; dce_opnum:"8,10-12"`, 2),
      r(`dce_iface:uuid ${winreg}`, 3),
      r(`dce_iface:uuid ${lsass}, any_frag; dce_opnum:"9"`, 4),
      r(`dce_iface:uuid ${lsass}, version >1`, 5),
      r(`dce_iface:uuid ${lsass}, version =1; dce_stub_data; content:"|2c 01|",depth 2`, 6),
    ];
    const on = (p: Uint8Array) =>
      engineOf(rules)
        .inspect(pkt({ proto: 17, dp: 135, payload: p }), 0)
        .map((a) => a.sid);
    expect(on(clRequest(lsass, 9, le32(300)))).toEqual([1, 4, 6]);
    expect(on(clRequest(lsass, 9, le32(200)))).toEqual([4]);
    expect(on(clRequest(lsass, 11, le32(300)))).toEqual([2, 6]);
    // big-endian data representation: the stub's number is read big-endian
    expect(on(clRequest(lsass, 9, [0, 0, 1, 44], { big: true }))).toEqual([1, 4]);
    // a later fragment: only any_frag
    expect(on(clRequest(lsass, 9, le32(300), { frag: 1 }))).toEqual([4]);
    expect(on(cat('not dce/rpc at all, but long enough to hold a header of eighty bytes ........'))).toEqual(
      [],
    );
  });

  it('connectionless (UDP): a call sent in fragments is reassembled, in any order; its stub is matched whole', () => {
    const r = (opts: string, sid: number) => `alert udp any any -> any 135 (${opts}; sid:${sid};)`;
    const rules = [
      r(`dce_iface:uuid ${lsass}; dce_opnum:"9"; dce_stub_data; content:"EVILPAYLOAD"`, 1),
      r(`dce_iface:uuid ${lsass}, any_frag; dce_stub_data; content:"EVIL"`, 2),
    ];
    const stub = [...Buffer.from('....EVILPAYLOAD....')];
    // fragments 0, 1, 2 of call 5 (the fragment flag 0x04, the last 0x02 as well): '....', 'EVILPAY',
    // 'LOAD....'
    const frag = (n: number, seq = 5) =>
      clRequest(lsass, n === 0 ? 9 : 77, stub.slice([0, 4, 11][n], [4, 11, 99][n]), {
        frag: n,
        flags1: n === 2 ? 0x06 : 0x04,
        seq,
      });
    const e = engineOf(rules);
    const on = (p: Uint8Array, ts: number) =>
      e.inspect(pkt({ proto: 17, dp: 135, payload: p }), ts).map((a) => a.sid);
    // out of order, fragment 2 twice, and a fragment of another call (sequence 6) between them
    expect(on(frag(2), 0)).toEqual([]);
    expect(on(frag(0), 1)).toEqual([]);
    expect(on(frag(2), 2)).toEqual([]);
    expect(on(frag(1, 6), 3)).toEqual([2]); // call 6's fragment holds EVIL on its own (any_frag)
    // the last missing fragment completes the call: its stub whole matches sid 1 (a packet rule alerts
    // once per packet: sid 2 once, for the fragment or the stub)
    expect(on(frag(1), 4).sort()).toEqual([1, 2]);
    expect(e.stats.dceCallsReassembled).toBe(1);
    // a datagram without the fragment flag is not gathered; a later datagram that is no request on the same
    // flow sees no request (not the call completed before it)
    expect(on(clRequest(lsass, 9, stub.slice(0, 7), { frag: 0 }), 5)).toEqual([]);
    expect(on(frag(1), 6).sort()).toEqual([2]);
    expect(
      on(cat('EVILPAYLOAD, and long enough to hold a header of eighty bytes ..................'), 7),
    ).toEqual([]);
  });

  it('a connectionless call is let go past its bounds; the fragments held are counted', () => {
    const d = new DceDatagramDefrag();
    const frag = (n: number, body: number[], seq: number, last = false) =>
      clRequest(lsass, 9, body, { frag: n, flags1: last ? 0x06 : 0x04, seq });
    expect(d.feed(frag(0, [1, 2, 3], 1)).length).toBe(1);
    expect(d.heldBytes).toBe(3);
    // one call past dceDefragBytesMax: let go
    const big = new Array(40_000).fill(9);
    d.feed(frag(0, big, 2));
    expect(d.heldBytes).toBe(40_003);
    d.feed(frag(1, big, 2));
    expect(d.heldBytes).toBe(3);
    expect(d.feed(frag(2, [], 2, true)).length).toBe(1);
    // past dceDatagramCallsMax calls the oldest are let go (call 1's 3 bytes among them)
    for (let seq = 100; seq < 100 + dceDatagramCallsMax; seq++) d.feed(frag(0, [7], seq));
    expect(d.heldBytes).toBe(dceDatagramCallsMax);
    const done = d.feed(frag(1, [8], 100 + dceDatagramCallsMax - 1, true));
    expect(done.map((x) => (x.stub ? [...x.stub] : 'own'))).toEqual(['own', [7, 8]]);
    expect(d.heldBytes).toBe(dceDatagramCallsMax - 1);
    d.drop();
    expect(d.heldBytes).toBe(0);
    // not a fragment, or a number past dceDatagramFragmentsMax: nothing held
    d.feed(clRequest(lsass, 9, [1, 2], { frag: 0, seq: 3 }));
    d.feed(clRequest(lsass, 9, [1, 2], { frag: dceDatagramFragmentsMax, flags1: 0x04, seq: 3 }));
    expect(d.heldBytes).toBe(0);
    // a number past the one flagged last is not the call's, whichever comes first
    d.feed(frag(2, [5, 5], 4));
    d.feed(frag(0, [1], 4));
    expect(d.heldBytes).toBe(3);
    const four = d.feed(frag(1, [2], 4, true));
    expect(four.map((x) => (x.stub ? [...x.stub] : 'own'))).toEqual(['own', [1, 2]]);
    expect(d.heldBytes).toBe(0);
  });

  it('connection-oriented (TCP): contexts from the bind that the bind_ack accepted; a header split across segments', () => {
    const rules = [
      `alert tcp any any -> any 135 (flow:to_server,established; dce_iface:uuid ${winreg}; dce_opnum:"15"; dce_stub_data; byte_test:2,>,1024,20,dce; sid:1;)`,
      `alert tcp any any -> any 135 (flow:to_server,established; dce_iface:uuid ${lsass}; sid:2;)`,
      `alert tcp any any -> any 135 (flow:to_server,established; dce_iface:uuid ${winreg}; dce_opnum:"24"; sid:3;)`,
      `alert tcp any any -> any 135 (flow:to_server,established; dce_iface:uuid ${winreg}; dce_stub_data; content:"EVIL"; sid:4;)`,
    ];
    const stub = [...new Array(20).fill(0), ...le16(2000), ...Buffer.from('EVIL')];
    const req = request(0, 15, stub);
    const a = session(
      rules,
      [
        [
          0,
          bind([
            [0, winreg, 1],
            [1, lsass, 0],
          ]),
        ],
        [1, bindAck([0, 2])], // winreg accepted, lsass refused
        [0, request(1, 9, le32(5000))], // on the refused context: no interface
        [0, req.subarray(0, 10)],
        [0, req.subarray(10)],
        [0, request(0, 24, [])],
      ],
      135,
    );
    expect(sidsOf(a)).toEqual([1, 3, 4]);
    // the same requests with no bind_ack (a one-sided capture): no context is accepted
    const oneSided = session(
      rules,
      [
        [0, bind([[0, winreg, 1]])],
        [0, req],
      ],
      135,
    );
    expect(oneSided).toEqual([]);
  });

  it("RPC over HTTP v1: a server's ncacn_http/1.0, a proxy's RPC_CONNECT head and answer passed over", () => {
    const text = (t: string) => Uint8Array.from(Buffer.from(t, 'latin1'));
    const stub = [...new Array(20).fill(0), ...le16(2000), ...Buffer.from('EVIL')];
    const req = request(0, 15, stub);
    const rule = (port: number | string, sid: number) =>
      `alert tcp any any -> any ${port} (flow:to_server,established; dce_iface:uuid ${winreg}; dce_opnum:"15"; dce_stub_data; content:"EVIL"; byte_test:2,>,1024,20,dce; sid:${sid};)`;
    // the server mode (port 593): its marker first, here cut in two
    const server: [0 | 1, Uint8Array][] = [
      [1, text('ncacn_')],
      [1, text('http/1.0')],
      [0, bind([[0, winreg, 1]])],
      [1, bindAck([0])],
      [0, req],
    ];
    expect(sidsOf(session([rule(593, 1)], server, 593))).toEqual([1]);
    // through a proxy: the client's RPC_CONNECT head with the bind behind it, the proxy's answer with the
    // bind_ack behind it; then the call
    const head = text(
      'RPC_CONNECT srv.example:593 HTTP/1.1\r\nHost: srv.example\r\nContent-Length: 0\r\n\r\n',
    );
    const answer = text('HTTP/1.1 200 Success\r\nContent-Type:application/rpc\n\n');
    const proxied: [0 | 1, Uint8Array][] = [
      [0, cat(head, bind([[0, winreg, 1]]))],
      [1, cat(answer, bindAck([0]))],
      [0, req],
    ];
    expect(sidsOf(session([rule(80, 2)], proxied, 80))).toEqual([2]);
    // a call in the same delivery as the head: its stub where it lies past the head
    const stubOnly = `alert tcp any any -> any 80 (flow:to_server,established; dce_stub_data; content:"EVIL"; byte_test:2,>,1024,20,dce; sid:3;)`;
    expect(sidsOf(session([stubOnly], [[0, cat(head, req)]], 80))).toEqual([3]);
    // an answer that is HTTP without the client's RPC_CONNECT: not a preamble, no bind_ack read
    const plainHttp: [0 | 1, Uint8Array][] = [
      [0, bind([[0, winreg, 1]])],
      [1, cat(answer, bindAck([0]))],
      [0, req],
    ];
    expect(session([rule(80, 2)], plainHttp, 80)).toEqual([]);
    // a head past its bound, or a marker that goes wrong: the direction is not DCE/RPC
    const long = text(`RPC_CONNECT x:593 HTTP/1.1\r\nX: ${'a'.repeat(rpcHttpHeadBytesMax)}\r\n\r\n`);
    expect(session([stubOnly], [[0, cat(long, req)]], 80)).toEqual([]);
    expect(session([stubOnly], [[0, cat(text('RPC_CONNEXT x:593 HTTP/1.1\r\n\r\n'), req)]], 80)).toEqual([]);
    const wrongMarker: [0 | 1, Uint8Array][] = [[1, text('ncacn_http/2.0')], ...server.slice(2)];
    expect(session([rule(593, 1)], wrongMarker, 593)).toEqual([]);
  });

  it('connection-oriented (TCP): a request in several segments is read whole, its stub not cut', () => {
    const rules = [
      `alert tcp any any -> any 135 (flow:to_server,established; dce_iface:uuid ${winreg}; dce_opnum:"15"; dce_stub_data; content:"EVIL"; byte_test:2,>,1000,30,dce; sid:1;)`,
    ];
    // the content and the number tested lie past the first segment's end
    const stub = [
      ...new Array(30).fill(0x41),
      ...le16(2000),
      ...new Array(1500).fill(0x42),
      ...Buffer.from('EVIL'),
    ];
    const req = request(0, 15, stub);
    const bound: [0 | 1, Uint8Array][] = [
      [0, bind([[0, winreg, 1]])],
      [1, bindAck([0])],
    ];
    for (const cuts of [[40], [1460], [24, 30, 1000]]) {
      const segments: [0 | 1, Uint8Array][] = [...bound];
      let at = 0;
      for (const n of [...cuts, req.length]) {
        if (at >= req.length) break;
        segments.push([0, req.subarray(at, Math.min(req.length, n))]);
        at = Math.min(req.length, n);
      }
      expect([cuts, sidsOf(session(rules, segments, 135))]).toEqual([cuts, [1]]);
    }
  });

  it('connection-oriented (TCP): a call sent in fragments is reassembled; its stub is matched whole', () => {
    const rules = [
      `alert tcp any any -> any 135 (flow:to_server,established; dce_iface:uuid ${winreg}; dce_opnum:"15"; dce_stub_data; content:"EVILPAYLOAD"; sid:1;)`,
      `alert tcp any any -> any 135 (flow:to_server,established; dce_iface:uuid ${winreg}; dce_stub_data; byte_test:2,>,1024,20,dce; sid:2;)`,
      `alert tcp any any -> any 135 (flow:to_server,established; dce_iface:uuid ${winreg}; dce_stub_data; content:"EVIL"; sid:3;)`,
      `alert tcp any any -> any 135 (flow:to_server,established; dce_iface:uuid ${winreg}, any_frag; dce_stub_data; content:"EVIL"; sid:4;)`,
    ];
    // 20 bytes, then 2000 as a little-endian u16 across the first and second fragments, then EVILPAYLOAD
    // across the second and third
    const stub = [...new Array(19).fill(0x41), ...le16(2000), ...Buffer.from('EVILPAYLOAD')];
    const frags = [
      request(0, 15, stub.slice(0, 20), 0x01),
      request(0, 15, stub.slice(20, 26), 0x00),
      request(0, 15, stub.slice(26), 0x02),
    ];
    const ctx = [
      [0, bind([[0, winreg, 1]])],
      [1, bindAck([0])],
    ] as [0 | 1, Uint8Array][];
    // the fragments in segments of their own, and the last one's stub split across two segments
    let e: Engine | undefined;
    const a = session(
      rules,
      [...ctx, [0, frags[0]!], [0, frags[1]!], [0, frags[2]!.subarray(0, 30)], [0, frags[2]!.subarray(30)]],
      135,
      (x) => {
        e = x;
      },
    );
    expect(e!.stats.dceCallsReassembled).toBe(1);
    // EVIL lies inside the second fragment: sid 3 (first fragments only) matches the reassembled stub, sid
    // 4 (any_frag) that fragment and the reassembled stub
    expect(sidsOf(a)).toEqual([1, 2, 3, 4, 4]);
    // a middle fragment of another call is not taken: the call's stub has a hole, EVILPAYLOAD and EVIL are
    // not in it (sids 1 and 3); sid 4 still matches that fragment on its own (any_frag), and sid 2 reads
    // "AY" (0x5941) at offset 20 of the stub with the hole
    const other = Uint8Array.from(frags[1]!);
    other[12] = 2; // call id 2
    expect(sidsOf(session(rules, [...ctx, [0, frags[0]!], [0, other], [0, frags[2]!]], 135))).toEqual([2, 4]);
    // one stream segment holding all three: the same
    expect(sidsOf(session(rules, [...ctx, [0, cat(...frags)]], 135))).toEqual([1, 2, 3, 4, 4]);
  });

  it('strata ids --stats counts the calls reassembled, on one thread and on 2 workers', async () => {
    const frames = conversationFrames(
      [
        [0, bind([[0, winreg, 1]])],
        [1, bindAck([0])],
        ...[0x01, 0x00, 0x02].map((flags, k): [0, Uint8Array] => [0, request(0, 15, [k, k, k], flags)]),
      ],
      { serverPort: 135 },
    );
    const dir = mkdtempSync(join(tmpdir(), 'ids-dce-'));
    try {
      writeFileSync(
        join(dir, 'dce.pcap'),
        encodePcap(frames.map((data, i) => ({ tsUs: (1_700_000_000 + i) * 1e6, data }))),
      );
      writeFileSync(
        join(dir, 'dce.rules'),
        `alert tcp any any -> any 135 (flow:to_server,established; dce_iface:uuid ${winreg}; dce_stub_data; content:"|00 00 00 01 01 01 02 02 02|"; sid:1;)\n`,
      );
      for (const more of [[], ['--workers', '2']]) {
        const c = captureIo('', {}, dir);
        const args = [
          '--rules',
          'dce.rules',
          'dce.pcap',
          '--stream-release',
          'immediate',
          '--stats',
          's.json',
          ...more,
        ];
        expect(await runCommand(commands[0]!, args, c.io)).toBe(0);
        // one alert (fast format: [gid:sid:rev]), from the whole stub: the fragments each hold 3 bytes of it
        expect(c.stdout().match(/\[1:1:\d+\]/g)).toHaveLength(1);
        expect(JSON.parse(readFileSync(join(dir, 's.json'), 'utf8')).dceCallsReassembled).toBe(1);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a reassembled stub is the bytes as they arrived: the fragments are copied, not views of their buffers', () => {
    // capture readers hand out Node Buffers, whose slice is a view: a buffer reused after its delivery
    // must not reach the stub gathered from it
    const s = new DceSession();
    const parts = [request(0, 1, [1, 2, 3], 0x01), request(0, 1, [4, 5], 0x00), request(0, 1, [6], 0x02)];
    const got: number[][] = [];
    for (const p of parts) {
      const b = Buffer.from(p);
      // the last fragment's header in one delivery and its stub in the next (the header carried over)
      const cuts = p === parts[2] ? [b.subarray(0, 10), b.subarray(10)] : [b];
      for (const c of cuts) {
        for (const r of s.feed(0, c, false)) if (r.stub) got.push([...r.stub]);
        c.fill(0xee);
      }
    }
    expect(got).toEqual([[1, 2, 3, 4, 5, 6]]);
    const d = new DceDatagramDefrag();
    const grams: number[][] = [];
    for (const [n, body] of [
      [1, [8]],
      [0, [7]],
    ] as const) {
      const b = Buffer.from(
        clRequest(lsass, 9, [...body], { frag: n, flags1: n === 1 ? 0x06 : 0x04, seq: 1 }),
      );
      for (const r of d.feed(b)) if (r.stub) grams.push([...r.stub]);
      b.fill(0xee);
    }
    expect(grams).toEqual([[7, 8]]);
  });

  it('a fragmented call is reported in pieces of at most dceDefragBytesMax; the bytes gathered are held', () => {
    const s = new DceSession();
    const big = new Array(40_000).fill(7);
    const first = request(0, 1, big, 0x01);
    // frag_length is 16 bits: two fragments of 40,000 bytes each, then an empty last one
    let got = s.feed(0, first, false);
    expect(got.filter((r) => r.stub)).toEqual([]);
    expect(s.heldBytes).toBe(40_000);
    got = s.feed(0, request(0, 1, big, 0x00), false);
    expect(got.filter((r) => r.stub).map((r) => r.stub!.length)).toEqual([dceDefragBytesMax]);
    expect(s.heldBytes).toBe(80_000 - dceDefragBytesMax);
    got = s.feed(0, request(0, 1, [], 0x02), false);
    expect(got.filter((r) => r.stub).map((r) => r.stub!.length)).toEqual([80_000 - dceDefragBytesMax]);
    expect(s.heldBytes).toBe(0);
    // a gap ends the gathering
    s.feed(0, first, false);
    expect(s.heldBytes).toBe(40_000);
    expect(s.feed(0, request(0, 1, [], 0x02), true)).toEqual([]);
    expect(s.heldBytes).toBe(0);
  });

  it('bad values are refused with the reason', () => {
    const r = (opts: string) => `alert udp any any -> any any (${opts}; sid:1;)`;
    expect(refused(r('dce_iface:uuid 1234'))).toMatch(/dce_iface: expected an interface UUID/);
    expect(refused(r(`dce_iface:uuid ${lsass}, versoin 2`))).toMatch(/dce_iface: expected 'version <op><n>'/);
    expect(refused(r('dce_opnum:"x"'))).toMatch(/dce_opnum: expected an opnum/);
    expect(refused(r(`dce_iface:uuid ${lsass}; content:"a"; dce_opnum:"1"`))).toMatch(
      /must come with the other dce_/,
    );
  });
});

describe('tag', () => {
  it('is checked (Snort 3 and Snort 2 forms) and changes no alert', () => {
    const r = (tag: string) => `alert udp any any -> any any (content:"x"; tag:${tag}; sid:1;)`;
    for (const t of [
      'session,packets 5',
      'host_src, seconds 60, bytes 100',
      'session,10,packets',
      'host,5,seconds,src',
    ])
      expect(fires([r(t)], 'x')).toEqual([1]);
    expect(refused(r('session,lots'))).toMatch(/tag: expected/);
    expect(refused(r('flow,packets 5'))).toMatch(/tag: expected/);
  });
});

describe('DCE/RPC rules and the filter stages', () => {
  it('a dce rule without content reaches the full matcher only where a request is (stage 1), and still matches there', () => {
    const iface = '338cd001-2244-31f1-aaaa-900038001003';
    const e = engineOf(
      [`alert tcp any any -> any 1024: (flow:to_server,established; dce_iface:uuid ${iface}; sid:1;)`],
      {
        streamRelease: 'immediate',
      },
    );
    const C = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000, dp: 1025 };
    let ts = 0;
    for (const p of handshake('10.0.0.1', '10.0.0.2', 40000, 1025)) e.inspect(p, ts++);
    const plain = cat('plain text, not DCE/RPC');
    expect(e.inspect(pkt({ ...C, flags: ACK | PSH, seq: 1001, ack: 5001, payload: plain }), ts++)).toEqual(
      [],
    );
    expect(e.stats.stageFullMatcherIn).toBe(0);
    expect(e.stats.stagePrefilterOut).toBe(0);
    // a new connection: bind, accepted, then a request
    const S = { src: '10.0.0.2', dst: '10.0.0.1', sp: 1025, dp: 40001 };
    const C2 = { ...C, sp: 40001 };
    for (const p of handshake('10.0.0.1', '10.0.0.2', 40001, 1025)) e.inspect(p, ts++);
    const b = bind([[0, iface, 1]]);
    const ack = bindAck([0]);
    const req = request(0, 24, []);
    e.inspect(pkt({ ...C2, flags: ACK | PSH, seq: 1001, ack: 5001, payload: b }), ts++);
    e.inspect(pkt({ ...S, flags: ACK | PSH, seq: 5001, ack: 1001 + b.length, payload: ack }), ts++);
    const a = e.inspect(
      pkt({ ...C2, flags: ACK | PSH, seq: 1001 + b.length, ack: 5001 + ack.length, payload: req }),
      ts++,
    );
    expect(a.map((x) => x.sid)).toEqual([1]);
    expect(e.stats.stageFullMatcherIn).toBe(1);
  });
});

describe('file_data on FTP data connections', () => {
  // sid 38950 of the community set, as written there
  const passStealer =
    'alert tcp $HOME_NET any -> $EXTERNAL_NET any ( msg:"MALWARE-CNC Win.Trojan.PassStealer passwords exfiltration attempt"; flow:to_server; file_data; content:"Passwords Recorded On ",fast_pattern; content:"Time of Recording:",within 20,distance 22; content:"IP Address",within 12,distance 15; metadata:impact_flag red,ruleset community; service:ftp; classtype:trojan-activity; sid:38950; rev:4; )';
  const anyFile = 'alert tcp any any -> any any (file_data; content:"SECRET"; service:ftp-data; sid:2;)';
  const file = cat(
    'Passwords Recorded On ',
    '0123456789012345678901',
    'Time of Recording:',
    '0123456789012345',
    'IP Address',
    ' SECRET',
  );

  /** One TCP connection through `e` (handshake, segments in order each acknowledged, FIN both ways). */
  function conn(
    e: Engine,
    c: string,
    cp: number,
    s: string,
    sp: number,
    segments: [0 | 1, Uint8Array][],
    ts0: number,
  ) {
    const out: Alert[] = [];
    let ts = ts0;
    for (const p of handshake(c, s, cp, sp)) out.push(...e.inspect(p, ts++));
    const C = { src: c, dst: s, sp: cp, dp: sp };
    const S = { src: s, dst: c, sp, dp: cp };
    const seq = [1001, 5001];
    for (const [dir, data] of segments) {
      const [from, to] = dir === 0 ? [C, S] : [S, C];
      out.push(
        ...e.inspect(
          pkt({ ...from, flags: ACK | PSH, seq: seq[dir], ack: seq[1 - dir], payload: data }),
          ts++,
        ),
      );
      seq[dir]! += data.length;
      out.push(...e.inspect(pkt({ ...to, flags: ACK, seq: seq[1 - dir], ack: seq[dir] }), ts++));
    }
    out.push(...e.inspect(pkt({ ...C, flags: ACK | FIN, seq: seq[0], ack: seq[1] }), ts++));
    out.push(...e.inspect(pkt({ ...S, flags: ACK | FIN, seq: seq[1], ack: seq[0]! + 1 }), ts++));
    return out;
  }
  const line = (s: string) => cat(`${s}\r\n`);

  it('passive (PASV, EPSV): the announced connection is a file; others, and the control connection, are not', () => {
    const e = engineOf([passStealer, anyFile], { streamRelease: 'immediate' });
    const control = conn(
      e,
      '192.168.1.5',
      40000,
      '8.8.8.8',
      21,
      [
        [1, line('220 ftp ready')],
        [0, line('USER a')],
        [1, line('331 password')],
        [0, line('PASV')],
        [1, line('227 Entering Passive Mode (8,8,8,8,195,80).')],
        [0, line('STOR SECRET.txt')],
        [0, line('EPSV')],
        [1, line('229 Entering Extended Passive Mode (|||50001|)')],
      ],
      0,
    );
    expect(control).toEqual([]); // SECRET in the control connection: not a file
    // the data connection to 8.8.8.8:50000 (195 * 256 + 80) carries the file
    expect(sidsOf(conn(e, '192.168.1.5', 40001, '8.8.8.8', 50000, [[0, file]], 100))).toEqual([2, 38950]);
    // EPSV's port on the control connection's server
    expect(sidsOf(conn(e, '192.168.1.5', 40002, '8.8.8.8', 50001, [[0, file]], 200))).toEqual([2, 38950]);
    // an announcement is used once; an unannounced port is not a data connection
    expect(conn(e, '192.168.1.5', 40003, '8.8.8.8', 50000, [[0, file]], 300)).toEqual([]);
    expect(conn(e, '192.168.1.5', 40004, '8.8.8.8', 50002, [[0, file]], 400)).toEqual([]);
  });

  it('active (PORT accepted by a 2xx; a refused one announces nothing)', () => {
    const e = engineOf([anyFile], { streamRelease: 'immediate' });
    conn(
      e,
      '192.168.1.5',
      40000,
      '8.8.8.8',
      21,
      [
        [1, line('220 ftp ready')],
        [0, line('PORT 192,168,1,5,156,65')], // 40001
        [1, line('200 PORT command successful')],
        [0, line('RETR a')],
        [0, line('PORT 192,168,1,5,156,66')], // 40002
        [1, line('500 no')],
      ],
      0,
    );
    // the server connects from port 20 to the announced address and port
    expect(sidsOf(conn(e, '8.8.8.8', 20, '192.168.1.5', 40001, [[0, file]], 100))).toEqual([2]);
    expect(conn(e, '8.8.8.8', 20, '192.168.1.5', 40002, [[0, file]], 200)).toEqual([]);
  });
});

describe('FTP data connections on worker threads', () => {
  /** A capture's frames, one TCP connection at a time (handshake, segments each acknowledged, FIN both ways). */
  function connections() {
    const frames: Uint8Array[] = [];
    const conn = (c: string, cp: number, s: string, sp: number, segments: [0 | 1, string][]) =>
      frames.push(
        ...conversationFrames(segments, { client: c, clientPort: cp, server: s, serverPort: sp, fin: true }),
      );
    const pcap = () => encodePcap(frames.map((data, i) => ({ tsUs: (1_700_000_000 + i) * 1e6, data })));
    return { conn, pcap };
  }

  let pool: ParallelRunner;

  /**
   * The upload rule on one thread raises its 8 alerts; on a pool of 4 workers the same alerts, all from one
   * worker: the data connections did not land on one worker by chance, the control connection's took them.
   */
  async function sameOnFourWorkers(capture: Uint8Array, o: RunOptions): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'ids-ftp-'));
    try {
      const input = join(dir, 'ftp.pcap');
      writeFileSync(input, capture);
      const rules = [
        parseRule('alert tcp any any -> any any (file_data; content:"SECRET"; service:ftp; sid:2;)'),
      ];
      const opts = { streamRelease: 'immediate' as const, ...o };
      const one = await runCapture(input, rules, opts);
      expect(one.alerts.map((a) => a.sid)).toEqual(new Array(8).fill(2));
      // the main thread routing, or each worker reading and routing every packet itself
      for (const reader of ['main', 'workers'] as const) {
        const four = await pool.run(input, rules, { ...opts, reader });
        expect(four.alerts.map((a) => `${a.pcapCnt} ${a.dstPort}`)).toEqual(
          one.alerts.map((a) => `${a.pcapCnt} ${a.dstPort}`),
        );
        expect(four.workers.filter((w) => w.alerts > 0)).toHaveLength(1);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('a data connection goes to the worker of its control connection: 1 and 4 workers give the same alerts', async () => {
    pool = new ParallelRunner(4);
    try {
      const { conn, pcap } = connections();
      // eight uploads, each announced by a PASV on the one control connection, each on its own data port
      const ports = [50000, 50001, 50002, 50003, 50004, 50005, 50006, 50007];
      const control: [0 | 1, string][] = [[1, '220 ready\r\n']];
      for (const p of ports)
        control.push([0, 'PASV\r\n'], [1, `227 Entering Passive Mode (8,8,8,8,${p >> 8},${p & 0xff}).\r\n`]);
      // the control connection's announcements come first, then the data connections
      conn('192.168.1.5', 40000, '8.8.8.8', 21, control);
      ports.forEach((p, i) => {
        conn('192.168.1.5', 41000 + i, '8.8.8.8', p, [[0, `file ${i}: SECRET`]]);
      });
      await sameOnFourWorkers(pcap(), {});
    } finally {
      await pool.close();
    }
  }, 30_000);

  it('active mode on a control port of FTP_PORTS, after other connections with data: the data connections follow their control connection', async () => {
    pool = new ParallelRunner(4);
    try {
      const { conn, pcap } = connections();
      // connections with data before any FTP control bytes (the router is first asked after them)
      for (let i = 0; i < 6; i++)
        conn('10.0.0.9', 30000 + i, '10.0.0.1', 80, [[0, 'GET / HTTP/1.0\r\n\r\n']]);
      // the control connection on port 2121; each PORT accepted (200), the server connects from port 20
      const ports = [45000, 45001, 45002, 45003, 45004, 45005, 45006, 45007];
      const control: [0 | 1, string][] = [[1, '220 ready\r\n']];
      for (const p of ports)
        control.push(
          [0, `PORT 192,168,1,5,${p >> 8},${p & 0xff}\r\n`],
          [1, '200 PORT command successful\r\n'],
        );
      conn('192.168.1.5', 40000, '8.8.8.8', 2121, control);
      ports.forEach((p, i) => {
        conn('8.8.8.8', 20, '192.168.1.5', p, [[0, `file ${i}: SECRET`]]);
      });
      await sameOnFourWorkers(pcap(), { vars: { FTP_PORTS: '2121' } });
    } finally {
      await pool.close();
    }
  }, 30_000);
});
