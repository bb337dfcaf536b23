/**
 * MIME decoding of one mail message (RFC 5322 header section and body, RFC 2045-2046 multipart bodies and
 * Content-Transfer-Encoding), for the `file_data` of mail rules: every leaf part of the message, decoded,
 * is one file. A message/rfc822 part is a message of its own, decoded in turn.
 *
 * Input is never trusted and nothing here throws on it: a header section is read as far as
 * `mimeHeaderBytesMax`, parts nest at most `mimeDepthMax` deep and a message has at most `mimePartsMax`
 * leaf parts (a nesting or part-count bomb is cut there), each part keeps at most `partBytesMax` decoded
 * bytes. Decoding never expands (base64, quoted-printable and uuencode shrink), so the decoded output of one
 * message is at most twice its size (a uuencoded block in a text body is inspected as text and again
 * decoded; everything else at most once). Malformed input is counted by reason (`MimeAnomalies`) and decoded as far
 * as it can be: bad base64 characters are skipped, a bad `=` escape is kept as it is, a multipart body
 * without a boundary parameter or without any delimiter is one part, a missing close delimiter ends the
 * last part at the end of the message.
 */

import { base64Values } from './base64.js';

/** Bytes of one part's header section read at most (the rest of it is skipped). */
export const mimeHeaderBytesMax = 16 * 1024;
/** Header fields of one part read at most. */
export const mimeFieldsMax = 128;
/** Multipart nesting (and message/rfc822 inside a part) at most. */
export const mimeDepthMax = 8;
/** Leaf parts of one message at most. */
export const mimePartsMax = 256;
/** Bytes of a boundary parameter at most (RFC 2046 5.1.1 allows 70; a longer one is cut, anomaly). */
export const mimeBoundaryBytesMax = 200;
/** Decoded bytes kept per part by default. */
export const defaultMimePartBytesMax = 256 * 1024;

export interface MimeOptions {
  /** Decoded bytes kept per part (default 256 KiB; the rest of the part is skipped, anomaly). */
  partBytesMax?: number;
}

/** Malformed or suspicious MIME input, counted by reason. */
export interface MimeAnomalies {
  headerTooLong: number;
  tooManyFields: number;
  tooDeep: number;
  tooManyParts: number;
  /** multipart/* without a boundary parameter, or one too long. */
  badBoundary: number;
  /** A multipart body in which the boundary never occurs. */
  noDelimiter: number;
  /** A multipart body without its close delimiter. */
  unterminated: number;
  badBase64: number;
  badQuotedPrintable: number;
  /** uuencoded lines with characters outside the alphabet or a wrong length. */
  badUuencode: number;
  partCapped: number;
}

export function newMimeAnomalies(): MimeAnomalies {
  return {
    headerTooLong: 0,
    tooManyFields: 0,
    tooDeep: 0,
    tooManyParts: 0,
    badBoundary: 0,
    noDelimiter: 0,
    unterminated: 0,
    badBase64: 0,
    badQuotedPrintable: 0,
    badUuencode: 0,
    partCapped: 0,
  };
}

export interface MimeField {
  /** Lowercased. */
  name: string;
  /** Unfolded, trimmed, latin1. */
  value: string;
}

/** One leaf part: its fields, its type, and its body after Content-Transfer-Encoding. */
export interface MimePart {
  fields: MimeField[];
  /** `type/subtype`, lowercased (text/plain when absent, RFC 2045 5.2). */
  contentType: string;
  /** Content-Disposition's or Content-Type's file name, if any. */
  filename?: string;
  /** The Content-Transfer-Encoding, lowercased (7bit when absent). */
  encoding: string;
  /** The decoded body, at most `partBytesMax` bytes. */
  data: Uint8Array;
  truncated: boolean;
}

const CR = 13;
const LF = 10;
const empty = new Uint8Array(0);

/** The leaf parts of one message, in order, decoded. */
export function parseMime(msg: Uint8Array, anomalies: MimeAnomalies, opts: MimeOptions = {}): MimePart[] {
  const out: MimePart[] = [];
  const partBytesMax = opts.partBytesMax ?? defaultMimePartBytesMax;
  entity(msg, 0, out, anomalies, partBytesMax);
  return out;
}

