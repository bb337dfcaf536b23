/**
 * SIP messages (RFC 3261 7) for the `sip_method`, `sip_stat_code`, `sip_header` and `sip_body` rule
 * options, as Snort's SIP inspector offers them. A message is parsed where the inspected data starts (a UDP
 * datagram; on TCP, the start of the newly delivered stream bytes): a request line `METHOD SP Request-URI SP
 * SIP/2.0` or a status line `SIP/2.0 SP 3DIGIT SP Reason`, then header field lines up to an empty line (CRLF
 * or bare LF), then the body. Anything else is not SIP: the options fail on it.
 */
import { copyBytes } from './stream.js';

export interface SipMessage {
  /** The request's method, upper-cased (undefined on a response). */
  method?: string;
  /** The response's status code (undefined on a request). */
  status?: number;
  /** Where the header fields start and end (after the start line; before the empty line) and the body starts. */
  headerStart: number;
  headerEnd: number;
  bodyStart: number;
  /** The body's end: `Content-Length` bytes on (within the buffer), else the buffer's end. */
  bodyEnd: number;
  /** Whether the header section ended (its empty line) within the buffer. */
  complete: boolean;
  /** The valid `Content-Length` (or compact `l`) of a complete header section. */
  contentLength?: number;
}

/** The start line is looked for in this many bytes at most. */
export const sipStartLineBytesMax = 1024;

