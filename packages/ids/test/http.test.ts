import { readFileSync } from 'node:fs';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hasDotOrEmptySegment, simplifyPath, simplifyPathText } from '../src/http.js';
import {
  decodeContent,
  type HttpMessage,
  type HttpOptions,
  HttpSession,
  httpHeaderBytesMax,
  newHttpAnomalies,
  normalizeUri,
  percentDecode,
} from '../src/index.js';

const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

/** A budget that counts (and may refuse past `max`). */
function budget(max = Number.POSITIVE_INFINITY) {
  return {
    bytes: 0,
    peak: 0,
    take(n: number) {
      if (this.bytes + n > max) return false;
      this.bytes += n;
      this.peak = Math.max(this.peak, this.bytes);
      return true;
    },
    give(n: number) {
      this.bytes -= n;
    },
  };
}

/** A session whose events are recorded as compact strings (and the messages kept). */
function recorder(b = budget(), opts: HttpOptions = {}) {
  const anomalies = newHttpAnomalies();
  const log: string[] = [];
  const msgs: HttpMessage[] = [];
  const ev = (side: string) => ({
    headers: (m: HttpMessage) =>
      log.push(`${side}:h ${m.kind === 'request' ? `${m.method} ${text(m.uri)}` : m.status}`),
    message: (m: HttpMessage) => {
      msgs.push(m);
      log.push(`${side}:m ${text(m.body)}${m.request ? ` <${m.request.method}` : ''}`);
    },
  });
  const s = new HttpSession({ request: ev('req'), response: ev('resp') }, anomalies, b, opts);
  return { s, anomalies, log, msgs, b };
}

/** Splits `data` at the given cut points (sorted, deduplicated). */
function split(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...at, data.length]) {
    out.push(data.subarray(prev, c));
    prev = c;
  }
  return out;
}

const pipelined = bytes(
  '\r\nGET /a?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n' +
    'POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n' +
    '5;name=v\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n' +
    'PUT /p HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody' +
    'HEAD /h HTTP/1.1\r\n\r\n',
);
const responses = bytes(
  'HTTP/1.1 100 Continue\r\n\r\n' +
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' +
    'HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n' +
    'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n' +
    'HTTP/1.1 200 OK\r\n\r\nuntil close',
);
const expected = [
  'req:h GET /a?x=1',
  'req:m ',
  'req:h POST /upload',
  'req:m hello world',
  'req:h PUT /p',
  'req:m body',
  'req:h HEAD /h',
  'req:m ',
  'resp:h 100',
  'resp:m  <GET',
  'resp:h 200',
  'resp:m ok <GET',
  'resp:h 201',
  'resp:m abc <POST',
  'resp:h 204',
  'resp:m  <PUT',
  'resp:h 200',
  'resp:m  <HEAD',
  'resp:h 200',
  'resp:m until close',
];