/** One entity (a message or a part): its header section, then its body as a leaf or as parts. */
function entity(
  bytes: Uint8Array,
  depth: number,
  out: MimePart[],
  an: MimeAnomalies,
  partBytesMax: number,
): void {
  if (out.length >= mimePartsMax) {
    an.tooManyParts++;
    return;
  }
  const { fields, bodyAt } = headerSection(bytes, an);
  const body = bytes.subarray(bodyAt);
  const ct = contentType(fields.find((f) => f.name === 'content-type')?.value ?? '');
  if (ct.type.startsWith('multipart/') || ct.type === 'message/rfc822') {
    if (depth + 1 > mimeDepthMax) {
      an.tooDeep++;
      return;
    }
    if (ct.type === 'message/rfc822') {
      entity(body, depth + 1, out, an, partBytesMax);
      return;
    }
    let boundary = ct.params.get('boundary');
    if (boundary !== undefined && boundary.length > mimeBoundaryBytesMax) boundary = undefined;
    if (!boundary) an.badBoundary++;
    else {
      const parts = splitMultipart(body, boundary, an);
      if (parts) {
        for (const p of parts) entity(p, depth + 1, out, an, partBytesMax);
        return;
      }
    }
    // no usable boundary: the body is inspected as one part, undecoded
  }
  const encoding = (fields.find((f) => f.name === 'content-transfer-encoding')?.value ?? '7bit')
    .trim()
    .toLowerCase();
  const { data, truncated } = decodeBody(body, encoding, an, partBytesMax);
  if (truncated) an.partCapped++;
  const disposition = contentType(fields.find((f) => f.name === 'content-disposition')?.value ?? '');
  const filename = disposition.params.get('filename') ?? ct.params.get('name');
  const part: MimePart = { fields, contentType: ct.type || 'text/plain', encoding, data, truncated };
  if (filename !== undefined) part.filename = filename;
  out.push(part);
  // a uuencoded file inside a text body (as mail clients attached files before MIME, and some still do) is
  // a part of its own after the text
  if (!uuEncodings.has(encoding) && (ct.type === '' || ct.type.startsWith('text/'))) {
    const begin = uuBegin(data);
    if (begin && out.length < mimePartsMax) {
      const uu = uuDecode(data.subarray(begin.at), an, partBytesMax);
      if (uu.truncated) an.partCapped++;
      out.push({
        fields: [],
        contentType: 'application/octet-stream',
        filename: begin.name,
        encoding: 'x-uuencode',
        data: uu.data,
        truncated: uu.truncated,
      });
    } else if (begin) an.tooManyParts++;
  }
}

/** Content-Transfer-Encoding names of uuencode (not in RFC 2045, but sent). */
const uuEncodings = new Set(['x-uuencode', 'uuencode', 'x-uue', 'uue']);

/** A `begin MODE NAME` line at a line's start: where it starts and the file name. */
function uuBegin(data: Uint8Array): { at: number; name: string } | undefined {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  for (let at = buf.indexOf('begin '); at >= 0; at = buf.indexOf('begin ', at + 1)) {
    if (at > 0 && buf[at - 1] !== LF) continue;
    const eol = buf.indexOf(LF, at);
    const line = buf.toString('latin1', at, eol < 0 ? buf.length : eol).trimEnd();
    const m = /^begin [0-7]{3,4} (.+)$/.exec(line);
    if (m) return { at, name: m[1]! };
  }
  return undefined;
}

/**
 * uuencode (POSIX uuencode(1)): after an optional `begin MODE NAME` line, each line is its length
 * character (32 + n, '`' for 0) and groups of 4 characters of 6 bits (32 + v, '`' for 0), up to an empty
 * line or `end`. A line with characters outside the alphabet or too short is counted and skipped.
 */
