/**
 * A parser for Snort 3 rules (and the Snort 2.9 / Suricata forms of the same options):
 *
 *   action proto src_addr src_port (->|<>) dst_addr dst_port ( option[:value]; ... )
 *
 * Syntax errors carry file, line and column. Option values are kept as text, with `content` parsed
 * (|hex|, escapes, negation) and the modifiers attached to the content they follow, in both the Snort 3
 * form (`content:"x",depth 4,nocase;`) and the Snort 2 / Suricata form (`content:"x"; depth:4; nocase;`).
 * A rule using a keyword the engine does not know is reported (sid, keyword) and skipped, not fatal.
 */

export class RuleSyntaxError extends Error {
  override name = 'RuleSyntaxError';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    detail: string,
  ) {
    super(`${file}:${line}:${column}: ${detail}`);
  }
}

export interface RuleOption {
  keyword: string;
  value?: string;
  /** The sticky buffer in force where the option appears (absent: pkt_data). */
  buffer?: string;
}

export interface ContentMatch {
  bytes: Uint8Array;
  negated: boolean;
  nocase: boolean;
  offset?: number;
  depth?: number;
  distance?: number;
  within?: number;
  /** offset/depth/distance/within given as a byte_extract variable name instead of a number. */
  vars?: Partial<Record<'offset' | 'depth' | 'distance' | 'within', string>>;
  fastPattern: boolean;
  /** Sticky buffer the content applies to (`pkt_data` when none). */
  buffer: string;
}

export interface Rule {
  action: string;
  proto: string;
  src: string;
  srcPorts: string;
  direction: '->' | '<>';
  dst: string;
  dstPorts: string;
  options: RuleOption[];
  sid: number;
  gid: number;
  rev: number;
  msg: string;
  contents: ContentMatch[];
  /** Where it came from, for messages. */
  file: string;
  line: number;
}

/** The keywords of the protocol inspectors (ASN.1, base64, TLS, SIP, DCE/RPC): parsed and evaluated. */
export const protocolKeywords = [
  'asn1',
  'base64_decode',
  'base64_data',
  'ssl_state',
  'ssl_version',
  'sip_method',
  'sip_stat_code',
  'sip_header',
  'sip_body',
  'dce_iface',
  'dce_opnum',
  'dce_stub_data',
] as const;

/** Suricata's dotted sticky-buffer names and the Snort names used for them here. */
function suricataBuffers(): Record<string, string> {
  return {
    'http.uri': 'http_uri',
    'http.uri.raw': 'http_raw_uri',
    'http.method': 'http_method',
    'http.header': 'http_header',
    'http.header.raw': 'http_raw_header',
    'http.cookie': 'http_cookie',
    'http.user_agent': 'http_user_agent',
    'http.host': 'http_host',
    'http.host.raw': 'http_raw_host',
    'http.request_body': 'http_client_body',
    'http.response_body': 'http_response_body',
    'http.stat_code': 'http_stat_code',
    'http.stat_msg': 'http_stat_msg',
    'http.request_line': 'http_request_line',
    'http.response_line': 'http_response_line',
    'file.data': 'file_data',
  };
}

/** Suricata's dotted buffer names -> the Snort names (always sticky, never content modifiers). */
export const bufferAliases: Readonly<Record<string, string>> = suricataBuffers();

/** Sticky buffers (Snort 3) and content modifiers (Snort 2 / Suricata) that select a buffer. */
export const bufferKeywords = new Set([
  'pkt_data',
  'file_data',
  'raw_data',
  'http_uri',
  'http_raw_uri',
  'http_method',
  'http_header',
  'http_raw_header',
  'http_cookie',
  'http_raw_cookie',
  'http_client_body',
  'http_stat_code',
  'http_stat_msg',
  'http_user_agent',
  'http_host',
  'http_raw_host',
  'http_request_line',
  'http_response_line',
  ...Object.keys(suricataBuffers()),
]);

/**
 * The option keywords the engine evaluates or that are without effect on matching (msg, reference...):
 * `parseRules` lists a rule with any other apart, and the engine refuses it. One list for both: until
 * 2026-12-06 the parser had its own, without tcp.flags, stream_size, ipopts, startswith, endswith,
 * noalert, prefilter and target, so `parseRules` set aside rules the engine runs.
 */
