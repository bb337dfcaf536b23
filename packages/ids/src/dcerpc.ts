/**
 * DCE/RPC (C706, "DCE 1.1: Remote Procedure Call", chapter 12) for the `dce_iface`, `dce_opnum` and
 * `dce_stub_data` rule options and the `dce` argument of byte_test / byte_jump / byte_extract, as Snort's
 * DCE/RPC inspector offers them, over two transports:
 *
 * - connection-oriented over TCP (ncacn_ip_tcp): each direction of the reassembled stream is followed PDU by
 *   PDU (16-byte common header, frag_length in the sender's byte order). A bind or alter_context names
 *   presentation contexts (context id -> interface UUID and version); the server's bind_ack or
 *   alter_context_resp accepts them one by one (result 0), and only accepted contexts count. A request
 *   carries its context id, opnum and stub data (after 24 bytes of header, 40 with an object UUID; before
 *   the authentication trailer).
 * - connectionless over UDP (ncadg_ip_udp): each datagram is one PDU with an 80-byte header that names the
 *   interface, its version and the opnum; the stub follows.
 *
 * What a rule sees is the requests that complete in the inspected data (a stream delivery, a datagram): a
 * request PDU over TCP is read once it is whole, so its stub is never cut where a delivery ends (as Snort's
 * inspectors hand detection whole PDUs); a request fragment other than the first matches `dce_iface` only
 * with `any_frag`, and its stub is that fragment's. Over TCP a call sent in fragments is also reassembled,
 * as Snort's DCE/RPC inspector does (defragmentation, on by default there): the fragments' stubs (without
 * their authentication trailers) are gathered per direction from the first fragment on, and when the last
 * one is in the whole stub is reported as one more request (`stub`), whose interface is the first
 * fragment's context's and whose opnum is the first fragment's (Snort's Windows Vista and later policies); a
 * later fragment of another call is not taken (as a Windows server refuses it), a new first fragment starts
 * over, and a stub that reaches `dceDefragBytesMax` is reported as it stands and gathering goes on.
 * DCE/RPC inside SMB named pipes (ports 139/445) is followed by `SmbSession` (`src/smb.ts`), one
 * `DceSession` a pipe. DCE/RPC over HTTP v1 (ncacn_http, MS-RPCH) is followed over TCP where its
 * preamble leads the connection (`RpcHttpPreamble`). Over UDP, fragments are reassembled per flow
 * (`DceDatagramDefrag`).
 */

import { concatBytes, copyBytes, latin1Bytes } from './stream.js';

/** One request PDU found in the inspected data. */
export interface DceRequest {
  /** The interface of its presentation context (undefined: not bound and accepted). */
  uuid?: string;
  versionMajor?: number;
  opnum: number;
  /** First fragment of the call (or the whole call). */
  first: boolean;
  /** The sender's integer byte order (data representation). */
  little: boolean;
  /**
   * The stub data: offsets from the start of the inspected data. With `stub` over TCP, both are where the
   * request's PDU ends in the inspected stream data (its last bytes are new there).
   */
  stubStart: number;
  stubEnd: number;
  /**
   * The stub's bytes where they are not in the inspected data: a request that began in earlier deliveries,
   * a call reassembled from its fragments (its whole stub), a request carried in SMB messages.
   */
  stub?: Uint8Array;
  /** A call reassembled from its fragments (then `first` is true). */
  reassembled?: true;
}

/** Contexts remembered per session, requests reported per delivery, bytes carried over at most. */
export const dceContextsMax = 256;
export const dceRequestsPerDeliveryMax = 64;
/** Bytes of a bind's or bind_ack's start read at most (their context lists); a request is read whole. */
export const dceCarryBytesMax = 1024;
/**
 * Bytes of a fragmented call's stub gathered at most before it is reported as it stands (Snort's bound is
 * its largest reassembly packet, about 64 KiB).
 */
export const dceDefragBytesMax = 65_535;

const coHeaderBytes = 16;
const clHeaderBytes = 80;