export function uuDecode(
  src: Uint8Array,
  an: MimeAnomalies,
  max: number,
): { data: Uint8Array; truncated: boolean } {
  const buf = Buffer.from(src.buffer, src.byteOffset, src.length);
  const out = new Uint8Array(Math.min(max, src.length));
  let n = 0;
  let bad = false;
  let truncated = false;
  let at = 0;
  if (buf.toString('latin1', 0, 6) === 'begin ') {
    const eol = buf.indexOf(LF);
    at = eol < 0 ? buf.length : eol + 1;
  }
  const six = (c: number) => (c === 0x60 ? 0 : c - 32);
  while (at < buf.length && !truncated) {
    const eol = buf.indexOf(LF, at);
    let end = eol < 0 ? buf.length : eol;
    const next = eol < 0 ? buf.length : eol + 1;
    if (end > at && buf[end - 1] === CR) end--;
    if (end === at || (end - at === 3 && buf.toString('latin1', at, end) === 'end')) break;
    const len = six(buf[at]!);
    const chars = end - at - 1;
    let ok = len >= 0 && len <= 63 && chars >= Math.ceil(len / 3) * 4;
    for (let i = at + 1; ok && i < at + 1 + Math.ceil(len / 3) * 4; i++) {
      const v = six(buf[i]!);
      if (v < 0 || v > 63) ok = false;
    }
    if (!ok) {
      bad = true;
      at = next;
      continue;
    }
    for (let g = 0, i = at + 1; g < len; g += 3, i += 4) {
      const a = six(buf[i]!);
      const b = six(buf[i + 1]!);
      const c = six(buf[i + 2]!);
      const d = six(buf[i + 3]!);
      const bytes = [(a << 2) | (b >> 4), ((b & 15) << 4) | (c >> 2), ((c & 3) << 6) | d];
      for (let k = 0; k < 3 && g + k < len; k++) {
        if (n >= max) {
          truncated = true;
          break;
        }
        out[n++] = bytes[k]! & 0xff;
      }
    }
    at = next;
  }
  if (bad) an.badUuencode++;
  return { data: out.subarray(0, n), truncated };
}

