import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { headerLines } from '../src/http-buffers.js';
import {
  type Alert,
  bufferAliases,
  type Decoded,
  Engine,
  type EngineOptions,
  HttpBuffers,
  type HttpMessage,
  HttpSession,
  knownKeywords,
  newHttpAnomalies,
  parseRule,
  parseRules,
  RuleSyntaxError,
} from '../src/index.js';
import { ACK, FIN, handshake, PSH, pkt } from './helpers.js';

const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');

const request =
  'POST /cgi-bin/../etc/%70asswd?q=a%20b HTTP/1.1\r\n' +
  'Host: EXAMPLE.com\r\n' +
  'User-Agent: curl/8.0\r\n' +
  'Cookie: session=abc\r\n' +
  'X-Folded: one\r\n two\r\n' +
  'Transfer-Encoding: chunked\r\n' +
  '\r\n' +
  '6\r\ncmd=id\r\n0\r\n\r\n';
const gz = gzipSync(Buffer.from('<html><script>evil()</script></html>'));
const response = Buffer.concat([
  Buffer.from(
    `HTTP/1.1 404 Not Found\r\nContent-Encoding: gzip\r\nSet-Cookie: id=7\r\nContent-Length: ${gz.length}\r\n\r\n`,
    'latin1',
  ),
  gz,
]);

/** The two messages of `request` / `response` as the parser hands them out. */
function messages(): HttpMessage[] {
  const out: HttpMessage[] = [];
  const ev = { headers: () => {}, message: (m: HttpMessage) => out.push(m) };
  const budget = { take: () => true, give: () => {} };
  const s = new HttpSession({ request: ev, response: ev }, newHttpAnomalies(), budget);
  s.request.push(Buffer.from(request, 'latin1'));
  s.response.push(response);
  return out;
}

