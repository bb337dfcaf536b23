// The inspection buffers of an HTTP message (http_uri, http_header, file_data, ... and their Snort 3
// parameters), built from the parsed message when a rule first asks for one.
import {
  decodeContent,
  defaultHttpDecompressedBytesMax,
  type HttpAnomalies,
  type HttpField,
  type HttpMessage,
  normalizeUri,
  percentDecode,
} from './http.js';
import { latin1Bytes } from './stream.js';

const empty = new Uint8Array(0);

/** A buffer id and its Snort 3 parameters (`http_header:field=host,request`, see `bufferParams`). */
export function splitBuffer(id: string): { base: string; params: string[] } {
  const colon = id.indexOf(':');
  return colon < 0
    ? { base: id, params: [] }
    : { base: id.slice(0, colon), params: id.slice(colon + 1).split(',') };
}

/** The components of a request target (RFC 3986 3: scheme://authority path?query#fragment), as text. */
export function uriComponents(
  raw: string,
): Record<'scheme' | 'host' | 'port' | 'path' | 'query' | 'fragment', string> {
  let rest = raw;
  let scheme = '';
  let host = '';
  let port = '';
  const abs = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)/.exec(raw);
  if (abs) {
    scheme = abs[1]!;
    const authority = abs[2]!.slice(abs[2]!.lastIndexOf('@') + 1);
    const hp = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(authority)!;
    host = hp[1]!;
    port = hp[2] ?? '';
    rest = raw.slice(abs[0].length);
  }
  const hash = rest.indexOf('#');
  const fragment = hash < 0 ? '' : rest.slice(hash + 1);
  if (hash >= 0) rest = rest.slice(0, hash);
  const q = rest.indexOf('?');
  return {
    scheme,
    host,
    port,
    path: q < 0 ? rest : rest.slice(0, q),
    query: q < 0 ? '' : rest.slice(q + 1),
    fragment,
  };
}

/** Header fields as `Name: value` CRLF lines, the bytes written in place (the `http_header` buffer). */
export function headerLines(fields: readonly HttpField[]): Uint8Array {
  let n = 0;
  for (const f of fields) n += f.name.length + 4 + f.value.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const f of fields) {
    for (let i = 0; i < f.name.length; i++) out[at++] = f.name.charCodeAt(i);
    out[at++] = 0x3a;
    out[at++] = 0x20;
    out.set(f.value, at);
    at += f.value.length;
    out[at++] = 0x0d;
    out[at++] = 0x0a;
  }
  return out;
}

/**
 * The inspection buffers of one HTTP message, built on first use. Request buffers of a response come from
 * the request it answers. `http_header` is the fields as `Name: value` CRLF lines (obs-fold undone, values
 * trimmed, cookies included as in Snort 3 and Suricata); `http_raw_header` the field lines as sent;
 * `file_data` the body after chunked decoding and Content-Encoding; `pkt_data` the message as sent.
 */
export class HttpBuffers {
  private cache = new Map<string, Uint8Array>();
  constructor(
    readonly msg: HttpMessage,
    private readonly anomalies: HttpAnomalies,
    private readonly decompressedBytesMax = defaultHttpDecompressedBytesMax,
  ) {}

  get(id: string): Uint8Array {
    let b = this.cache.get(id);
    if (!b) {
      b = this.build(id);
      this.cache.set(id, b);
    }
    return b;
  }

  private build(id: string): Uint8Array {
    const { base, params } = splitBuffer(id);
    if (params.length > 0) return this.buildWith(base, params);
    const m = this.msg;
    const req = m.kind === 'request' ? m : m.request;
    const resp = m.kind === 'response' ? m : undefined;
    const field = (msg: HttpMessage | undefined, name: string) => {
      const fs = msg?.fields.filter((f) => f.lname === name) ?? [];
      if (fs.length === 1) return fs[0]!.value;
      if (fs.length === 0) return empty;
      return latin1Bytes(fs.map((f) => Buffer.from(f.value).toString('latin1')).join(', '));
    };
    const decoded = (msg: HttpMessage | undefined) =>
      msg
        ? decodeContent(
            msg.body,
            msg.fields
              .filter((f) => f.lname === 'content-encoding')
              .map((f) => Buffer.from(f.value).toString('latin1')),
            this.anomalies,
            this.decompressedBytesMax,
          )
        : empty;
    switch (id) {
      case 'pkt_data':
        return m.raw;
      case 'http_method':
        return req ? latin1Bytes(req.method) : empty;
      case 'http_uri':
        return req ? normalizeUri(req.uri) : empty;
      case 'http_raw_uri':
        return req?.uri ?? empty;
      case 'http_request_line':
        return req?.startLine ?? empty;
      case 'http_user_agent':
        return field(req, 'user-agent');
      case 'http_host':
        return latin1Bytes(Buffer.from(field(req, 'host')).toString('latin1').toLowerCase());
      case 'http_raw_host':
        return field(req, 'host');
      case 'http_client_body':
        return req?.body ?? empty;
      case 'http_header':
        return headerLines(m.fields);
      case 'http_raw_header':
        return m.rawHeader;
      case 'http_cookie':
      case 'http_raw_cookie':
        return field(m, m.kind === 'request' ? 'cookie' : 'set-cookie');
      case 'http_stat_code':
        return resp?.statusText ?? empty;
      case 'http_stat_msg':
        return resp?.reason ?? empty;
      case 'http_response_line':
        return resp?.startLine ?? empty;
      case 'http_response_body':
        return decoded(resp);
      case 'file_data':
        return decoded(m);
      default:
        return empty;
    }
  }

  /**
   * A buffer with Snort 3 parameters: `request` takes it from the request a response answers; `field NAME`
   * is that header field's value (several: joined with ", "; `http_raw_header` gives the same, values as
   * kept); a URI component is that part of the target (`http_uri`: the path normalized, the query
   * percent-decoded, the host lowercased; `http_raw_uri`: as sent). `with_*` change when, not what.
   */
  private buildWith(base: string, params: string[]): Uint8Array {
    const m = this.msg;
    const req = m.kind === 'request' ? m : m.request;
    const own = params.includes('request') ? req : m;
    const name = params.find((p) => p.startsWith('field='))?.slice(6);
    const part = params.find((p) => ['scheme', 'host', 'port', 'path', 'query', 'fragment'].includes(p)) as
      | keyof ReturnType<typeof uriComponents>
      | undefined;
    if (!own) return empty;
    if ((base === 'http_header' || base === 'http_raw_header') && name !== undefined) {
      const fs = own.fields.filter((f) => f.lname === name);
      if (fs.length === 1) return fs[0]!.value;
      return latin1Bytes(fs.map((f) => Buffer.from(f.value).toString('latin1')).join(', '));
    }
    if ((base === 'http_uri' || base === 'http_raw_uri') && part !== undefined) {
      if (!req) return empty;
      const c = uriComponents(Buffer.from(req.uri).toString('latin1'))[part];
      if (base === 'http_raw_uri') return latin1Bytes(c);
      if (part === 'path') return normalizeUri(latin1Bytes(c));
      if (part === 'query') return percentDecode(latin1Bytes(c));
      return latin1Bytes(part === 'host' || part === 'scheme' ? c.toLowerCase() : c);
    }
    // `request` (or only with_*): the plain buffer, of the message the parameter names
    const plain = new HttpBuffers(own, this.anomalies, this.decompressedBytesMax);
    return plain.get(base);
  }
}
