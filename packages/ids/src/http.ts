/**
 * HTTP/1.x messages on reassembled TCP streams, one parser per direction, following the message syntax of
 * RFC 9112 (HTTP/1.1): a start line, header fields up to an empty line, then a body framed by
 * Transfer-Encoding: chunked, Content-Length, or (responses only) the end of the connection (section 6.3).
 * Requests may be pipelined; responses are paired with requests in order (a HEAD request's response has no
 * body, 1xx/204/304 have none, a 2xx to CONNECT and a 101 naming its protocol turn the connection into
 * a tunnel).
 *
 * Input is never trusted: every buffer has a bound (start and header lines, the header section, the body
 * kept for inspection, pipelined requests, decompressed bytes), memory is charged to a budget shared with
 * stream reassembly, and malformed input is counted by reason (`HttpAnomalies`) and either tolerated
 * (obs-fold, bare LF, a header line without a colon, a chunk without its CRLF) or ends parsing of that
 * direction (`dead`) when the framing can no longer be trusted (RFC 9112 11.2: a bad Content-Length or
 * Transfer-Encoding is what request smuggling is made of). Nothing here throws on input.
 */
import { brotliDecompressSync, constants, inflateRawSync, inflateSync } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { lzmaDecode } from './lzma.js';
import { concatBytes, copyBytes } from './stream.js';

/** Bytes of the start line and header section of one message at most (beyond: truncated, anomaly). */
export const httpHeaderBytesMax = 64 * 1024;
/** Header fields of one message at most (further fields are dropped, anomaly). */
export const httpFieldsMax = 256;
/** Bytes of one chunk-size line at most. */
export const httpChunkLineBytesMax = 1024;
/** Requests waiting for their response at most (the oldest is dropped beyond, anomaly). */
export const httpPipelinedMax = 32;
/** Content-Encoding layers undone at most. */
export const httpEncodingsMax = 3;

export interface HttpOptions {
  /** Body bytes kept for inspection per message (default 64 KiB; the rest is skipped, framing still followed). */
  bodyBytesMax?: number;
  /** Decompressed body bytes at most (default 256 KiB). */
  decompressedBytesMax?: number;
  /**
   * Whether the response stream starts at its first byte (its SYN was seen; default true). Only then can
   * a first response without a status line be one (HTTP/0.9's form): a stream picked up midstream starts
   * wherever the capture did, as likely in the middle of a body. The engine sets it per flow.
   */
  responseFromStart?: boolean;
  /** The same for the request stream (its SYN was seen; default true). The engine sets it per flow. */
  requestFromStart?: boolean;
  /**
   * A direction that stopped where a start line should have been starts again at a later one (default
   * true; `HttpParser.resync`). It looks where deliveries start (as Wireshark looks at segments), so what it
   * finds depends on how the stream came in pieces, which nothing else in the parser does.
   */
  resync?: boolean;
}

export const defaultHttpBodyBytesMax = 64 * 1024;
export const defaultHttpDecompressedBytesMax = 256 * 1024;

/** Where held bytes are charged; `take` false means no memory is left. */
export interface HttpBudget {
  take(n: number): boolean;
  give(n: number): void;
}

/** Malformed or suspicious input, counted by reason. */
export interface HttpAnomalies {
  badStartLine: number;
  /**
   * Status lines browsers take and RFC 9112 does not: stray bytes before `HTTP`, another case, a version
   * other than HTTP/d.d, a status code that is not three digits (or none: taken as 200), lines skipped
   * before one, a 101 without an Upgrade field (read as a final response).
   */
  oddStatusLine: number;
  /**
   * Response bytes where a status line should start and none does, read as the body of a response
   * without one: HTTP/0.9's form (a request waits for it), or after a 1xx, 204 or 304 response.
   */
  headlessResponse: number;
  headerTooLong: number;
  tooManyFields: number;
  badFieldLine: number;
  obsFold: number;
  badContentLength: number;
  transferEncodingAndLength: number;
  badTransferEncoding: number;
  badChunkSize: number;
  badChunkEnd: number;
  /** Stream bytes missing in the middle of a message. */
  gap: number;
  /**
   * A direction that had stopped where a start line should have been (another protocol's bytes first, a
   * stream picked up midstream or after a gap, bytes after a message that start none) and started again
   * at a later line that begins one (`HttpParser.resync`).
   */
  resynced: number;
  pipelineOverflow: number;
  responseWithoutRequest: number;
  decompressFailed: number;
  decompressCapped: number;
  memcap: number;
}

export function newHttpAnomalies(): HttpAnomalies {
  return {
    badStartLine: 0,
    oddStatusLine: 0,
    headlessResponse: 0,
    headerTooLong: 0,
    tooManyFields: 0,
    badFieldLine: 0,
    obsFold: 0,
    badContentLength: 0,
    transferEncodingAndLength: 0,
    badTransferEncoding: 0,
    badChunkSize: 0,
    badChunkEnd: 0,
    gap: 0,
    resynced: 0,
    pipelineOverflow: 0,
    responseWithoutRequest: 0,
    decompressFailed: 0,
    decompressCapped: 0,
    memcap: 0,
  };
}

export interface HttpField {
  /** As sent (case kept); `lname` lowercased for lookups. */
  name: string;
  lname: string;
  /** Leading and trailing whitespace removed; obs-fold replaced by one space (RFC 9112 5.2). */
  value: Uint8Array;
}

export interface HttpMessage {
  kind: 'request' | 'response';
  /** Request: method token; response: empty. */
  method: string;
  /** Request target as sent. */
  uri: Uint8Array;
  version: string;
  /** Response: the status code (0 for a request) and its three digits, and the reason phrase. */
  status: number;
  statusText: Uint8Array;
  reason: Uint8Array;
  startLine: Uint8Array;
  /** The field lines as sent (after the start line, up to the empty line, CRLFs included). */
  rawHeader: Uint8Array;
  fields: HttpField[];
  /** The body after chunked decoding, the first `bodyBytesMax` bytes. */
  body: Uint8Array;
  /** Body bytes seen in all (after chunked decoding), kept or not. */
  bodyBytes: number;
  bodyTruncated: boolean;
  /** The message as sent (header section and body), the header and the first `bodyBytesMax` body bytes. */
  raw: Uint8Array;
  /** The request this response answers (responses only; absent when none was seen). */
  request?: HttpMessage;
}

/** What a parser reports: a message's header section, then the whole message. */
export interface HttpEvents {
  headers(m: HttpMessage): void;
  message(m: HttpMessage): void;
}

type State =
  | 'detect'
  | 'header'
  | 'length'
  | 'chunk-size'
  | 'chunk-data'
  | 'chunk-end'
  | 'trailer'
  | 'close'
  | 'tunnel'
  | 'dead'
  | 'not-http';

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;

