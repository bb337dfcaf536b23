/**
 * A per-packet detection engine: header matching (addresses with variables, CIDR, lists and negation;
 * ports with ranges and lists), a minimal TCP session tracker for `flow:` (handshake, direction), and the
 * payload options content (offset/depth/distance/within/nocase/negation/startswith/endswith), pcre (the
 * subset JavaScript regular expressions express), dsize, flags, itype/icode, ttl, isdataat and flowbits.
 *
 * This is the "full matcher" of the Pigasus pipeline run on every packet's own payload, with no stream
 * reassembly and no prefilter stages yet: correct for what it covers, slow, and blind to matches that
 * straddle segments. Rules with options it cannot evaluate are skipped and listed.
 */
import type { Decoded } from './decode.js';
import { FlowTable, type FlowTableStats, type FlowTimeouts } from './flow.js';
import type { ContentMatch, Rule } from './rules.js';

export interface Alert {
  tsUs: number;
  sid: number;
  gid: number;
  rev: number;
  msg: string;
  action: string;
  proto: string;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  classtype?: string;
  priority?: number;
}

export interface EngineOptions {
  vars?: Record<string, string>;
  /** Pick up TCP sessions without a handshake (Suricata stream.midstream). */
  midstream?: boolean;
  /** Accept TCP sessions seen in one direction only (Suricata stream.async-oneside). */
  asyncOneside?: boolean;
  /** Bound on tracked flows (default 65,536). */
  flowsMax?: number;
  flowTimeouts?: Partial<FlowTimeouts>;
}

/** Suricata's defaults: RFC 1918 for HOME_NET. */
export const defaultVars: Record<string, string> = {
  HOME_NET: '[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]',
  EXTERNAL_NET: '!$HOME_NET',
  HTTP_PORTS: '80',
  HTTP_SERVERS: '$HOME_NET',
  SMTP_SERVERS: '$HOME_NET',
  SQL_SERVERS: '$HOME_NET',
  DNS_SERVERS: '$HOME_NET',
  TELNET_SERVERS: '$HOME_NET',
  SHELLCODE_PORTS: '!80',
  ORACLE_PORTS: '1521',
  SSH_PORTS: '22',
  FTP_PORTS: '21',
  FILE_DATA_PORTS: '[$HTTP_PORTS,110,143]',
  SIP_PORTS: '[5060,5061,5600]',
};

/** Option keywords evaluated here or without effect on matching. */
export const detectionKeywords = new Set([
  'msg',
  'sid',
  'rev',
  'gid',
  'classtype',
  'priority',
  'reference',
  'metadata',
  'content',
  'nocase',
  'offset',
  'depth',
  'distance',
  'within',
  'fast_pattern',
  'pcre',
  'flow',
  'flowbits',
  'dsize',
  'flags',
  'isdataat',
  'itype',
  'icode',
  'ttl',
  'pkt_data',
  'rawbytes',
  'startswith',
  'endswith',
  'noalert',
  'prefilter',
  'target',
  'service',
]);

type AddrTest = (ip: string) => boolean;
type PortTest = (p: number) => boolean;

function ipv4ToInt(ip: string): number | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (!m) return undefined;
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

function splitList(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '[') depth++;
    if (c === ']') depth--;
    if (c === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter(Boolean);
}

export function addrTest(spec: string, vars: Record<string, string>, depth = 0): AddrTest {
  if (depth > 10) throw new Error(`address variables nest too deeply at '${spec}'`);
  const s = spec.trim();
  if (s === 'any') return () => true;
  if (s.startsWith('!')) {
    const t = addrTest(s.slice(1), vars, depth + 1);
    return (ip) => !t(ip);
  }
  if (s.startsWith('$')) {
    const v = vars[s.slice(1)];
    if (v === undefined) throw new Error(`undefined variable ${s}`);
    return addrTest(v, vars, depth + 1);
  }
  if (s.startsWith('[')) {
    const parts = splitList(s.slice(1, -1)).map((p) => addrTest(p, vars, depth + 1));
    return (ip) => parts.some((t) => t(ip));
  }
  const [base, bits] = s.split('/') as [string, string | undefined];
  const b4 = ipv4ToInt(base);
  if (b4 !== undefined) {
    const n = bits === undefined ? 32 : Number(bits);
    const mask = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
    return (ip) => {
      const x = ipv4ToInt(ip);
      return x !== undefined && (x & mask) >>> 0 === (b4 & mask) >>> 0;
    };
  }
  // IPv6: exact or prefix match on the textual form is not reliable; compare expanded groups
  const want = expand6(base);
  const n = bits === undefined ? 128 : Number(bits);
  return (ip) => {
    const got = expand6(ip);
    if (!want || !got) return false;
    for (let i = 0; i < n; i++) if (bit6(want, i) !== bit6(got, i)) return false;
    return true;
  };
}