export const knownKeywords = new Set<string>([
  'tcp.flags',
  'stream_size',
  'ipopts',
  'startswith',
  'endswith',
  'noalert',
  'prefilter',
  'target',
  'msg',
  'alert',
  'sid',
  'rev',
  'gid',
  'classtype',
  'priority',
  'reference',
  'metadata',
  'service',
  'content',
  'nocase',
  'offset',
  'depth',
  'distance',
  'within',
  'fast_pattern',
  'rawbytes',
  'pcre',
  'flow',
  'flowbits',
  'dsize',
  'flags',
  'isdataat',
  'byte_test',
  'byte_jump',
  'byte_extract',
  'detection_filter',
  'threshold',
  'itype',
  'icode',
  'icmp_id',
  'icmp_seq',
  'ttl',
  'id',
  'seq',
  'ack',
  'ip_proto',
  'fragbits',
  'bufferlen',
  'tag',
  'uricontent',
  'urilen',
  'bsize',
  ...protocolKeywords,
  ...bufferKeywords,
]);

/** Snort 3 parameters of the HTTP sticky buffers (snort_user: http_inspect rule options), by buffer. */
const bufferParamNames: Readonly<Record<string, readonly string[]>> = {
  http_header: ['field', 'request'],
  http_raw_header: ['field', 'request'],
  http_cookie: ['request'],
  http_raw_cookie: ['request'],
  http_uri: ['scheme', 'host', 'port', 'path', 'query', 'fragment'],
  http_raw_uri: ['scheme', 'host', 'port', 'path', 'query', 'fragment'],
  http_method: [],
  http_client_body: [],
  http_stat_code: [],
  http_stat_msg: [],
  http_user_agent: ['request'],
  http_host: ['request'],
  http_raw_host: ['request'],
  http_request_line: [],
  http_response_line: [],
};

/**
 * A sticky buffer's Snort 3 parameters (`http_header: field user-agent, request`) in a canonical form,
 * sorted and comma-separated (`field=user-agent,request`): the buffer of the options after it is
 * `http_header:field=user-agent,request`. `with_header`, `with_body` and `with_trailer` are accepted on
 * every HTTP buffer (when the rule is evaluated). At most one URI component.
 */
export function bufferParams(buffer: string, value: string, fail: (msg: string) => Error): string {
  const allowed = bufferParamNames[buffer];
  if (!allowed) throw fail(`${buffer} takes no parameters (got '${value.slice(0, 40)}')`);
  const out: string[] = [];
  for (const raw of value.split(',')) {
    const [name = '', arg, extra] = raw.trim().split(/\s+/);
    if (name === 'field') {
      if (!allowed.includes('field') || !arg || extra !== undefined || !/^[!-9;-~]+$/.test(arg))
        throw fail(`${buffer}: expected 'field NAME' (a header field name), got '${raw.trim()}'`);
      out.push(`field=${arg.toLowerCase()}`);
    } else if (
      arg === undefined &&
      (allowed.includes(name) || name === 'with_header' || name === 'with_body' || name === 'with_trailer')
    )
      out.push(name);
    else
      throw fail(
        `${buffer}: unknown parameter '${raw.trim()}' (expected ${[...allowed, 'with_header', 'with_body', 'with_trailer'].join(', ')})`,
      );
  }
  const uriParts = out.filter((p) => bufferParamNames.http_uri!.includes(p));
  if (uriParts.length > 1) throw fail(`${buffer}: at most one URI component, got ${uriParts.join(', ')}`);
  if (out.filter((p) => p.startsWith('field=')).length > 1) throw fail(`${buffer}: at most one field`);
  return [...new Set(out)].sort().join(',');
}

/**
 * Whether buffer keywords in this rule are sticky (Snort 3 / Suricata 5: `http_uri; content:"x";`) rather
 * than Snort 2 content modifiers (`content:"x"; http_uri;`): the two read alike when a buffer keyword sits
 * between two contents. Sticky when a dotted name is used, when an HTTP buffer keyword comes before the
 * first content, or when the rule is otherwise Snort 3 (a `service` option, `content:"x",modifier`).
 */