/** The header section's fields (unfolded, bounded) and where the body starts (after the empty line). */
function headerSection(bytes: Uint8Array, an: MimeAnomalies): { fields: MimeField[]; bodyAt: number } {
  // the empty line ends the header section; a body without one has no header section (RFC 2046 5.1.1:
  // a part may start with its empty line)
  let end = -1;
  let bodyAt = bytes.length;
  if (bytes[0] === LF) return { fields: [], bodyAt: 1 };
  if (bytes[0] === CR && bytes[1] === LF) return { fields: [], bodyAt: 2 };
  // a first line that is no header field (RFC 5322 2.2: printable name, then a colon) means the header
  // section is missing: all of it is body (inspected, rather than skipped as a header)
  if (!startsWithField(bytes)) return { fields: [], bodyAt: 0 };
  for (let i = bytes.indexOf(LF); i >= 0; i = bytes.indexOf(LF, i + 1)) {
    if (bytes[i + 1] === LF) {
      end = i + 1;
      bodyAt = i + 2;
      break;
    }
    if (bytes[i + 1] === CR && bytes[i + 2] === LF) {
      end = i + 1;
      bodyAt = i + 3;
      break;
    }
  }
  if (end < 0) end = bytes.length; // all header, no body
  if (end > mimeHeaderBytesMax) {
    an.headerTooLong++;
    end = mimeHeaderBytesMax;
  }
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('latin1');
  const fields: MimeField[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.length === 0) continue;
    const last = fields[fields.length - 1];
    if ((line[0] === ' ' || line[0] === '\t') && last) {
      last.value = `${last.value} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    if (fields.length >= mimeFieldsMax) {
      an.tooManyFields++;
      break;
    }
    fields.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).trim() });
  }
  return { fields, bodyAt };
}

/** Whether the bytes start with a field name (printable ASCII but colon, 1-76 bytes) and a colon. */
function startsWithField(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, 77);
  for (let i = 0; i < n; i++) {
    const c = bytes[i]!;
    if (c === 0x3a) return i > 0;
    if (c <= 0x20 || c >= 0x7f) return i > 0 && (c === 0x20 || c === 0x09) && colonAfterSpace(bytes, i);
  }
  return false;
}

/** Obsolete syntax (RFC 5322 4.5.2): whitespace between a field name and its colon. */
function colonAfterSpace(bytes: Uint8Array, i: number): boolean {
  while (bytes[i] === 0x20 || bytes[i] === 0x09) i++;
  return bytes[i] === 0x3a;
}

/** Sections of one RFC 2231 parameter joined at most (a continuation bomb is cut there). */
export const mimeParamSectionsMax = 64;

/**
 * `type/subtype; name=value; name="quoted value"`: the type lowercased, the parameters by lowercased name.
 * RFC 2231 forms are joined: continuations (`boundary*0="ab"; boundary*1="cd"`, in section order) and
 * extended values (`name*=utf-8''%41b`, percent-decoded, the charset and language dropped); a plain value
 * wins over them, the first of duplicates wins.
 */
export function contentType(v: string): { type: string; params: Map<string, string> } {
  const params = new Map<string, string>();
  const sections = new Map<string, { n: number; value: string }[]>();
  const semi = v.indexOf(';');
  const type = (semi < 0 ? v : v.slice(0, semi)).trim().toLowerCase();
  const re = /;\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"?|([^;]*))/g;
  for (let m = re.exec(v); m; m = re.exec(v)) {
    const raw = m[1]!.toLowerCase();
    const value = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '').trim();
    const ext = /^([^*]+)\*(?:(\d{1,3})\*?)?$/.exec(raw);
    if (!ext) {
      if (!params.has(raw)) params.set(raw, value);
      continue;
    }
    // RFC 2231 3 and 4: name*N (a section), name*N* and name* (percent-encoded, the first with charset'lang')
    const [, name, n] = ext as unknown as [string, string, string | undefined];
    const encoded = raw.endsWith('*');
    const list = sections.get(name) ?? [];
    if (list.length >= mimeParamSectionsMax) continue;
    let text = value;
    if (encoded && (n === undefined || n === '0')) text = text.replace(/^[^']*'[^']*'/, '');
    if (encoded) text = percentText(text);
    list.push({ n: n === undefined ? 0 : Number(n), value: text });
    sections.set(name, list);
  }
  for (const [name, list] of sections)
    if (!params.has(name))
      params.set(
        name,
        list
          .sort((a, b) => a.n - b.n)
          .map((x) => x.value)
          .join(''),
      );
  return { type, params };
}

/** `%XX` escapes undone (latin1; a bad escape kept as sent). */
function percentText(t: string): string {
  return t.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}

/**
 * The body parts of a multipart body (RFC 2046 5.1.1): a delimiter is `--boundary` at the start of a line,
 * then optional whitespace and the line's end; the CRLF before it belongs to the delimiter; `--boundary--`
 * closes. Undefined when the boundary never occurs (anomaly).
 */
function splitMultipart(body: Uint8Array, boundary: string, an: MimeAnomalies): Uint8Array[] | undefined {
  const dash = Buffer.from(`--${boundary}`, 'latin1');
  const buf = Buffer.from(body.buffer, body.byteOffset, body.length);
  const parts: Uint8Array[] = [];
  let partStart = -1;
  let closed = false;
  for (let at = buf.indexOf(dash); at >= 0; at = buf.indexOf(dash, at + 1)) {
    if (at > 0 && buf[at - 1] !== LF) continue; // not at a line's start
    let i = at + dash.length;
    const close = buf[i] === 0x2d && buf[i + 1] === 0x2d;
    if (close) i += 2;
    while (buf[i] === 0x20 || buf[i] === 0x09) i++;
    if (i < buf.length && buf[i] !== CR && buf[i] !== LF) continue; // a longer boundary, not this one
    if (partStart >= 0) {
      let end = at;
      if (end > partStart && buf[end - 1] === LF) end--;
      if (end > partStart && buf[end - 1] === CR) end--;
      parts.push(body.subarray(partStart, end));
    }
    if (close) {
      closed = true;
      break;
    }
    if (buf[i] === CR) i++;
    if (buf[i] === LF) i++;
    partStart = i;
    if (parts.length >= mimePartsMax) break;
  }
  if (partStart < 0) {
    an.noDelimiter++;
    return undefined;
  }
  if (!closed) {
    an.unterminated++;
    if (partStart <= body.length && parts.length < mimePartsMax) parts.push(body.subarray(partStart));
  }
  return parts;
}

/** Undoes a Content-Transfer-Encoding (base64, quoted-printable; anything else is kept as sent). */
function decodeBody(
  body: Uint8Array,
  encoding: string,
  an: MimeAnomalies,
  max: number,
): { data: Uint8Array; truncated: boolean } {
  if (encoding === 'base64') return base64Decode(body, an, max);
  if (encoding === 'quoted-printable') return qpDecode(body, an, max);
  if (uuEncodings.has(encoding)) return uuDecode(body, an, max);
  return body.length > max
    ? { data: body.slice(0, max), truncated: true }
    : { data: body.length === 0 ? empty : body.slice(), truncated: false };
}

/**
 * base64 (RFC 2045 6.8): whitespace and line breaks skipped; any other character outside the alphabet is
 * skipped and counted once per part; `=` ends the data (what follows is ignored).
 */
export function base64Decode(
  src: Uint8Array,
  an: MimeAnomalies,
  max: number,
): { data: Uint8Array; truncated: boolean } {
  const out = new Uint8Array(Math.min(max, Math.ceil((src.length * 3) / 4)));
  let n = 0;
  let acc = 0;
  let bits = 0;
  let bad = false;
  let truncated = false;
  const len = src.length;
  for (let i = 0; i < len; i++) {
    if (bits === 0 && i + 4 <= len && n + 3 <= max) {
      // four characters of the alphabet at once (most of a line): three bytes
      const v0 = base64Values[src[i]!]!;
      const v1 = base64Values[src[i + 1]!]!;
      const v2 = base64Values[src[i + 2]!]!;
      const v3 = base64Values[src[i + 3]!]!;
      if ((v0 | v1 | v2 | v3) >= 0) {
        acc = (v0 << 18) | (v1 << 12) | (v2 << 6) | v3;
        out[n] = acc >> 16;
        out[n + 1] = (acc >> 8) & 0xff;
        out[n + 2] = acc & 0xff;
        n += 3;
        i += 3;
        continue;
      }
    }
    const c = src[i]!;
    const v = base64Values[c]!;
    if (v < 0) {
      if (c === 0x3d) break; // padding: the end
      if (c !== CR && c !== LF && c !== 0x20 && c !== 0x09) bad = true;
      continue;
    }
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n >= max) {
        truncated = true;
        break;
      }
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  if (bad) an.badBase64++;
  return { data: out.subarray(0, n), truncated };
}

const hexVal = (c: number) =>
  c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 55 : c >= 0x61 && c <= 0x66 ? c - 87 : -1;

/**
 * quoted-printable (RFC 2045 6.7): `=XX` is a byte, `=` at a line's end a soft break; a bad `=` is kept as
 * it is (counted once per part), as the RFC advises a robust decoder to do.
 */
export function qpDecode(
  src: Uint8Array,
  an: MimeAnomalies,
  max: number,
): { data: Uint8Array; truncated: boolean } {
  const out = new Uint8Array(Math.min(max, src.length));
  let n = 0;
  let bad = false;
  let truncated = false;
  for (let i = 0; i < src.length; i++) {
    if (n >= max) {
      truncated = true;
      break;
    }
    const c = src[i]!;
    if (c !== 0x3d) {
      out[n++] = c;
      continue;
    }
    // soft line break: '=' then optional whitespace then CRLF or LF
    let j = i + 1;
    while (src[j] === 0x20 || src[j] === 0x09) j++;
    if (src[j] === LF || (src[j] === CR && src[j + 1] === LF)) {
      i = src[j] === CR ? j + 1 : j;
      continue;
    }
    if (j >= src.length) break; // '=' at the very end
    const hi = hexVal(src[i + 1] ?? 0);
    const lo = hexVal(src[i + 2] ?? 0);
    if (hi >= 0 && lo >= 0) {
      out[n++] = (hi << 4) | lo;
      i += 2;
    } else {
      bad = true;
      out[n++] = c;
    }
  }
  if (bad) an.badQuotedPrintable++;
  return { data: out.subarray(0, n), truncated };
}