function expand6(ip: string): number[] | undefined {
  if (!ip.includes(':')) return undefined;
  const [a, b] = ip.split('::') as [string, string | undefined];
  const head = a ? a.split(':') : [];
  const tail = b ? b.split(':') : [];
  const fill = b === undefined ? [] : Array(8 - head.length - tail.length).fill('0');
  const g = [...head, ...fill, ...tail].map((x) => Number.parseInt(x || '0', 16));
  return g.length === 8 ? g : undefined;
}

function bit6(g: number[], i: number): number {
  return (g[i >> 4]! >> (15 - (i & 15))) & 1;
}

export function portTest(spec: string, vars: Record<string, string>, depth = 0): PortTest {
  const s = spec.trim();
  if (depth > 10) throw new Error(`port variables nest too deeply at '${spec}'`);
  if (s === 'any') return () => true;
  if (s.startsWith('!')) {
    const t = portTest(s.slice(1), vars, depth + 1);
    return (p) => !t(p);
  }
  if (s.startsWith('$')) {
    const v = vars[s.slice(1)];
    if (v === undefined) throw new Error(`undefined variable ${s}`);
    return portTest(v, vars, depth + 1);
  }
  if (s.startsWith('[')) {
    const parts = splitList(s.slice(1, -1)).map((p) => portTest(p, vars, depth + 1));
    return (p) => parts.some((t) => t(p));
  }
  const m = /^(\d*):(\d*)$/.exec(s);
  if (m) {
    const lo = m[1] ? Number(m[1]) : 0;
    const hi = m[2] ? Number(m[2]) : 65535;
    return (p) => p >= lo && p <= hi;
  }
  if (!/^\d+$/.test(s)) throw new Error(`bad port '${s}'`);
  const n = Number(s);
  return (p) => p === n;
}

interface Compiled {
  rule: Rule;
  proto: number | 'ip';
  src: AddrTest;
  dst: AddrTest;
  sp: PortTest;
  dp: PortTest;
  steps: Step[];
  flow?: { established: boolean; toServer?: boolean; toClient?: boolean; stateless: boolean };
  flowbits: { op: string; names: string[] }[];
  noalert: boolean;
  classtype?: string;
  priority?: number;
}

/** A payload step: content or pcre, each relative to the previous match end when asked. */
type Step =
  | { kind: 'content'; c: ContentMatch & { startswith?: boolean; endswith?: boolean } }
  | { kind: 'pcre'; re: RegExp; relative: boolean; negated: boolean }
  | { kind: 'isdataat'; n: number; relative: boolean; negated: boolean }
  | { kind: 'dsize'; test: (n: number) => boolean }
  | { kind: 'flags'; test: (f: number) => boolean }
  | { kind: 'itype'; test: (n: number) => boolean }
  | { kind: 'icode'; test: (n: number) => boolean }
  | { kind: 'ttl'; test: (n: number) => boolean }
  | { kind: 'icmp_id'; test: (n: number) => boolean }
  | { kind: 'icmp_seq'; test: (n: number) => boolean };

function numTest(v: string): (n: number) => boolean {
  const s = v.replace(/\s+/g, '');
  let m = /^(\d+)(?:<>|-)(\d+)$/.exec(s);
  if (m) return (n) => n > Number(m![1]) && n < Number(m![2]);
  m = /^(<=|>=|<|>|=|!)?(\d+)$/.exec(s);
  if (!m) throw new Error(`bad numeric test '${v}'`);
  const k = Number(m[2]);
  switch (m[1]) {
    case '<':
      return (n) => n < k;
    case '>':
      return (n) => n > k;
    case '<=':
      return (n) => n <= k;
    case '>=':
      return (n) => n >= k;
    case '!':
      return (n) => n !== k;
    default:
      return (n) => n === k;
  }
}