describe('HTTP inspection buffers, byte for byte', () => {
  it('request buffers', () => {
    const [req] = messages();
    const b = new HttpBuffers(req!, newHttpAnomalies());
    const get = (id: string) => text(b.get(id));
    expect(get('http_method')).toBe('POST');
    expect(get('http_uri')).toBe('/etc/passwd?q=a b');
    expect(get('http_raw_uri')).toBe('/cgi-bin/../etc/%70asswd?q=a%20b');
    expect(get('http_request_line')).toBe('POST /cgi-bin/../etc/%70asswd?q=a%20b HTTP/1.1');
    expect(get('http_header')).toBe(
      'Host: EXAMPLE.com\r\nUser-Agent: curl/8.0\r\nCookie: session=abc\r\nX-Folded: one two\r\nTransfer-Encoding: chunked\r\n',
    );
    expect(get('http_raw_header')).toBe(
      'Host: EXAMPLE.com\r\nUser-Agent: curl/8.0\r\nCookie: session=abc\r\nX-Folded: one\r\n two\r\nTransfer-Encoding: chunked',
    );
    expect(get('http_cookie')).toBe('session=abc');
    expect(get('http_user_agent')).toBe('curl/8.0');
    expect(get('http_host')).toBe('example.com');
    expect(get('http_raw_host')).toBe('EXAMPLE.com');
    expect(get('http_client_body')).toBe('cmd=id');
    expect(get('file_data')).toBe('cmd=id');
    expect(get('pkt_data')).toBe(request);
    expect(get('http_stat_code')).toBe('');
  });

  it('http_header is each field as Name: value and CRLF, any byte of a value kept (property)', () => {
    const latin1Text = fc
      .array(fc.integer({ min: 0, max: 255 }), { maxLength: 12 })
      .map((a) => String.fromCharCode(...a));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(latin1Text, fc.uint8Array({ maxLength: 40 })), { maxLength: 8 }),
        (fs) => {
          const fields = fs.map(([name, value]) => ({ name, lname: name.toLowerCase(), value }));
          const want = fields
            .map((f) => `${f.name}: ${Buffer.from(f.value).toString('latin1')}\r\n`)
            .join('');
          expect(text(headerLines(fields))).toBe(want);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('a field the message does not carry gives an empty buffer', () => {
    const out: HttpMessage[] = [];
    const ev = { headers: () => {}, message: (m: HttpMessage) => out.push(m) };
    const s = new HttpSession({ request: ev, response: ev }, newHttpAnomalies(), {
      take: () => true,
      give: () => {},
    });
    s.request.push(Buffer.from('GET / HTTP/1.1\r\nAccept: */*\r\n\r\n', 'latin1'));
    const b = new HttpBuffers(out[0]!, newHttpAnomalies());
    for (const id of ['http_user_agent', 'http_cookie', 'http_raw_host', 'http_host'])
      expect(b.get(id).length, id).toBe(0);
    expect(text(b.get('http_header'))).toBe('Accept: */*\r\n');
  });

  it('response buffers, with the request it answers', () => {
    const [, resp] = messages();
    const b = new HttpBuffers(resp!, newHttpAnomalies());
    const get = (id: string) => text(b.get(id));
    expect(get('http_stat_code')).toBe('404');
    expect(get('http_stat_msg')).toBe('Not Found');
    expect(get('http_response_line')).toBe('HTTP/1.1 404 Not Found');
    expect(get('http_cookie')).toBe('id=7');
    expect(get('file_data')).toBe('<html><script>evil()</script></html>');
    expect(get('http_response_body')).toBe('<html><script>evil()</script></html>');
    expect(get('http_uri')).toBe('/etc/passwd?q=a b');
    expect(get('http_method')).toBe('POST');
    expect(get('http_client_body')).toBe(''); // a response keeps its request's head only
    expect(b.get('pkt_data').length).toBe(response.length);
  });
});

/** Runs a conversation (one request write, one response write, FIN) through an Engine. */
function converse(
  rules: string[],
  reqParts: string[],
  respParts: Uint8Array[],
  opts: EngineOptions = {},
  reqFlags = ACK | PSH,
): Alert[] {
  const e = new Engine(
    rules.map((r, i) => parseRule(r, 'http.rules', i + 1)),
    opts,
  );
  expect(e.skipped).toEqual([]);
  const C = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000, dp: 80 };
  const S = { src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000 };
  const alerts: Alert[] = [];
  let ts = 0;
  for (const p of handshake()) alerts.push(...e.inspect(p, ts++));
  let cseq = 1001;
  let sseq = 5001;
  for (const part of reqParts) {
    alerts.push(...e.inspect(pkt({ ...C, flags: reqFlags, seq: cseq, ack: sseq, payload: part }), ts++));
    cseq += part.length;
    alerts.push(...e.inspect(pkt({ ...S, flags: ACK, seq: sseq, ack: cseq }), ts++));
  }
  for (const part of respParts) {
    alerts.push(...e.inspect(pkt({ ...S, flags: ACK | PSH, seq: sseq, ack: cseq, payload: part }), ts++));
    sseq += part.length;
    alerts.push(...e.inspect(pkt({ ...C, flags: ACK, seq: cseq, ack: sseq }), ts++));
  }
  alerts.push(...e.inspect(pkt({ ...C, flags: ACK | FIN, seq: cseq, ack: sseq }), ts++));
  alerts.push(...e.inspect(pkt({ ...S, flags: ACK | FIN, seq: sseq, ack: cseq + 1 }), ts++));
  alerts.push(...e.finish());
  return alerts;
}

const sids = (a: Alert[]) => a.map((x) => x.sid).sort((x, y) => x - y);

describe("Suricata's dotted buffer names", () => {
  it('each alerts on the bytes of the buffer it stands for, as often as the Snort keyword of that buffer', () => {
    const [req, resp] = messages();
    const rules: string[] = [];
    const pairs: [alias: number, snort: number | undefined][] = [];
    Object.entries(bufferAliases).forEach(([alias, name], i) => {
      // a content from the buffer's own bytes, of the message that has it (file_data with no direction is
      // the response's body)
      const own = (name === 'file_data' ? [resp!] : [req!, resp!]).map((m) =>
        new HttpBuffers(m, newHttpAnomalies()).get(name),
      );
      const bytes = own.find((b) => b.length >= 3);
      expect(bytes, name).toBeDefined();
      const hex = [...bytes!.subarray(0, 3)].map((x) => x.toString(16).padStart(2, '0')).join(' ');
      const rule = (kw: string, sid: number) =>
        `alert tcp any any <> any 80 (msg:"${kw}"; ${kw}; content:"|${hex}|"; sid:${sid};)`;
      rules.push(rule(alias, 2 * i + 1));
      // (http.response_body has no Snort keyword of its own: Snort 3 reads response bodies as file_data)
      if (knownKeywords.has(name)) rules.push(rule(name, 2 * i + 2));
      pairs.push([2 * i + 1, knownKeywords.has(name) ? 2 * i + 2 : undefined]);
    });
    const got = sids(converse(rules, [request], [response]));
    const count = (sid: number) => got.filter((x) => x === sid).length;
    for (const [alias, snort] of pairs) {
      expect(
        count(alias),
        rules.find((r) => r.endsWith(`sid:${alias};)`)),
      ).toBeGreaterThan(0);
      if (snort !== undefined) expect(count(alias)).toBe(count(snort));
    }
  });
});

describe('HTTP alerts over IPv6', () => {
  it("carry the flow's addresses, ports and IP version", () => {
    const v6addr = (ip: string) =>
      Uint8Array.from([0xfd, ...new Array(14).fill(0), ip === '10.0.0.1' ? 1 : 2]);
    const v6name = (ip: string) => (ip === '10.0.0.1' ? 'fd00::1' : 'fd00::2');
    const v6 = (d: Decoded): Decoded => ({
      ...d,
      ipVersion: 6,
      src: v6name(d.src),
      dst: v6name(d.dst),
      srcAddr: v6addr(d.src),
      dstAddr: v6addr(d.dst),
    });
    const e = new Engine([
      parseRule('alert http any any -> any any (http_uri; content:"/x"; sid:9;)', 'h.rules', 1),
    ]);
    const req = 'GET /x HTTP/1.1\r\nHost: h\r\n\r\n';
    const alerts: Alert[] = [];
    let ts = 0;
    for (const p of handshake()) alerts.push(...e.inspect(v6(p), ts++));
    alerts.push(...e.inspect(v6(pkt({ flags: ACK | PSH, seq: 1001, ack: 5001, payload: req })), ts++));
    alerts.push(
      ...e.inspect(
        v6(
          pkt({
            src: '10.0.0.2',
            dst: '10.0.0.1',
            sp: 80,
            dp: 40000,
            flags: ACK,
            seq: 5001,
            ack: 1001 + req.length,
          }),
        ),
        ts++,
      ),
    );
    alerts.push(...e.finish());
    expect(alerts.map((a) => [a.sid, a.ipVersion, a.src, a.srcPort, a.dst, a.dstPort])).toEqual([
      [9, 6, 'fd00::1', 40000, 'fd00::2', 80],
    ]);
  });
});

describe('HTTP rules', () => {
  const rules = [
    // Snort 3 sticky buffers
    'alert tcp any any -> any 80 (msg:"uri"; flow:to_server,established; http_uri; content:"/etc/passwd"; sid:1;)',
    'alert tcp any any -> any 80 (msg:"raw uri"; flow:to_server,established; http_raw_uri; content:"%70asswd"; sid:2;)',
    'alert tcp any any -> any 80 (msg:"method"; flow:to_server,established; http_method; content:"POST"; sid:3;)',
    'alert tcp any any -> any 80 (msg:"header"; flow:to_server,established; http_header; content:"X-Folded|3a 20|one two|0d 0a|"; sid:4;)',
    'alert tcp any any -> any 80 (msg:"cookie"; flow:to_server,established; http_cookie; content:"session=abc"; sid:5;)',
    'alert tcp any any -> any 80 (msg:"body"; flow:to_server,established; http_client_body; content:"cmd=id",depth 6; sid:6;)',
    'alert tcp any 80 -> any any (msg:"stat code"; flow:to_client,established; http_stat_code; content:"404"; sid:7;)',
    'alert tcp any 80 -> any any (msg:"stat msg"; flow:to_client,established; http_stat_msg; content:"Not Found"; sid:8;)',
    'alert tcp any 80 -> any any (msg:"file_data gzip"; flow:to_client,established; file_data; content:"<script>evil"; sid:9;)',
    // Snort 2 modifiers
    'alert tcp any any -> any 80 (msg:"s2"; flow:to_server,established; content:"passwd"; http_uri; content:"POST"; http_method; sid:10;)',
    // Suricata names
    'alert tcp any any -> any 80 (msg:"ua"; flow:to_server,established; http.user_agent; content:"curl/"; startswith; sid:11;)',
    'alert tcp any any -> any 80 (msg:"host"; flow:to_server,established; http.host; content:"example.com"; bsize:11; sid:12;)',
    // pkt_data resets to the raw message
    'alert tcp any any -> any 80 (msg:"pkt_data"; flow:to_server,established; http_uri; content:"/etc/"; pkt_data; content:"HTTP/1.1|0d 0a|Host"; sid:13;)',
    // must not fire: the method is not in the URI buffer; the raw URI is not normalized
    'alert tcp any any -> any 80 (msg:"no"; flow:to_server,established; http_uri; content:"passwd"; content:"POST"; sid:14;)',
    'alert tcp any any -> any 80 (msg:"no raw"; flow:to_server,established; http_raw_uri; content:"/etc/passwd"; sid:15;)',
    // Snort 2 pcre buffer flag, bufferlen, urilen
    'alert tcp any any -> any 80 (msg:"pcre U"; flow:to_server,established; pcre:"/passwd\\?q=a b$/U"; sid:16;)',
    'alert tcp any any -> any 80 (msg:"bufferlen"; flow:to_server,established; http_uri; bufferlen:17; content:"/etc"; sid:17;)',
    'alert tcp any any -> any 80 (msg:"urilen raw"; flow:to_server,established; urilen:30<>40,raw; sid:18;)',
    // a response rule using its request's URI
    'alert tcp any 80 -> any any (msg:"txn"; flow:to_client,established; http_uri; content:"passwd"; http_stat_code; content:"404"; sid:19;)',
    // Snort 3 service rule
    'alert http (msg:"svc"; http_header; content:"Set-Cookie: id=7"; sid:20;)',
    // raw_data is pkt_data here (no inspector rewrites the payload): the raw message, after a buffer switch too
    'alert tcp any any -> any 80 (msg:"raw_data"; flow:to_server,established; http_method; content:"POST"; raw_data; content:"HTTP/1.1|0d 0a|Host"; sid:21;)',
  ];
  const all = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 21];

  it('each buffer fires on its bytes and only there (inline release)', () => {
    const a = converse(rules, [request], [response], { streamRelease: 'immediate' });
    expect(sids(a)).toEqual(all);
    for (const x of a) expect(x.stream).toBe(true);
    expect(a.find((x) => x.sid === 7)).toMatchObject({ src: '10.0.0.2', srcPort: 80, dst: '10.0.0.1' });
    expect(a.find((x) => x.sid === 1)).toMatchObject({ src: '10.0.0.1', dstPort: 80 });
  });

  it('the same alerts when the messages are split byte by byte and released on ACKs', () => {
    const reqParts = [...request];
    const respParts = [...response].map((b) => Uint8Array.of(b));
    expect(sids(converse(rules, reqParts, respParts))).toEqual(all);
  });

  it('a request without PSH is still seen before its response (acknowledged data goes out first)', () => {
    // the server's ACK of a small unpushed request releases nothing; the client's ACK of the pushed
    // response would deliver the response first, so the request the server acknowledged goes out before it
    const r = [
      'alert tcp any 80 -> any any (msg:"txn"; flow:to_client,established; http_uri; content:"passwd"; http_stat_code; content:"404"; sid:19;)',
    ];
    expect(sids(converse(r, [request], [response], {}, ACK))).toEqual([19]);
  });

  it('pipelined requests each get their inspection', () => {
    const r = [
      'alert tcp any any -> any 80 (msg:"a"; flow:to_server,established; http_uri; content:"/a"; sid:1;)',
      'alert tcp any 80 -> any any (msg:"200"; flow:to_client,established; http_stat_code; content:"200"; sid:2;)',
    ];
    const reqs = 'GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /a HTTP/1.1\r\n\r\n';
    const resps = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'.repeat(3));
    expect(sids(converse(r, [reqs], [resps], { streamRelease: 'immediate' }))).toEqual([1, 1, 2, 2, 2]);
  });

  it('HTTP rules stay silent on other protocols on port 80, raw stream rules still run there', () => {
    const r = [
      'alert tcp any any -> any 80 (msg:"uri"; flow:to_server,established; http_uri; content:"/"; sid:1;)',
      'alert tcp any any -> any 80 (msg:"raw"; flow:to_server,established; content:"SSH-2.0"; sid:2;)',
    ];
    expect(sids(converse(r, ['SSH-2.0-OpenSSH\r\nGET / HTTP/1.1\r\n\r\n'], []))).toEqual([2]);
  });

  it('flowbits set by a request rule gate a response rule', () => {
    const r = [
      'alert tcp any any -> any 80 (msg:"set"; flow:to_server,established; http_uri; content:"passwd"; flowbits:set,p; flowbits:noalert; sid:1;)',
      'alert tcp any 80 -> any any (msg:"isset"; flow:to_client,established; flowbits:isset,p; file_data; content:"evil"; sid:2;)',
    ];
    expect(sids(converse(r, [request], [response], { streamRelease: 'immediate' }))).toEqual([2]);
  });

  it('flowbits are tested for each rule that tests them, among rules that do not, on the same messages', () => {
    // the rule loop skips the flowbits test of rules without isset/isnotset (Engine.httpSide): rules with and
    // without such tests interleaved, sharing a header and fast pattern buffers, so a flag read for the
    // wrong rule or a test skipped shows as an alert too many or missing
    const uri = 'flow:to_server,established; http_uri; content:"passwd";';
    const stat = 'flow:to_client,established; http_stat_code; content:"404";';
    const r = [
      `alert tcp any any -> any 80 (msg:"plain"; ${uri} sid:1;)`,
      `alert tcp any any -> any 80 (msg:"isset never"; ${uri} flowbits:isset,never; sid:2;)`,
      `alert tcp any any -> any 80 (msg:"set s"; ${uri} flowbits:set,s; sid:3;)`,
      `alert tcp any any -> any 80 (msg:"isnotset never"; ${uri} flowbits:isnotset,never; sid:4;)`,
      `alert tcp any any -> any 80 (msg:"toggle, isset never"; ${uri} flowbits:toggle,t; flowbits:isset,never; sid:5;)`,
      `alert tcp any any -> any 80 (msg:"isset never|s"; ${uri} flowbits:isset,never|s; sid:6;)`,
      `alert tcp any any -> any 80 (msg:"isnotset s"; ${uri} flowbits:isnotset,s; sid:7;)`,
      'alert tcp any any -> any 80 (msg:"method, isset never"; flow:to_server,established; http_method; content:"POST"; flowbits:isset,never; sid:8;)',
      'alert tcp any any -> any 80 (msg:"method"; flow:to_server,established; http_method; content:"POST"; sid:9;)',
      `alert tcp any 80 -> any any (msg:"resp isnotset s"; ${stat} flowbits:isnotset,s; sid:10;)`,
      `alert tcp any 80 -> any any (msg:"resp plain"; ${stat} sid:11;)`,
      `alert tcp any 80 -> any any (msg:"resp isset s"; ${stat} flowbits:isset,s; sid:12;)`,
      `alert tcp any 80 -> any any (msg:"resp isset t"; ${stat} flowbits:isset,t; sid:13;)`,
      `alert tcp any 80 -> any any (msg:"resp unset s"; ${stat} flowbits:unset,s; sid:14;)`,
      `alert tcp any 80 -> any any (msg:"resp isset s after unset"; ${stat} flowbits:isset,s; sid:15;)`,
    ];
    // the alerts of the loop before it skipped any flowbits test (82ac390), in order: a bit set by a rule is
    // seen by the later rules of the same message
    const a = converse(r, [request], [response], { streamRelease: 'immediate' });
    expect(a.map((x) => x.sid)).toEqual([1, 3, 4, 6, 9, 11, 12, 14]);
  });
});