/** A method as HTTP detection accepts it: RFC 9110's tchar narrowed to what methods use in practice. */
function isMethodChar(c: number, first: boolean): boolean {
  return (c >= 0x41 && c <= 0x5a) || (!first && ((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f));
}

/** Bytes of a push the header buffer takes at once (the section's end is searched for in them). */
const headerWindowBytes = 2048;

/** Bytes of the first line while the protocol is being detected at most. */
export const httpStartLineBytesMax = 8 * 1024;

const requestLine = /^(\S+)[ \t]+(.+?)[ \t]+(HTTP\/\d\.\d)[ \t]*$/;
/** A status line as RFC 9112 4 writes it (others are read as browsers read them: `parseOddStatusLine`). */
const statusLine = /^(HTTP\/\d\.\d)[ \t]+(\d{3})(?:[ \t]+(.*))?$/;
/** Bytes before `HTTP` a status line may have (Chromium skips up to 4 bytes of junk there). */
export const statusJunkMax = 4;
/** Bytes of spaces, tabs and CRs a blank line ending a response's header section may have at most. */
const blankLineBytesMax = 8;
/** Bytes of the line after an odd blank line looked at to tell whether the header section ends there. */
const blankLookaheadBytes = 128;
/**
 * Lines before a status line skipped at most: short ones (under statusJunkMax + 4 bytes) when a status
 * line or another short one follows (` `, `foobar`), longer ones (under statusJunkLineBytesMax) only when
 * a status line follows (`SIP/2.0 200 ok`; Firefox looks for the status line well past such lines).
 */
const statusJunkLinesMax = 2;
/** Bytes of a line before a status line that is skipped at most (`statusJunkLinesMax`). */
const statusJunkLineBytesMax = 128;
/** `http` as four bytes, big-endian. */
const httpWord = 0x68747470;

/** Where `HTTP` (any case) starts in a status line, at most statusJunkMax bytes in; -1 if it does not. */
function statusAt(line: string): number {
  return line
    .slice(0, statusJunkMax + 4)
    .toLowerCase()
    .indexOf('http');
}

/** Empty lines before a body's first chunk-size line skipped at most (browsers skip some). */
const chunkBlankLinesMax = 4;

/**
 * A chunk-size line (RFC 9112 7.1, without its line end) as browsers read one: whitespace, NUL, VT, FF or
 * CR before the hex digits skipped, anything after them up to the line's end ignored (an extension, or the
 * junk of HTTP Evader's `size-x` and `size-,`). The size, negated when the line was not in RFC form;
 * 'blank' for a line with nothing but such bytes, 'bad' for one without digits (or with more than 12).
 */
function chunkSize(line: readonly number[]): number | 'blank' | 'bad' {
  let k = 0;
  while (k < line.length && isLooseSpace(line[k]!)) k++;
  if (k === line.length) return 'blank';
  let size = 0;
  const start = k;
  for (; k < line.length && k - start <= 12; k++) {
    const v = hexVal(line[k]!);
    if (v < 0) break;
    size = size * 16 + v;
  }
  if (k === start || k - start > 12) return 'bad';
  const rest = String.fromCharCode(...line.slice(k));
  return start === 0 && /^[ \t]*(?:;.*)?$/.test(rest) ? size : -size;
}

/** A message with nothing read into it yet but its bytes as sent so far (`raw`). */
function newMessage(kind: 'request' | 'response', raw: Uint8Array): HttpMessage {
  const empty = new Uint8Array(0);
  return {
    kind,
    method: '',
    uri: empty,
    version: '',
    status: 0,
    statusText: empty,
    reason: empty,
    startLine: empty,
    rawHeader: empty,
    fields: [],
    body: empty,
    bodyBytes: 0,
    bodyTruncated: false,
    raw,
  };
}

/** The length Content-Length values give (RFC 9110 8.6: one value, repeats allowed), or undefined. */
function contentLength(values: readonly string[]): number | undefined {
  const set = new Set(
    values
      .join(',')
      .split(',')
      .map((x) => x.trim()),
  );
  const v = [...set][0] ?? '';
  return set.size === 1 && /^\d{1,15}$/.test(v) ? Number(v) : undefined;
}

/** The status a response's body is framed by: a code not written as three digits frames as a 200. */
function framingStatus(m: HttpMessage): number {
  return m.statusText.length === 3 ? m.status : 200;
}

/**
 * The bytes browsers take as space where RFC 9112 wants one: they end a status line's version and code
 * tokens, and come before a chunk size's digits.
 */
const isLooseSpace = (c: number) => c === SP || c === HTAB || c === 0 || c === 0x0b || c === 0x0c || c === CR;

const latin1 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');

function trimOws(b: Uint8Array): Uint8Array {
  let s = 0;
  let e = b.length;
  while (s < e && (b[s] === SP || b[s] === HTAB)) s++;
  while (e > s && (b[e - 1] === SP || b[e - 1] === HTAB || b[e - 1] === CR)) e--;
  return b.subarray(s, e);
}

/** `a`, one space, and the folded line `l` without its leading and trailing whitespace (obs-fold, RFC 9112 5.2). */
function joinFolded(a: Uint8Array, l: Uint8Array): Uint8Array {
  const v = trimOws(l);
  const joined = new Uint8Array(a.length + 1 + v.length);
  joined.set(a);
  joined[a.length] = SP;
  joined.set(v, a.length + 1);
  return joined;
}

/** Splits, in place, each line with a CR inside it (a bare CR) into the lines the CRs end; counted. */
function splitAtBareCr(lines: Uint8Array[], anomalies: HttpAnomalies): void {
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const cr = l.indexOf(CR);
    if (cr < 0) continue;
    anomalies.badFieldLine++;
    const parts: Uint8Array[] = [];
    let from = 0;
    for (let k = cr; k <= l.length; k++) {
      if (k < l.length && l[k] !== CR) continue;
      if (k > from) parts.push(l.subarray(from, k));
      from = k + 1;
    }
    lines.splice(i, 1, ...parts);
    i += parts.length - 1;
  }
}

/** Whether a line starts with a field name (token characters) and its colon. */
function isFieldLine(l: Uint8Array): boolean {
  const colon = l.indexOf(0x3a);
  if (colon <= 0) return false;
  for (let k = 0; k < colon; k++) if (!isTchar(l[k]!)) return false;
  return true;
}

/** A token in lower case (RFC 9110 5.6.2), or empty. */
const tokenText = /^[!#$%&'*+\-.^_`|~0-9a-z]*$/;

/** RFC 9110 5.6.2's tchar: the characters of a token (field names, codings). */
function isTchar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c > 0x20 && c < 0x7f && "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)))
  );
}

/**
 * A field name or a coding as the parser looks it up: its token characters, lowercased. Browsers read
 * past NULs, control bytes and other stray bytes in a name or a coding (`Transfer-Encoding:\0chunked`,
 * `Content-Encoding\x0b: gz\0ip`: the HTTP Evader variants), so an inspector that took them literally
 * would miss a body a browser decodes; the field keeps its name and value as sent for the raw buffers.
 */
export function tokenKey(s: string): string {
  const low = s.toLowerCase();
  if (tokenText.test(low)) return low; // a name as sent (all but never anything else): no copy by byte
  let out = '';
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (isTchar(c)) out += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 32 : c);
  }
  return out;
}

/**
 * The codings of Transfer-Encoding or Content-Encoding field values, in order, each as `tokenKey` reads
 * it without its parameters (the first non-empty part between semicolons: `chunked;`, `;chunked`).
 */
export function codingsOf(values: readonly string[]): string[] {
  const out: string[] = [];
  for (const v of values)
    for (const part of v.split(',')) {
      const c = part
        .split(';')
        .map(tokenKey)
        .find((x) => x !== '');
      if (c !== undefined) out.push(c);
    }
  return out;
}

/**
 * One direction of an HTTP/1.x connection: bytes in (`push`), messages out through `events`. A request
 * parser starts in `detect`: the first bytes must look like a request line (a method token and a space),
 * a response parser's like `HTTP/`; otherwise the direction is `not-http` and everything is ignored.
 */
export class HttpParser {
  state: State = 'detect';
  readonly bodyBytesMax: number;
  /** `HttpOptions.responseFromStart` or `requestFromStart`, by kind. */
  private readonly fromStart: boolean;
  /** Bytes charged to the budget now. */
  heldBytes = 0;
  private hdr = new Uint8Array(0);
  private hdrLen = 0;
  /** Where the search for the header section's end resumes. */
  private scan = 0;
  private detected = 0;
  /** A response's last four bytes while detecting, each lowercased (`| 0x20`). */
  private probe = 0;
  /** Index of the first line's LF in the header buffer (-1 until it is in). */
  private startLineEnd = -1;
  /** Header sections parsed so far. */
  messages = 0;
  private msg: HttpMessage | undefined;
  private bodyParts: Uint8Array[] = [];
  private rawParts: Uint8Array[] = [];
  private kept = 0;
  private rawKept = 0;
  /** Body bytes still expected (length framing) or of the current chunk. */
  private remaining = 0;
  private line: number[] = [];
  /** Chunk-size lines read in the message (the first one decides whether a lenient chunked body is one). */
  private chunks = 0;
  /** The response that last ended without a body by its status (not 101), until another message starts. */
  private bodyless: HttpMessage | undefined;
  /** Short lines skipped before the current status line. */
  private junkLines = 0;
  /** Where the line after the last of them starts in the header buffer (they stay there until a status line). */
  private junkEnd = 0;
  private blankChunkLines = 0;
  /** Stopped where a start line should have been: looking for one in what follows (`resync`). */
  private resyncable = false;
  /** Bytes were missing before the first ones seen (a gap at the start of the stream). */
  private startLost = false;
  /** `HttpOptions.resync`. */
  private readonly resyncOn: boolean;