function stickyBuffers(opts: [string, number][]): boolean {
  let seenContent = false;
  for (const [opt] of opts) {
    const colon = opt.indexOf(':');
    const k = (colon < 0 ? opt : opt.slice(0, colon)).trim();
    if (k in bufferAliases || k === 'service') return true;
    if (k === 'content' || k === 'uricontent') {
      if (/^!?\s*"(?:[^"\\]|\\.)*"\s*,/.test(opt.slice(colon + 1).trim())) return true;
      seenContent = true;
    } else if (!seenContent && bufferKeywords.has(k) && k !== 'pkt_data' && k !== 'file_data') return true;
    else if (bufferKeywords.has(k) && colon >= 0) return true; // a parameter: Snort 3's form
  }
  return false;
}

/** Parses a content string: "abc|0d 0a|def" with \" \\ \; \| escapes. */
export function parseContent(text: string, where: () => RuleSyntaxError): Uint8Array {
  const out: number[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '|') {
      const end = text.indexOf('|', i + 1);
      if (end < 0) throw where();
      const hex = text.slice(i + 1, end).replace(/\s+/g, '');
      if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw where();
      for (let k = 0; k < hex.length; k += 2) out.push(Number.parseInt(hex.slice(k, k + 2), 16));
      i = end + 1;
    } else if (c === '\\' && i + 1 < text.length) {
      out.push(...Buffer.from(text[i + 1]!, 'utf8'));
      i += 2;
    } else {
      out.push(...Buffer.from(c, 'utf8'));
      i++;
    }
  }
  return Uint8Array.from(out);
}

/** Splits `( ... )` into options at unquoted, unescaped semicolons; returns [option text, column]. */
function splitOptions(
  body: string,
  col0: number,
  err: (col: number, m: string) => RuleSyntaxError,
): [string, number][] {
  const out: [string, number][] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (c === ';' && !quoted) {
      const t = body.slice(start, i);
      if (t.trim()) out.push([t.trim(), col0 + start + (t.length - t.trimStart().length)]);
      start = i + 1;
    }
  }
  if (quoted) throw err(col0 + start, 'unterminated quoted string');
  if (body.slice(start).trim())
    throw err(col0 + start, `option '${body.slice(start).trim().slice(0, 30)}' is not terminated by ';'`);
  return out;
}

function unquote(v: string): string {
  const t = v.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
}

/** The comma-separated fields of the byte options that take a number or a variable (bytes, value, offset). */
const variableFields: Record<string, number[]> = {
  byte_test: [0, 2, 3],
  byte_jump: [0, 1],
  byte_extract: [0, 1],
  isdataat: [0],
};

/** The variables the byte_extract and byte_math options among `options[0, end)` set (name, `result`). */
function variablesSet(options: RuleOption[], end = options.length): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i < end; i++) {
    const o = options[i]!;
    if (o.keyword === 'byte_extract') {
      const name = o.value?.split(',')[2]?.trim();
      if (name) out.add(name);
    } else if (o.keyword === 'byte_math') {
      const m = /(?:^|,)\s*result\s+([A-Za-z_]\w*)/.exec(o.value ?? '');
      if (m) out.add(m[1]!);
    }
  }
  return out;
}

/**
 * Sets a content modifier from its value: a number in Snort 3's range for it (offset and distance -65535
 * to 65535, depth and within 1 to 65535), or a variable an earlier byte_extract or byte_math of the rule
 * (`options` so far) sets. (Anything else was dropped, or kept as a variable no step sets, so the content
 * never matched.) A modifier given twice for one content is refused (the last one was taken), an absolute one
 * (offset, depth) with a relative one (distance, within), and a depth or within shorter than the content,
 * which no match can fit in (Snort 2 refuses the depth too).
 */
