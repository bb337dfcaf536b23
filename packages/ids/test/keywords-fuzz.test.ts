/** The protocol keyword parsers on random and mutated input: no throw, results within the input, and (TLS,
 * DCE/RPC) what a stream holds found the same whatever its segmentation. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { asn1Match, parseAsn1 } from '../src/asn1.js';
import { base64DecodeAt, base64DecodedBytesMax } from '../src/base64.js';
import { DceDatagramDefrag, DceSession, dceDefragBytesMax, parseDceDatagram } from '../src/dcerpc.js';
import { parseSip, SipStream } from '../src/sip.js';
import { TlsSession } from '../src/tls.js';
import { bind, bindAck } from './dce-wire.js';

const bytes = fc.uint8Array({ minLength: 0, maxLength: 600, size: 'max' });
const winreg = '338cd001-2244-31f1-aaaa-900038001003';

/** Cuts `b` at the given sizes (cycled). */
function cut(b: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0, k = 0; at < b.length; k++) {
    const n = sizes[k % sizes.length]!;
    out.push(b.subarray(at, at + n));
    at += n;
  }
  return out;
}

/** Flips bytes of `b` at the given places. */
function mutate(b: Uint8Array, flips: [number, number][]): Uint8Array {
  const m = Uint8Array.from(b);
  for (const [at, v] of flips) if (m.length > 0) m[at % m.length] = v;
  return m;
}
const flips = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 });

const le16 = (n: number) => [n & 0xff, n >> 8];
/** A TLS session's client bytes: ClientHello, ClientKeyExchange, ChangeCipherSpec, application data. */
const tlsClient = Uint8Array.from([
  ...[22, 3, 1, 0, 8, 1, 0, 0, 4, 3, 3, 0, 0],
  ...[22, 3, 3, 0, 6, 16, 0, 0, 2, 9, 9],
  ...[20, 3, 3, 0, 1, 1],
  ...[23, 3, 3, 0, 3, 1, 2, 3],
]);
/** A DCE/RPC client's bytes: three requests (opnums 1, 2, 3) with stubs of 0, 5 and 40 bytes. */
const dceClient = Uint8Array.from(
  [1, 2, 3].flatMap((op, k) => {
    const stub = new Array([0, 5, 40][k]!).fill(op);
    return [
      5,
      0,
      0,
      3,
      0x10,
      0,
      0,
      0,
      ...le16(24 + stub.length),
      0,
      0,
      1,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...le16(op),
      ...stub,
    ];
  }),
);