function flagsTest(v: string): (f: number) => boolean {
  const [spec, maskSpec] = v.split(',') as [string, string | undefined];
  const bit: Record<string, number> = {
    F: 1,
    S: 2,
    R: 4,
    P: 8,
    A: 16,
    U: 32,
    C: 128,
    E: 64,
    '1': 128,
    '2': 64,
  };
  let mode = '';
  let want = 0;
  for (const ch of spec.trim()) {
    if ('+*!'.includes(ch)) mode = ch;
    else if (ch === '0') want = 0;
    else if (bit[ch] === undefined) throw new Error(`bad flag '${ch}'`);
    else want |= bit[ch]!;
  }
  let ignore = 0;
  for (const ch of (maskSpec ?? '').trim()) ignore |= bit[ch] ?? 0;
  return (f) => {
    const g = f & ~ignore;
    if (mode === '+') return (g & want) === want;
    if (mode === '*') return (g & want) !== 0;
    if (mode === '!') return (g & want) === 0;
    return g === want;
  };
}

/** Converts a PCRE `/re/flags` to a JavaScript RegExp over latin1 text; undefined when it cannot. */
export function compilePcre(v: string): { re: RegExp; relative: boolean; negated: boolean } | undefined {
  let s = v.trim();
  let negated = false;
  if (s.startsWith('!')) {
    negated = true;
    s = s.slice(1).trim();
  }
  if (s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1);
  const m = /^\/(.*)\/([a-zA-Z]*)$/s.exec(s);
  if (!m) return undefined;
  let src = m[1]!;
  let flags = '';
  let relative = false;
  for (const f of m[2]!) {
    if (f === 'i' || f === 's' || f === 'm') flags += f;
    else if (f === 'x')
      src = src
        .replace(/\\#/g, '\u0000')
        .replace(/\s+|#.*$/gm, '')
        .replace(/\u0000/g, '\\#');
    else if (f === 'R') relative = true;
    else if (f === 'B' || f === 'O' || f === 'G') continue;
    else return undefined; // buffer selectors (U, H, P, ...) need HTTP inspection
  }
  try {
    return { re: new RegExp(src, flags), relative, negated };
  } catch {
    return undefined;
  }
}

function lower(b: number): number {
  return b >= 65 && b <= 90 ? b + 32 : b;
}

function find(hay: Uint8Array, needle: Uint8Array, from: number, to: number, nocase: boolean): number {
  const n = needle.length;
  outer: for (let i = Math.max(0, from); i + n <= to; i++) {
    for (let j = 0; j < n; j++) {
      const a = hay[i + j]!;
      const b = needle[j]!;
      if (a !== b && !(nocase && lower(a) === lower(b))) continue outer;
    }
    return i;
  }
  return -1;
}

/**
 * Evaluates the payload steps with backtracking over earlier content matches (as Snort and Suricata do:
 * a later relative content may need an earlier content to match at a later position).
 */
function matchSteps(
  steps: Step[],
  i: number,
  payload: Uint8Array,
  d: Decoded,
  prevEnd: number,
  latin1: () => string,
): boolean {
  if (i === steps.length) return true;
  const s = steps[i]!;
  switch (s.kind) {
    case 'content': {
      const c = s.c;
      const rel = c.distance !== undefined || c.within !== undefined;
      let from = rel ? prevEnd + (c.distance ?? 0) : (c.offset ?? 0);
      let to = payload.length;
      if (rel && c.within !== undefined) to = Math.min(to, prevEnd + (c.distance ?? 0) + c.within);
      if (!rel && c.depth !== undefined) to = Math.min(to, (c.offset ?? 0) + c.depth);
      if (c.startswith) to = Math.min(to, c.bytes.length);
      from = Math.max(0, from);
      if (c.negated) {
        const at = find(payload, c.bytes, from, to, c.nocase);
        return at < 0 && matchSteps(steps, i + 1, payload, d, prevEnd, latin1);
      }
      for (
        let at = find(payload, c.bytes, from, to, c.nocase);
        at >= 0;
        at = find(payload, c.bytes, at + 1, to, c.nocase)
      ) {
        if (c.endswith && at + c.bytes.length !== payload.length) continue;
        if (matchSteps(steps, i + 1, payload, d, at + c.bytes.length, latin1)) return true;
      }
      return false;
    }
    case 'pcre': {
      const text = latin1();
      const re = new RegExp(s.re.source, `${s.re.flags.replace('g', '')}g`);
      re.lastIndex = s.relative ? prevEnd : 0;
      const m = re.exec(text);
      if (s.negated) return !m && matchSteps(steps, i + 1, payload, d, prevEnd, latin1);
      return m !== null && matchSteps(steps, i + 1, payload, d, m.index + m[0].length, latin1);
    }
    case 'isdataat': {
      const ok = (s.relative ? prevEnd + s.n : s.n) < payload.length;
      return ok !== s.negated && matchSteps(steps, i + 1, payload, d, prevEnd, latin1);
    }
    case 'dsize':
      return s.test(payload.length) && matchSteps(steps, i + 1, payload, d, prevEnd, latin1);
    case 'flags':
      return d.proto === 6 && s.test(d.tcpFlags) && matchSteps(steps, i + 1, payload, d, prevEnd, latin1);
    case 'itype':
      return (
        (d.proto === 1 || d.proto === 58) &&
        s.test(d.icmpType) &&
        matchSteps(steps, i + 1, payload, d, prevEnd, latin1)
      );
    case 'icode':
      return (
        (d.proto === 1 || d.proto === 58) &&
        s.test(d.icmpCode) &&
        matchSteps(steps, i + 1, payload, d, prevEnd, latin1)
      );
    case 'ttl':
      return s.test(d.ttl) && matchSteps(steps, i + 1, payload, d, prevEnd, latin1);
    case 'icmp_id':
    case 'icmp_seq': {
      // echo request/reply (and the like): identifier and sequence follow type, code and checksum
      if (!(d.proto === 1 || d.proto === 58) || d.payload.length < 4) return false;
      const v =
        s.kind === 'icmp_id' ? (d.payload[0]! << 8) | d.payload[1]! : (d.payload[2]! << 8) | d.payload[3]!;
      return s.test(v) && matchSteps(steps, i + 1, payload, d, prevEnd, latin1);
    }
  }
}

export class Engine {
  readonly compiled: Compiled[] = [];
  readonly skipped: { sid: number; reason: string }[] = [];
  readonly flows: FlowTable;
  private readonly vars: Record<string, string>;
  readonly stats = { packets: 0, inspected: 0, alerts: 0, rulesEvaluated: 0 };

  get flowStats(): FlowTableStats {
    return this.flows.stats;
  }
  /** Rules in inspection order: pass, then drop/reject, then alert (Suricata's default action order). */
  private ordered: Compiled[];

  constructor(
    rules: Rule[],
    readonly opts: EngineOptions = {},
  ) {
    this.vars = { ...defaultVars, ...opts.vars };
    this.flows = new FlowTable({
      midstream: opts.midstream === true,
      asyncOneside: opts.asyncOneside === true,
      ...(opts.flowsMax !== undefined && { flowsMax: opts.flowsMax }),
      ...(opts.flowTimeouts && { timeouts: opts.flowTimeouts }),
    });
    this.ordered = this.compiled;
    for (const r of rules) {
      try {
        const c = this.compile(r);
        if (c) this.compiled.push(c);
      } catch (e) {
        this.skipped.push({ sid: r.sid, reason: (e as Error).message });
      }
    }
    const rank = (a: string) => (a === 'pass' ? 0 : a === 'drop' || a === 'reject' ? 1 : 2);
    this.ordered = [...this.compiled].sort((x, y) => rank(x.rule.action) - rank(y.rule.action));
  }

  private compile(r: Rule): Compiled | undefined {
    const protos: Record<string, number | 'ip'> = {
      tcp: 6,
      udp: 17,
      icmp: 1,
      ip: 'ip',
      'tcp-pkt': 6,
      'tcp-stream': 6,
    };
    const proto = protos[r.proto];
    if (proto === undefined) throw new Error(`protocol '${r.proto}' needs an application-layer parser`);
    const steps: Step[] = [];
    const flowbits: Compiled['flowbits'] = [];
    let flow: Compiled['flow'];
    let noalert = false;
    let classtype: string | undefined;
    let priority: number | undefined;
    let ci = 0;
    let last: (ContentMatch & { startswith?: boolean; endswith?: boolean }) | undefined;
    for (const o of r.options) {
      const v = o.value ?? '';
      if (!detectionKeywords.has(o.keyword)) throw new Error(`keyword '${o.keyword}' is not evaluated yet`);
      switch (o.keyword) {
        case 'content': {
          const c = r.contents[ci++]!;
          if (c.buffer !== 'pkt_data') throw new Error(`buffer '${c.buffer}' needs HTTP inspection`);
          last = { ...c };
          steps.push({ kind: 'content', c: last });
          break;
        }
        case 'startswith':
          if (last) last.startswith = true;
          break;
        case 'endswith':
          if (last) last.endswith = true;
          break;
        case 'pcre': {
          const p = compilePcre(v);
          if (!p) throw new Error(`pcre '${v.slice(0, 40)}' is not expressible here`);
          steps.push({ kind: 'pcre', ...p });
          break;
        }
        case 'isdataat': {
          const m = /^(!?)\s*(\d+)\s*(?:,\s*relative)?$/.exec(v);
          if (!m) throw new Error(`isdataat '${v}'`);
          steps.push({
            kind: 'isdataat',
            n: Number(m[2]),
            relative: v.includes('relative'),
            negated: m[1] === '!',
          });
          break;
        }
        case 'dsize':
          steps.unshift({ kind: 'dsize', test: numTest(v) });
          break;
        case 'flags':
          steps.unshift({ kind: 'flags', test: flagsTest(v) });
          break;
        case 'itype':
          steps.unshift({ kind: 'itype', test: numTest(v) });
          break;
        case 'icode':
          steps.unshift({ kind: 'icode', test: numTest(v) });
          break;
        case 'ttl':
          steps.unshift({ kind: 'ttl', test: numTest(v) });
          break;
        case 'icmp_id':
        case 'icmp_seq':
          steps.unshift({ kind: o.keyword, test: numTest(v) });
          break;
        case 'flow': {
          const parts = v.split(',').map((x) => x.trim());
          flow = {
            established: parts.includes('established'),
            toServer: parts.includes('to_server') || parts.includes('from_client'),
            toClient: parts.includes('to_client') || parts.includes('from_server'),
            stateless: parts.includes('stateless'),
          };
          break;
        }
        case 'flowbits': {
          const [op, names] = v.split(',').map((x) => x.trim()) as [string, string | undefined];
          if (op === 'noalert') noalert = true;
          else flowbits.push({ op, names: (names ?? '').split(/[|&]/).map((x) => x.trim()) });
          break;
        }
        case 'noalert':
          noalert = true;
          break;
        case 'classtype':
          classtype = v;
          break;
        case 'priority':
          priority = Number(v);
          break;
      }
    }
    const c: Compiled = {
      rule: r,
      proto,
      src: addrTest(r.src, this.vars),
      dst: addrTest(r.dst, this.vars),
      sp: portTest(r.srcPorts, this.vars),
      dp: portTest(r.dstPorts, this.vars),
      steps,
      flowbits,
      noalert,
    };
    if (flow) c.flow = flow;
    if (classtype) c.classtype = classtype;
    if (priority !== undefined) c.priority = priority;
    return c;
  }

  /** Inspects one decoded packet; returns the alerts it raised. */
  inspect(d: Decoded, tsUs: number): Alert[] {
    this.stats.packets++;
    const { flow: f, toServer } = this.flows.track(d, tsUs);
    const out: Alert[] = [];
    let text: string | undefined;
    const latin1 = () =>
      (text ??= Buffer.from(d.payload.buffer, d.payload.byteOffset, d.payload.length).toString('latin1'));
    let passed = false;
    for (const c of this.ordered) {
      if (passed) break;
      if (c.proto !== 'ip' && c.proto !== d.proto) continue;
      const r = c.rule;
      const fwd = c.src(d.src) && c.sp(d.srcPort) && c.dst(d.dst) && c.dp(d.dstPort);
      const rev = r.direction === '<>' && c.src(d.dst) && c.sp(d.dstPort) && c.dst(d.src) && c.dp(d.srcPort);
      if (!fwd && !rev) continue;
      if (c.flow && !c.flow.stateless) {
        if (c.flow.established && !f.established) continue;
        if (c.flow.toServer && !toServer) continue;
        if (c.flow.toClient && toServer) continue;
      }
      let ok = true;
      for (const fb of c.flowbits) {
        if (fb.op === 'isset' && !fb.names.every((n) => f.bits.has(n))) ok = false;
        if (fb.op === 'isnotset' && fb.names.some((n) => f.bits.has(n))) ok = false;
      }
      if (!ok) continue;
      const hasContent = c.steps.some((s) => s.kind === 'content' || s.kind === 'pcre');
      if (hasContent && d.payload.length === 0) continue;
      this.stats.rulesEvaluated++;
      if (!matchSteps(c.steps, 0, d.payload, d, 0, latin1)) continue;
      for (const fb of c.flowbits) {
        if (fb.op === 'set') for (const n of fb.names) f.bits.add(n);
        if (fb.op === 'unset') for (const n of fb.names) f.bits.delete(n);
        if (fb.op === 'toggle') for (const n of fb.names) f.bits.has(n) ? f.bits.delete(n) : f.bits.add(n);
      }
      if (r.action === 'pass') {
        // Suricata's action order: pass rules are inspected first and end inspection of the packet
        passed = true;
        continue;
      }
      if (c.noalert) continue;
      this.stats.alerts++;
      const a: Alert = {
        tsUs,
        sid: r.sid,
        gid: r.gid,
        rev: r.rev,
        msg: r.msg,
        action: r.action,
        proto:
          d.proto === 6
            ? 'TCP'
            : d.proto === 17
              ? 'UDP'
              : d.proto === 1
                ? 'ICMP'
                : d.proto === 58
                  ? 'IPV6-ICMP'
                  : String(d.proto),
        src: d.src,
        srcPort: d.srcPort,
        dst: d.dst,
        dstPort: d.dstPort,
      };
      if (c.classtype) a.classtype = c.classtype;
      if (c.priority !== undefined) a.priority = c.priority;
      out.push(a);
    }
    if (d.payload.length > 0) this.stats.inspected++;
    return out;
  }
}

/** Snort's alert_fast line. */
export function alertFast(a: Alert): string {
  const t = new Date(a.tsUs / 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const ts = `${pad(t.getUTCMonth() + 1)}/${pad(t.getUTCDate())}-${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())}.${pad(Math.floor(a.tsUs % 1e6), 6)}`;
  const ep = (ip: string, p: number) => (a.proto === 'TCP' || a.proto === 'UDP' ? `${ip}:${p}` : ip);
  return `${ts} [**] [${a.gid}:${a.sid}:${a.rev}] ${a.msg} [**] [Classification: ${a.classtype ?? 'none'}] [Priority: ${a.priority ?? 3}] {${a.proto}} ${ep(a.src, a.srcPort)} -> ${ep(a.dst, a.dstPort)}`;
}

/** A Suricata-style eve JSON alert record. */
export function eveJson(a: Alert): Record<string, unknown> {
  return {
    timestamp: new Date(a.tsUs / 1000).toISOString(),
    event_type: 'alert',
    src_ip: a.src,
    src_port: a.srcPort,
    dest_ip: a.dst,
    dest_port: a.dstPort,
    proto: a.proto,
    alert: {
      action: a.action === 'drop' || a.action === 'reject' ? 'blocked' : 'allowed',
      gid: a.gid,
      signature_id: a.sid,
      rev: a.rev,
      signature: a.msg,
      category: a.classtype ?? '',
      severity: a.priority ?? 3,
    },
  };
}