  constructor(
    readonly kind: 'request' | 'response',
    private readonly events: HttpEvents,
    private readonly anomalies: HttpAnomalies,
    private readonly budget: HttpBudget,
    opts: HttpOptions = {},
    /**
     * Response framing needs the request's method: the request a response answers, taken off the queue
     * for a final response ('final', once per header section), left on it for an interim one ('interim'),
     * or only looked at ('peek': no anomaly when none waits).
     */
    private readonly requestFor: (use: 'final' | 'interim' | 'peek') => HttpMessage | undefined = () =>
      undefined,
  ) {
    this.bodyBytesMax = opts.bodyBytesMax ?? defaultHttpBodyBytesMax;
    this.fromStart = (kind === 'response' ? opts.responseFromStart : opts.requestFromStart) ?? true;
    this.resyncOn = opts.resync ?? true;
  }

  /** Whether the direction is still parsed (not dead, not a tunnel, not another protocol). */
  get active(): boolean {
    return this.state !== 'dead' && this.state !== 'tunnel' && this.state !== 'not-http';
  }

  /** Whether `push` still looks at what comes: parsed, or looking for a start line to resume at. */
  get listening(): boolean {
    return this.active || this.resyncable;
  }

  /** Bytes missing before the next push: a body of known length (or read until close) skips them. */
  gap(n: number): void {
    if (!this.active) return;
    if (this.state === 'detect' && this.hdrLen === 0) {
      this.startLost = true; // nothing seen yet: detect on what follows, which may not start a message
      return;
    }
    this.anomalies.gap++;
    // between two messages: the next bytes must make a start line (else the direction stops there)
    if (this.state === 'header' && this.hdrLen === 0) return;
    const m = this.msg;
    if (m && (this.state === 'close' || (this.state === 'length' && n < this.remaining))) {
      if (this.state === 'length') this.remaining -= n;
      m.bodyBytes += n;
      m.bodyTruncated = true;
      return;
    }
    if (m) {
      m.bodyTruncated = true;
      this.complete();
    }
    this.die();
    this.resyncable = this.resyncOn;
  }