describe('HTTP prefilter marks across messages', () => {
  it('each message is prefiltered on its own buffers only (marks of the one before cleared)', () => {
    const e = new Engine([
      parseRule('alert http any any -> any any (http_uri; content:"/aaa"; sid:1;)', 'h.rules', 1),
      parseRule('alert http any any -> any any (http_uri; content:"/bbb"; sid:2;)', 'h.rules', 2),
      parseRule('alert http any any -> any any (http_header; content:"X-Aaa"; sid:3;)', 'h.rules', 3),
    ]);
    const C = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000, dp: 80 };
    const S = { src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000 };
    const alerts: number[][] = [];
    let ts = 0;
    for (const p of handshake()) e.inspect(p, ts++);
    let cseq = 1001;
    for (const uri of ['/aaa', '/bbb', '/ccc', '/aaa']) {
      const req = `GET ${uri} HTTP/1.1\r\nHost: h\r\n${uri === '/aaa' ? 'X-Aaa: 1\r\n' : ''}\r\n`;
      const got = e.inspect(pkt({ ...C, flags: ACK | PSH, seq: cseq, ack: 5001, payload: req }), ts++);
      cseq += req.length;
      got.push(...e.inspect(pkt({ ...S, flags: ACK, seq: 5001, ack: cseq }), ts++));
      alerts.push(sids(got));
    }
    expect(alerts).toEqual([[1, 3], [2], [], [1, 3]]);
    // only the rules whose pattern the message itself holds are evaluated: 2 + 1 + 0 + 2 of 12
    expect(e.stats.httpRulesEvaluated).toBe(5);
    expect(e.stats.httpRulesPrefiltered).toBe(7);
  });

  it("counts the rules spared up to where a message's rules end (a pass, a header no rule admits)", () => {
    const e = new Engine([
      parseRule('pass http any any -> any any (http_uri; content:"/aaa"; sid:1;)', 'h.rules', 1),
      parseRule('alert http any any -> any any (http_uri; content:"/aaa"; sid:2;)', 'h.rules', 2),
      parseRule('alert http any any -> any any (http_uri; content:"/bbb"; sid:3;)', 'h.rules', 3),
      parseRule('alert http any any -> any 81 (http_header; content:"X-Aaa"; sid:4;)', 'h.rules', 4),
    ]);
    const C = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000, dp: 80 };
    const S = { src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000 };
    let ts = 0;
    for (const p of handshake()) e.inspect(p, ts++);
    let cseq = 1001;
    const counts: number[][] = [];
    for (const uris of [['/ccc'], ['/bbb'], ['/aaa', '/bbb']]) {
      const req = uris.map((uri) => `GET ${uri} HTTP/1.1\r\nHost: h\r\nX-Aaa: 1\r\n\r\n`).join('');
      const before = [e.stats.httpRulesEvaluated, e.stats.httpRulesPrefiltered];
      const got = e.inspect(pkt({ ...C, flags: ACK | PSH, seq: cseq, ack: 5001, payload: req }), ts++);
      cseq += req.length;
      got.push(...e.inspect(pkt({ ...S, flags: ACK, seq: 5001, ack: cseq }), ts++));
      expect(sids(got)).toEqual(uris.length === 1 && uris[0] === '/bbb' ? [3] : []);
      counts.push([e.stats.httpRulesEvaluated - before[0]!, e.stats.httpRulesPrefiltered - before[1]!]);
    }
    // /ccc: all four spared (sid 4's header test fails: its buffer is not scanned); /bbb: one evaluated;
    // /aaa then /bbb in one segment: the pass (first in order) matches /aaa, and the rules after it are
    // neither visited nor spared, in /aaa nor in /bbb on the same packet (there only the pass is spared)
    expect(counts).toEqual([
      [0, 4],
      [1, 3],
      [1, 1],
    ]);
  });

  it("counts no rule after a pass as spared when a message cut short is inspected at the flow's end", () => {
    const e = new Engine([
      parseRule('pass http any any -> any any (http_client_body; content:"zz"; sid:1;)', 'h.rules', 1),
      parseRule('alert http any any -> any any (http_client_body; content:"zz"; sid:2;)', 'h.rules', 2),
    ]);
    const C = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000, dp: 80 };
    let ts = 0;
    for (const p of handshake()) e.inspect(p, ts++);
    const req = 'POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nzz';
    expect(e.inspect(pkt({ ...C, flags: ACK | PSH, seq: 1001, ack: 5001, payload: req }), ts++)).toEqual([]);
    expect([e.stats.httpRulesEvaluated, e.stats.httpRulesPrefiltered]).toEqual([0, 0]);
    // the body's rules run when the flow ends: the pass matches, the alert after it is not counted
    expect(e.finish()).toEqual([]);
    expect([e.stats.httpRulesEvaluated, e.stats.httpRulesPrefiltered]).toEqual([1, 0]);
  });
});