function setContentModifier(
  c: ContentMatch,
  k: 'offset' | 'depth' | 'distance' | 'within',
  v: string | undefined,
  options: RuleOption[],
  fail: (m: string) => Error,
): void {
  if (c[k] !== undefined || c.vars?.[k] !== undefined) throw fail(`${k} is given twice for one content`);
  // offset/depth count from the buffer's start, distance/within from the previous match: one content takes
  // one kind (Snort 3 and Suricata refuse the mix; here the offset and depth were dropped, silently)
  const other =
    k === 'offset' || k === 'depth' ? (['distance', 'within'] as const) : (['offset', 'depth'] as const);
  const mixed = other.find((o) => c[o] !== undefined || c.vars?.[o] !== undefined);
  if (mixed)
    throw fail(
      `${k} with ${mixed} on one content: offset and depth are absolute, distance and within relative`,
    );
  const [lo, hi] = k === 'depth' || k === 'within' ? [1, 65535] : [-65535, 65535];
  if (v !== undefined && /^-?\d+$/.test(v)) {
    const n = Number(v);
    if (n < lo || n > hi) throw fail(`${k}: ${v} is out of range (${lo} to ${hi})`);
    if ((k === 'depth' || k === 'within') && n < c.bytes.length)
      throw fail(`${k}: ${n} is less than the content's ${c.bytes.length} bytes: it could never match`);
    c[k] = n;
    return;
  }
  if (v !== undefined && /^[A-Za-z_]\w*$/.test(v)) {
    if (!variablesSet(options).has(v))
      throw fail(`${k}: '${v}' is not a variable an earlier byte_extract or byte_math sets`);
    c.vars = { ...c.vars, [k]: v };
    return;
  }
  throw fail(`${k}: expected a number from ${lo} to ${hi} or a byte_extract variable, got '${v ?? ''}'`);
}