  push(data: Uint8Array): void {
    if (!this.active) {
      if (this.resyncable) this.resync(data);
      return;
    }
    let i = 0;
    while (i < data.length && this.active) {
      switch (this.state) {
        case 'detect':
          i = this.detect(data, i);
          break;
        case 'header':
          i = this.header(data, i);
          break;
        case 'length': {
          const n = Math.min(this.remaining, data.length - i);
          this.body(data.subarray(i, i + n));
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.complete();
          break;
        }
        case 'close':
          this.body(data.subarray(i));
          i = data.length;
          break;
        case 'chunk-size':
        case 'chunk-end':
        case 'trailer':
          i = this.chunkLine(data, i);
          break;
        case 'chunk-data': {
          const n = Math.min(this.remaining, data.length - i);
          this.body(data.subarray(i, i + n));
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            this.state = 'chunk-end';
            this.line = [];
          }
          break;
        }
      }
    }
  }

  /** The connection ended: a body read until close is complete; a message cut short is reported as is. */
  end(): void {
    if (this.mayUnchunk() && this.rawKept > 0) this.unchunk();
    if (this.state === 'header' && this.hdrLen > 0 && this.startLineEnd < 0 && this.kind === 'response') {
      // bytes too few to show a status line or not (a short body after a 204)
      if (statusAt(latin1(this.hdr.subarray(this.junkEnd, this.hdrLen))) < 0) this.badStart(0);
    }
    if (this.state === 'header' && this.startLineEnd >= 0) {
      // a section that waited to tell whether an odd blank line ended it: it did, the rest is the body
      const end = this.sectionEnd(true);
      if (end >= 0) {
        const rest = this.hdr.slice(end, this.hdrLen);
        this.finishHeader(end, false);
        if (rest.length > 0) this.push(rest);
      }
    }
    const s = this.state;
    if (
      s === 'close' ||
      s === 'length' ||
      s === 'chunk-size' ||
      s === 'chunk-data' ||
      s === 'chunk-end' ||
      s === 'trailer'
    ) {
      if (s !== 'close' && this.msg) this.msg.bodyTruncated = true;
      this.complete();
    } else if (s === 'header' && this.hdrLen > 0 && this.startLineEnd >= 0)
      this.finishHeader(this.hdrLen, true);
    this.die();
  }

  /** Gives all held memory back (the flow is gone). */
  dispose(): void {
    this.die();
  }

  /**
   * Times the direction stopped on input it cannot parse (`fail`): an app-layer error, which the engine's
   * exception policy acts on (`EngineOptions.exceptionPolicy.appLayerError`). A gap, the connection's end
   * or another protocol's bytes are not errors.
   */
  errors = 0;

  /** Stops the direction on input it cannot parse (an app-layer error). */
  private fail(): void {
    this.errors++;
    this.die();
  }

  private die(): void {
    this.release();
    this.hdr = new Uint8Array(0);
    this.hdrLen = 0;
    this.msg = undefined;
    this.state = 'dead';
  }

  private release(): void {
    this.budget.give(this.heldBytes);
    this.heldBytes = 0;
    this.bodyParts = [];
    this.rawParts = [];
    this.kept = 0;
    this.rawKept = 0;
  }

  private hold(n: number): boolean {
    if (!this.budget.take(n)) {
      this.anomalies.memcap++;
      this.die();
      return false;
    }
    this.heldBytes += n;
    return true;
  }

  /**
   * The first bytes of a direction: a method (`[A-Z][A-Z0-9_-]*`) and a space, or `HTTP/`. Anything else
   * is another protocol (`not-http`, not an anomaly). The whole first line is checked once it is in.
   */
  private detect(data: Uint8Array, i: number): number {
    for (let k = i; k < data.length; k++) {
      const c = data[k]!;
      if (this.detected === 0 && this.hdrLen === 0 && (c === CR || c === LF)) {
        i = k + 1; // empty lines before a message are ignored (RFC 9112 2.2)
        continue;
      }
      if (this.kind === 'response') {
        // `HTTP` in any case, after at most statusJunkMax other bytes, or a line end: `headerPart` looks
        // past a first line that a status line follows
        this.probe = ((this.probe << 8) | (c | 0x20)) >>> 0;
        if (this.probe === httpWord || c === LF) break;
        if (++this.detected >= statusJunkLineBytesMax) return this.headless() ? i : this.notHttp();
      } else if (c === SP && this.detected > 0) break;
      else if (!isMethodChar(c, this.detected === 0) || ++this.detected > 24) return this.notHttp();
    }
    this.state = 'header';
    return this.header(data, i);
  }

  private notHttp(): number {
    this.release();
    this.hdr = new Uint8Array(0);
    this.hdrLen = 0;
    this.state = 'not-http';
    // another protocol, unless the stream's start was not seen (picked up midstream, or after a gap)
    this.resyncable = this.resyncOn && (!this.fromStart || this.startLost);
    return Number.MAX_SAFE_INTEGER;
  }

  /**
   * A direction that stopped where a start line should have been starts again at the first line of `data`
   * that begins one (`startLineAt`), as a message of its own; what comes before it is not inspected as
   * HTTP. Wireshark does the like at each segment that starts a message; without it, a response stream
   * picked up after its first bytes (capture loss, a sensor started mid-connection) hid every later
   * response of the connection (7 responses of ndpi-mix-a that tshark reads). A resumed response is paired
   * with the oldest request waiting, which may not be the one it answers when requests' responses were lost.
   */
  private resync(data: Uint8Array): void {
    const at = startLineAt(this.kind, data);
    if (at < 0) return;
    this.resyncable = false;
    this.anomalies.resynced++;
    this.dropHeader();
    this.junkLines = 0;
    this.bodyless = undefined;
    this.msg = undefined;
    this.state = 'header';
    this.push(data.subarray(at));
  }

  /**
   * A start line that does not parse: the body of a response without one (`headless`), another protocol
   * when it is the first, else an anomaly. `used`: the bytes of the window taken into the header buffer.
   */
  private badStart(used: number): number {
    if (this.headless()) {
      // what was taken as a start line (and lines skipped before it) is the body's start
      const held = this.hdr.slice(0, this.hdrLen);
      this.dropHeader();
      if (this.state === 'close') this.body(held);
      else this.push(held);
      return used;
    }
    if (this.messages === 0) return this.notHttp();
    this.anomalies.badStartLine++;
    this.fail();
    this.resyncable = this.resyncOn;
    return Number.MAX_SAFE_INTEGER;
  }

  private append(data: Uint8Array, from: number, to: number): boolean {
    const n = to - from;
    if (this.hdrLen + n > this.hdr.length) {
      const cap = Math.min(httpHeaderBytesMax, Math.max(this.hdrLen + n, 2 * this.hdr.length, 512));
      if (!this.hold(cap - this.hdr.length)) return false;
      const h = new Uint8Array(cap);
      h.set(this.hdr.subarray(0, this.hdrLen));
      this.hdr = h;
    }
    this.hdr.set(data.subarray(from, to), this.hdrLen);
    this.hdrLen += n;
    return true;
  }

  /**
   * Collects the header section until an empty line (CRLF CRLF, or bare LFs: RFC 9112 2.2 allows them),
   * copying at most `headerWindowBytes` past its end (pipelined messages are not copied again and again).
   */
  private header(data: Uint8Array, i: number): number {
    if (this.hdrLen === 0) while (i < data.length && (data[i] === CR || data[i] === LF)) i++;
    while (i < data.length && this.state === 'header') {
      const n = Math.min(data.length - i, headerWindowBytes);
      const used = this.headerPart(data.subarray(i, i + n));
      i += used;
      if (used < n) break;
      if (this.state === 'header' && this.hdrLen === 0) return i; // a section ended exactly here
    }
    return i;
  }

  private headerPart(data: Uint8Array): number {
    const take = Math.min(data.length, httpHeaderBytesMax - this.hdrLen);
    // where this window's bytes start in the header buffer (less what is dropped before the status line)
    let start = this.hdrLen;
    if (!this.append(data, 0, take)) return Number.MAX_SAFE_INTEGER;
    const h = this.hdr;
    while (this.startLineEnd < 0) {
      // lines before the status line stay in the buffer until one follows (`junkEnd`): if none does, they
      // are the body's first bytes (`badStart`)
      const from = this.junkEnd;
      const lfAt = h.subarray(from, this.hdrLen).indexOf(LF);
      if (lfAt < 0) {
        if (this.hdrLen - from >= httpStartLineBytesMax) return this.badStart(take);
        // a response's first bytes already show it has no status line (nor a line to skip before one)
        if (
          this.kind === 'response' &&
          this.hdrLen - from >= statusJunkLineBytesMax &&
          statusAt(latin1(h.subarray(from, from + statusJunkMax + 4))) < 0
        )
          return this.badStart(take);
        return data.length;
      }
      const lf = from + lfAt;
      const line = latin1(h.subarray(from, lf > from && h[lf - 1] === CR ? lf - 1 : lf));
      if (this.kind === 'request' ? requestLine.test(line) : statusAt(line) >= 0) {
        if (from > 0) {
          h.copyWithin(0, from, this.hdrLen);
          this.hdrLen -= from;
          start -= from;
          this.junkEnd = 0;
        }
        this.startLineEnd = lf - from;
        this.scan = lf - from;
        break;
      }
      if (this.kind === 'request' || lfAt >= statusJunkLineBytesMax || this.junkLines >= statusJunkLinesMax)
        return this.badStart(take);
      // a line before the status line, skipped as browsers skip some when a status line follows, or
      // another short line after a short one (` `, `foobar`; enough of the next must be here to tell)
      const short = lfAt < statusJunkMax + 4;
      const next = latin1(h.subarray(lf + 1, Math.min(this.hdrLen, lf + 1 + statusJunkMax + 4)));
      const nextLf = next.indexOf('\n');
      // (the next line alone: a blank line, then a status line in the bytes looked at, is no status line next;
      // it read as one when those bytes had come in one push, and not when cut)
      if (statusAt(nextLf < 0 ? next : next.slice(0, nextLf)) < 0 && (nextLf < 0 || !short)) {
        if (nextLf >= 0) return this.badStart(take);
        if (next.length < statusJunkMax + 4) return data.length;
        return this.badStart(take);
      }
      this.junkLines++;
      this.anomalies.oddStatusLine++;
      this.junkEnd = lf + 1;
    }
    const end = this.sectionEnd(false);
    if (end >= 0) {
      // the section can end before this window when a line after it was awaited: those bytes are the body's
      const carry = end < start ? this.hdr.slice(end, start) : undefined;
      this.finishHeader(end, false);
      if (carry) this.push(carry);
      return Math.max(0, end - start);
    }
    if (this.hdrLen >= httpHeaderBytesMax) {
      // the header section does not fit: inspect the part that did, stop parsing this direction
      this.anomalies.headerTooLong++;
      this.finishHeader(this.hdrLen, true);
      this.fail();
      return Number.MAX_SAFE_INTEGER;
    }
    return data.length;
  }

  /**
   * Where the header section in the buffer ends (after its blank line), or -1 if it does not yet; `final`:
   * no more bytes will come (the connection ended), so a line cut short is all there is to look at.
   */
  private sectionEnd(final: boolean): number {
    const h = this.hdr;
    let lastLf = this.startLineEnd;
    for (let k = Math.max(this.scan, this.startLineEnd); k < this.hdrLen; k++) {
      if (h[k] !== LF) continue;
      lastLf = k;
      // an empty line: LF LF or LF CR LF; in a response also a line of spaces, tabs and CRs (`LF SP LF`,
      // `LF CR CR LF`), which some browsers take as the end of the section
      let e = k + 1;
      if (this.kind === 'request') {
        if (h[e] === CR) e++;
      } else
        while (e < this.hdrLen && e - k <= blankLineBytesMax && (h[e] === SP || h[e] === HTAB || h[e] === CR))
          e++;
      if (e < this.hdrLen && h[e] === LF) {
        let end = e + 1;
        if (e - k > 2 || (e - k === 2 && h[k + 1] !== CR)) {
          // not a plain blank line: browsers differ. The section goes on if a fold line or a field line
          // follows (the line was an empty fold, or a field line of nothing), ends after the next line if
          // that one is blank, else ends here (enough of the next line must be here to tell)
          const nextLf = h.subarray(0, this.hdrLen).indexOf(LF, end);
          if (nextLf < 0 && this.hdrLen - end < blankLookaheadBytes && !final) break;
          const next = h.subarray(
            end,
            nextLf < 0 ? Math.min(this.hdrLen, end + blankLookaheadBytes) : nextLf,
          );
          if (next[0] === SP || next[0] === HTAB || isFieldLine(next)) continue;
          if (nextLf >= 0 && next.every((c) => c === CR)) end = nextLf + 1;
          this.anomalies.badFieldLine++;
        }
        return end;
      }
    }
    // the next scan starts at the last line end, whose next line may yet turn out blank
    this.scan = lastLf;
    return -1;
  }

  /** Parses the header section hdr[0, end) into a message and decides how its body is framed. */
  private finishHeader(end: number, cut: boolean): void {
    const section = this.hdr.slice(0, end);
    // the header buffer goes back; the section is held (charged) until the message is complete
    this.dropHeader();
    this.messages++;
    this.bodyless = undefined;
    this.junkLines = 0;
    if (!this.hold(section.length)) return;
    const lines: Uint8Array[] = [];
    let s = 0;
    const firstLf = section.indexOf(LF);
    for (let k = 0; k < section.length; k++) {
      if (section[k] !== LF) continue;
      lines.push(section.subarray(s, k > s && section[k - 1] === CR ? k - 1 : k));
      s = k + 1;
    }
    if (s < section.length) lines.push(section.subarray(s));
    // the blank line that ended the section (spaces, tabs and CRs in a response's: `headerPart`)
    while (lines.length > 0 && lines[lines.length - 1]!.every((c) => c === SP || c === HTAB || c === CR))
      lines.pop();
    // in a response a bare CR inside a line ends a line too, as some browsers read it (HTTP Evader's
    // `HTTP/1.1 200\rTransfer-Encoding: chunked`, `cr-no-crlf`); RFC 9112 2.2 would have it a space
    if (this.kind === 'response') splitAtBareCr(lines, this.anomalies);
    const startLine = lines[0] ?? new Uint8Array(0);
    const headerStart = firstLf < 0 ? section.length : firstLf + 1;
    const m = newMessage(this.kind, section);
    m.startLine = startLine;
    m.rawHeader = trimEmptyLine(section.subarray(headerStart));
    this.parseStartLine(m, startLine);
    // in a response, a line with no colon is held: a fold after it continues it (`Name\r\n :value`, which
    // browsers join); a request's folds stay RFC 9112's alone (its framing is what smuggling plays on)
    const lenient = this.kind === 'response';
    let nameLine: Uint8Array | undefined;
    for (const l of lines.slice(1)) {
      // a response's line led by a byte some browser takes as space (NUL, VT, FF) folds as one led by SP
      if (l[0] === SP || l[0] === HTAB || (lenient && l.length > 0 && isLooseSpace(l[0]!))) {
        // obs-fold (RFC 9112 5.2): a continuation of the previous field's value, replaced by one space
        this.anomalies.obsFold++;
        const prev = m.fields[m.fields.length - 1];
        if (nameLine) {
          // a name folded over more lines before its colon (`Transfer-Encoding`, ` `, ` :`) waits for it
          const joined = joinFolded(nameLine, l);
          nameLine = joined.indexOf(0x3a) <= 0 ? joined : undefined;
          if (!nameLine) this.field(m, joined);
        } else if (lenient && m.fields.length === 0)
          this.field(m, trimOws(l)); // right after the status line: a field of its own
        else if (prev) {
          prev.value = joinFolded(prev.value, l);
          // a folded line that reads as a field of its own is one too: browsers that do not unfold see it
          // so (` Transfer-Encoding: chunked` under another field)
          if (lenient && isFieldLine(trimOws(l))) this.field(m, trimOws(l));
        } else this.anomalies.badFieldLine++;
        continue;
      }
      if (nameLine) this.anomalies.badFieldLine++;
      nameLine = lenient && l.indexOf(0x3a) <= 0 ? l : undefined;
      if (!nameLine) this.field(m, l);
    }
    if (nameLine) this.anomalies.badFieldLine++;
    this.msg = m;
    this.rawParts = [];
    this.rawKept = 0;
    if (m.kind === 'response') {
      const st = framingStatus(m);
      const interim = st >= 100 && st < 200 && st !== 101;
      const req = this.requestFor(interim ? 'interim' : 'final');
      if (req) m.request = req;
    }
    this.events.headers(m);
    if (cut) {
      this.complete();
      return;
    }
    this.frame(m);
  }

  /** One field line `name: value` into `m` (a line without a name before its colon is counted and dropped). */
  private field(m: HttpMessage, l: Uint8Array): void {
    const colon = l.indexOf(0x3a);
    if (colon <= 0) {
      this.anomalies.badFieldLine++;
      return;
    }
    const rawName = l.subarray(0, colon);
    const name = latin1(trimOws(rawName));
    // whitespace between the name and the colon is an error a server must reject (RFC 9112 5.1): kept,
    // counted, so that rules still see what a lenient server would
    if (name.length !== rawName.length) this.anomalies.badFieldLine++;
    if (m.fields.length >= httpFieldsMax) {
      this.anomalies.tooManyFields++;
      return;
    }
    m.fields.push({ name, lname: tokenKey(name), value: trimOws(l.subarray(colon + 1)) });
  }

  /** RFC 9112 6.3: how the body of `m` ends. */
  private frame(m: HttpMessage): void {
    if (m.kind === 'response') {
      const method = m.request?.method;
      const st = framingStatus(m);
      // a 101 names the protocol it switches to (RFC 9110 15.2.2: an Upgrade field); one that names none
      // switched to nothing a browser would speak, and is read as a final response (HTTP Evader's `101`)
      const upgraded = st === 101 && m.fields.some((f) => f.lname === 'upgrade');
      if (st === 101 && !upgraded) this.anomalies.oddStatusLine++;
      if (upgraded || (method === 'CONNECT' && st >= 200 && st < 300)) {
        this.complete();
        this.state = 'tunnel';
        return;
      }
      if (method === 'HEAD' || (st >= 100 && st < 200 && st !== 101) || st === 204 || st === 304) {
        this.complete();
        if (method !== 'HEAD') this.bodyless = m;
        return;
      }
    }
    const te = this.fieldValues(m, 'transfer-encoding');
    const cl = this.fieldValues(m, 'content-length');
    if (te.length > 0) {
      if (cl.length > 0) this.anomalies.transferEncodingAndLength++;
      const codings = codingsOf(te);
      const last = codings[codings.length - 1];
      // a response whose codings name chunked anywhere (`chunkedx`, `chunked, xte`) is read as chunked
      // first, as some browsers read it, and by its length or to the end if its body turns out not to be
      // (`unchunk`): others ignore such a field
      const lenient = m.kind === 'response' && namesChunked(codings);
      if (last === 'chunked' || lenient) {
        if (last !== 'chunked') this.anomalies.badTransferEncoding++;
        this.startChunked();
        return;
      }
      this.anomalies.badTransferEncoding++;
      if (m.kind === 'request') {
        this.complete();
        this.fail();
      } else this.state = 'close';
      return;
    }
    if (cl.length > 0) {
      const n = contentLength(cl);
      if (n === undefined) {
        this.anomalies.badContentLength++;
        // a request's framing cannot be trusted past it (smuggling); a response is read to the end of
        // the connection, all of what a browser might take as its body
        if (m.kind === 'response') {
          this.state = 'close';
          return;
        }
        this.complete();
        this.fail();
        return;
      }
      this.remaining = n;
      if (this.remaining === 0) this.complete();
      else this.state = 'length';
      return;
    }
    if (m.kind === 'request') this.complete();
    else this.state = 'close';
  }

  /** The header buffer goes back to the budget, empty. */
  private dropHeader(): void {
    this.budget.give(this.hdr.length);
    this.heldBytes -= this.hdr.length;
    this.hdr = new Uint8Array(0);
    this.hdrLen = 0;
    this.startLineEnd = -1;
    this.scan = 0;
    this.junkEnd = 0;
  }

  /**
   * Starts a response without a status line or fields whose body is what follows, to the end of the
   * connection, where a response does not start with one but browsers would read its bytes all the same:
   * HTTP/0.9's form (a request is waiting), and a body after a 1xx, 204 or 304 response (HTTP Evader's
   * `http09`, `204`, `100`). False (nothing done) when neither holds.
   */
  private headless(): boolean {
    if (this.kind !== 'response') return false;
    const after = this.bodyless;
    if (!after && this.messages === 0 && (!this.fromStart || this.startLost)) return false;
    const waiting = this.requestFor('peek');
    if (!waiting && !after) return false;
    this.anomalies.headlessResponse++;
    const m = newMessage('response', new Uint8Array(0));
    m.version = 'HTTP/0.9';
    m.status = 200;
    const req = waiting ? this.requestFor('final') : after!.request;
    if (req) m.request = req;
    this.bodyless = undefined;
    this.messages++;
    this.msg = m;
    this.rawParts = [];
    this.rawKept = 0;
    this.events.headers(m);
    // after a bodiless response that said its body is chunked (HTTP Evader's `204;chunked`): read as
    // chunked, by the connection's end if it is not (`unchunk`)
    if (after && !waiting && namesChunked(codingsOf(this.fieldValues(after, 'transfer-encoding'))))
      this.startChunked();
    else this.state = 'close';
    return true;
  }

  /** The body is read as chunked from here. */
  private startChunked(): void {
    this.state = 'chunk-size';
    this.line = [];
    this.chunks = 0;
    this.blankChunkLines = 0;
  }

  private mayUnchunk(): boolean {
    return this.kind === 'response' && this.chunks === 0 && this.state === 'chunk-size';
  }

  /**
   * A response read as chunked whose first chunk-size line is no such line: its body was not chunked.
   * The bytes read as chunk lines go back in as body, framed by its Content-Length if valid, else by the
   * connection's end.
   */
  private unchunk(): void {
    const m = this.msg!;
    const again = concatBytes(this.rawParts, this.rawKept);
    this.rawParts = [];
    this.rawKept = 0;
    this.line = [];
    const cl = this.fieldValues(m, 'content-length');
    const n = cl.length > 0 ? contentLength(cl) : undefined;
    if (n === 0)
      this.complete(); // the bytes start the next message
    else if (n !== undefined) {
      this.remaining = n;
      this.state = 'length';
    } else this.state = 'close';
    this.push(again);
  }

  private fieldValues(m: HttpMessage, lname: string): string[] {
    return m.fields.filter((f) => f.lname === lname).map((f) => latin1(f.value));
  }

  /** Fills method, target, version, status and reason from a start line already checked by `header`. */
  private parseStartLine(m: HttpMessage, l: Uint8Array): void {
    const text = latin1(l);
    if (this.kind === 'request') {
      // method SP request-target SP HTTP-version (RFC 9112 3); runs of spaces (and spaces in the target) tolerated
      const p = requestLine.exec(text);
      if (!p) return;
      m.method = p[1]!;
      const at = text.indexOf(p[2]!, p[1]!.length);
      m.uri = l.subarray(at, at + p[2]!.length);
      m.version = p[3]!;
      return;
    }
    // HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 4)
    const p = statusLine.exec(text);
    if (p) {
      m.version = p[1]!;
      m.status = Number(p[2]);
      const at = text.indexOf(p[2]!, p[1]!.length);
      m.statusText = l.subarray(at, at + 3);
      if (p[3] !== undefined) m.reason = l.subarray(l.length - p[3].length);
      return;
    }
    this.anomalies.oddStatusLine++;
    this.parseOddStatusLine(m, l);
  }

  /**
   * A status line outside RFC 9112's form, read as browsers read one (the HTTP Evader set's responses:
   * `HTTP/1.01 200`, `http/1.1 200`, ` HTTP/1.1 200`, `HTTP/1.1\0 200`, `HTTP/1.1 2xx`, `HTTP/1.1foobar`):
   * from `HTTP` (any case, after a few stray bytes), the version up to a space, tab, NUL, VT, FF or CR, then
   * the status code's token; its leading digits are the status (none: 200, as browsers take it). The body
   * framing rules of 1xx, 204 and 304 hold for a three-digit code only (`statusText` is the token as sent).
   */
  private parseOddStatusLine(m: HttpMessage, l: Uint8Array): void {
    let k = Math.max(0, statusAt(latin1(l)));
    const v = k;
    while (k < l.length && !isLooseSpace(l[k]!)) k++;
    m.version = latin1(l.subarray(v, k));
    while (k < l.length && isLooseSpace(l[k]!)) k++;
    const t = k;
    while (k < l.length && !isLooseSpace(l[k]!)) k++;
    m.statusText = l.subarray(t, k);
    let d = t;
    while (d < k && d - t < 9 && l[d]! >= 0x30 && l[d]! <= 0x39) d++;
    m.status = d > t ? Number(latin1(l.subarray(t, d))) : 200;
    while (k < l.length && isLooseSpace(l[k]!)) k++;
    m.reason = l.subarray(k);
  }

  /** Body bytes: `decoded` after chunked decoding, `raw` as sent (both kept up to bodyBytesMax). */
  /**
   * Body bytes, as sent and decoded alike (a body not chunked, or a chunk's data): kept in the message's
   * body and its raw bytes, one copy for both where both keep all of them.
   */
  private body(bytes: Uint8Array): void {
    const m = this.msg;
    if (!m) return;
    m.bodyBytes += bytes.length;
    const keep = Math.min(bytes.length, this.bodyBytesMax - this.kept);
    if (keep < bytes.length) m.bodyTruncated = true;
    let copy: Uint8Array | undefined;
    if (keep > 0) {
      if (!this.hold(keep)) return;
      // copies: on a Node Buffer (what capture readers hand out) slice is a view that would pin the
      // reader's whole chunk, charged as `keep` bytes, and see its later writes
      copy = copyBytes(bytes, 0, keep);
      this.bodyParts.push(copy);
      this.kept += keep;
    }
    const rawKeep = Math.min(bytes.length, this.bodyBytesMax - this.rawKept);
    if (rawKeep > 0) {
      if (!this.hold(rawKeep)) return;
      // (both stay charged; the raw message is always an array of its own, made in `complete`)
      this.rawParts.push(copy !== undefined && rawKeep === keep ? copy : copyBytes(bytes, 0, rawKeep));
      this.rawKept += rawKeep;
    }
  }

  /** Chunk-size lines, the CRLF after chunk data, and the trailer section (RFC 9112 7.1). */
  private chunkLine(data: Uint8Array, i: number): number {
    for (; i < data.length; i++) {
      const c = data[i]!;
      if (this.state === 'chunk-end' && this.line.length === 0 && c !== CR && c !== LF) {
        // chunk data not followed by CRLF: tolerated, the byte starts the next chunk-size line
        this.anomalies.badChunkEnd++;
        this.state = 'chunk-size';
      }
      this.rawByte(c);
      if (c !== LF) {
        if (this.line.length >= httpChunkLineBytesMax) {
          if (this.state === 'trailer') this.line = [];
          else {
            this.anomalies.badChunkSize++;
            this.complete();
            this.fail();
            return data.length;
          }
        }
        this.line.push(c);
        if (this.mayUnchunk() && chunkSize(this.line) === 'bad') {
          // the first chunk-size line starts with what no size starts with: not chunked after all
          this.anomalies.badChunkSize++;
          this.unchunk();
          return i + 1;
        }
        continue;
      }
      if (this.line[this.line.length - 1] === CR) this.line.pop();
      const line = this.line;
      this.line = [];
      if (this.state === 'chunk-end') {
        this.state = 'chunk-size';
        continue;
      }
      if (this.state === 'trailer') {
        if (line.length === 0) {
          this.complete();
          return i + 1;
        }
        continue;
      }
      const size = chunkSize(line);
      if (size === 'blank' && this.blankChunkLines++ < chunkBlankLinesMax) continue;
      this.blankChunkLines = 0;
      if (typeof size !== 'number') {
        this.anomalies.badChunkSize++;
        if (this.mayUnchunk()) {
          this.unchunk();
          return i + 1;
        }
        this.complete();
        this.fail();
        return data.length;
      }
      if (size < 0) this.anomalies.badChunkSize++;
      this.chunks++;
      this.remaining = Math.abs(size);
      if (this.remaining === 0) this.state = 'trailer';
      else {
        this.state = 'chunk-data';
        return i + 1;
      }
    }
    return i;
  }

  private rawByte(c: number): void {
    if (this.rawKept >= this.bodyBytesMax || !this.msg) return;
    if (!this.hold(1)) return;
    this.rawParts.push(Uint8Array.of(c));
    this.rawKept++;
  }

  /** The message is whole (or cut short): it goes out, its memory is given back. */
  private complete(): void {
    const m = this.msg;
    this.msg = undefined;
    if (m) {
      m.body = concatBytes(this.bodyParts, this.kept);
      if (this.rawKept > 0) m.raw = concatBytes([m.raw, ...this.rawParts], m.raw.length + this.rawKept);
      this.release();
      this.events.message(m);
    } else this.release();
    if (this.active) this.state = 'header';
  }
}

