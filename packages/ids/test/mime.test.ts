import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  base64Decode,
  mimeDepthMax,
  mimeHeaderBytesMax,
  mimePartsMax,
  newMimeAnomalies,
  parseMime,
  qpDecode,
  uuDecode,
} from '../src/mime.js';

const b = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const text = (u: Uint8Array) => Buffer.from(u).toString('latin1');
const b64 = (s: string | Uint8Array, width = 76) =>
  (
    Buffer.from(typeof s === 'string' ? Buffer.from(s, 'latin1') : s)
      .toString('base64')
      .match(new RegExp(`.{1,${width}}`, 'g')) ?? ['']
  ).join('\r\n');

const png = new Uint8Array([
  0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52,
]);

function mail(boundary: string, parts: string[], close = true): string {
  return [
    'From: a@example.com',
    'To: b@example.org',
    'Subject: test',
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed;\r\n\tboundary="${boundary}"`,
    '',
    'This is the preamble.',
    ...parts.flatMap((p) => [`--${boundary}`, p]),
    close ? `--${boundary}--` : '',
    'epilogue',
  ].join('\r\n');
}

describe('MIME', () => {
  it('decodes a multipart message: a quoted-printable text part and a base64 attachment, byte for byte', () => {
    const an = newMimeAnomalies();
    const m = mail('=_b1', [
      'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsee http=3A//1.usa.gov/abc=\r\ndef01 caf=C3=A9',
      `Content-Type: image/png; name="x.png"\r\nContent-Disposition: attachment; filename="pic.png"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64(png, 8)}`,
    ]);
    const parts = parseMime(b(m), an);
    expect(parts.map((p) => p.contentType)).toEqual(['text/plain', 'image/png']);
    expect(text(parts[0]!.data)).toBe('see http://1.usa.gov/abcdef01 caf\xc3\xa9');
    expect([...parts[1]!.data]).toEqual([...png]);
    expect(parts[1]!.filename).toBe('pic.png');
    expect(parts[1]!.encoding).toBe('base64');
    expect(Object.values(an).every((n) => n === 0)).toBe(true);
  });

  it('nested multiparts and message/rfc822 give their leaves in order; bare LF line ends work', () => {
    const inner = mail('in', ['Content-Type: text/plain\r\n\r\ninner text']).replace(/\r\n/g, '\n');
    const m = mail('out', [
      `Content-Type: multipart/alternative; boundary=alt\n\n--alt\nContent-Type: text/plain\n\nplain\n--alt\nContent-Type: text/html\n\n<b>html</b>\n--alt--\n`,
      `Content-Type: message/rfc822\n\n${inner}`,
    ]).replace(/\r\n/g, '\n');
    const parts = parseMime(b(m), newMimeAnomalies());
    expect(parts.map((p) => text(p.data))).toEqual(['plain', '<b>html</b>', 'inner text']);
  });

  it('a boundary that is a prefix of a longer line is not a delimiter', () => {
    const m = mail('ab', ['Content-Type: text/plain\r\n\r\none\r\n--abc is not it\r\ntwo']);
    const parts = parseMime(b(m), newMimeAnomalies());
    expect(parts.map((p) => text(p.data))).toEqual(['one\r\n--abc is not it\r\ntwo']);
  });

  it('a part without a header section is all body, with or without an empty line after its first line', () => {
    const m = mail('s', [
      'just text\r\nmore',
      'text\r\n\r\nafter a blank line',
      'X-Name : v\r\n\r\nobs header',
    ]);
    expect(parseMime(b(m), newMimeAnomalies()).map((p) => text(p.data))).toEqual([
      'just text\r\nmore',
      'text\r\n\r\nafter a blank line',
      'obs header',
    ]);
  });

  it('RFC 2231 parameters: a boundary in continuations, an encoded file name', () => {
    const m = [
      'Content-Type: multipart/mixed; boundary*0="=_spl"; boundary*1=it',
      '',
      '--=_split',
      "Content-Type: application/zip; name*=utf-8''%E2%82%ACvil.zip",
      'Content-Transfer-Encoding: base64',
      '',
      b64('PK\x03\x04'),
      '--=_split--',
    ].join('\r\n');
    const parts = parseMime(b(m), newMimeAnomalies());
    expect(parts).toHaveLength(1);
    expect(text(parts[0]!.data)).toBe('PK\x03\x04');
    expect(parts[0]!.filename).toBe('\xe2\x82\xacvil.zip');
  });

  it('uuencode: as a Content-Transfer-Encoding, and a begin block inside a text body as a part of its own', () => {
    // 'PK\x03\x04hello' uuencoded (POSIX uuencode(1))
    const uu = (s: string) => {
      const u = Buffer.from(s, 'latin1');
      let line = String.fromCharCode(32 + u.length);
      for (let i = 0; i < u.length; i += 3) {
        const [a = 0, c = 0, d = 0] = [u[i], u[i + 1], u[i + 2]];
        for (const v of [a >> 2, ((a & 3) << 4) | (c >> 4), ((c & 15) << 2) | (d >> 6), d & 63])
          line += v === 0 ? '`' : String.fromCharCode(32 + v);
      }
      return line;
    };
    const an = newMimeAnomalies();
    const enc = `begin 644 a.zip\r\n${uu('PK\x03\x04hello')}\r\n\`\r\nend\r\n`;
    expect(text(uuDecode(b(enc), an, 100).data)).toBe('PK\x03\x04hello');
    const m = mail('u', [
      `Content-Type: application/zip\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n${enc}`,
      `Content-Type: text/plain\r\n\r\nsee the attached file\r\n\r\n${enc}`,
    ]);
    const parts = parseMime(b(m), an);
    expect(parts.map((p) => [p.contentType, p.filename ?? '', text(p.data).slice(0, 20)])).toEqual([
      ['application/zip', '', 'PK\x03\x04hello'],
      ['text/plain', '', `see the attached file\r\n\r\n${enc}`.slice(0, 20)],
      ['application/octet-stream', 'a.zip', 'PK\x03\x04hello'],
    ]);
    expect(an.badUuencode).toBe(0);
    expect(text(uuDecode(b(`M!!!\r\n${uu('ok')}\r\n`), an, 100).data)).toBe('ok');
    expect(an.badUuencode).toBe(1);
  });

  it('a message without MIME is one text part: its body', () => {
    const parts = parseMime(b('Subject: hi\r\n\r\nhello\r\n'), newMimeAnomalies());
    expect(parts).toHaveLength(1);
    expect(parts[0]!.contentType).toBe('text/plain');
    expect(text(parts[0]!.data)).toBe('hello\r\n');
  });

  it('malformed input is decoded as far as it goes and counted', () => {
    let an = newMimeAnomalies();
    // no boundary parameter: the body is one part
    let parts = parseMime(b('Content-Type: multipart/mixed\r\n\r\n--x\r\nbody'), an);
    expect(parts).toHaveLength(1);
    expect(an.badBoundary).toBe(1);
    // the boundary never occurs
    an = newMimeAnomalies();
    parts = parseMime(b('Content-Type: multipart/mixed; boundary=zz\r\n\r\nno parts here'), an);
    expect(text(parts[0]!.data)).toBe('no parts here');
    expect(an.noDelimiter).toBe(1);
    // no close delimiter: the last part runs to the end
    an = newMimeAnomalies();
    parts = parseMime(b(mail('q', ['Content-Type: text/plain\r\n\r\nlast'], false)), an);
    expect(text(parts[0]!.data)).toBe('last\r\n\r\nepilogue');
    expect(an.unterminated).toBe(1);
    // bad base64 characters are skipped; decoding stops at '='
    an = newMimeAnomalies();
    expect(text(base64Decode(b('aGV*sbG!8=IGlnbm9yZWQ'), an, 100).data)).toBe('hello');
    expect(an.badBase64).toBe(1);
    // a bad '=' escape stays as sent; a soft break is removed
    an = newMimeAnomalies();
    expect(text(qpDecode(b('a=ZZb=\r\nc=4'), an, 100).data)).toBe('a=ZZbc=4');
    expect(an.badQuotedPrintable).toBe(1);
  });

  it('base64: characters of the alphabet up to the first = decoded, the rest skipped, cut at the cap (property)', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const ch = fc.oneof(
      { weight: 12, arbitrary: fc.constantFrom(...alphabet) },
      { weight: 2, arbitrary: fc.constantFrom('\r\n', ' ', '\t') },
      { weight: 1, arbitrary: fc.constantFrom('=', '*', '!', '\u00ff', '-') },
    );
    fc.assert(
      fc.property(fc.array(ch, { maxLength: 120, size: 'max' }), fc.nat(100), (cs, max) => {
        const t = cs.join('');
        const head = t.split('=')[0]!;
        const kept = [...head].filter((c) => alphabet.includes(c)).join('');
        const want = Buffer.from(kept, 'base64');
        const an = newMimeAnomalies();
        const got = base64Decode(b(t), an, max);
        expect(text(got.data)).toBe(want.subarray(0, max).toString('latin1'));
        expect(got.truncated).toBe(want.length > max);
        // (past the cap nothing more is read: characters after it are not looked at)
        if (!got.truncated)
          expect(an.badBase64).toBe(
            [...head].some((c) => !alphabet.includes(c) && !'\r\n \t'.includes(c)) ? 1 : 0,
          );
      }),
      { numRuns: 2000 },
    );
  });

  it('bounds: a huge header section, a nesting bomb, a part-count bomb, the per-part byte cap', () => {
    let an = newMimeAnomalies();
    const huge = `X-Junk: ${'a'.repeat(3 * mimeHeaderBytesMax)}\r\nContent-Type: text/plain\r\n\r\nbody`;
    let parts = parseMime(b(huge), an);
    expect(text(parts[0]!.data)).toBe('body');
    expect(an.headerTooLong).toBe(1);
    // nesting: every level a multipart inside the previous one
    an = newMimeAnomalies();
    let nested = 'Content-Type: text/plain\r\n\r\ndeep';
    for (let i = 0; i < 50; i++)
      nested = `Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\n${nested}\r\n--b${i}--`;
    parts = parseMime(b(nested), an);
    expect(parts).toHaveLength(0);
    expect(an.tooDeep).toBe(1);
    an = newMimeAnomalies();
    nested = 'Content-Type: text/plain\r\n\r\ndeep';
    for (let i = 0; i < mimeDepthMax; i++)
      nested = `Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\n${nested}\r\n--b${i}--`;
    expect(parseMime(b(nested), an).map((p) => text(p.data))).toEqual(['deep']);
    // many tiny parts
    an = newMimeAnomalies();
    const many = mail(
      'm',
      Array.from({ length: 3 * mimePartsMax }, (_, i) => `\r\np${i}`),
    );
    parts = parseMime(b(many), an);
    expect(parts.length).toBe(mimePartsMax);
    expect(text(parts[0]!.data)).toBe('p0');
    // the per-part cap
    an = newMimeAnomalies();
    parts = parseMime(b(`Content-Transfer-Encoding: base64\r\n\r\n${b64('x'.repeat(10_000))}`), an, {
      partBytesMax: 1000,
    });
    expect(parts[0]!.data.length).toBe(1000);
    expect(parts[0]!.truncated).toBe(true);
    expect(an.partCapped).toBe(1);
  });

  it('fuzz: any input, mutated messages and random structure: no throw, bounded output', () => {
    const seed = b(
      mail('=_b1', [
        'Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nA=3DB=\r\nC',
        `Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64('PK\x03\x04hello')}`,
        'Content-Type: multipart/alternative; boundary=alt\r\n\r\n--alt\r\n\r\nx\r\n--alt--',
      ]),
    );
    const tokens = [
      '\r\n',
      '\n',
      '--=_b1',
      '--=_b1--',
      '--alt',
      '=',
      '=\r\n',
      ': ',
      'Content-Type: multipart/mixed; boundary=',
      'Content-Transfer-Encoding: base64',
      'Content-Transfer-Encoding: quoted-printable',
      'message/rfc822',
      '\r\n\r\n',
      'boundary="',
      'begin 644 f\r\n',
      'M86)C',
      'Content-Transfer-Encoding: x-uuencode',
      'boundary*0=',
      "name*=utf-8''%",
    ];
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 4000, size: 'max' }),
      fc
        .array(fc.constantFrom(...tokens, 'a', 'QUJD', ' '), { maxLength: 300, size: 'max' })
        .map((t) => b(t.join(''))),
      fc
        .array(fc.tuple(fc.nat(seed.length), fc.integer({ min: 0, max: 255 }), fc.nat(40)), { maxLength: 12 })
        .map((muts) => {
          let m = seed;
          for (const [pos, byte, cut] of muts) {
            // replace `cut` bytes at `pos` with one byte
            const at = pos % (m.length + 1);
            m = new Uint8Array(
              Buffer.concat([m.subarray(0, at), new Uint8Array([byte]), m.subarray(at + cut)]),
            );
          }
          return m;
        }),
    );
    fc.assert(
      fc.property(input, fc.integer({ min: 1, max: 5000 }), (msg, partBytesMax) => {
        const parts = parseMime(msg, newMimeAnomalies(), { partBytesMax });
        expect(parts.length).toBeLessThanOrEqual(mimePartsMax);
        let total = 0;
        for (const p of parts) {
          expect(p.data.length).toBeLessThanOrEqual(partBytesMax);
          total += p.data.length;
        }
        // decoding never expands and the leaves are disjoint pieces of the message; a uuencoded block in a
        // text body is a second part beside its text
        expect(total).toBeLessThanOrEqual(2 * msg.length);
      }),
      { numRuns: 1500 },
    );
  });
});