describe('rule syntax for HTTP buffers', () => {
  it('Snort 3 sticky buffers after a content are not read as Snort 2 modifiers', () => {
    const r = parseRule(
      'alert tcp any any -> any 80 ( msg:"x"; flow:to_server,established; http_uri; content:"/hsx.cgi"; http_raw_uri; content:"../../"; content:"%00",distance 1; service:http; sid:803; )',
    );
    expect(r.contents.map((c) => c.buffer)).toEqual(['http_uri', 'http_raw_uri', 'http_raw_uri']);
    const s2 = parseRule(
      'alert tcp any any -> any 80 (msg:"x"; content:"a"; http_uri; content:"b"; http_header; sid:1;)',
    );
    expect(s2.contents.map((c) => c.buffer)).toEqual(['http_uri', 'http_header']);
    const s3 = parseRule(
      'alert tcp any any -> any 80 (msg:"x"; http.uri; content:"a"; file.data; pcre:"/b/"; sid:1;)',
    );
    expect(s3.contents[0]!.buffer).toBe('http_uri');
    expect(s3.options.find((o) => o.keyword === 'pcre')!.buffer).toBe('file_data');
  });

  it('file_data on smtp, pop3 or imap loads as a mail rule (test/mail.test.ts), on ftp as an FTP data rule; on smb it is reported', () => {
    const set = parseRules(
      'alert tcp any any -> any 25 (msg:"x"; flow:to_server,established; file_data; content:"a"; service:smtp; sid:1;)\n' +
        'alert tcp any any -> any any (msg:"y"; flow:to_server; file_data; content:"a"; service:ftp; sid:2;)\n' +
        'alert tcp any any -> any 445 (msg:"z"; flow:to_server; file_data; content:"a"; service:netbios-ssn; sid:3;)\n',
    );
    const e = new Engine(set.rules);
    expect(e.compiled.map((c) => [c.rule.sid, c.mode])).toEqual([
      [1, 'mail'],
      [2, 'stream'],
    ]);
    expect(e.skipped).toEqual([
      { sid: 3, reason: expect.stringMatching(/file_data on netbios-ssn needs that protocol's parser/) },
    ]);
  });
});

describe('HTTP through the engine, fuzzed', () => {
  it('mutated and resegmented conversations: no throw, alerts only from loaded rules, memory all given back', () => {
    const rules = [
      'alert tcp any any -> any 80 (msg:"uri"; flow:to_server,established; http_uri; content:"passwd"; sid:1;)',
      'alert tcp any 80 -> any any (msg:"fd"; flow:to_client,established; file_data; content:"evil"; pcre:"/script>/R"; sid:2;)',
      'alert http (msg:"hdr"; http_header; content:"Cookie"; sid:3;)',
      'alert tcp any any -> any 80 (msg:"body"; http_client_body; byte_test:1,>,0x30,0; sid:4;)',
    ];
    const reqBytes = Buffer.from(request.repeat(2), 'latin1');
    const respBytes = Buffer.concat([response, response]);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (flips, c1, c2) => {
          const rq = new Uint8Array(reqBytes);
          const rs = new Uint8Array(respBytes);
          for (const [at, v] of flips) {
            if (at % 2) rq[at % rq.length] = v;
            else rs[at % rs.length] = v;
          }
          const cut = (b: Uint8Array, cs: number[]) => {
            const at = [...new Set(cs.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
            return [0, ...at].map((s, i) => b.subarray(s, at[i] ?? b.length)).filter((p) => p.length > 0);
          };
          const e = new Engine(rules.map((r) => parseRule(r)));
          const C = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000, dp: 80 };
          const S = { src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000 };
          const out: Alert[] = [];
          for (const p of handshake()) out.push(...e.inspect(p, 0));
          let cseq = 1001;
          let sseq = 5001;
          for (const p of cut(rq, c1)) {
            out.push(...e.inspect(pkt({ ...C, flags: ACK | PSH, seq: cseq, ack: sseq, payload: p }), 1));
            cseq += p.length;
          }
          out.push(...e.inspect(pkt({ ...S, flags: ACK, seq: sseq, ack: cseq }), 2));
          for (const p of cut(rs, c2)) {
            out.push(...e.inspect(pkt({ ...S, flags: ACK | PSH, seq: sseq, ack: cseq, payload: p }), 3));
            sseq += p.length;
          }
          out.push(...e.inspect(pkt({ ...C, flags: ACK, seq: cseq, ack: sseq }), 4));
          out.push(...e.finish());
          for (const a of out) expect([1, 2, 3, 4]).toContain(a.sid);
          expect(e.budget.bytes).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('Snort 3 HTTP buffer parameters', () => {
  it('parse into the buffer of the options after them; unknown ones are syntax errors naming the place', () => {
    const r = parseRule(
      'alert http (msg:"x"; http_header: field User-Agent, request; content:"curl"; pcre:"/8/R"; sid:1;)',
    );
    expect(r.contents[0]!.buffer).toBe('http_header:field=user-agent,request');
    expect(r.options.find((o) => o.keyword === 'pcre')!.buffer).toBe('http_header:field=user-agent,request');
    expect(parseRule('alert http (msg:"x"; http_uri: path; content:"/a"; sid:1;)').contents[0]!.buffer).toBe(
      'http_uri:path',
    );
    for (const bad of [
      'http_header: field',
      'http_header: colour red',
      'http_uri: path, query',
      'http_method: request',
    ])
      expect(() => parseRule(`alert http (msg:"x"; ${bad}; content:"a"; sid:1;)`, 'p.rules', 7)).toThrow(
        RuleSyntaxError,
      );
    expect(() =>
      parseRule('alert http (msg:"x"; http_uri: colour; content:"a"; sid:1;)', 'p.rules', 7),
    ).toThrow(/p\.rules:7:\d+: http_uri: unknown parameter 'colour'/);
  });

  it('field, request and URI components select what they name, byte for byte', () => {
    const [req, resp] = messages();
    const q = new HttpBuffers(req!, newHttpAnomalies());
    const r = new HttpBuffers(resp!, newHttpAnomalies());
    const get = (b: HttpBuffers, id: string) => text(b.get(id));
    expect(get(q, 'http_header:field=user-agent')).toBe('curl/8.0');
    expect(get(q, 'http_header:field=x-folded')).toBe('one two');
    expect(get(q, 'http_header:field=absent')).toBe('');
    expect(get(r, 'http_header:field=set-cookie')).toBe('id=7');
    expect(get(r, 'http_header:field=host')).toBe('');
    expect(get(r, 'http_header:field=host,request')).toBe('EXAMPLE.com');
    expect(get(r, 'http_header:request')).toBe(get(q, 'http_header'));
    expect(get(r, 'http_cookie:request')).toBe('session=abc');
    expect(get(q, 'http_uri:path')).toBe('/etc/passwd');
    expect(get(q, 'http_uri:query')).toBe('q=a b');
    expect(get(q, 'http_raw_uri:path')).toBe('/cgi-bin/../etc/%70asswd');
    expect(get(q, 'http_raw_uri:query')).toBe('q=a%20b');
    expect(get(q, 'http_uri:host')).toBe('');
    expect(get(q, 'http_header:with_body')).toBe(get(q, 'http_header'));
  });

  it('rules with parameters through the engine: the side they inspect and when', () => {
    const rules = [
      'alert http (msg:"ua"; http_header: field user-agent; content:"curl/",depth 5; sid:1;)',
      'alert http (msg:"ua not in host"; http_header: field host; content:"curl"; sid:2;)',
      'alert http (msg:"request cookie on the response"; http_cookie: request; content:"session="; http_stat_code; content:"404"; sid:3;)',
      'alert http (msg:"request header, no direction: responses"; http_header: request, field cookie; content:"abc"; sid:4;)',
      'alert http (msg:"path"; http_uri: path; content:"/etc/passwd",depth 11; bufferlen:11; sid:5;)',
      'alert http (msg:"raw query"; http_raw_uri: query; content:"%20"; sid:6;)',
      'alert http (msg:"header with body"; http_header: with_body; content:"Set-Cookie"; sid:7;)',
    ];
    const alerts = converse(rules, [request], [response]);
    expect(sids(alerts)).toEqual([1, 3, 4, 5, 6, 7]);
    // 4 inspects responses (its buffer is the request's): one alert, on the response
    expect(alerts.filter((a) => a.sid === 4)).toHaveLength(1);
  });

  it('file_data of a Zstandard body (Content-Encoding: zstd) is the content, as a browser sees it', () => {
    // made with the zstd CLI (test/fixtures/zstd/README.md): 'evil ' 40 times, one frame, no content size
    const zst = readFileSync(new URL('fixtures/zstd/evil-repeated.zst', import.meta.url));
    const reply = Buffer.concat([
      Buffer.from(
        `HTTP/1.1 200 OK\r\nContent-Encoding: zstd\r\nContent-Length: ${zst.length}\r\n\r\n`,
        'latin1',
      ),
      zst,
    ]);
    const rules = [
      'alert http (msg:"in file_data"; file_data; content:"evil evil evil evil evil evil"; sid:1;)',
      'alert tcp any 80 -> any any (msg:"as sent"; flow:to_client,established; content:"evil evil"; sid:2;)',
    ];
    expect(sids(converse(rules, ['GET /evil.txt HTTP/1.1\r\nHost: x\r\n\r\n'], [reply]))).toEqual([1]);
  });
});