/** Whether Transfer-Encoding codings (`codingsOf`) name chunked anywhere, as browsers take it. */
function namesChunked(codings: string[]): boolean {
  return codings.some((c) => c.includes('chunked'));
}

/** Start-line candidates looked at in one push at most (`startLineAt`). */
const resyncTriesMax = 16;

/**
 * Where the first line of `data` that begins a `kind` message starts (at 0 or after a LF), or -1: a
 * response's `HTTP/1.`, a request line (RFC 9112 3) ending in ` HTTP/1.x`. Found by searching for
 * `HTTP/1.` (native, so a stream of another protocol costs little), at most resyncTriesMax candidates.
 */
function startLineAt(kind: 'request' | 'response', data: Uint8Array): number {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  let from = 0;
  for (let tries = 0; tries < resyncTriesMax; tries++) {
    const k = buf.indexOf('HTTP/1.', from, 'latin1');
    if (k < 0) return -1;
    from = k + 1;
    if (kind === 'response') {
      if (k === 0 || data[k - 1] === LF) return k;
      continue;
    }
    // a request line: from the line start before it to its end
    if (k === 0 || data[k - 1] !== SP) continue;
    const start = buf.lastIndexOf(LF, k) + 1;
    let end = buf.indexOf(LF, k);
    if (end < 0) end = data.length;
    if (end > start && data[end - 1] === CR) end--;
    const m = requestLine.exec(buf.toString('latin1', start, end));
    if (m && /^[A-Za-z][A-Za-z0-9_-]*$/.test(m[1]!)) return start;
  }
  return -1;
}