describe('HTTP/1.1 messages (RFC 9112)', () => {
  it('pipelined requests, chunked and length bodies, interim/204/HEAD responses, a body until close', () => {
    const r = recorder();
    r.s.request.push(pipelined);
    r.s.response.push(responses);
    r.s.request.end();
    r.s.response.end();
    expect(r.log.filter((l) => l.startsWith('req'))).toEqual(expected.filter((l) => l.startsWith('req')));
    expect(r.log.filter((l) => l.startsWith('resp'))).toEqual(expected.filter((l) => l.startsWith('resp')));
    // the last response has no request left to answer: counted
    expect(Object.entries(r.anomalies).filter(([, n]) => n > 0)).toEqual([['responseWithoutRequest', 1]]);
    const post = r.msgs.find((m) => m.method === 'POST')!;
    expect(post.fields.map((f) => f.lname)).toEqual(['host', 'transfer-encoding']);
    expect(text(post.raw)).toContain('5;name=v\r\nhello'); // the raw message keeps the chunk framing
    r.s.dispose();
    expect(r.b.bytes).toBe(0);
  });

  it('a body is the bytes as they arrived: parts kept are copies, not views of the delivered Buffers', () => {
    // capture readers hand out Node Buffers, whose slice is a view of the reader's chunk: a chunk reused
    // after its delivery must not reach a body (nor pin the chunk, charged as the few bytes kept)
    const r = recorder();
    for (const part of split(pipelined, [90, 130, 150, 175, 190])) {
      const b = Buffer.from(part);
      r.s.request.push(b);
      b.fill(0x7e);
    }
    r.s.request.end();
    expect(r.log.filter((l) => l.startsWith('req'))).toEqual(expected.filter((l) => l.startsWith('req')));
    const post = r.msgs.find((m) => m.method === 'POST')!;
    expect(text(post.raw)).toContain('5;name=v\r\nhello\r\n6\r\n world');
    expect([text(post.uri), text(post.body)]).toEqual(['/upload', 'hello world']);
    expect(r.msgs.map((m) => `${text(m.uri)} ${text(m.rawHeader).split('\r\n')[0]}`)).toEqual([
      '/a?x=1 Host: example.com',
      '/upload Host: example.com',
      '/p Content-Length: 4',
      '/h ',
    ]);
    r.s.dispose();
  });

  it('gives the same messages however the streams are segmented (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 40 }), (c1, c2) => {
        const r = recorder();
        // requests go first (a response needs its request), each side in pieces
        for (const p of split(pipelined, c1)) r.s.request.push(p);
        for (const p of split(responses, c2)) r.s.response.push(p);
        r.s.request.end();
        r.s.response.end();
        expect(r.log).toEqual(expected);
        r.s.dispose();
        expect(r.b.bytes).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  it('tolerates obs-fold, bare LF, a line without a colon and a chunk without its CRLF (counted)', () => {
    const r = recorder();
    r.s.request.push(
      bytes(
        'GET / HTTP/1.1\nX-Long: a\n  b\n\tc\nno colon here\nHost : h\n\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc5\r\ndefgh\r\n0\r\n\r\n',
      ),
    );
    const get = r.msgs[0]!;
    expect(get.fields.map((f) => [f.name, text(f.value)])).toEqual([
      ['X-Long', 'a b c'],
      ['Host', 'h'],
    ]);
    expect(text(r.msgs[1]!.body)).toBe('abcdefgh');
    expect(r.anomalies.obsFold).toBe(2);
    expect(r.anomalies.badFieldLine).toBe(2);
    expect(r.anomalies.badChunkEnd).toBe(1);
  });

  it('framing it cannot trust ends parsing of that direction: bad or conflicting Content-Length, bad chunk size', () => {
    for (const [input, reason] of [
      ['POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello', 'badContentLength'],
      ['POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n', 'badContentLength'],
      ['POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'badChunkSize'],
      ['POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n', 'badTransferEncoding'],
    ] as const) {
      const r = recorder();
      r.s.request.push(bytes(input));
      r.s.request.push(bytes('GET /after HTTP/1.1\r\n\r\n'));
      expect(r.anomalies[reason]).toBe(1);
      expect(r.s.request.state).toBe('dead');
      expect(r.log).not.toContain('req:h GET /after');
      r.s.dispose();
      expect(r.b.bytes).toBe(0);
    }
    // Transfer-Encoding wins over Content-Length (RFC 9112 6.3), counted as a smuggling sign
    const r = recorder();
    r.s.request.push(
      bytes('POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n'),
    );
    expect(text(r.msgs[0]!.body)).toBe('ab');
    expect(r.anomalies.transferEncodingAndLength).toBe(1);
  });

  it('detects HTTP from the first bytes; other protocols are left alone without anomalies', () => {
    for (const banner of [
      'SSH-2.0-OpenSSH_8.9 Ubuntu\r\n',
      '\u0016\u0003\u0001\u0002\u0000\u0001',
      'EHLO mail\r\n',
      'get / HTTP/1.1\r\n\r\n',
    ]) {
      const r = recorder();
      r.s.request.push(bytes(banner));
      r.s.request.push(bytes('\r\n\r\nGET / HTTP/1.1\r\n\r\n'));
      expect(r.s.request.state).toBe('not-http');
      expect(r.log).toEqual([]);
      expect(Object.values(r.anomalies).every((n) => n === 0)).toBe(true);
    }
    // a response's first line may be one to skip before a status line (`SIP/2.0 200 ok`): told by the next
    const r = recorder();
    r.s.response.push(bytes('220 smtp ready\r\n'));
    r.s.response.push(bytes('250 ok\r\n'));
    expect(r.s.response.state).toBe('not-http');
  });

  it('bounds the header section: a too long one is inspected as far as it fits, then parsing stops', () => {
    const r = recorder();
    r.s.request.push(bytes('GET / HTTP/1.1\r\n'));
    const line = bytes(`X-Pad: ${'a'.repeat(1000)}\r\n`);
    for (let i = 0; i < 100; i++) r.s.request.push(line);
    expect(r.anomalies.headerTooLong).toBe(1);
    expect(r.log).toEqual(['req:h GET /', 'req:m ']);
    expect(r.b.peak).toBeLessThanOrEqual(2 * httpHeaderBytesMax);
    r.s.dispose();
    expect(r.b.bytes).toBe(0);
  });

  it('keeps at most bodyBytesMax of a body and follows the framing past it', () => {
    const anomalies = newHttpAnomalies();
    const b = budget();
    const got: HttpMessage[] = [];
    const ev = { headers: () => {}, message: (m: HttpMessage) => got.push(m) };
    const s = new HttpSession({ request: ev, response: ev }, anomalies, b, { bodyBytesMax: 100 });
    s.request.push(
      bytes(`POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n${'x'.repeat(5000)}GET /next HTTP/1.1\r\n\r\n`),
    );
    expect(got.map((m) => [m.method, m.body.length, m.bodyBytes, m.bodyTruncated])).toEqual([
      ['POST', 100, 5000, true],
      ['GET', 0, 0, false],
    ]);
    expect(b.peak).toBeLessThan(5000);
  });

  it('at bodyBytesMax a chunked body keeps its first bytes decoded and as sent, each to the bound', () => {
    const got: HttpMessage[] = [];
    const ev = { headers: () => {}, message: (m: HttpMessage) => got.push(m) };
    const s = new HttpSession({ request: ev, response: ev }, newHttpAnomalies(), budget(), {
      bodyBytesMax: 14,
    });
    const head = 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n';
    s.request.push(bytes(`${head}5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n`));
    expect(text(got[0]!.body)).toBe('helloworld');
    // the raw bytes: the 14 first of the body as sent (the second chunk's data cut after one byte)
    expect(text(got[0]!.raw).slice(head.length)).toBe('5\r\nhello\r\n5\r\nw');
  });

  it('a refused budget is an anomaly, never a crash', () => {
    const r = recorder(budget(100));
    r.s.request.push(pipelined);
    expect(r.anomalies.memcap).toBeGreaterThan(0);
    expect(r.s.request.state).toBe('dead');
  });

  it('skips a gap inside a body of known length; elsewhere a gap ends the direction', () => {
    const r = recorder();
    r.s.request.push(bytes('POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab'));
    r.s.request.gap(4);
    r.s.request.push(bytes('ghijGET / HTTP/1.1\r\n\r\n'));
    expect(r.log).toEqual(['req:h POST /', 'req:m abghij', 'req:h GET /', 'req:m ']);
    expect(r.msgs[0]!.bodyTruncated).toBe(true);
    // between messages a gap is survived when a start line follows, not when something else does
    r.s.request.gap(5);
    r.s.request.push(bytes('GET /x HTTP/1.1\r\n\r\n'));
    expect(r.log.at(-2)).toBe('req:h GET /x');
    r.s.request.gap(5);
    r.s.request.push(bytes('ody bytes\r\n\r\n'));
    expect(r.s.request.state).toBe('dead');
    expect(r.anomalies.badStartLine).toBe(1);
    const q = recorder();
    q.s.request.push(bytes('GET / HT'));
    q.s.request.gap(3);
    expect(q.s.request.state).toBe('dead');
    expect(r.anomalies.gap + q.anomalies.gap).toBe(4);
  });
});

describe('Content-Encoding', () => {
  const body = Buffer.from('the quick brown fox '.repeat(50));
  it('gzip, x-gzip, deflate (zlib and raw), br, and two layers', () => {
    const a = newHttpAnomalies();
    for (const [enc, data] of [
      ['gzip', gzipSync(body)],
      ['x-gzip', gzipSync(body)],
      ['deflate', deflateSync(body)],
      ['deflate', deflateRawSync(body)],
      ['br', brotliCompressSync(body)],
      ['gzip, deflate', deflateSync(gzipSync(body))],
    ] as const)
      expect(text(decodeContent(data, [enc], a)), enc).toBe(body.toString());
    expect(a.decompressFailed).toBe(0);
  });

  it('caps the output (a decompression bomb is cut), a truncated stream gives what it has, garbage is counted', () => {
    const a = newHttpAnomalies();
    const bomb = gzipSync(Buffer.alloc(50 * 2 ** 20));
    const out = decodeContent(bomb, ['gzip'], a, 256 * 1024);
    expect(out.length).toBeLessThanOrEqual(256 * 1024);
    expect(out.length).toBeGreaterThan(0);
    expect(a.decompressCapped).toBe(1);
    const gz = gzipSync(body);
    expect(text(decodeContent(gz.subarray(0, gz.length - 30), ['gzip'], a))).toBe(
      body.toString().slice(0, text(decodeContent(gz.subarray(0, gz.length - 30), ['gzip'], a)).length),
    );
    expect(decodeContent(bytes('not compressed'), ['gzip'], a)).toEqual(bytes('not compressed'));
    expect(a.decompressFailed).toBe(1);
    expect(decodeContent(bytes('x'), ['compress'], a)).toEqual(bytes('x'));
  });

  it('decodes Zstandard (RFC 8878): frames with and without a content size, several frames, a bomb cut at the cap, windows over 8 MiB refused', () => {
    // made with the zstd CLI (test/fixtures/zstd/README.md)
    const zst = (name: string) =>
      new Uint8Array(readFileSync(new URL(`fixtures/zstd/${name}`, import.meta.url)));
    const eicar = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
    const a = newHttpAnomalies();
    for (const name of ['eicar.zst', 'eicar-stream.zst', 'eicar-frames.zst'])
      expect(text(decodeContent(zst(name), ['zstd'], a)), name).toBe(eicar);
    expect(text(decodeContent(zst('eicar.zst'), ['ZStd'], a))).toBe(eicar);
    // bytes after the last frame that are no frame: what the frames hold
    const trailed = new Uint8Array([...zst('eicar.zst'), 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(text(decodeContent(trailed, ['zstd'], a))).toBe(eicar);
    expect(a.decompressFailed).toBe(0);
    // 64 MiB of zeros in 2 KB: decoded to the cap and stopped there
    const bomb = decodeContent(zst('zeros-64mib.zst'), ['zstd'], a, 256 * 1024);
    expect([bomb.length, bomb.every((c) => c === 0), a.decompressCapped]).toEqual([256 * 1024, true, 1]);
    // a window of 128 MiB (RFC 9659 allows 8 MiB; the decoder would allocate it): not decoded, the body as sent
    const big = zst('eicar-window-128mib.zst');
    expect(decodeContent(big, ['zstd'], a)).toEqual(big);
    expect(a.decompressFailed).toBe(1);
    // a single-segment frame declaring 2 GiB of content in a header of a few bytes: refused before any
    // allocation; so is a frame that needs a dictionary
    const huge = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0x80, 0, 0, 0, 0, 1, 0, 0, 0x78]);
    expect(decodeContent(huge, ['zstd'], a)).toEqual(huge);
    const dict = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x21, 0x07, 0x44, 0x01, 0, 0, 0x78]);
    expect(decodeContent(dict, ['zstd'], a)).toEqual(dict);
    // cut short: what decoded before the cut (the whole block, or nothing)
    const full = zst('zeros-64mib.zst');
    const cut = decodeContent(full.subarray(0, 1000), ['zstd'], newHttpAnomalies(), 2 ** 20);
    expect(cut.every((c) => c === 0) || text(cut) === text(full.subarray(0, 1000))).toBe(true);
    // any bytes: decoded or left as sent, never a throw or a hang (fuzz)
    fc.assert(
      fc.property(
        fc.nat(full.length - 1),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 6 }),
        (end, flips) => {
          const m = Uint8Array.from(zst(['eicar.zst', 'eicar-frames.zst', 'zeros-64mib.zst'][end % 3]!));
          for (const [at, v] of flips) m[at % m.length] = v;
          const out = decodeContent(
            m.subarray(0, 1 + (end % m.length)),
            ['zstd'],
            newHttpAnomalies(),
            2 ** 16,
          );
          expect(out.length).toBeLessThanOrEqual(Math.max(2 ** 16, m.length));
        },
      ),
      { numRuns: 300 },
    );
  });
  it('decodes lzma (the LZMA-alone format, as libhtp does): the body, a bomb cut at the cap, garbage left as sent', () => {
    // made with XZ Utils (test/fixtures/lzma/README.md)
    const lz = (name: string) =>
      new Uint8Array(readFileSync(new URL(`fixtures/lzma/${name}`, import.meta.url)));
    const eicar = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
    const a = newHttpAnomalies();
    expect(text(decodeContent(lz('eicar.lzma'), ['lzma'], a))).toBe(eicar);
    expect(text(decodeContent(lz('eicar.lzma'), ['LZMA'], a))).toBe(eicar);
    // in a layer under gzip
    expect(text(decodeContent(new Uint8Array(gzipSync(lz('eicar.lzma'))), ['lzma', 'gzip'], a))).toBe(eicar);
    expect([a.decompressFailed, a.decompressCapped]).toEqual([0, 0]);
    const bomb = decodeContent(lz('zeros-1mib.lzma'), ['lzma'], a, 64 * 1024);
    expect([bomb.length, bomb.every((c) => c === 0), a.decompressCapped]).toEqual([64 * 1024, true, 1]);
    expect(decodeContent(bytes('not compressed at all'), ['lzma'], a)).toEqual(
      bytes('not compressed at all'),
    );
    expect(a.decompressFailed).toBe(1);
  });
});