/** The UUID at `b[at..at+16)` in canonical text; the first three fields in the given byte order. */
export function uuidAt(b: Uint8Array, at: number, little: boolean): string {
  const hex = (i: number) => b[at + i]!.toString(16).padStart(2, '0');
  const field = (from: number, n: number) => {
    let s = '';
    for (let k = 0; k < n; k++) s += hex(little ? from + n - 1 - k : from + k);
    return s;
  };
  let tail = '';
  for (let k = 10; k < 16; k++) tail += hex(k);
  return `${field(0, 4)}-${field(4, 2)}-${field(6, 2)}-${hex(8)}${hex(9)}-${tail}`;
}

function u16(b: Uint8Array, at: number, little: boolean): number {
  return little ? b[at]! | (b[at + 1]! << 8) : (b[at]! << 8) | b[at + 1]!;
}

function u32(b: Uint8Array, at: number, little: boolean): number {
  return little
    ? (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0
    : ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

/**
 * A request, every field set (undefined where absent): objects of one shape, where spreading the optional
 * parts made a few shapes and a copy each (`pdu` was 1.7% of a pass on suricata-verify-mix).
 */
export function dceRequest(
  uuid: string | undefined,
  versionMajor: number | undefined,
  opnum: number,
  first: boolean,
  little: boolean,
  stubStart: number,
  stubEnd: number,
  stub: Uint8Array | undefined,
  reassembled: true | undefined,
): DceRequest {
  return {
    uuid,
    versionMajor,
    opnum,
    first,
    little,
    stubStart,
    stubEnd,
    stub,
    reassembled,
  };
}

/** The connectionless request in a UDP datagram, or undefined when it holds none. */
export function parseDceDatagram(b: Uint8Array): DceRequest | undefined {
  if (b.length < clHeaderBytes || b[0] !== 4 || b[1] !== 0) return undefined;
  const little = (b[4]! & 0xf0) === 0x10;
  const len = u16(b, 74, little);
  const vers = u32(b, 60, little);
  return dceRequest(
    uuidAt(b, 24, little),
    vers & 0xffff,
    u16(b, 68, little),
    u16(b, 76, little) === 0,
    little,
    clHeaderBytes,
    Math.min(b.length, clHeaderBytes + len),
    undefined,
    undefined,
  );
}

/** Connectionless calls in fragments followed per flow at most, and fragment numbers taken at most. */
export const dceDatagramCallsMax = 16;
export const dceDatagramFragmentsMax = 4096;

/**
 * Connectionless calls sent in fragments (one flow): a request datagram with the fragment flag belongs to
 * the call its activity UUID and sequence number name, at its fragment number; once every number from 0 to
 * the one flagged last is in, the bodies in that order are the call's stub, reported as one more request
 * (interface, version and opnum of fragment 0), as Snort's DCE/RPC UDP inspector reassembles them. A
 * fragment number seen twice keeps its first body; a call past `dceDefragBytesMax` or `dceDatagramFragmentsMax`
 * is let go; past `dceDatagramCallsMax` calls the oldest is.
 */
export class DceDatagramDefrag {
  private readonly calls = new Map<string, DatagramCall>();
  private held = 0;

  /** Bytes of the fragments held (the caller charges them to its memory budget). */
  get heldBytes(): number {
    return this.held;
  }

  /** Lets every call go. */
  drop(): void {
    this.calls.clear();
    this.held = 0;
  }

  /** The request in datagram `b` (none when it holds none) and, after it, the call it completes. */
  feed(b: Uint8Array): DceRequest[] {
    const r = parseDceDatagram(b);
    if (!r) return [];
    if ((b[2]! & 0x04) === 0) return [r]; // not a fragment
    const key = `${uuidAt(b, 40, r.little)}/${u32(b, 64, r.little)}`;
    const num = u16(b, 76, r.little);
    if (num >= dceDatagramFragmentsMax) return [r];
    let call = this.calls.get(key);
    if (!call) {
      if (this.calls.size >= dceDatagramCallsMax) this.forget(this.calls.keys().next().value!);
      call = { parts: new Map(), last: -1, bytes: 0, first: undefined };
      this.calls.set(key, call);
    }
    if ((b[2]! & 0x02) !== 0 && call.last < 0) {
      call.last = num;
      // numbers past the last one are not the call's
      for (const [n, p] of call.parts)
        if (n > num) {
          call.parts.delete(n);
          call.bytes -= p.length;
          this.held -= p.length;
        }
    }
    if ((call.last >= 0 && num > call.last) || call.parts.has(num)) return [r];
    const body = copyBytes(b, r.stubStart, r.stubEnd);
    if (call.bytes + body.length > dceDefragBytesMax) {
      this.forget(key);
      return [r];
    }
    call.parts.set(num, body);
    call.bytes += body.length;
    this.held += body.length;
    if (num === 0) call.first = r;
    if (call.last < 0 || call.parts.size !== call.last + 1) return [r];
    const parts = Array.from({ length: call.last + 1 }, (_, n) => call.parts.get(n)!);
    const stub = concatBytes(parts, call.bytes);
    const first = call.first!;
    this.forget(key);
    return [
      r,
      { ...first, first: true, stubStart: r.stubStart, stubEnd: r.stubEnd, stub, reassembled: true },
    ];
  }

  private forget(key: string): void {
    const call = this.calls.get(key);
    if (!call) return;
    this.held -= call.bytes;
    this.calls.delete(key);
  }
}

/** A connectionless call being reassembled: its fragments' bodies by number, the last number once known. */
interface DatagramCall {
  parts: Map<number, Uint8Array>;
  last: number;
  bytes: number;
  /** Fragment 0's request (interface, version, opnum). */
  first: DceRequest | undefined;
}

interface Context {
  uuid: string;
  major: number;
}

/** A connection-oriented session: both directions' PDUs, the contexts offered and accepted. */
export class DceSession {
  /**
   * `overHttp`: a connection of its own (not an SMB pipe), whose first bytes may be an RPC over HTTP v1
   * preamble (`RpcHttpPreamble`) to pass over.
   */
  constructor(overHttp = false) {
    this.preamble = overHttp ? new RpcHttpPreamble() : undefined;
  }
  private readonly preamble: RpcHttpPreamble | undefined;
  /** Contexts by id, accepted by the server. */
  private readonly bound = new Map<number, Context>();
  /** Offered by the client, in order, waiting for the server's answer. */
  private offered: (Context & { id: number })[] = [];
  private readonly dirs = [new CoDirection(), new CoDirection()];
  /** Per direction, the fragmented call being reassembled. */
  private readonly defrag: (Defrag | undefined)[] = [undefined, undefined];

  /** Bytes held between deliveries, both directions (the caller charges them to its memory budget). */
  get heldBytes(): number {
    return (
      this.dirs[0]!.heldBytes +
      this.dirs[1]!.heldBytes +
      (this.defrag[0]?.bytes ?? 0) +
      (this.defrag[1]?.bytes ?? 0)
    );
  }

  /** Whether direction `dir` is still followed (not stopped by bytes that are not DCE/RPC, or a gap). */
  following(dir: 0 | 1): boolean {
    return !this.dirs[dir]!.stopped;
  }

  /** The directions stopped on a header that is not DCE/RPC's after PDUs of theirs (`CoDirection.errors`). */
  get errors(): number {
    return this.dirs[0]!.errors + this.dirs[1]!.errors;
  }

  /** Lets the held bytes go and follows the session no further (no memory for it). */
  drop(): void {
    for (const d of this.dirs) d.drop();
    this.defrag[0] = this.defrag[1] = undefined;
  }

  /**
   * Requests that complete in `data`, the next bytes of direction `dir` (0: client to server), and the
   * calls whose last fragment does.
   */
  feed(dir: 0 | 1, data: Uint8Array, gap: boolean): DceRequest[] {
    const d = this.dirs[dir]!;
    if (gap) {
      d.stopped = true;
      this.defrag[dir] = undefined;
    }
    const out: DceRequest[] = [];
    // the preamble's bytes passed over; the PDUs' offsets then count from the delivery's first byte
    const from = this.preamble ? this.preamble.pass(dir, data) : 0;
    if (from === preambleRefused) {
      d.stopped = true;
      return out;
    }
    d.feed(from === 0 ? data : data.subarray(from), (b, at, avail, little, base) =>
      this.pdu(dir, b, at, avail, little, out, base),
    );
    if (from > 0)
      for (const r of out) {
        r.stubStart += from;
        r.stubEnd += from;
      }
    return out;
  }

  /**
   * One PDU whose first `avail` bytes are at `b[at..]` (its header whole; a request whole); offsets reported
   * count from `b[base]` (the delivery's first byte, after the PDU's start carried over from earlier ones).
   */
  private pdu(
    dir: 0 | 1,
    b: Uint8Array,
    at: number,
    avail: number,
    little: boolean,
    out: DceRequest[],
    base: number,
  ): void {
    const ptype = b[at + 2]!;
    const flags = b[at + 3]!;
    const fragLen = u16(b, at + 8, little);
    const authLen = u16(b, at + 10, little);
    if (ptype === 11 || ptype === 14) {
      // bind / alter_context: max_xmit, max_recv, assoc_group, then the presentation context list
      let p = at + 24;
      if (p + 4 > at + avail) return;
      const n = b[p]!;
      p += 4;
      this.offered = [];
      for (let k = 0; k < n && p + 24 <= at + avail; k++) {
        const id = u16(b, p, little);
        const transfers = b[p + 2]!;
        this.offered.push({ id, uuid: uuidAt(b, p + 4, little), major: u16(b, p + 20, little) });
        p += 24 + 20 * transfers;
      }
    } else if (ptype === 12 || ptype === 15) {
      // bind_ack / alter_context_resp: the secondary address (bind_ack only), padding to 4, the results
      let p = at + 24;
      if (ptype === 12) {
        if (p + 2 > at + avail) return;
        p += 2 + u16(b, p, little);
        p = at + Math.ceil((p - at) / 4) * 4;
      }
      if (p + 4 > at + avail) return;
      const n = b[p]!;
      p += 4;
      for (let k = 0; k < n && p + 24 <= at + avail; k++) {
        const c = this.offered[k];
        if (c && u16(b, p, little) === 0 && (this.bound.has(c.id) || this.bound.size < dceContextsMax))
          this.bound.set(c.id, { uuid: c.uuid, major: c.major });
        p += 24;
      }
      this.offered = [];
    } else if (ptype === 0) {
      if (avail < 24) return;
      const ctxId = u16(b, at + 20, little);
      const c = this.bound.get(ctxId);
      const opnum = u16(b, at + 22, little);
      // the stub, inside the PDU: after the header (and object UUID), before the authentication trailer
      const start = Math.min(at + (flags & 0x80 ? 40 : 24), at + fragLen);
      const end = Math.max(start, at + fragLen - (authLen > 0 ? authLen + 8 : 0));
      // where the PDU ends in this delivery (it completes here)
      const pduEnd = at + fragLen - base;
      if (out.length < dceRequestsPerDeliveryMax) {
        // a stub that began in bytes carried from earlier deliveries: a copy
        const carried = start < base;
        out.push(
          dceRequest(
            c?.uuid,
            c?.major,
            opnum,
            (flags & 0x01) !== 0,
            little,
            carried ? pduEnd : start - base,
            carried ? pduEnd : end - base,
            carried ? copyBytes(b, start, end) : undefined,
            undefined,
          ),
        );
      }
      if ((flags & 0x03) !== 0x03) {
        const callId = u32(b, at + 12, little);
        let g = this.defrag[dir];
        if (flags & 0x01) {
          g = { callId, ctxId, opnum, little, parts: [], bytes: 0 };
          this.defrag[dir] = g;
        }
        // a later fragment of no call being gathered, or of another call: not taken
        if (!g || g.callId !== callId) return;
        this.gather(g, b, start, end, out, pduEnd);
        if (flags & 0x02) {
          this.report(g, out, pduEnd);
          this.defrag[dir] = undefined;
        }
      }
    }
  }

  /**
   * Adds the fragment's stub `b[from, to)` to the call's, reporting the stub as it stands each time it
   * reaches `dceDefragBytesMax` (the fragment's PDU ends at `pduEnd` of this delivery).
   */
  private gather(
    f: Defrag,
    b: Uint8Array,
    from: number,
    to: number,
    out: DceRequest[],
    pduEnd: number,
  ): void {
    while (from < to) {
      const n = Math.min(to - from, dceDefragBytesMax - f.bytes);
      f.parts.push(copyBytes(b, from, from + n));
      f.bytes += n;
      from += n;
      if (f.bytes === dceDefragBytesMax) this.report(f, out, pduEnd);
    }
  }

  /** Reports the stub gathered so far as one request, whose last fragment ends at `pduEnd` of this data. */
  private report(f: Defrag, out: DceRequest[], pduEnd: number): void {
    const stub = concatBytes(f.parts, f.bytes);
    f.parts = [];
    f.bytes = 0;
    if (out.length >= dceRequestsPerDeliveryMax) return;
    const c = this.bound.get(f.ctxId);
    out.push(dceRequest(c?.uuid, c?.major, f.opnum, true, f.little, pduEnd, pduEnd, stub, true));
  }
}

/** A fragmented call being reassembled (one direction). */
interface Defrag {
  callId: number;
  ctxId: number;
  opnum: number;
  little: boolean;
  /** The stub bytes gathered, in order, and their sum. */
  parts: Uint8Array[];
  bytes: number;
}

/**
 * One direction's PDU boundaries. A PDU is read once what its type needs is in hand: a request whole (up
 * to its frag_length, at most 65,535 bytes), so its stub is never cut where a delivery ends, as Snort's
 * DCE/RPC inspectors hand detection whole PDUs; a bind's or bind_ack's context list (up to
 * `dceCarryBytesMax`); the common header of the others, whose rest is passed over.
 */
/** `RpcHttpPreamble.pass`: the bytes were not what a preamble is. */
const preambleRefused = -1;
/** A preamble's HTTP head (RPC_CONNECT request, the proxy's answer) read at most this long. */
export const rpcHttpHeadBytesMax = 8192;
/** The server's first bytes on an RPC over HTTP v1 server (MS-RPCH 2.1.1.1; Snort 3's dce_http_server). */
const ncacnHttp = latin1Bytes('ncacn_http/1.0');
/** A client's request to an RPC over HTTP v1 proxy (MS-RPCH; Snort 3's dce_http_proxy), and its answer. */
const rpcConnect = latin1Bytes('RPC_CONNECT');
const httpAnswer = latin1Bytes('HTTP/1.');

/**
 * What leads a connection that carries DCE/RPC over HTTP v1 (MS-RPCH), passed over before the PDUs, as
 * Snort 3's dce_http_server and dce_http_proxy inspectors hand the rest to its TCP one: a server's
 * "ncacn_http/1.0"; or a client's "RPC_CONNECT ..." request head and the proxy's "HTTP/1.x ..." answer, each
 * to its blank line (CR optional; at most `rpcHttpHeadBytesMax`). A direction whose first byte is a PDU's
 * (version 5) has none; bytes that start like one and then differ stop the direction (as other bytes that
 * are not DCE/RPC do).
 */
class RpcHttpPreamble {
  /** Per direction: deciding, a marker under way, the head to its blank line, done. */
  private readonly mode: ('start' | 'marker' | 'head' | 'done')[] = ['start', 'start'];
  private readonly marker: (Uint8Array | undefined)[] = [undefined, undefined];
  private readonly matched = [0, 0];
  /** Bytes of the head read, and whether the last one ended a line (CRs aside). */
  private readonly headBytes = [0, 0];
  private readonly lineEnd = [false, false];
  /** The client asked a proxy (RPC_CONNECT): the server's answer is HTTP. */
  private proxy = false;

  /**
   * Passes over the preamble's bytes at the start of `data`, the next bytes of direction `dir`: where the
   * PDUs start in it (its length when all of it was preamble), or `preambleRefused` when it was not one.
   */
  pass(dir: 0 | 1, data: Uint8Array): number {
    let i = 0;
    while (i < data.length) {
      const mode = this.mode[dir];
      if (mode === 'done') return i;
      if (mode === 'start') {
        const c = data[i]!;
        const m =
          dir === 1 && c === ncacnHttp[0]
            ? ncacnHttp
            : dir === 0 && c === rpcConnect[0]
              ? rpcConnect
              : dir === 1 && this.proxy && c === httpAnswer[0]
                ? httpAnswer
                : undefined;
        if (m === undefined) {
          this.mode[dir] = 'done';
          return i;
        }
        this.marker[dir] = m;
        this.mode[dir] = 'marker';
      } else if (mode === 'marker') {
        const m = this.marker[dir]!;
        for (; i < data.length && this.matched[dir]! < m.length; i++, this.matched[dir]!++)
          if (data[i] !== m[this.matched[dir]!]) {
            this.mode[dir] = 'done';
            return preambleRefused;
          }
        if (this.matched[dir]! < m.length) return i;
        if (m === rpcConnect) this.proxy = true;
        this.mode[dir] = m === ncacnHttp ? 'done' : 'head';
      } else {
        for (; i < data.length; i++) {
          const c = data[i]!;
          if (++this.headBytes[dir]! > rpcHttpHeadBytesMax) {
            this.mode[dir] = 'done';
            return preambleRefused;
          }
          if (c === 0x0d) continue;
          if (c !== 0x0a) this.lineEnd[dir] = false;
          else if (!this.lineEnd[dir]) this.lineEnd[dir] = true;
          else {
            this.mode[dir] = 'done';
            return i + 1;
          }
        }
        return i;
      }
    }
    return i;
  }
}

class CoDirection {
  stopped = false;
  /**
   * Times the direction stopped on a header that is not DCE/RPC's after reading PDUs (at most 1): an
   * app-layer error for the exception policy (`EngineOptions.exceptionPolicy`), where bytes that never
   * were DCE/RPC are detection's business.
   */
  errors = 0;
  /** Whether a PDU was read. */
  private read = false;
  /** Bytes of the current PDU still to come, passed over. */
  private skip = 0;
  /**
   * The start of a PDU split across deliveries, carried to the next ones: a buffer of what it needs (its
   * 16-byte header until that is in, then what its type needs), filled `have` bytes.
   */
  private carry: Uint8Array | undefined;
  private have = 0;

  get heldBytes(): number {
    return this.carry?.length ?? 0;
  }

  drop(): void {
    this.carry = undefined;
    this.stopped = true;
  }

  feed(
    chunk: Uint8Array,
    onPdu: (b: Uint8Array, at: number, avail: number, little: boolean, base: number) => void,
  ): void {
    if (this.stopped) return;
    let i = 0;
    while (this.carry) {
      // fill what the carried start needs; then read it on its own (the chunk's first `i` bytes at its end)
      const c = this.carry;
      const n = Math.min(c.length - this.have, chunk.length - i);
      c.set(chunk.subarray(i, i + n), this.have);
      this.have += n;
      i += n;
      if (this.have < c.length) return;
      // (a header carried alone is carried again, in a buffer of what its type needs)
      this.carry = undefined;
      this.pdus(c, 0, c.length - i, onPdu);
      if (this.stopped) return;
    }
    this.pdus(chunk, i, 0, onPdu);
  }

  /** The PDUs of `b` from `i` on; offsets reported count from `b[base]`. */
  private pdus(
    b: Uint8Array,
    i: number,
    base: number,
    onPdu: (b: Uint8Array, at: number, avail: number, little: boolean, base: number) => void,
  ): void {
    while (i < b.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, b.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const want = b.length - i < coHeaderBytes ? coHeaderBytes : wantOf(b, i);
      if (want < 0) {
        if (this.read) this.errors++;
        this.stopped = true;
        return;
      }
      if (b.length - i < want) {
        this.carry = new Uint8Array(want);
        this.carry.set(b.subarray(i));
        this.have = b.length - i;
        return;
      }
      const little = (b[i + 4]! & 0xf0) === 0x10;
      const fragLen = u16(b, i + 8, little);
      const avail = Math.min(fragLen, b.length - i);
      this.read = true;
      onPdu(b, i, avail, little, base);
      this.skip = fragLen - avail;
      i += avail;
    }
  }
}

/**
 * What must be in hand before the PDU whose 16-byte header is at `b[i..]` is read (see `CoDirection`), or
 * -1 when the header is not one: version 5.0 or 5.1, a known PDU type, a frag_length that holds the header.
 */
function wantOf(b: Uint8Array, i: number): number {
  const little = (b[i + 4]! & 0xf0) === 0x10;
  const fragLen = u16(b, i + 8, little);
  const ptype = b[i + 2]!;
  if (b[i] !== 5 || b[i + 1]! > 1 || ptype > 19 || fragLen < coHeaderBytes) return -1;
  return ptype === 0
    ? fragLen
    : ptype >= 11 && ptype <= 15
      ? Math.min(fragLen, dceCarryBytesMax)
      : coHeaderBytes;
}

/** `dce_iface`: the interface UUID, a test of its major version, and whether any fragment may match. */
export interface DceIface {
  uuid: string;
  op?: '<' | '>' | '=' | '!';
  version?: number;
  anyFrag: boolean;
}

/**
 * Parses `uuid 4b324fc8-1670-01d3-1278-5a47bf6ee188[, version >2][, any_frag]` (Snort 3) or
 * `4b324fc8-...[, <2][, any_frag]` (Snort 2).
 */
export function parseDceIface(value: string): DceIface {
  const parts = value.split(',').map((x) => x.trim());
  const first = (parts.shift() ?? '').replace(/^uuid\s+/, '').trim();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(first))
    throw new Error(`dce_iface: expected an interface UUID (8-4-4-4-12 hex digits), got '${first}'`);
  const t: DceIface = { uuid: first.toLowerCase(), anyFrag: false };
  for (const p of parts) {
    const m = /^(?:version\s*)?([<>=!])\s*(\d+)$/.exec(p);
    if (p === 'any_frag') t.anyFrag = true;
    else if (m && Number(m[2]) <= 65535) {
      t.op = m[1] as DceIface['op'];
      t.version = Number(m[2]);
    } else throw new Error(`dce_iface: expected 'version <op><n>' or any_frag, got '${p}'`);
  }
  return t;
}

export function dceIfaceMatch(t: DceIface, r: DceRequest): boolean {
  if (r.uuid !== t.uuid || (!t.anyFrag && !r.first)) return false;
  if (t.version === undefined) return true;
  const v = r.versionMajor ?? 0;
  return t.op === '<'
    ? v < t.version
    : t.op === '>'
      ? v > t.version
      : t.op === '!'
        ? v !== t.version
        : v === t.version;
}

/** `dce_opnum:"15"`, `"1 2"`, `"0-5,7"`: opnums and ranges, separated by commas or spaces. */
export function parseDceOpnum(value: string): [number, number][] {
  const list = value
    .trim()
    .replace(/^"|"$/g, '')
    .split(/[\s,]+/)
    .filter(Boolean);
  if (list.length === 0) throw new Error('dce_opnum needs at least one opnum');
  return list.map((item) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(item);
    const lo = Number(m?.[1]);
    const hi = m?.[2] === undefined ? lo : Number(m[2]);
    if (!m || hi > 65535 || lo > hi)
      throw new Error(`dce_opnum: expected an opnum or a range (0-65535), got '${item}'`);
    return [lo, hi];
  });
}