/**
 * What `data`, the first bytes of a stream direction, begins as: an HTTP request line, a response's status
 * line, or neither (undefined). (`startLineAt` at 0.)
 */
export function httpStartsAs(data: Uint8Array): 'request' | 'response' | undefined {
  if (startLineAt('response', data) === 0) return 'response';
  return startLineAt('request', data) === 0 ? 'request' : undefined;
}

function trimEmptyLine(b: Uint8Array): Uint8Array {
  let e = b.length;
  if (e > 0 && b[e - 1] === LF) e--;
  if (e > 0 && b[e - 1] === CR) e--;
  if (e > 0 && b[e - 1] === LF) e--;
  if (e > 0 && b[e - 1] === CR) e--;
  return b.subarray(0, e);
}

/**
 * What a response keeps of its request: the start line and fields, copied (so the request's own buffers go
 * back when it is complete), without body or raw bytes; and what that costs.
 */
function requestSummary(m: HttpMessage): { m: HttpMessage; bytes: number } {
  const startLine = new Uint8Array(m.startLine);
  const at = m.uri.byteOffset - m.startLine.byteOffset;
  // (literals of the field's shape, not spreads: a summary is made for every request)
  const fields: HttpField[] = [];
  let bytes = startLine.length;
  for (const f of m.fields) {
    fields.push({ name: f.name, lname: f.lname, value: new Uint8Array(f.value) });
    bytes += f.value.length + f.name.length;
  }
  const uri =
    at >= 0 && at + m.uri.length <= startLine.length
      ? startLine.subarray(at, at + m.uri.length)
      : new Uint8Array(m.uri);
  const empty = new Uint8Array(0);
  return { m: { ...m, startLine, uri, fields, rawHeader: empty, body: empty, raw: empty }, bytes };
}