describe('protocol keyword parsers under random and mutated input', () => {
  it('asn1, base64, SIP and connectionless DCE/RPC: no throw, results inside the input', () => {
    const o = parseAsn1('bitstring_overflow, double_overflow, oversize_length 100');
    fc.assert(
      fc.property(
        bytes,
        fc.integer({ min: -5, max: 700 }),
        fc.option(fc.integer({ min: 1, max: 700 })),
        (b, from, n) => {
          expect(typeof asn1Match(b, from, o)).toBe('boolean');
          const r = base64DecodeAt(b, from, n ?? undefined);
          if (r) {
            expect(r.data.length).toBeLessThanOrEqual(base64DecodedBytesMax);
            expect(r.end).toBeGreaterThanOrEqual(from);
            expect(r.end).toBeLessThanOrEqual(b.length);
          }
          const m = parseSip(b, from);
          if (m)
            expect(
              m.headerStart <= m.headerEnd && m.headerEnd <= m.bodyStart && m.bodyStart <= b.length,
            ).toBe(true);
          const d = parseDceDatagram(b);
          if (d) expect(d.stubStart <= d.stubEnd && d.stubEnd <= b.length).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('SIP: a start line is one exactly as RFC 3261 7.1/7.2 lay it out (property over lines of its pieces)', () => {
    // the rule as text, the way the parser read every first line before it looked at the bytes first
    const model = (line: string) => {
      const parts = line.replace(/\r$/, '').split(' ');
      if (parts[0] === 'SIP/2.0')
        return parts.length >= 2 && /^[1-9]\d\d$/.test(parts[1]!) ? Number(parts[1]) : undefined;
      return parts.length === 3 &&
        /^[A-Za-z0-9.!%*_+`'~-]+$/.test(parts[0]!) &&
        parts[2] === 'SIP/2.0' &&
        parts[1]!.length > 0
        ? parts[0]!.toUpperCase()
        : undefined;
    };
    const piece = fc.constantFrom(
      'SIP/2.0',
      ' ',
      'INVITE',
      'sip:x',
      '200',
      '099',
      'OK',
      '\r',
      'SIP/2.0 ',
      ' SIP/2.0',
      'x',
      '',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 6 }), fc.nat(3), (ps, lead) => {
        const line = ps.join('');
        const b = new Uint8Array(Buffer.from(`${'#'.repeat(lead)}${line}\nVia: v\r\n\r\n`, 'latin1'));
        const m = parseSip(b, lead);
        const want = model(line);
        expect(m?.status ?? m?.method).toBe(want);
      }),
      { numRuns: 3000 },
    );
  });

  it('TLS: the handshake messages found do not depend on the segmentation; mutated streams do not throw', () => {
    const statesOf = (chunks: Uint8Array[]) => {
      const t = new TlsSession();
      let all = 0;
      for (const c of chunks) {
        t.feed(0, c, false);
        all |= t.dirs[0].current;
      }
      return { all, versions: t.versions };
    };
    const whole = statesOf([tlsClient]);
    expect(whole.all).toBe(1 | 4); // client_hello, client_keyx
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 10 }),
        flips,
        (sizes, f) => {
          expect(statesOf(cut(tlsClient, sizes))).toEqual(whole);
          statesOf(cut(mutate(tlsClient, f), sizes));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('DCE/RPC over TCP: each request found once, its stub inside its delivery, whatever the segmentation', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 10 }),
        flips,
        (sizes, f) => {
          const s = new DceSession();
          const opnums: number[] = [];
          for (const c of cut(dceClient, sizes))
            for (const r of s.feed(0, c, false)) {
              opnums.push(r.opnum);
              expect(0 <= r.stubStart && r.stubStart <= r.stubEnd && r.stubEnd <= c.length).toBe(true);
            }
          expect(opnums).toEqual([1, 2, 3]);
          const m = new DceSession();
          for (const c of cut(mutate(dceClient, f), sizes))
            for (const r of m.feed(0, c, false))
              expect(0 <= r.stubStart && r.stubStart <= r.stubEnd && r.stubEnd <= c.length).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('DCE/RPC over TCP: each request whole and a call in fragments reassembled, whatever the segmentation', () => {
    const le32 = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24];
    /**
     * A request fragment (little-endian): with `object`, an object UUID before its stub; after it an
     * authentication trailer of `auth` bytes.
     */
    const fragment = (
      callId: number,
      flags: number,
      opnum: number,
      stub: number[],
      auth: number,
      object = false,
    ) => {
      const uuid = object ? new Array(16).fill(0xbb) : [];
      const trailer = auth > 0 ? [...new Array(8).fill(0), ...new Array(auth).fill(0xaa)] : [];
      return [
        ...[5, 0, 0, flags | (object ? 0x80 : 0), 0x10, 0, 0, 0],
        ...le16(24 + uuid.length + stub.length + trailer.length),
        ...le16(auth),
        ...le32(callId),
        ...le32(stub.length),
        ...le16(0),
        ...le16(opnum),
        ...uuid,
        ...stub,
        ...trailer,
      ];
    };
    const part = fc.record({
      stub: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }),
      auth: fc.constantFrom(0, 0, 4, 16),
      object: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(part, { minLength: 2, maxLength: 5 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 10 }),
        fc.boolean(),
        flips,
        (parts, sizes, interleave, f) => {
          // call 7 in fragments (opnum 3 on the first, 9 on the others); a whole request and a fragment of
          // call 8 between them when `interleave`
          const wire: number[] = [];
          // each PDU's stub, in order: a request's stub is whole however the stream is cut
          const stubs: number[][] = [];
          parts.forEach((p, k) => {
            const flags = (k === 0 ? 0x01 : 0) | (k === parts.length - 1 ? 0x02 : 0);
            wire.push(...fragment(7, flags, k === 0 ? 3 : 9, p.stub, p.auth, p.object));
            stubs.push(p.stub);
            if (interleave && k === 0) {
              wire.push(...fragment(1, 0x03, 5, [1, 2], 0));
              stubs.push([1, 2]);
            }
            if (interleave && k === 1) {
              wire.push(...fragment(8, 0x02, 6, [6, 6, 6], 0));
              stubs.push([6, 6, 6]);
            }
          });
          const want = parts.flatMap((p) => p.stub);
          const s = new DceSession();
          // context 0 bound first, the bind and its acceptance cut the same way
          for (const c of cut(bind([[0, winreg, 1]]), sizes)) expect(s.feed(0, c, false)).toEqual([]);
          for (const c of cut(bindAck([0]), sizes)) expect(s.feed(1, c, false)).toEqual([]);
          const got: number[][] = [];
          const fragments: number[][] = [];
          for (const c of cut(Uint8Array.from(wire), sizes))
            for (const r of s.feed(0, c, false)) {
              expect(0 <= r.stubStart && r.stubStart <= r.stubEnd && r.stubEnd <= c.length).toBe(true);
              expect(r.uuid).toBe(winreg);
              const stub = [...(r.stub ?? c.subarray(r.stubStart, r.stubEnd))];
              if (r.reassembled) {
                expect([r.opnum, r.first]).toEqual([3, true]);
                got.push(stub);
              } else fragments.push(stub);
            }
          expect(got).toEqual([want]);
          expect(fragments).toEqual(stubs);
          expect(s.heldBytes).toBe(0);
          // mutated: no throw, offsets within the delivery, stubs within the bound
          const m = new DceSession();
          for (const c of cut(mutate(Uint8Array.from(wire), f), sizes))
            for (const r of m.feed(0, c, false)) {
              expect(0 <= r.stubStart && r.stubStart <= r.stubEnd && r.stubEnd <= c.length).toBe(true);
              expect(r.stub === undefined || r.stub.length <= dceDefragBytesMax).toBe(true);
            }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('DCE/RPC over UDP: a call in fragments, in any order and repeated, is reassembled once to its stub', () => {
    /** A connectionless request fragment (little-endian) of call `seq`, number `num`. */
    const datagram = (seq: number, num: number, last: boolean, body: number[]) => {
      const h = new Uint8Array(80);
      h[0] = 4;
      h[2] = last ? 0x06 : 0x04;
      h[4] = 0x10;
      h.set([seq & 0xff, seq >> 8, 0, 0], 64);
      h.set(le16(num === 0 ? 9 : 1), 68);
      h.set(le16(body.length), 74);
      h.set(le16(num), 76);
      return Uint8Array.from([...h, ...body]);
    };
    fc.assert(
      fc.property(
        fc
          .array(fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 30 }), {
            minLength: 1,
            maxLength: 6,
          })
          .chain((bodies) =>
            fc.tuple(
              fc.constant(bodies),
              fc.shuffledSubarray([...bodies.keys()], { minLength: bodies.length }),
              fc.array(fc.nat(), { maxLength: 8 }),
            ),
          ),
        fc.boolean(),
        ([bodies, perm, repeats], other) => {
          // every fragment of call 1 once in a random order, some of those before the last one again, and
          // (with `other`) call 2's first fragment among them
          const n = bodies.length;
          const before = perm.slice(0, -1);
          const again = before.length > 0 ? repeats.map((k) => before[k % before.length]!) : [];
          const seq = [...before, ...again, perm.at(-1)!];
          const grams = seq.map((k) => datagram(1, k, k === n - 1, bodies[k]!));
          if (other) grams.splice(1, 0, datagram(2, 0, false, [1, 2, 3]));
          const d = new DceDatagramDefrag();
          const got: number[][] = [];
          for (const g of grams)
            for (const r of d.feed(g)) {
              expect(0 <= r.stubStart && r.stubStart <= r.stubEnd && r.stubEnd <= g.length).toBe(true);
              if (r.stub) {
                expect([r.opnum, r.first]).toEqual([9, true]);
                got.push([...r.stub]);
              }
            }
          expect(got).toEqual([bodies.flat()]);
          expect(d.heldBytes).toBe(other ? 3 : 0);
        },
      ),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.array(bytes, { maxLength: 8 }), flips, (grams, f) => {
        const d = new DceDatagramDefrag();
        for (const g of grams) {
          const m = mutate(Uint8Array.from([4, 0, 0x04, 0, 0x10, ...g]), f);
          for (const r of d.feed(m)) {
            expect(0 <= r.stubStart && r.stubStart <= r.stubEnd && r.stubEnd <= m.length).toBe(true);
            expect(r.stub === undefined || r.stub.length <= dceDefragBytesMax).toBe(true);
          }
        }
        expect(d.heldBytes).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 500 },
    );
  });

  it('SIP over TCP: the messages found do not depend on the segmentation; mutated streams do not throw', () => {
    const msgs = Buffer.from(
      'INVITE sip:b SIP/2.0\r\nContent-Length: 9\r\n\r\nBYE x\r\n\r\n\r\nSIP/2.0 180 Ringing\r\nl: 2\r\n\r\nabBYE sip:b SIP/2.0\r\n\r\n',
      'latin1',
    );
    // `spoil`: each chunk overwritten once fed, as a reused buffer would be (a Buffer's slice is a view)
    const startsOf = (chunks: Uint8Array[], spoil = false) => {
      const st = new SipStream();
      const out: number[] = [];
      let at = 0;
      for (const c of chunks) {
        for (const o of st.feed(c, false)) out.push(at + o);
        if (spoil) c.fill(0x58);
        at += c.length;
      }
      return out;
    };
    const whole = startsOf([msgs]);
    expect(whole).toHaveLength(3);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 10 }),
        flips,
        (sizes, f) => {
          expect(startsOf(cut(msgs, sizes))).toEqual(whole);
          expect(startsOf(cut(Buffer.from(msgs), sizes), true)).toEqual(whole);
          for (const o of startsOf(cut(mutate(msgs, f), sizes))) expect(o).toBeGreaterThanOrEqual(0);
        },
      ),
      { numRuns: 500 },
    );
  });
});