/** Parses one rule line. */
export function parseRule(text: string, file = '<rule>', line = 1): Rule {
  const err = (col: number, m: string) => new RuleSyntaxError(file, line, col, m);
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  // snort.conf's `include FILE` (Snort 2) is a configuration line, not a rule
  if (open < 0 && /^include\s/.test(text))
    throw err(1, "an 'include' line (snort.conf) is not a rule: load the file it names as rules of its own");
  if (open < 0) throw err(1, "expected '(' starting the rule options");
  if (close < open) throw err(text.length, "expected ')' closing the rule options");
  if (text.slice(close + 1).trim() !== '') throw err(close + 2, 'unexpected text after the closing )');
  let head = text.slice(0, open).trim().split(/\s+/);
  // Snort 3 service rules: `alert http ( ... )` means any address and port, both directions
  if (head.length === 2) head = [head[0]!, head[1]!, 'any', 'any', '<>', 'any', 'any'];
  if (head.length !== 7)
    throw err(1, `expected 'action proto src sport -> dst dport', got ${head.length} fields`);
  const [action, proto, src, srcPorts, direction, dst, dstPorts] = head as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const actions = ['alert', 'log', 'pass', 'drop', 'sdrop', 'block', 'rewrite'];
  if (![...actions, 'reject', 'rejectsrc', 'rejectdst', 'rejectboth'].includes(action))
    throw err(1, `unknown action '${action}'`);
  if (direction !== '->' && direction !== '<>')
    throw err(text.indexOf(direction) + 1, `expected '->' or '<>', got '${direction}'`);
  const options: RuleOption[] = [];
  const contents: ContentMatch[] = [];
  let buffer = 'pkt_data';
  let last: ContentMatch | undefined;
  const rule: Rule = {
    action,
    proto,
    src,
    srcPorts,
    direction,
    dst,
    dstPorts,
    options,
    sid: 0,
    gid: 1,
    rev: 0,
    msg: '',
    contents,
    file,
    line,
  };
  const split = splitOptions(text.slice(open + 1, close), open + 2, err);
  const sticky = stickyBuffers(split);
  for (const [opt, col] of split) {
    const colon = opt.indexOf(':');
    const keyword = (colon < 0 ? opt : opt.slice(0, colon)).trim();
    const value = colon < 0 ? undefined : opt.slice(colon + 1).trim();
    if (!/^[a-z][a-z0-9_.]*$/i.test(keyword)) throw err(col, `bad option keyword '${keyword.slice(0, 30)}'`);
    const o: RuleOption = value === undefined ? { keyword } : { keyword, value };
    if (buffer !== 'pkt_data') o.buffer = buffer;
    options.push(o);
    // sid, gid, rev: unsigned 32-bit integers (a sid of -5 or 1.5 was taken); sid 0 is not allowed (Snort 3)
    const num = (v: string | undefined, what: string, min = 0) => {
      const n = Number(v);
      if (v === undefined || !/^\d+$/.test(v) || n < min || n > 0xffffffff)
        throw err(col, `${what}: expected a whole number from ${min} to 4294967295, got '${v ?? ''}'`);
      return n;
    };
    // the variables the byte options read (a name where a number goes) are set by an earlier option of the
    // rule: one no option sets left the option never matching, silently
    const positional = variableFields[keyword];
    if (positional && value !== undefined) {
      const fields = value.split(',');
      for (const k of positional) {
        const f = (fields[k] ?? '').trim().replace(/^!/, '');
        if (/^[A-Za-z_]\w*$/.test(f) && !variablesSet(options, options.length - 1).has(f))
          throw err(col, `${keyword}: '${f}' is not a variable an earlier byte_extract or byte_math sets`);
      }
    }
    switch (keyword) {
      case 'sid':
        rule.sid = num(value, 'sid', 1);
        break;
      case 'gid':
        rule.gid = num(value, 'gid');
        break;
      case 'rev':
        rule.rev = num(value, 'rev');
        break;
      case 'msg':
        rule.msg = unquote(value ?? '');
        break;
      case 'content':
      case 'uricontent': {
        if (value === undefined) throw err(col, 'content needs a value');
        // Snort 3: content:"x",depth 4,nocase  -- split the modifiers after the closing quote
        const m = /^(!?)\s*"((?:[^"\\]|\\.)*)"\s*(?:,(.*))?$/.exec(value);
        if (!m) throw err(col, `content: expected a quoted string, got '${value.slice(0, 40)}'`);
        const c: ContentMatch = {
          bytes: parseContent(m[2]!, () => err(col, `content: malformed |hex| in '${m[2]!.slice(0, 40)}'`)),
          negated: m[1] === '!',
          nocase: false,
          fastPattern: false,
          buffer: keyword === 'uricontent' ? 'http_uri' : buffer,
        };
        // fast_pattern_offset/length name the slice of the content the prefilter should use: a hint
        // (the prefilter takes the whole content), checked as Snort 3 checks it
        let fpOffset = 0;
        let fpLength: number | undefined;
        for (const mod of (m[3] ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)) {
          const [k, v] = mod.split(/\s+/, 2) as [string, string | undefined];
          if (k === 'nocase') c.nocase = true;
          else if (k === 'fast_pattern') c.fastPattern = true;
          else if (k === 'fast_pattern_offset') {
            fpOffset = num(v, 'content: fast_pattern_offset');
            c.fastPattern = true;
          } else if (k === 'fast_pattern_length') {
            fpLength = num(v, 'content: fast_pattern_length', 1);
            c.fastPattern = true;
          } else if (k === 'offset' || k === 'depth' || k === 'distance' || k === 'within') {
            // a variable (byte_extract) is allowed: numeric when it is a number, else kept by name
            setContentModifier(c, k, v, options, (m) => err(col, m));
          } else throw err(col, `content: unknown modifier '${k}'`);
        }
        // an empty content matched everywhere (Snort and Suricata refuse it)
        if (c.bytes.length === 0) throw err(col, 'content: empty pattern');
        checkFastPatternSlice(c.bytes.length, fpOffset, fpLength, (m) => err(col, `content: ${m}`));
        contents.push(c);
        last = c;
        break;
      }
      case 'nocase':
      case 'fast_pattern':
      case 'offset':
      case 'depth':
      case 'distance':
      case 'within': {
        // Snort 2 / Suricata form: modifies the previous content
        if (!last) throw err(col, `'${keyword}' must follow a content`);
        if (keyword === 'nocase') last.nocase = true;
        else if (keyword === 'fast_pattern') {
          // Snort 2 / Suricata: fast_pattern, fast_pattern:only or fast_pattern:OFFSET,LENGTH (a hint, as above)
          if (value !== undefined && value !== 'only') {
            const m = /^(\d+)\s*,\s*(\d+)$/.exec(value);
            if (!m)
              throw err(col, `fast_pattern: expected 'only' or OFFSET,LENGTH, got '${value.slice(0, 40)}'`);
            const n = (d: string, what: string, min: number) => num(d, `fast_pattern: ${what}`, min);
            const f = (msg: string) => err(col, `fast_pattern: ${msg}`);
            checkFastPatternSlice(last.bytes.length, n(m[1]!, 'offset', 0), n(m[2]!, 'length', 1), f);
          }
          last.fastPattern = true;
        } else setContentModifier(last, keyword, value, options, (m) => err(col, m));
        break;
      }
      default:
        if (bufferKeywords.has(keyword)) {
          // Snort 2 modifier form (after a content) or Snort 3 / Suricata sticky buffer (before)
          const prevOpt = options[options.length - 2];
          if (
            !sticky &&
            last &&
            prevOpt &&
            (prevOpt.keyword === 'content' ||
              prevOpt.keyword === 'nocase' ||
              ['offset', 'depth', 'distance', 'within', 'fast_pattern'].includes(prevOpt.keyword)) &&
            keyword !== 'pkt_data' &&
            keyword !== 'file_data'
          )
            last.buffer = keyword;
          else {
            buffer = bufferAliases[keyword] ?? keyword;
            if (value) buffer = `${buffer}:${bufferParams(buffer, value, (m) => err(col, m))}`;
          }
        }
    }
  }
  if (!rule.sid) throw err(open + 2, 'the rule has no sid');
  return rule;
}