describe('read as browsers read (HTTP Evader)', () => {
  // HTTP Evader (Steffen Ullrich, noxxi.de) serves the EICAR file with responses each broken in one way that
  // some browser still decodes; an inspector that reads them more strictly than a browser misses the body
  const eicar = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
  const chunked = (s: string, n = 4) => {
    let out = '';
    for (let i = 0; i < s.length; i += n)
      out += `${s.slice(i, i + n).length.toString(16)}\r\n${s.slice(i, i + n)}\r\n`;
    return `${out}0\r\n\r\n`;
  };
  /** The response bodies (`file_data` before content decoding) of `response` to one GET, after the end. */
  const bodies = (response: string | Uint8Array) => {
    const r = recorder();
    r.s.request.push(bytes('GET /eicar.txt HTTP/1.1\r\nHost: h\r\n\r\n'));
    r.s.response.push(typeof response === 'string' ? bytes(response) : response);
    r.s.response.end();
    const out = r.msgs.filter((m) => m.kind === 'response');
    r.s.dispose();
    expect(r.b.bytes).toBe(0);
    return { out, r, body: out.map((m) => text(m.body)).join('|') };
  };

  it('status lines outside RFC 9112: other versions and cases, stray bytes before, odd codes (counted)', () => {
    for (const line of [
      'HTTP/1.01 200 ok',
      'HTTP/1.10 200 ok',
      'http/1.1 200 ok',
      ' HTTP/1.1 200 ok',
      '\u0000HTTP/1.1 200 ok',
      'HTTP/1\u0000.1 200 ok',
      'HTTP/1.1\u0000 200 ok',
      'HTTP/1.1\u0000200\u0000ok',
      'HTTP/1.1\u000b200\u000bok',
      'HTTP/1.1foobar',
    ]) {
      const { out, r } = bodies(`${line}\r\nContent-Length: ${eicar.length}\r\n\r\n${eicar}`);
      expect(
        out.map((m) => [m.status, text(m.body)]),
        line,
      ).toEqual([[200, eicar]]);
      expect(r.anomalies.oddStatusLine, line).toBe(1);
    }
    // a code not written as three digits: its leading digits, and the body is read whatever they are
    for (const [code, status] of [
      ['2xx', 2],
      ['20x', 20],
      ['2000', 2000],
      ['0204', 204],
      ['2040', 2040],
    ] as const) {
      const { out } = bodies(`HTTP/1.1 ${code} ok\r\nContent-Length: 4\r\n\r\nbody`);
      expect(out.map((m) => [m.status, text(m.statusText), text(m.body)])).toEqual([[status, code, 'body']]);
    }
    // a three-digit 204 still has no body, and a well-formed line is no anomaly
    const { out, r } = bodies('HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n');
    expect(out.map((m) => m.status)).toEqual([204]);
    expect(r.anomalies.oddStatusLine).toBe(0);
    // more than four stray bytes, or no HTTP at all: not HTTP
    for (const start of ['xxxxxHTTP/1.1 200 ok\r\n\r\n', '220 smtp ready\r\n250 ok\r\n']) {
      const r2 = recorder();
      r2.s.response.push(bytes(start));
      expect(r2.s.response.state).toBe('not-http');
    }
  });

  it('field names and codings read through NULs, control bytes and other stray bytes', () => {
    for (const field of [
      'Transfer-Encoding:\u0000chunked',
      'Transfer-Encoding: chu\u0000nked',
      'Transfer-Encoding: chunked\u0000',
      'Transfer-Encoding: chunked;',
      'Transfer-Encoding:;chunked',
      'Transfer-Encoding: \u007fchunked',
      'Transfer-Encoding: \u00ef\u00bb\u00bfchunked',
      'Transfer-Encoding\u0000: chunked',
      'Transfer-Encoding\u000b: chunked',
      'Transfer-Encoding:: chunked',
      'TRANSFER-ENCODING: CHUNKED',
    ]) {
      const { body } = bodies(`HTTP/1.1 200 ok\r\n${field}\r\nConnection: close\r\n\r\n${chunked(eicar)}`);
      expect(body, field).toBe(eicar);
    }
    const gz = gzipSync(Buffer.from(eicar));
    for (const field of [
      'Content-Encoding: gz\u0000ip',
      'Content-Encoding\u000c: gzip',
      'Content-Encoding:: gzip',
    ]) {
      const { out, r } = bodies(
        Buffer.concat([bytes(`HTTP/1.1 200 ok\r\n${field}\r\nContent-Length: ${gz.length}\r\n\r\n`), gz]),
      );
      const m = out[0]!;
      const ce = m.fields.filter((f) => f.lname === 'content-encoding').map((f) => text(f.value));
      expect(text(decodeContent(m.body, ce, r.anomalies)), field).toBe(eicar);
    }
  });

  it('a name line folded onto its value, and a fold right after the start line, are fields (counted)', () => {
    for (const head of [
      'Transfer-Encoding\r\n :chunked',
      'Transfer-Encoding\r\n\t: chunked',
      ' Transfer-Encoding: chunked\r\nConnection: close',
      'Connection: close\r\n Transfer-Encoding: chunked',
    ]) {
      const { body, r } = bodies(`HTTP/1.1 200 ok\r\n${head}\r\n\r\n${chunked(eicar)}`);
      expect(body, head).toBe(eicar);
      expect(r.anomalies.obsFold, head).toBe(1);
    }
  });

  it("a request's folds stay RFC 9112's: joined to the field above, never fields of their own", () => {
    const r = recorder();
    r.s.request.push(
      bytes('POST / HTTP/1.1\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc'),
    );
    expect(r.msgs[0]!.fields.map((f) => [f.lname, text(f.value)])).toEqual([
      ['x-a', '1 Transfer-Encoding: chunked'],
      ['content-length', '3'],
    ]);
    expect(text(r.msgs[0]!.body)).toBe('abc');
  });

  it('a response said to be chunked whose body is not is read by its length or to the end', () => {
    for (const te of ['chunked', 'xchunked', 'chunkedx', 'x-chunked', 'chunked, xte', 'xte, chunked, xte']) {
      // chunked in fact
      expect(bodies(`HTTP/1.1 200 ok\r\nTransfer-Encoding: ${te}\r\n\r\n${chunked(eicar)}`).body, te).toBe(
        eicar,
      );
      // by Content-Length, and to the end of the connection (no line end in it at all, too)
      for (const [tail, body] of [
        [`Content-Length: ${eicar.length}\r\n\r\n${eicar}`, eicar],
        [`\r\n${eicar}`, eicar],
        [`\r\n${eicar}\r\nmore`, `${eicar}\r\nmore`],
      ]) {
        const r = bodies(`HTTP/1.1 200 ok\r\nTransfer-Encoding: ${te}\r\n${tail}`);
        expect(r.body, `${te} ${JSON.stringify(tail)}`).toBe(body);
        expect(r.r.anomalies.badChunkSize).toBe(1);
      }
    }
    // Content-Length 0: what was read as a chunk line starts the next response
    const two = recorder();
    two.s.request.push(bytes('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n'));
    two.s.response.push(
      bytes(
        'HTTP/1.1 200 ok\r\nTransfer-Encoding: xchunked\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 ok\r\nContent-Length: 2\r\n\r\nhi',
      ),
    );
    expect(
      two.msgs
        .filter((m) => m.kind === 'response')
        .map((m) => [m.request?.uri && text(m.request.uri), text(m.body)]),
    ).toEqual([
      ['/1', ''],
      ['/2', 'hi'],
    ]);
    // a request is not read leniently: framing it cannot trust ends its direction (smuggling)
    const r = recorder();
    r.s.request.push(bytes('POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n'));
    expect(r.s.request.state).toBe('dead');
  });

  it('chunk-size lines with stray bytes around the size, blank lines before it', () => {
    for (const [size, extra] of [
      ['4x', ''],
      ['4 x', ''],
      ['4\u0000', ''],
      ['4,', ''],
      ['4\r', ''],
      ['\u000b4', ''],
      ['\u000c4', ''],
      [' 4', ''],
      ['\t4', ''],
      ['4', '\r\n'],
      ['4', '\n'],
      ['4', '\r\n\r\n'],
    ] as const) {
      let wire = '';
      for (let i = 0; i < eicar.length; i += 4) {
        const part = eicar.slice(i, i + 4);
        wire += `${extra}${part.length === 4 ? size : size.replace('4', part.length.toString(16))}\r\n${part}\r\n`;
      }
      const { body } = bodies(`HTTP/1.1 200 ok\r\nTransfer-Encoding: chunked\r\n\r\n${wire}0\r\n\r\n`);
      expect(body, JSON.stringify([size, extra])).toBe(eicar);
    }
  });

  it('a response with a Content-Length it cannot trust is read to the end of the connection', () => {
    for (const cl of [
      'Content-Length: 50\r\nContent-Length: 100',
      'Content-Length: 50A',
      'Content-Length: ,50',
    ]) {
      const { body, r } = bodies(`HTTP/1.1 200 ok\r\n${cl}\r\n\r\n${eicar}`);
      expect(body, cl).toBe(eicar);
      expect(r.anomalies.badContentLength).toBe(1);
    }
  });

  it('a response without a status line (HTTP/0.9), and a body after a 1xx, 204 or 304, are read to the end', () => {
    for (const wire of [
      eicar,
      `\r\n${eicar}\r\nmore`,
      `HTTP/1.1 204 No Content\r\n\r\n${eicar}`,
      `HTTP/1.1 304 Not Modified\r\nContent-Length: 68\r\n\r\n${eicar}`,
      `HTTP/1.1 100 Continue\r\n\r\n${eicar}\r\n`,
      `HTTP/1.1 102 Processing\r\n\r\nX5O!`,
    ]) {
      const { out, r } = bodies(wire);
      const last = out[out.length - 1]!;
      expect([last.version, last.status, last.request?.method], JSON.stringify(wire)).toEqual([
        'HTTP/0.9',
        200,
        'GET',
      ]);
      expect(eicar.startsWith(text(last.body).trim().slice(0, 4))).toBe(true);
      expect(r.anomalies.headlessResponse).toBe(1);
      expect(r.anomalies.responseWithoutRequest).toBe(0);
    }
    // a response stream picked up midstream starts wherever the capture did: not read as HTTP/0.9
    const midstream = () => {
      const rec = recorder();
      const session = new HttpSession(
        {
          request: { headers() {}, message() {} },
          response: { headers() {}, message: (m) => rec.msgs.push(m) },
        },
        rec.anomalies,
        rec.b,
        { responseFromStart: false },
      );
      return { rec, session };
    };
    const { rec: mid, session: s2 } = midstream();
    s2.request.push(bytes('GET / HTTP/1.1\r\n\r\n'));
    s2.response.push(bytes(`${eicar}${eicar}\r\nHTTP/1.1 200 OK\r\n\r\n`));
    expect([s2.response.state, mid.msgs.length, mid.anomalies.headlessResponse]).toEqual(['not-http', 0, 0]);
    // (a line under statusJunkLineBytesMax that a status line follows is skipped: the response after it is read)
    const { rec: mid2, session: s3 } = midstream();
    s3.request.push(bytes('GET / HTTP/1.1\r\n\r\n'));
    s3.response.push(bytes(`${eicar}\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`));
    expect([mid2.msgs.map((m) => [m.status, text(m.body)]), mid2.anomalies.headlessResponse]).toEqual([
      [[200, 'ok']],
      0,
    ]);
    s3.dispose();
    s2.dispose();
    // no request waiting and no bodiless response before: not HTTP, or the direction stops, as before
    const banner = recorder();
    banner.s.response.push(bytes('220 smtp ready\r\n250 ok\r\n'));
    expect([banner.s.response.state, banner.anomalies.headlessResponse]).toEqual(['not-http', 0]);
    const after = bodies('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokgarbage after it\r\n');
    expect(after.out.map((m) => text(m.body))).toEqual(['ok']);
    expect([after.r.anomalies.badStartLine, after.r.anomalies.headlessResponse]).toEqual([1, 0]);
  });

  it('short junk lines before the status line, odd blank lines, bare CRs as line ends', () => {
    const head = (h: string) =>
      `${h}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked(eicar)}`;
    for (const before of [' \r\n', 'foobar\r\n', ' \n', ' \t\r\n', ' \r\n\t\r\n']) {
      const { body, r } = bodies(`${before}${head('HTTP/1.1 200 ok\r\n')}`);
      expect(body, JSON.stringify(before)).toBe(eicar);
      expect(r.anomalies.oddStatusLine).toBeGreaterThan(0);
    }
    // a blank line of spaces, tabs or CRs: the end of the section, unless a fold or a field line follows
    // (then it was an empty fold or an empty line among fields), or a blank line (then that one ends it)
    for (const [wire, body] of [
      [`HTTP/1.1 200 ok\r\nContent-Length: ${eicar.length}\n \n${eicar}`, eicar],
      [`HTTP/1.1 200 ok\r\nContent-Length: ${eicar.length}\n\t\n${eicar}`, eicar],
      [`HTTP/1.1 200 ok\r\nContent-Length: ${eicar.length}\n\r\r\n${eicar}`, eicar],
      [`HTTP/1.1 200 ok\r\nTransfer-Encoding: chunked\n \n${chunked(eicar)}`, eicar],
      [`HTTP/1.1 200 ok\r\nContent-Length: ${eicar.length}\n \n\n${eicar}`, eicar],
      [
        `HTTP/1.1 200 ok\r\nConnection: close\r\n\r\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(eicar)}`,
        eicar,
      ],
      [`HTTP/1.1 200 ok\r\nX-A: 1\r\n \r\n more\r\nContent-Length: 4\r\n\r\nbody`, 'body'],
    ] as const) {
      expect(bodies(wire).body, JSON.stringify(wire.slice(15, 60))).toBe(body);
    }
    // a bare CR inside a response's line ends a line (a request's is left as it is)
    for (const wire of [
      `HTTP/1.1 200\rTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked(eicar)}`,
      `HTTP/1.1 200 ok\rTransfer-Encoding: chunked\rConnection: close\r\n\r\n${chunked(eicar)}`,
    ]) {
      const { body, out, r } = bodies(wire);
      expect(body).toBe(eicar);
      expect(out[0]!.status).toBe(200);
      expect(r.anomalies.badFieldLine).toBeGreaterThan(0);
    }
    const req = recorder();
    req.s.request.push(bytes('GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n'));
    expect(req.msgs[0]!.fields.map((f) => [f.name, text(f.value)])).toEqual([['X-A', 'a\rb']]);
  });

  it("more of HTTP Evader's responses: longer junk lines, NUL-led folds, a name folded over lines, a 101 without Upgrade", () => {
    const head = (h: string) =>
      `${h}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked(eicar)}`;
    // a line before the status line that a status line follows, up to statusJunkLineBytesMax
    for (const before of [
      'SIP/2.0 200 ok\r\n',
      ' foobar\r\n',
      ' SIP/2.0 200 ok\r\n',
      'x'.repeat(40) + '\r\n',
    ]) {
      const { body, out, r } = bodies(`${before}${head('HTTP/1.1 200 ok\r\n')}`);
      expect([body, out[0]!.status], JSON.stringify(before)).toEqual([eicar, 200]);
      expect(r.anomalies.oddStatusLine).toBeGreaterThan(0);
    }
    // a blank line after it, then a status line, is not a status line following: not skipped, however the
    // bytes are cut (the soak's seed 492388577 found the two readings)
    const wire = bytes('HTTP/1.1 204 n\r\n\r\nabcdefHTTP/1.1 200 ok\r\n\r\nHTTP/1.1 200 ok\r\n\r\n');
    const readings = new Set<string>();
    for (let cut = 0; cut <= wire.length; cut++) {
      const r = recorder(budget(), { resync: false });
      r.s.request.push(bytes('GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n'));
      r.s.response.push(wire.subarray(0, cut));
      r.s.response.push(wire.subarray(cut));
      r.s.response.end();
      readings.add(
        JSON.stringify(r.msgs.filter((m) => m.kind === 'response').map((m) => [m.version, text(m.body)])),
      );
      r.s.dispose();
    }
    expect([...readings]).toEqual([
      JSON.stringify([
        ['HTTP/1.1', ''],
        ['HTTP/0.9', 'abcdefHTTP/1.1 200 ok\r\n\r\nHTTP/1.1 200 ok\r\n\r\n'],
      ]),
    ]);
    // one too long, or one a status line does not follow: not skipped (a body without a status line)
    expect(bodies(`${'x'.repeat(200)}\r\n${head('HTTP/1.1 200 ok\r\n')}`).out[0]!.version).toBe('HTTP/0.9');
    expect(bodies(`SIP/2.0 200 ok\r\nVia: x\r\n${head('HTTP/1.1 200 ok\r\n')}`).out[0]!.version).toBe(
      'HTTP/0.9',
    );
    // a value on a line of its own led by a NUL (or another byte some browser takes as space): a fold
    const fields = (wire: string | Uint8Array) =>
      bodies(wire).out[0]!.fields.map((f) => `${f.lname}=${text(f.value).trim()}`);
    for (const lead of ['\u0000', '\u000b', '\u000c']) {
      const { body, r } = bodies(
        `HTTP/1.1 200 ok\r\nTransfer-Encoding:\n${lead}chunked\r\nConnection: close\r\n\r\n${chunked(eicar)}`,
      );
      expect(body, JSON.stringify(lead)).toBe(eicar);
      expect(r.anomalies.obsFold).toBe(1);
    }
    const gz = gzipSync(Buffer.from(eicar));
    const { out, r } = bodies(
      Buffer.concat([
        bytes(`HTTP/1.1 200 ok\r\nContent-Encoding:\n\u0000gzip\r\nContent-Length: ${gz.length}\r\n\r\n`),
        gz,
      ]),
    );
    const ce = out[0]!.fields.filter((f) => f.lname === 'content-encoding').map((f) => text(f.value));
    expect(text(decodeContent(out[0]!.body, ce, r.anomalies))).toBe(eicar);
    // a field name folded over three lines before its colon, then its value on a fourth
    const { body: folded } = bodies(head('HTTP/1.1 200 ok\r\nTransfer-Encoding\r\n \r\n :\r\n chunked\r\n'));
    expect(folded).toBe(eicar);
    expect(fields(`HTTP/1.1 200 ok\r\nTransfer-Encoding\r\n \r\n :\r\n chunked\r\nX: 1\r\n\r\n`)).toEqual([
      'transfer-encoding=chunked',
      'x=1',
    ]);
    // a 101 that names no protocol (no Upgrade field: RFC 9110 15.2.2 requires one) switches to nothing:
    // a final response, its body framed as any other's; with Upgrade, what follows is the new protocol's
    const { body: b101, out: o101 } = bodies(
      `HTTP/1.1 101 ok\r\nConnection: close\r\nContent-length: ${eicar.length}\r\n\r\n${eicar}`,
    );
    expect([b101, o101[0]!.status]).toEqual([eicar, 101]);
    // a chunked body after a 204 that said it is chunked: read as chunked (a browser that reads one does)
    const b204 = bodies(
      `HTTP/1.1 204 ok\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked(eicar)}`,
    );
    expect([b204.out.map((m) => [m.status, m.version]), b204.out[1]!.body.length]).toEqual([
      [
        [204, 'HTTP/1.1'],
        [200, 'HTTP/0.9'],
      ],
      eicar.length,
    ]);
    expect(text(b204.out[1]!.body)).toBe(eicar);
    // and lines of a body without a status line are its own, also the short first ones (they were dropped
    // as lines to skip before a status line that never came)
    expect(bodies(`HTTP/1.1 204 ok\r\n\r\nab\r\ncd\r\nefgh ijkl mnop\r\n`).body).toBe(
      '|ab\r\ncd\r\nefgh ijkl mnop\r\n',
    );
    const ws = bodies(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n${eicar}`,
    );
    expect([ws.body, ws.out.length]).toEqual(['', 1]);
  });

  it('a direction that stopped where a start line should have been starts again at a later line that begins one', () => {
    const events = (log: string[]) => ({
      headers() {},
      message: (m: HttpMessage) =>
        log.push(m.kind === 'request' ? `${m.method} ${text(m.uri)}` : `${m.status} ${text(m.body)}`),
    });
    const session = (fromStart: boolean) => {
      const log: string[] = [];
      const anomalies = newHttpAnomalies();
      const b = budget();
      const s = new HttpSession({ request: events(log), response: events(log) }, anomalies, b, {
        responseFromStart: fromStart,
        requestFromStart: fromStart,
      });
      return { s, log, anomalies, b };
    };
    // a response stream picked up after its first bytes (a body's tail): the next delivery that starts a
    // response is read, and so are the ones after it
    const a = session(false);
    a.s.request.push(bytes('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n'));
    a.s.response.push(bytes(`${'x'.repeat(300)}\r\nmore of a body`));
    expect(a.s.response.state).toBe('not-http');
    a.s.response.push(
      bytes('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 404 No\r\nContent-Length: 1\r\n\r\nn'),
    );
    expect(a.log).toEqual(['GET /1', 'GET /2', '200 ok', '404 n']);
    expect(a.anomalies.resynced).toBe(1);
    // at a line start inside a delivery too; not at `HTTP/1.` inside a line
    const b = session(false);
    b.s.request.push(bytes('GET /1 HTTP/1.1\r\n\r\n'));
    b.s.response.push(bytes(`${'x'.repeat(300)}\r\n`));
    b.s.response.push(bytes('see HTTP/1.1 200 in the text'));
    expect(b.anomalies.resynced).toBe(0);
    b.s.response.push(bytes('tail\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    expect([b.log, b.anomalies.resynced]).toEqual([['GET /1', '200 ok'], 1]);
    // a gap where the framing is lost (a body read to the end of the connection... here a chunked one),
    // then a new message: read
    const c = session(true);
    c.s.request.push(bytes('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n'));
    c.s.response.push(bytes('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab'));
    c.s.response.gap(100);
    expect(c.s.response.state).toBe('dead');
    c.s.response.push(bytes('HTTP/1.1 204 No\r\n\r\n'));
    expect([c.log, c.anomalies.resynced]).toEqual([['GET /1', 'GET /2', '200 ab', '204 '], 1]);
    // a request direction picked up in a body: the next request line is read
    const d = session(false);
    d.s.request.push(bytes('tail of a posted body\r\n'));
    expect(d.s.request.state).toBe('not-http');
    d.s.request.push(bytes('x=1\r\nPOST /upload HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc'));
    expect([d.log, d.anomalies.resynced]).toEqual([['POST /upload'], 1]);
    // what resumes and fails again waits for the next such line, as before
    const e = session(false);
    e.s.response.push(bytes(`${'x'.repeat(300)}\r\n`));
    e.s.response.push(bytes(`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz${'g'.repeat(200)}\r\n`));
    expect(e.s.response.state).toBe('dead');
    e.s.response.push(bytes('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny'));
    expect(e.anomalies.resynced).toBe(2);
    // a stream seen from its start whose first bytes are another protocol's is left alone (the test above);
    // one whose first bytes were lost (a gap before them) is not
    const f = session(true);
    f.s.request.push(bytes('GET /1 HTTP/1.1\r\n\r\n'));
    f.s.response.gap(1000);
    f.s.response.push(bytes(`${'x'.repeat(300)}\r\n`));
    expect([f.s.response.state, f.anomalies.headlessResponse]).toEqual(['not-http', 0]);
    f.s.response.push(bytes('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    expect([f.log, f.anomalies.resynced]).toEqual([['GET /1', '200 ok'], 1]);
    const g = session(true);
    g.s.response.push(bytes(`${'x'.repeat(300)}\r\n`));
    g.s.response.push(bytes('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    expect([g.log, g.anomalies.resynced]).toEqual([[], 0]);
    for (const x of [a, b, c, d, e, f, g]) {
      x.s.dispose();
      expect(x.b.bytes).toBe(0);
    }
  });

  it('odd responses give the same messages and anomalies however they are segmented (property)', () => {
    const piece = fc.constantFrom(
      '',
      ' \r\n',
      'foobar\r\n',
      ' \t\r\n',
      'SIP/2.0 200 ok\r\n',
      ' foobar\r\n',
      'ab\r\n',
    );
    const status = fc.constantFrom(
      'HTTP/1.1 200 ok',
      'http/1.01 200',
      ' HTTP/1.1 2xx x',
      'HTTP/1.1\u0000200\u0000ok',
      'HTTP/1.1 204 n',
      'HTTP/1.1 100 c',
      'HTTP/1.1 101 x',
      'HTTP/1.1 200\rX-A: 1',
    );
    const field = fc.constantFrom(
      'Transfer-Encoding: chunked',
      'Transfer-Encoding:\u0000xchunked',
      'Content-Length: 6',
      'Content-Length: 6A',
      'X-Long: a',
      ' folded: line',
      'Transfer-Encoding\r\n :chunked',
      'Transfer-Encoding\r\n \r\n :\r\n chunked',
      'Transfer-Encoding:\n\u0000chunked',
      'Upgrade: x',
      'Content-Encoding: gzip',
    );
    const blank = fc.constantFrom('\r\n', '\n', ' \n', '\r\r\n', '\t\n\n');
    const body = fc.constantFrom(
      '',
      'abcdef',
      '6\r\nabcdef\r\n0\r\n\r\n',
      '\n6x\r\nabcdef\r\n0\r\n\r\n',
      'X5O!P%@AP',
    );
    const response = fc
      .tuple(piece, status, fc.array(field, { maxLength: 4 }), blank, body)
      .map(([p, st, fs, b, bd]) => `${p}${st}\r\n${fs.map((f) => `${f}\r\n`).join('')}${b}${bd}`);
    fc.assert(
      fc.property(
        fc.array(response, { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (rs, cuts) => {
          const wire = bytes(rs.join(''));
          const run = (parts: Uint8Array[]) => {
            // resync looks where pushes start (as Wireshark looks at segments): off, for the framing alone
            const r = recorder(budget(), { resync: false });
            for (let i = 0; i < rs.length; i++) r.s.request.push(bytes('GET / HTTP/1.1\r\n\r\n'));
            for (const p of parts) r.s.response.push(p);
            r.s.response.end();
            const got = {
              log: r.log,
              msgs: r.msgs.map((m) => [
                m.kind,
                m.status,
                text(m.statusText),
                m.fields.map((f) => [f.lname, text(f.value)]),
                text(m.body),
                text(m.raw),
              ]),
              anomalies: { ...r.anomalies },
            };
            r.s.dispose();
            expect(r.b.bytes).toBe(0);
            return got;
          };
          expect(run(split(wire, cuts))).toEqual(run([wire]));
        },
      ),
      { numRuns: 400 },
    );
  });

  it('gzip with reserved flags, a header CRC, a wrong CRC-32 or length; codings named wrongly or not at all', () => {
    const gz = gzipSync(Buffer.from(eicar));
    /** The member with its flags byte set to `flags`, `extra` after the fixed header, byte `at` (from the end) flipped. */
    const member = (flags: number, extra = Buffer.alloc(0), flipFromEnd = 0) => {
      const b = Buffer.concat([gz.subarray(0, 10), extra, gz.subarray(10)]);
      b[3] = flags;
      if (flipFromEnd > 0) b[b.length - flipFromEnd]! ^= 0xff;
      return b;
    };
    const cases: [string, Buffer, string][] = [
      ['reserved flag 0x20', member(0x20), 'gzip'],
      ['reserved flag 0x80', member(0x80), 'gzip'],
      ['FHCRC', member(0x02, Buffer.from([0, 0])), 'gzip'],
      [
        'FEXTRA FNAME FCOMMENT',
        member(0x1c, Buffer.concat([Buffer.from([3, 0, 1, 2, 3]), Buffer.from('name\0comment\0')])),
        'gzip',
      ],
      ['CRC-32 wrong', member(0, undefined, 8), 'gzip'],
      ['length wrong', member(0, undefined, 4), 'gzip'],
      ['x_gzip', gz, 'x_gzip'],
      ['gzip_x', gz, 'gzip_x'],
      ['deflate, gzip over deflate alone', deflateSync(Buffer.from(eicar)), 'deflate, gzip'],
      ['gzip, deflate over gzip alone', gz, 'gzip, deflate'],
      ['x-deflate', deflateRawSync(Buffer.from(eicar)), 'x-deflate'],
    ];
    for (const [name, body, ce] of cases) {
      const a = newHttpAnomalies();
      expect(text(decodeContent(body, [ce], a)), name).toBe(eicar);
    }
    // bytes that are no compressed data stay as they are, counted
    const a = newHttpAnomalies();
    expect(text(decodeContent(bytes(eicar), ['gzip'], a))).toBe(eicar);
    expect(text(decodeContent(bytes(eicar), ['deflate'], a))).toBe(eicar);
    expect(a.decompressFailed).toBe(2);
  });
});

describe('URI normalization', () => {
  it('percent-decodes, turns backslashes into slashes, removes dot segments and repeated slashes', () => {
    const n = (s: string) => text(normalizeUri(bytes(s)));
    expect(n('/a/./b/../c//d')).toBe('/a/c/d');
    expect(n('/%2e%2e/%2E%2e/etc/passwd')).toBe('/etc/passwd');
    expect(n('/scripts/..%5c..%5cwinnt/system32/cmd.exe?/c+dir')).toBe('/winnt/system32/cmd.exe?/c+dir');
    expect(n('/a/b/..')).toBe('/a/');
    expect(n('/a/.')).toBe('/a/');
    expect(n('/x%00y%zz%u0041%u2215')).toBe('/x\u0000y%zzA%u2215');
    expect(n('/p?q=%2e%2e/../x')).toBe('/p?q=../../x'); // the query is decoded, not simplified
    expect(n('/p%3fq=1/../x')).toBe('/x'); // an encoded ? does not start the query
    expect(n('http://Host:80/a/../b')).toBe('http://Host:80/b');
    expect(n('*')).toBe('*');
    expect(text(percentDecode(bytes('%41%4')))).toBe('A%4');
  });

  it('simplifies a path as its segments as text do, looking at the bytes alone where nothing changes (property)', () => {
    const cases: [string, boolean][] = [
      ['', false],
      ['/', false],
      ['a', false],
      ['/a/', false],
      ['/index.html', false],
      ['...', false],
      ['/.a/a./a.b/', false],
      ['//', true],
      ['/a//b', true],
      ['.', true],
      ['..', true],
      ['a/.', true],
      ['/a/..', true],
      ['./x', true],
      ['/../', true],
    ];
    for (const [p, changes] of cases) {
      expect(hasDotOrEmptySegment(bytes(p)), p).toBe(changes);
      expect(text(simplifyPath(bytes(p))), p).toBe(text(simplifyPathText(bytes(p))));
      if (!changes) expect(simplifyPath(bytes(p))).toEqual(bytes(p));
    }
    const path = fc
      .array(fc.constantFrom('/', '/', '.', '.', 'a', 'b', '\\', '%', '?', '\u00e9'), { maxLength: 40 })
      .map((a) => bytes(a.join('')));
    fc.assert(
      fc.property(fc.oneof(path, fc.uint8Array({ maxLength: 60 })), (p) => {
        const want = simplifyPathText(p);
        expect([...simplifyPath(p)]).toEqual([...want]);
        if (!hasDotOrEmptySegment(p)) expect([...want]).toEqual([...p]);
      }),
      { numRuns: 3000 },
    );
  });

  it('never throws and never grows the URI (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200, size: 'max' }), (u) => {
        expect(normalizeUri(u).length).toBeLessThanOrEqual(u.length + 1);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('HTTP fuzzing', () => {
  it('mutated, truncated and resegmented streams: no throw, memory bounded and all given back', () => {
    const seeds = [pipelined, responses];
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.nat(),
        fc.array(fc.nat(), { maxLength: 3 }),
        (which, flips, cuts, cutEnd, gaps) => {
          const data = new Uint8Array(seeds[which]!);
          for (const [at, v] of flips) data[at % data.length] = v;
          const r = recorder();
          const p = which === 0 ? r.s.request : r.s.response;
          const pieces = split(data.subarray(0, cutEnd % (data.length + 1)), cuts);
          pieces.forEach((piece, i) => {
            if (gaps.includes(i)) p.gap(1 + (i % 7));
            p.push(piece);
            expect(p.heldBytes).toBeLessThanOrEqual(2 * httpHeaderBytesMax + 2 * 64 * 1024);
          });
          p.end();
          r.s.dispose();
          expect(r.b.bytes).toBe(0);
        },
      ),
      { numRuns: 1500 },
    );
  });
});