/** Both directions of one connection; requests and responses are paired in order (pipelining). */
export class HttpSession {
  readonly request: HttpParser;
  readonly response: HttpParser;
  /** Requests whose final response has not begun, oldest first (at most httpPipelinedMax), and their cost. */
  private waiting: { m: HttpMessage; bytes: number }[] = [];

  constructor(
    events: { request: HttpEvents; response: HttpEvents },
    anomalies: HttpAnomalies,
    private readonly budget: HttpBudget,
    opts: HttpOptions = {},
  ) {
    this.request = new HttpParser(
      'request',
      {
        headers: (m) => {
          if (this.waiting.length >= httpPipelinedMax) {
            anomalies.pipelineOverflow++;
            budget.give(this.waiting.shift()!.bytes);
          }
          const s = requestSummary(m);
          if (budget.take(s.bytes)) this.waiting.push(s);
          else anomalies.memcap++;
          events.request.headers(m);
        },
        message: (m) => events.request.message(m),
      },
      anomalies,
      budget,
      opts,
    );
    this.response = new HttpParser('response', events.response, anomalies, budget, opts, (use) => {
      if (use === 'peek') return this.waiting[0]?.m;
      const r = use === 'interim' ? this.waiting[0] : this.waiting.shift();
      if (!r) anomalies.responseWithoutRequest++;
      else if (use === 'final') budget.give(r.bytes);
      return r?.m;
    });
  }

  dispose(): void {
    this.request.dispose();
    this.response.dispose();
    for (const w of this.waiting) this.budget.give(w.bytes);
    this.waiting = [];
  }
}

/**
 * Undoes Content-Encoding (gzip, x-gzip, deflate, x-deflate, br, zstd, lzma), the output capped, as leniently as
 * browsers decode: a gzip member's header flags and trailer are not checked (reserved flags, a wrong CRC or
 * length: HTTP Evader's variants), a layer that will not decode as named is tried as what its bytes look
 * like (a gzip or zlib header; raw deflate), and one that will not decode at all is skipped and counted
 * (`decompressFailed`), the layers after it still undone. Returns the body as sent when nothing decodes.
 */
export function decodeContent(
  body: Uint8Array,
  encodings: string[],
  anomalies: HttpAnomalies,
  capBytes = defaultHttpDecompressedBytesMax,
): Uint8Array {
  const codings = codingsOf(encodings).filter((x) => x !== 'identity');
  if (codings.length === 0 || body.length === 0) return body;
  if (codings.length > httpEncodingsMax) {
    anomalies.decompressFailed++;
    return body;
  }
  let out = body;
  for (const c of codings.reverse()) {
    const next =
      decodeOne(out, c, capBytes, anomalies) ?? decodeOne(out, sniffCoding(out), capBytes, anomalies);
    if (!next) anomalies.decompressFailed++;
    else out = next;
  }
  return out;
}

/** What a body's first bytes say it is: gzip (1f 8b 08) or zlib (RFC 1950's header check); '' if neither. */
function sniffCoding(b: Uint8Array): string {
  if (b.length >= 3 && b[0] === 0x1f && b[1] === 0x8b && b[2] === 8) return 'gzip';
  return isZlibHeader(b) ? 'deflate' : '';
}

const isZlibHeader = (b: Uint8Array) =>
  b.length >= 2 && ((b[0]! << 8) | b[1]!) % 31 === 0 && (b[0]! & 0x0f) === 8;

/** Where a gzip member's deflate data starts (RFC 1952 2.3: FEXTRA, FNAME, FCOMMENT, FHCRC skipped), or -1. */
function gzipDataStart(b: Uint8Array): number {
  if (b.length < 10 || b[0] !== 0x1f || b[1] !== 0x8b || b[2] !== 8) return -1;
  const flags = b[3]!;
  let k = 10;
  if (flags & 4) k += 2 + (k + 1 < b.length ? b[k]! | (b[k + 1]! << 8) : 0);
  for (const bit of [8, 16]) {
    if (!(flags & bit)) continue;
    while (k < b.length && b[k] !== 0) k++;
    k++;
  }
  if (flags & 2) k += 2;
  return k <= b.length ? k : -1;
}

type Inflate = (b: Uint8Array, o: object) => Buffer;

function decodeOne(
  b: Uint8Array,
  coding: string,
  capBytes: number,
  anomalies: HttpAnomalies,
): Uint8Array | undefined {
  let fn: Inflate;
  let flush: object = { finishFlush: constants.Z_SYNC_FLUSH };
  if (coding === 'gzip' || coding === 'x-gzip') {
    // the member's deflate data, inflated raw: the trailer (CRC-32 and length) is never looked at
    const at = gzipDataStart(b);
    if (at < 0) return undefined;
    b = b.subarray(at);
    fn = inflateRawSync;
  } else if (coding === 'deflate' || coding === 'x-deflate') {
    // "deflate" is the zlib format (RFC 9110 8.4.1.2), but raw deflate is common in the wild
    fn = isZlibHeader(b) ? inflateSync : inflateRawSync;
  } else if (coding === 'br') {
    fn = brotliDecompressSync;
    flush = { finishFlush: constants.BROTLI_OPERATION_FLUSH };
  } else if (coding === 'zstd') return zstdDecode(b, capBytes, anomalies);
  else if (coding === 'lzma') return lzmaBody(b, capBytes, anomalies);
  else return undefined;
  // the output is capped: an input that inflates beyond the cap is decoded again from a shorter prefix
  // (halving: at most log2(input) tries, each stopped by zlib at the cap)
  let n = b.length;
  for (let tries = 0; tries < 40 && n > 0; tries++) {
    try {
      const out = fn(b.subarray(0, n), { ...flush, maxOutputLength: capBytes });
      if (out.length === 0) return undefined; // bytes that are no compressed data can inflate to nothing
      if (n < b.length) anomalies.decompressCapped++;
      return new Uint8Array(out.buffer, out.byteOffset, out.length);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ERR_BUFFER_TOO_LARGE') return undefined;
      n >>= 1;
    }
  }
  return undefined;
}

/**
 * The largest Zstandard window an HTTP body may ask for (RFC 9659: a Content-Encoding of zstd uses at most
 * 8 MiB, and browsers refuse more); a frame asking for more is not decoded, nor is one that needs a dictionary.
 */
export const zstdWindowBytesMax = 8 * 2 ** 20;

/**
 * Whether every frame in `b` (RFC 8878 3.1: Zstandard frames and skippable ones; a frame cut short counts
 * as far as it goes) asks for a window of at most zstdWindowBytesMax and no dictionary. Checked before
 * decoding: the decoder allocates each frame's window (or, for a single-segment frame, its declared content
 * size, up to 2 GiB from a header of a few bytes) when the frame starts.
 */