/**
 * A fast pattern slice must lie in its content (Snort 3 refuses the rule otherwise): the offset below the
 * content's length and offset + length at most that length.
 */
function checkFastPatternSlice(
  size: number,
  offset: number,
  length: number | undefined,
  err: (m: string) => Error,
): void {
  if (offset >= size) throw err(`fast_pattern_offset ${offset} is not below the content's length (${size})`);
  if (length !== undefined && offset + length > size)
    throw err(
      `fast_pattern_offset + fast_pattern_length (${offset + length}) exceeds the content's length (${size})`,
    );
}

export interface RuleSet {
  rules: Rule[];
  /** Rules skipped because they use a keyword the engine does not know: sid and keyword. */
  skipped: { sid: number; keyword: string; file: string; line: number }[];
  errors: RuleSyntaxError[];
}

/**
 * A rules file's rules as text, each with its first line's number (1-based): comments and blank lines
 * skipped, a line ending in `\` joined with the next (Snort 2's and Suricata's multi-line rules).
 */
export function ruleLines(text: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let l = lines[i]!;
    while (l.endsWith('\\') && i + 1 < lines.length) l = l.slice(0, -1) + lines[++i]!;
    const t = l.trim();
    if (t === '' || t.startsWith('#')) continue;
    out.push({ text: t, line: start + 1 });
  }
  return out;
}

/** Every rule of a rules file (`ruleLines`) that parses, and the syntax errors of the others. */
export function parseRuleText(text: string, file: string): { rules: Rule[]; errors: RuleSyntaxError[] } {
  const rules: Rule[] = [];
  const errors: RuleSyntaxError[] = [];
  for (const { text: t, line } of ruleLines(text)) {
    try {
      rules.push(parseRule(t, file, line));
    } catch (e) {
      if (e instanceof RuleSyntaxError) errors.push(e);
      else throw e;
    }
  }
  return { rules, errors };
}

/** Parses a rules file (`parseRuleText`): rules with a keyword the engine does not know are listed apart. */
export function parseRules(text: string, file = '<rules>'): RuleSet {
  const { rules, errors } = parseRuleText(text, file);
  const set: RuleSet = { rules: [], skipped: [], errors };
  for (const r of rules) {
    const unknown = r.options.find((o) => !knownKeywords.has(o.keyword));
    if (unknown) set.skipped.push({ sid: r.sid, keyword: unknown.keyword, file, line: r.line });
    else set.rules.push(r);
  }
  return set;
}