const token = /^[A-Za-z0-9.!%*_+`'~-]+$/;
const sipVersionSp = Uint8Array.from(Buffer.from('SIP/2.0 ', 'latin1'));
const spSipVersion = Uint8Array.from(Buffer.from(' SIP/2.0', 'latin1'));

/** Whether `want`'s bytes are at `buf[at..]`. */
function bytesAt(buf: Uint8Array, at: number, want: Uint8Array): boolean {
  for (let k = 0; k < want.length; k++) if (buf[at + k] !== want[k]) return false;
  return true;
}

/** Parses the SIP message at `buf[from..]`, or undefined when there is none. */
export function parseSip(buf: Uint8Array, from: number): SipMessage | undefined {
  if (from < 0 || from >= buf.length) return undefined;
  const lineEnd = indexOfLf(buf, from, Math.min(buf.length, from + sipStartLineBytesMax));
  if (lineEnd < 0) return undefined;
  // a start line begins with "SIP/2.0 " (a status line) or ends with " SIP/2.0" (a request line): bytes
  // looked at first, as most data is not SIP and its first line need not be made text and split
  const end = lineEnd > from && buf[lineEnd - 1] === 13 ? lineEnd - 1 : lineEnd;
  const n = sipVersionSp.length;
  if (end - from < n || (!bytesAt(buf, from, sipVersionSp) && !bytesAt(buf, end - n, spSipVersion)))
    return undefined;
  const line = Buffer.from(buf.buffer, buf.byteOffset + from, lineEnd - from)
    .toString('latin1')
    .replace(/\r$/, '');
  const parts = line.split(' ');
  const m: SipMessage = {
    headerStart: lineEnd + 1,
    headerEnd: buf.length,
    bodyStart: buf.length,
    bodyEnd: buf.length,
    complete: false,
  };
  if (parts[0] === 'SIP/2.0') {
    if (parts.length < 2 || !/^[1-9]\d\d$/.test(parts[1]!)) return undefined;
    m.status = Number(parts[1]);
  } else {
    if (parts.length !== 3 || !token.test(parts[0]!) || parts[2] !== 'SIP/2.0' || parts[1]!.length === 0)
      return undefined;
    m.method = parts[0]!.toUpperCase();
  }
  // the header section ends at the first empty line
  for (let i = m.headerStart; i < buf.length; ) {
    const e = indexOfLf(buf, i, buf.length);
    if (e < 0) break;
    if (e === i || (e === i + 1 && buf[i] === 13)) {
      m.headerEnd = i;
      m.bodyStart = e + 1;
      m.complete = true;
      const n = contentLengthOf(buf, m.headerStart, m.headerEnd);
      if (n !== undefined) m.contentLength = n;
      m.bodyEnd = n === undefined ? buf.length : Math.min(buf.length, m.bodyStart + n);
      break;
    }
    i = e + 1;
  }
  return m;
}

function indexOfLf(buf: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to; i++) if (buf[i] === 10) return i;
  return -1;
}

/** `sip_method:invite,!cancel` as Snort 2/3 give it: a list of methods, each may be negated. */
export interface SipMethodTest {
  methods: string[];
  negated: string[];
}

export function parseSipMethod(value: string): SipMethodTest {
  const t: SipMethodTest = { methods: [], negated: [] };
  for (const raw of value.split(',')) {
    const item = raw.trim();
    const neg = item.startsWith('!');
    const name = (neg ? item.slice(1) : item).trim();
    if (!token.test(name)) throw new Error(`sip_method: expected a method name, got '${item}'`);
    (neg ? t.negated : t.methods).push(name.toUpperCase());
  }
  if (t.methods.length + t.negated.length === 0) throw new Error('sip_method needs at least one method');
  return t;
}

/** A request whose method is listed (or, for negated names, is not that method). */
export function sipMethodMatch(t: SipMethodTest, m: SipMessage | undefined): boolean {
  if (m?.method === undefined) return false;
  return t.methods.includes(m.method) || t.negated.some((n) => n !== m.method);
}

/**
 * `sip_stat_code:200,4`: a response whose code is one listed, a single digit standing for its class (4 is
 * any 4xx), as Snort defines it.
 */
export function parseSipStatCode(value: string): number[] {
  const codes = value.split(',').map((x) => x.trim());
  for (const c of codes)
    if (!/^[1-9]$/.test(c) && !/^[1-9]\d\d$/.test(c))
      throw new Error(`sip_stat_code: expected a status code (100-999) or a class digit (1-9), got '${c}'`);
  if (codes.length === 0) throw new Error('sip_stat_code needs at least one code');
  return codes.map(Number);
}

export function sipStatMatch(codes: number[], m: SipMessage | undefined): boolean {
  if (m?.status === undefined) return false;
  const status = m.status;
  return codes.some((c) => (c < 10 ? Math.floor(status / 100) === c : c === status));
}

/** Bytes of a SIP header section carried across deliveries at most (past it the direction is left). */
export const sipHeaderBytesMax = 8192;

/**
 * SIP over TCP (RFC 3261 18.3): one direction of a stream cut into messages, each a start line and header
 * fields up to an empty line, then `Content-Length` (or its compact form `l`) bytes of body. `feed` returns
 * where the messages whose header section completed in the new bytes start, as offsets from the new bytes'
 * start (negative when a message started in earlier bytes). A gap, a header section past
 * `sipHeaderBytesMax` or a message without a valid start line leaves the direction.
 */
export class SipStream {
  private stopped = false;
  /** Whether a message was read. */
  private read = false;
  /**
   * Times the direction stopped on what it cannot parse after a message (a line that starts no SIP message,
   * a header section past `sipHeaderBytesMax`; at most 1): an app-layer error for the exception policy
   * (`EngineOptions.exceptionPolicy`). A stream that never was SIP is detection's business, not an error.
   */
  errors = 0;
  /** Body bytes still to skip. */
  private skip = 0;
  /** The header section read so far (from a message's start), when it spans deliveries. */
  private carry: Uint8Array | undefined;

  /** Bytes held between deliveries (the caller charges them to its memory budget). */
  get heldBytes(): number {
    return this.carry?.length ?? 0;
  }

  /** Lets the held bytes go and follows the direction no further (no memory for it). */
  drop(): void {
    this.carry = undefined;
    this.stopped = true;
  }

  /** Leaves the direction on what it cannot parse (an error after a message). */
  private stop(): void {
    if (this.read) this.errors++;
    this.stopped = true;
  }

  feed(chunk: Uint8Array, gap: boolean): number[] {
    if (gap) this.stopped = true;
    if (this.stopped) return [];
    const out: number[] = [];
    let b = chunk;
    let base = 0;
    if (this.carry) {
      b = new Uint8Array(this.carry.length + chunk.length);
      b.set(this.carry);
      b.set(chunk, this.carry.length);
      base = this.carry.length;
      this.carry = undefined;
    }
    let i = 0;
    while (i < b.length && !this.stopped) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, b.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      // blank lines between messages (keep-alive CRLFs, RFC 5626 4.4.1) are skipped
      if (b[i] === 13 || b[i] === 10) {
        i++;
        continue;
      }
      // the start line first: a stream that is not SIP is left at its first line, without more scanning
      const m = parseSip(b, i);
      if (!m) {
        const lineDone = b.length - i >= sipStartLineBytesMax || b.indexOf(10, i) >= 0;
        if (lineDone) this.stop();
        else this.carry = copyBytes(b, i);
        break;
      }
      if (!m.complete) {
        if (b.length - i > sipHeaderBytesMax) this.stop();
        else this.carry = copyBytes(b, i);
        break;
      }
      this.read = true;
      out.push(i - base);
      this.skip = m.contentLength ?? 0;
      i = m.bodyStart;
    }
    return out;
  }
}

/** The `Content-Length` (or compact `l`) of a header section, if it has a valid one. */
function contentLengthOf(b: Uint8Array, from: number, to: number): number | undefined {
  const text = Buffer.from(b.buffer, b.byteOffset + from, to - from).toString('latin1');
  const m = /^(?:content-length|l)[ \t]*:[ \t]*(\d{1,9})[ \t]*\r?$/im.exec(text);
  return m ? Number(m[1]) : undefined;
}