function zstdFramesOk(b: Uint8Array): boolean {
  let k = 0;
  while (k + 4 <= b.length) {
    const magic = (b[k]! | (b[k + 1]! << 8) | (b[k + 2]! << 16) | (b[k + 3]! << 24)) >>> 0;
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      if (k + 8 > b.length) return true;
      k += 8 + ((b[k + 4]! | (b[k + 5]! << 8) | (b[k + 6]! << 16) | (b[k + 7]! << 24)) >>> 0);
      continue;
    }
    // bytes after the frames that are no frame: the decoder stops there, with what came before
    if (magic !== 0xfd2fb528) return k > 0;
    if (k + 5 > b.length) return true;
    const fhd = b[k + 4]!;
    const singleSegment = (fhd >> 5) & 1;
    const dictBytes = [0, 1, 2, 4][fhd & 3]!;
    const fcsBytes = [singleSegment, 2, 4, 8][fhd >> 6]!;
    let q = k + 5;
    let window = 0;
    if (!singleSegment) {
      if (q >= b.length) return true;
      const exp = 10 + (b[q]! >> 3);
      window = 2 ** exp + (2 ** exp / 8) * (b[q]! & 7);
      q++;
    }
    if (q + dictBytes + fcsBytes > b.length) return true;
    for (let i = 0; i < dictBytes; i++) if (b[q + i] !== 0) return false;
    q += dictBytes;
    let fcs = 0;
    for (let i = fcsBytes - 1; i >= 0; i--) fcs = fcs * 256 + b[q + i]!;
    if (fcsBytes === 2) fcs += 256;
    q += fcsBytes;
    if ((singleSegment ? fcs : window) > zstdWindowBytesMax) return false;
    // the blocks (3-byte headers: last flag, type, size; an RLE block holds one byte), then the checksum
    for (let last = 0; !last; ) {
      if (q + 3 > b.length) return true;
      const h = b[q]! | (b[q + 1]! << 8) | (b[q + 2]! << 16);
      last = h & 1;
      const type = (h >> 1) & 3;
      q += 3 + (type === 1 ? 1 : h >> 3);
    }
    k = q + (fhd & 4 ? 4 : 0);
  }
  return true;
}

/**
 * An LZMA-alone body (`lzma.ts`; libhtp decodes `Content-Encoding: lzma`, HTTP Evader sends it), the output
 * capped; a body cut short or broken midway gives what decoded before the break; undefined when nothing did.
 */
function lzmaBody(b: Uint8Array, capBytes: number, anomalies: HttpAnomalies): Uint8Array | undefined {
  const r = lzmaDecode(b, capBytes);
  if (r.out.length === 0) return undefined;
  if (r.capped) anomalies.decompressCapped++;
  return r.out;
}

/** Thrown from the zstd decoder's data callback to stop it at the output cap. */
const zstdCapped = new Error('zstd output capped');

/**
 * Zstandard frames (RFC 8878) decoded by fzstd's streaming decoder, the output capped at `capBytes` (the
 * decoder stopped there) and the frames' windows checked first (`zstdFramesOk`). A body cut short or broken
 * midway gives what decoded before the break; undefined when nothing did.
 */
function zstdDecode(b: Uint8Array, capBytes: number, anomalies: HttpAnomalies): Uint8Array | undefined {
  if (!zstdFramesOk(b)) return undefined;
  const parts: Uint8Array[] = [];
  let n = 0;
  let capped = false;
  const d = new ZstdDecompress((chunk) => {
    const take = Math.min(chunk.length, capBytes - n);
    if (take > 0) parts.push(chunk.slice(0, take));
    n += take;
    if (take < chunk.length) {
      capped = true;
      throw zstdCapped;
    }
  });
  try {
    d.push(b, true);
  } catch {
    // the cap, or input that ends early or does not decode: what came before stands
  }
  if (n === 0) return undefined;
  if (capped) anomalies.decompressCapped++;
  return concatBytes(parts, n);
}

const hexVal = (c: number) =>
  c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 55 : c >= 0x61 && c <= 0x66 ? c - 87 : -1;

/** Percent-decoding (%XX, and IIS's %uXXXX for code points below 256); malformed escapes stay as sent. */
export function percentDecode(b: Uint8Array): Uint8Array {
  if (!b.includes(0x25)) return b;
  const out = new Uint8Array(b.length);
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === 0x25 && i + 2 < b.length + 0) {
      const h = hexVal(b[i + 1] ?? 0);
      const l = hexVal(b[i + 2] ?? 0);
      if (h >= 0 && l >= 0) {
        out[n++] = (h << 4) | l;
        i += 2;
        continue;
      }
      if ((b[i + 1] === 0x75 || b[i + 1] === 0x55) && i + 5 < b.length) {
        const d = [2, 3, 4, 5].map((k) => hexVal(b[i + k]!));
        if (d.every((x) => x >= 0)) {
          const cp = (d[0]! << 12) | (d[1]! << 8) | (d[2]! << 4) | d[3]!;
          if (cp < 0x100) {
            out[n++] = cp;
            i += 5;
            continue;
          }
        }
      }
    }
    out[n++] = c;
  }
  return out.subarray(0, n);
}

/**
 * The normalized URI (what `http_uri` / `http.uri` inspect): percent-decoded, backslashes turned into
 * slashes, and the path simplified (`//` collapsed, `/./` removed, `/../` resolved, never above the root),
 * as Snort's http_inspect does by default (percent decoding, backslash_to_slash, simplify_path) and
 * Suricata's libhtp normalizes the path. The query is decoded but not simplified; the split happens at the
 * first `?` as sent (an encoded %3F does not start a query). An absolute-form target keeps its
 * scheme and authority.
 */
export function normalizeUri(raw: Uint8Array): Uint8Array {
  const q = raw.indexOf(0x3f);
  let path = q < 0 ? raw : raw.subarray(0, q);
  const query = q < 0 ? undefined : percentDecode(raw.subarray(q));
  let prefix: Uint8Array | undefined;
  // (an absolute-form target begins with its scheme's letter, origin-form with a slash)
  const abs =
    path.length > 0 && path[0] !== 0x2f
      ? /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.exec(latin1(path.subarray(0, Math.min(path.length, 16))))
      : null;
  if (abs) {
    const slash = path.indexOf(0x2f, abs[0].length);
    prefix = slash < 0 ? path : path.subarray(0, slash);
    path = slash < 0 ? new Uint8Array(0) : path.subarray(slash);
  }
  // (a loop: `Uint8Array.from` with a mapping function calls it per byte, about 70 ns each)
  const src = percentDecode(path);
  const decoded = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    decoded[i] = c === 0x5c ? 0x2f : c;
  }
  const simple = simplifyPath(decoded);
  if (prefix === undefined && query === undefined) return simple;
  const parts = [prefix ?? new Uint8Array(0), simple, query ?? new Uint8Array(0)];
  return concatBytes(
    parts.filter((p) => p.length > 0),
    parts.reduce((s, p) => s + p.length, 0),
  );
}

/**
 * Removes dot segments and repeated slashes (in the manner of RFC 3986 5.2.4, on a decoded path); `p`
 * itself when there are none (most paths: their bytes are looked at once, no text made).
 */
export function simplifyPath(p: Uint8Array): Uint8Array {
  return hasDotOrEmptySegment(p) ? simplifyPathText(p) : p;
}

/**
 * Whether a segment of `p` (split at every `/`) is `.` or `..`, or is empty and neither the first nor the
 * last: what `simplifyPathText` removes or resolves. Without one it gives `p`'s bytes back.
 */
export function hasDotOrEmptySegment(p: Uint8Array): boolean {
  let start = 0;
  for (let i = 0; i <= p.length; i++) {
    if (i < p.length && p[i] !== 0x2f) continue;
    const n = i - start;
    if (n === 0 ? start > 0 && i < p.length : n <= 2 && p[start] === 0x2e && p[i - 1] === 0x2e) return true;
    start = i + 1;
  }
  return false;
}

/** `simplifyPath` on the path's segments as text. */
export function simplifyPathText(p: Uint8Array): Uint8Array {
  const absolute = p[0] === 0x2f;
  const segs = latin1(p).split('/');
  const out: string[] = [];
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    const last = i === segs.length - 1;
    if (s === '.' || (s === '' && !last && i > 0)) {
      if (last) out.push('');
      continue;
    }
    if (s === '..') {
      if (out.length > (absolute ? 1 : 0)) out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  let r = out.join('/');
  if (absolute && !r.startsWith('/')) r = `/${r}`;
  return Uint8Array.from(Buffer.from(r, 'latin1'));
}
