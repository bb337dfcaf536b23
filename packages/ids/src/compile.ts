/**
 * Rule compilation: a parsed rule's options become the steps the full matcher evaluates (`match.ts`), with
 * its protocol, inspection mode (packet, stream, HTTP or mail), flow and flowbits conditions, rate, and
 * header tests; HTTP rules get their buffers grouped and the messages they inspect. The engine
 * (`detect.ts`) compiles its rules with one `RuleCompiler` and builds its port groups and prefilters
 * from what it returns.
 */

import { boundedRegExp } from '@strata/cli';
import { parseAsn1 } from './asn1.js';
import { type Base64Decode, parseBase64Decode } from './base64.js';
import { parseByteExtract, parseByteJump, parseByteTest } from './bytes.js';
import { type Classification, type ClassificationEntry, classificationTable } from './classification.js';
import { parseDceIface, parseDceOpnum } from './dcerpc.js';
import { splitBuffer } from './http-buffers.js';
import {
  type DceStep,
  firstContentSpan,
  headerSteps,
  packetOnlySteps,
  pcreRoute,
  ruleStepsMax,
  type Step,
  type SubBuffer,
  stepCount,
} from './match.js';
import {
  type AddrTest,
  addrBytesTest,
  expandedSpec,
  type PortTest,
  portTest,
  sharedEntry,
  v4Of,
} from './netspec.js';
import {
  fieldMax,
  flagsTest,
  flowbitsOps,
  flowOptions,
  fragbitsTest,
  ipProtoNames,
  lengthTest,
  numTest,
  parseTag,
  type TagSpec,
} from './option-tests.js';
import { firstExecGuarded, translatePcre } from './pcre.js';
import { bufferKeywords, type ContentMatch, knownKeywords, type Rule } from './rules.js';
import { parseSipMethod, parseSipStatCode } from './sip.js';
import { LengthSwitchedRegExp, type PcreExec, StepBoundedRegExp, StepsSyntaxError } from './steps.js';
import { parseRate, type RateFilterSpec, type RateSpec } from './threshold.js';
import { EventFilters, type ThresholdEntry, unmatchedWarnings } from './threshold-config.js';
import { parseTlsTest } from './tls.js';

/**
 * The default bound on one pcre exec's backtracks. Sid 2417's `/\s+.*?%.*?%/smi` over 4 KiB of blanks and
 * a %: more than 3 s without a bound, 15 ms with this one (180 ms with 100,000). The shared traces raise
 * the alerts they raise without a bound (with a bound of 1 too), and every conformance case passes.
 */
export const pcreBacktracksMaxDefault = 10_000;

/**
 * The default steps per byte of a buffer for a pcre in the step machine (`EngineOptions.pcreStepsPerByte`).
 * The community rules' `((\w+)...\x3a=...\2...)` family takes 14-19 a byte there, over text of short words
 * or long runs of letters (where V8 is quadratic: 29-42 ms an exec over 8 KiB of letters, about 2 s over
 * 64 KiB), the log4j and FTP format-string pcres 10-12.5. An exec past it ends as no match, counted, as PCRE's
 * match limit ends Snort's; since the machine's Needs and loop tables (2026-12-06) the family's worst cases
 * found so far take under 35 a byte (test/steps.test.ts), and a count of a group holding loops is what still
 * runs out.
 */
export const pcreStepsPerByteDefault = 64;

/** The least budget of such an exec, however short its buffer. */
export const pcreStepsMin = 100_000;

/**
 * The longest buffer a pcre whose loops can make V8 polynomial (but without a backreference) is run over in
 * V8; a longer one goes to the step machine. V8 runs such a pcre about 20 times faster over ordinary text,
 * and its worst cases among the community rules' take about 1.5 ms over 2 KiB (sid 58742's log4j pcre over
 * `${${...`: 24 ms over 8 KiB, 270-390 ms over 64 KiB; the machine 3.5-8 ms, linear).
 */
export const pcreShortMax = 2048;

/** Keywords that take no value. */
const noValueKeywords = new Set(['nocase', 'rawbytes', 'startswith', 'endswith', 'noalert', 'alert']);

/** Buffers that only a response has (a rule using one inspects responses). */
const responseBuffers = new Set([
  'http_stat_code',
  'http_stat_msg',
  'http_response_line',
  'http_response_body',
]);

/** Buffers that only a request has (a rule using one, and no response buffer, inspects requests). */
const requestBuffers = new Set([
  'http_uri',
  'http_raw_uri',
  'http_method',
  'http_client_body',
  'http_user_agent',
  'http_host',
  'http_raw_host',
  'http_request_line',
]);

/** Buffers that hold a message body (a rule using one is inspected when the message is complete). */
const bodyBuffers = new Set(['file_data', 'http_client_body', 'http_response_body', 'pkt_data']);

/** An HTTP rule: which messages it inspects, when, and its steps per buffer (a new buffer resets the cursor). */
export interface HttpRule {
  /** Which messages: `both` for a rule with no direction whose buffers both have (headers, cookies). */
  side: 'request' | 'response' | 'both';
  needsBody: boolean;
  groups: { buffer: string; steps: Step[] }[];
}

export interface Compiled {
  rule: Rule;
  proto: number | 'ip';
  /**
   * What the rule inspects: single packets, the reassembled stream, or (plain `tcp` payload rules) the
   * stream where the packet's data went into one and the packet otherwise.
   */
  mode: 'packet' | 'stream' | 'both' | 'http' | 'mail';
  /** For `http` and `mail` rules: the buffers and when they are inspected. */
  http?: HttpRule;
  /**
   * A DCE/RPC rule (dce_*): it needs a request in the inspected data, tested with the header filter
   * (stage 1) as such rules mostly have no content for the prefilter and ports as wide as 1024:.
   */
  dce?: true;
  /** A rule on the files of FTP data connections (file_data, service ftp): those flows only. */
  ftpData?: true;
  /** Longest a match can reach from the start of its first content (Infinity when unbounded). */
  spanMax: number;
  /** The fast pattern: a content that must occur for the rule to match (undefined: always evaluated). */
  fast?: Uint8Array;
  /** The rule's other positive contents, as pattern ids of the prefilter (stage 3: all must be present). */
  rest?: Int32Array;
  /** For `http` rules: the buffer of their fast pattern and its id in that buffer's prefilter. */
  httpFast?: { buffer: string; id: number };
  hasPayloadMatch: boolean;
  /** A packet rule's leading header-field tests (flags, ttl, id, dsize...): checked before the full matcher. */
  header?: Step[];
  src: AddrTest;
  dst: AddrTest;
  sp: PortTest;
  dp: PortTest;
  steps: Step[];
  flow?: {
    established: boolean;
    /** `not_established` (it was ignored until 2026-12-05: the rule matched established flows too). */
    notEstablished: boolean;
    toServer?: boolean;
    toClient?: boolean;
    stateless: boolean;
    /** `no_frag`: not on datagrams rebuilt from fragments; `only_frag`: only on those (Snort 3's flow). */
    frag?: 'no' | 'only';
  };
  flowbits: { op: string; names: string[]; any: boolean }[];
  /** threshold / detection_filter. */
  rate?: RateSpec;
  /** threshold.config's rate_filters over the rule: its matches' action may change (`Engine.actionOf`). */
  rateFilters?: RateFilterSpec[];
  noalert: boolean;
  /** `alert;` in a pass rule (Suricata): the pass is logged as an alert. */
  alertOnPass: boolean;
  /** Place in the inspection order of all rules (action order, then file order): matches apply in it. */
  order: number;
  /** Rules with the same addresses, ports and direction share this number (their header test's result). */
  headerClass: number;
  /**
   * Suricata's IP-only rule types, whose drop and pass apply to the whole flow: `ip-only` (addresses,
   * protocol and nothing else, ports any) is inspected on the first packet of each direction of a flow;
   * `like-ip-only` (the same with a negated address) on every packet.
   */
  ipOnly?: 'ip-only' | 'like-ip-only';
  classtype?: string;
  priority?: number;
  /** Its `tag` options: the packets its alerts tag (see `Engine.tagged`). */
  tags?: TagSpec[];
  /** Rule latency: timeouts since the rule was last (re-)enabled, and when it was suspended (-1: it is not). */
  latencyTimeouts: number;
  suspendedAt: number;
  /** Rule profiling: evaluations, their total and their slowest time in microseconds. */
  profChecks: number;
  profUs: number;
  profMaxUs: number;
}

/** Whether an address spec negates anything (a `!`, also inside the variables it names). */
function negates(spec: string, vars: Record<string, string>, depth = 0): boolean {
  if (spec.includes('!')) return true;
  if (depth > 8) return false;
  for (const m of spec.matchAll(/\$([A-Za-z_][A-Za-z0-9_]*)/g)) {
    const v = vars[m[1]!];
    if (v !== undefined && negates(v, vars, depth + 1)) return true;
  }
  return false;
}

/**
 * Address tests by their spec's expansion, shared by every engine of this thread (as the port tests are,
 * netspec.ts): the packet code optimized on one engine's tests calls the next engine's same functions, where
 * new ones deoptimized it ("wrong call target") in that engine's first packets. A test remembers its last
 * IPv4 address and answer, which holds for any engine. Cleared at `addrTestsShared` entries.
 */
const sharedAddrTests = new Map<string, AddrTest>();
export const addrTestsShared = 4096;

/**
 * Compiles the rules of one engine: address tests, header classes and pcre expressions are shared by the
 * rules that have the same ones, and what the rules compiled so far need the engine to follow in every
 * flow is set as they are compiled (the engine's fields of the same names say what each starts).
 */
export class RuleCompiler {
  tlsRules = false;
  dceRules = false;
  dceDatagramRules = false;
  sipRules = false;
  ftpRules = false;
  /** Rule headers (addresses, ports, direction) by text, numbered (`Compiled.headerClass`). */
  readonly headerClasses = new Map<string, number>();

  /** The classes a rule's `classtype:` may name: the built-in ones and `EngineOptions.classifications`. */
  private readonly classes: ReadonlyMap<string, Classification>;
  /** threshold.config's entries (`EngineOptions.thresholdConfig`), undefined when there are none. */
  private readonly eventFilters: EventFilters | undefined;

  /**
   * `vars`: the rule variables; `opts`: the engine's pcre bounds, classifications and threshold.config
   * entries (`EngineOptions`; an entry that cannot apply, such as a suppress ip naming an undefined
   * variable, throws here); `countPcreStepLimit`: called when an exec in the step machine runs out of steps.
   */
  constructor(
    private readonly vars: Record<string, string>,
    private readonly opts: {
      pcreStepsPerByte?: number;
      pcreBacktracksMax?: number;
      classifications?: readonly ClassificationEntry[];
      thresholdConfig?: readonly ThresholdEntry[];
    },
    private readonly countPcreStepLimit: () => void,
  ) {
    this.classes = classificationTable(opts.classifications);
    this.eventFilters =
      opts.thresholdConfig && opts.thresholdConfig.length > 0
        ? new EventFilters(opts.thresholdConfig, vars)
        : undefined;
  }

  /** threshold.config's suppress and event_filter for an event the engine raises itself (gid 134's). */
  eventRate(gid: number, sid: number): RateSpec | undefined {
    return this.eventFilters?.rateOf(gid, sid, undefined);
  }

  /**
   * threshold.config entries naming a gid:sid that no compiled rule and no engine event had, as warnings
   * naming file:line: ask once every rule is compiled and every `eventRate` asked.
   */
  thresholdWarnings(): string[] {
    return this.eventFilters ? unmatchedWarnings(this.eventFilters.unmatched()) : [];
  }

  /** Numbers of the pcres' first-exec expressions (source and flags), for `firstMatches`. */
  private readonly pcreIds = new Map<string, number>();

  private pcreId(re: PcreExec): number {
    const key = `${re.flags}/${re.source}`;
    let id = this.pcreIds.get(key);
    if (id === undefined) this.pcreIds.set(key, (id = this.pcreIds.size));
    return id;
  }

  /**
   * A rule's pcre as it runs on traffic (`pcreRoute`): in the step machine (`pcreStepsPerByte`), in V8 on a
   * buffer of up to `pcreShortMax` bytes and the machine beyond, or a RegExp bounded in its backtracking
   * (`pcreBacktracksMax`).
   */
  private pcreRegExp(source: string, flags: string, limits: 'all' | 'backtracks' | 'none' = 'all'): PcreExec {
    const perByte = limits === 'all' ? (this.opts.pcreStepsPerByte ?? pcreStepsPerByteDefault) : 0;
    const max = limits === 'none' ? 0 : (this.opts.pcreBacktracksMax ?? pcreBacktracksMaxDefault);
    const v8 = () => (max === 0 ? new RegExp(source, flags) : boundedRegExp(source, flags, max));
    if (perByte === 0) return v8();
    const route = pcreRoute(source, flags);
    if (route === 'v8') return v8();
    let machine: StepBoundedRegExp;
    try {
      machine = new StepBoundedRegExp(source, flags, { perByte, min: pcreStepsMin }, this.countPcreStepLimit);
    } catch (e) {
      if (!(e instanceof StepsSyntaxError)) throw e; // syntax the machine does not read: V8's, as before
      return v8();
    }
    return route === 'steps' ? machine : new LengthSwitchedRegExp(v8(), machine, pcreShortMax);
  }

  compile(r: Rule): Compiled | undefined {
    const protos: Record<string, number | 'ip'> = {
      tcp: 6,
      udp: 17,
      icmp: 1,
      icmpv6: 58,
      'ipv6-icmp': 58,
      ip: 'ip',
      'tcp-pkt': 6,
      'tcp-stream': 6,
      http: 6,
    };
    const proto = protos[r.proto];
    if (proto === undefined) throw new Error(`protocol '${r.proto}' needs an application-layer parser`);
    const steps: Step[] = [];
    const flowbits: Compiled['flowbits'] = [];
    let flow: Compiled['flow'];
    let noalert = false;
    let alertOnPass = false;
    let cls: Classification | undefined;
    let priority: number | undefined;
    let tags: TagSpec[] | undefined;
    let ci = 0;
    let forced: Compiled['mode'] | undefined;
    let rate: RateSpec | undefined;
    let last: (ContentMatch & { startswith?: boolean; endswith?: boolean }) | undefined;
    /** The buffer each step inspects. */
    const bufOf = new Map<Step, string>();
    const service = r.options.find((o) => o.keyword === 'service')?.value ?? '';
    /** Where payload steps go: the rule's, or a derived buffer's (base64_data, sip_header, sip_body). */
    let target = steps;
    let nestedIn: string | undefined;
    let b64: { decode: Base64Decode; step: SubBuffer | undefined; at: number } | undefined;
    let dce: DceStep | undefined;
    for (const o of r.options) {
      const v = o.value ?? '';
      if (!knownKeywords.has(o.keyword)) throw new Error(`keyword '${o.keyword}' is not evaluated yet`);
      let buf = o.buffer ?? 'pkt_data';
      // a buffer switch ends a derived buffer
      if (nestedIn !== undefined && (bufferKeywords.has(o.keyword) || buf !== nestedIn)) {
        target = steps;
        nestedIn = undefined;
      }
      // a value on a keyword that takes none was ignored (Snort 3's are implied parameters, with no value)
      if (o.value !== undefined && noValueKeywords.has(o.keyword))
        throw new Error(`${o.keyword} takes no value, got '${v.slice(0, 40)}'`);
      switch (o.keyword) {
        case 'asn1':
          target.push({ kind: 'asn1', o: parseAsn1(v) });
          break;
        case 'ssl_state':
        case 'ssl_version':
          target.push(parseTlsTest(o.keyword, v));
          this.tlsRules = true;
          forced = 'stream'; // the SSL/TLS state is the reassembled stream's (Snort's SSL inspector)
          break;
        case 'sip_method':
          target.push({ kind: 'sip_method', test: parseSipMethod(v) });
          break;
        case 'dce_iface':
        case 'dce_opnum':
        case 'dce_stub_data': {
          // one step for the three; on TCP the requests are the reassembled stream's
          if (!dce) {
            dce = { kind: 'dce' };
            target.push(dce);
            if (r.proto === 'tcp') forced = 'stream';
          } else if (target[target.length - 1] !== dce)
            throw new Error(
              `${o.keyword} must come with the other dce_* options, with no option between them`,
            );
          if (o.keyword === 'dce_iface') {
            if (dce.iface) throw new Error('dce_iface: one per rule');
            dce.iface = parseDceIface(v);
          } else if (o.keyword === 'dce_opnum') {
            if (dce.opnums) throw new Error('dce_opnum: one per rule');
            dce.opnums = parseDceOpnum(v);
          } else {
            if (o.value !== undefined) throw new Error('dce_stub_data takes no value');
            dce.inner = [];
            target = dce.inner;
            nestedIn = buf;
          }
          break;
        }
        case 'sip_stat_code':
          target.push({ kind: 'sip_stat_code', codes: parseSipStatCode(v) });
          break;
        case 'base64_decode':
          if (b64) throw new Error('base64_decode: one per rule');
          b64 = { decode: parseBase64Decode(o.value), step: undefined, at: target.length };
          break;
        case 'base64_data':
        case 'sip_header':
        case 'sip_body': {
          if (o.value !== undefined) throw new Error(`${o.keyword} takes no value`);
          let sub: SubBuffer;
          if (o.keyword === 'base64_data') {
            if (!b64) throw new Error('base64_data needs a base64_decode before it');
            if (b64.step) throw new Error('base64_data: one per rule');
            if (target.length !== b64.at)
              throw new Error(
                'base64_data must follow its base64_decode with no detection option between them',
              );
            sub = { kind: 'subbuffer', source: 'base64', b64: b64.decode, inner: [] };
            b64.step = sub;
          } else {
            sub = { kind: 'subbuffer', source: o.keyword, inner: [] };
          }
          target.push(sub);
          target = sub.inner;
          nestedIn = buf;
          break;
        }
        case 'content':
        case 'uricontent': {
          const c = r.contents[ci++]!;
          buf = c.buffer;
          last = { ...c };
          target.push({ kind: 'content', c: last, first: false });
          break;
        }
        case 'startswith':
        case 'endswith':
          // Suricata's content modifiers: without a content before them they were ignored
          if (!last) throw new Error(`${o.keyword} must follow a content`);
          last[o.keyword] = true;
          break;
        case 'bufferlen':
        case 'bsize': {
          // Snort 3's bufferlen takes `relative` (the length after the cursor), which is not evaluated here;
          // it and anything else after the length were ignored, so the whole buffer's length was tested
          const [spec = '', ...rest] = v.split(',').map((x) => x.trim());
          if (rest.length > 0)
            throw new Error(
              rest[0] === 'relative' && rest.length === 1
                ? `${o.keyword}: relative (the length left after the cursor) is not supported`
                : `${o.keyword}: expected a length or a range, got '${v}'`,
            );
          target.push({ kind: 'bufferlen', test: lengthTest(spec) });
          break;
        }
        case 'urilen': {
          // Snort 2 / Suricata: the length of the normalized (default) or raw URI; another word was read as
          // norm (Snort 3: raw or norm)
          const [spec = '', which = 'norm', ...rest] = v.split(',').map((x) => x.trim());
          if ((which !== 'raw' && which !== 'norm') || rest.length > 0)
            throw new Error(`urilen: expected LENGTH[, raw|norm], got '${v}'`);
          buf = which === 'raw' ? 'http_raw_uri' : 'http_uri';
          target.push({ kind: 'bufferlen', test: lengthTest(spec) });
          break;
        }
        case 'pcre': {
          const p = translatePcre(v);
          if (typeof p === 'string') throw new Error(`pcre '${v.slice(0, 40)}': ${p}`);
          if (p.buffer) buf = p.buffer;
          const nf = p.reNoFinalNewline;
          // Snort's O flag: no match limit for this pcre
          const limits = p.unlimited ? 'none' : 'all';
          const reG = this.pcreRegExp(p.re.source, `${p.re.flags}g`, limits);
          // the step machine (for a long buffer) takes linear steps: no guard
          const guarded = (r: RegExp) => {
            const g = reG instanceof RegExp ? firstExecGuarded(r.source, r.flags) : undefined;
            // in V8 whatever its lookbehind looks like: the guard is what makes it linear there
            return g === undefined
              ? undefined
              : this.pcreRegExp(g, `${r.flags}g`, limits === 'none' ? 'none' : 'backtracks');
          };
          const reGNoFinalNewline = nf && this.pcreRegExp(nf.source, `${nf.flags}g`, limits);
          const reGFirst = guarded(p.re);
          const reGFirstNoFinalNewline = nf && guarded(nf);
          target.push({
            kind: 'pcre',
            ...p,
            reG,
            reGNoFinalNewline,
            reGFirst,
            reGFirstNoFinalNewline,
            firstId: this.pcreId(reGFirst ?? reG),
            firstIdNoFinalNewline: this.pcreId(reGFirstNoFinalNewline ?? reGNoFinalNewline ?? reG),
          });
          break;
        }
        case 'isdataat': {
          // a number or a byte_extract variable
          const m = /^(!?)\s*(?:(\d+)|([A-Za-z_]\w*))\s*(?:,\s*(relative|rawbytes)\s*)*$/.exec(v);
          if (!m) throw new Error(`isdataat: expected [!]N or [!]VARIABLE, then relative, got '${v}'`);
          // Snort's bound: no buffer is longer than the largest IP datagram
          if (m[2] !== undefined && Number(m[2]) > 65535)
            throw new Error(`isdataat: ${m[2]} is past 65535, the largest IP datagram`);
          target.push({
            kind: 'isdataat',
            n: Number(m[2] ?? 0),
            ...(m[3] !== undefined && { nVar: m[3] }),
            relative: /,\s*relative/.test(v),
            negated: m[1] === '!',
          });
          break;
        }
        case 'byte_test':
          target.push(parseByteTest(v));
          break;
        case 'byte_jump':
          target.push(parseByteJump(v));
          break;
        case 'byte_extract':
          target.push(parseByteExtract(v));
          break;
        case 'threshold':
        case 'detection_filter':
          if (rate) throw new Error('more than one threshold/detection_filter');
          rate = parseRate(o.keyword, v);
          break;
        case 'ipopts': {
          // option numbers of RFC 791 and the IANA registry, by the names Snort's ipopts uses
          const types: Record<string, number> = {
            eol: 0,
            nop: 1,
            rr: 7,
            ts: 68,
            sec: 130,
            lsrr: 131,
            esec: 133,
            satid: 136,
            ssrr: 137,
            any: -1,
          };
          const t = types[v.trim()];
          if (t === undefined) throw new Error(`ipopts: unknown option '${v}'`);
          steps.unshift({ kind: 'ipopts', type: t });
          break;
        }
        case 'stream_size': {
          const [which = '', op = '', n = ''] = v.split(',').map((x) => x.trim());
          if (!['server', 'client', 'both', 'either'].includes(which))
            throw new Error(`stream_size: expected server, client, both or either, got '${which}'`);
          steps.unshift({
            kind: 'stream_size',
            which: which as 'server',
            test: numTest(`${op === '=' ? '' : op === '!=' ? '!' : op}${n}`),
          });
          break;
        }
        case 'dsize':
          steps.unshift({ kind: 'dsize', test: numTest(v, 'dsize', 0xffff) });
          break;
        case 'flags':
        case 'tcp.flags':
          steps.unshift({ kind: 'flags', test: flagsTest(v) });
          break;
        case 'itype':
        case 'icode':
        case 'ttl':
        case 'id':
        case 'seq':
        case 'ack':
        case 'icmp_id':
        case 'icmp_seq':
          steps.unshift({ kind: o.keyword, test: numTest(v, o.keyword, fieldMax[o.keyword]!) });
          break;
        case 'fragbits':
          steps.unshift({ kind: 'fragbits', test: fragbitsTest(v) });
          break;
        case 'ip_proto': {
          // a number or a protocol name, with Snort's `!`, `<` and `>`
          const m = /^\s*([!<>]?)\s*([A-Za-z0-9-]+)\s*$/.exec(v);
          const n = m ? (/^\d+$/.test(m[2]!) ? Number(m[2]) : ipProtoNames[m[2]!.toLowerCase()]) : undefined;
          if (!m || n === undefined || n > 255)
            throw new Error(`bad ip_proto '${v}' (a number up to 255 or a protocol name)`);
          steps.unshift({ kind: 'ip_proto', test: numTest(`${m[1]}${n}`) });
          break;
        }
        case 'flow': {
          const parts = v.split(',').map((x) => x.trim());
          // an option not known, or not evaluated, was ignored (flow:not_established matched established
          // flows too, and flow:sideways was taken)
          for (const x of parts) {
            if (!flowOptions.has(x))
              throw new Error(`flow: unknown option '${x}' (${[...flowOptions].join(', ')})`);
          }
          const toServer = parts.includes('to_server') || parts.includes('from_client');
          const toClient = parts.includes('to_client') || parts.includes('from_server');
          if (toServer && toClient) throw new Error(`flow: '${v}' asks for both directions`);
          if (parts.includes('only_stream') && parts.includes('no_stream'))
            throw new Error(`flow: '${v}' asks for only_stream and no_stream`);
          if (parts.includes('established') && parts.includes('not_established'))
            throw new Error(`flow: '${v}' asks for established and not_established`);
          // stateless: whatever the session's state and direction (Snort 3 refuses it with either; here the
          // other word was applied and stateless ignored)
          const withStateless =
            parts.includes('stateless') &&
            parts.find((x) => x.startsWith('to_') || x.startsWith('from_') || x.endsWith('established'));
          if (withStateless) throw new Error(`flow: '${v}' asks for stateless and ${withStateless}`);
          if (parts.includes('no_frag') && parts.includes('only_frag'))
            throw new Error(`flow: '${v}' asks for no_frag and only_frag`);
          // stream data is never a rebuilt datagram (Snort: only_frag needs PKT_REBUILT_FRAG)
          if (parts.includes('only_frag') && parts.includes('only_stream'))
            throw new Error(`flow: '${v}' asks for only_stream and only_frag: it could never match`);
          flow = {
            established: parts.includes('established'),
            notEstablished: parts.includes('not_established'),
            toServer,
            toClient,
            stateless: parts.includes('stateless'),
            frag: parts.includes('no_frag') ? 'no' : parts.includes('only_frag') ? 'only' : undefined,
          };
          if (parts.includes('only_stream')) forced = 'stream';
          if (parts.includes('no_stream') || parts.includes('only_frag')) forced = 'packet';
          break;
        }
        case 'flowbits': {
          const [op, names, group] = v.split(',').map((x) => x.trim()) as [string, string?, string?];
          // an unknown operation, or one without its bit names, was kept and never acted on
          if (!flowbitsOps.includes(op))
            throw new Error(`flowbits: unknown operation '${op}' (${flowbitsOps.join(', ')})`);
          if (op !== 'noalert' && !(names ?? '').split(/[|&]/).every((x) => /^[\w.-]+$/.test(x.trim())))
            throw new Error(`flowbits:${op} needs bit names (a, a|b or a&b), got '${names ?? ''}'`);
          // as Snort 3 refuses them (ips_flowbits.cc); each was taken: noalert's names and a group ignored
          // (isset,any,G tested a bit named 'any'), a|b&c read as a|b|c, set/unset/toggle a|b as a&b
          if (op === 'noalert' && names !== undefined)
            throw new Error(`flowbits:noalert takes no bit names, got '${names}'`);
          if (group !== undefined)
            throw new Error(`flowbits:${op}: groups of bits are not supported, got '${v.slice(0, 60)}'`);
          if (names?.includes('|') && names.includes('&'))
            throw new Error(`flowbits:${op}: '|' and '&' in one list, got '${names}'`);
          if (names?.includes('|') && op !== 'isset' && op !== 'isnotset')
            throw new Error(`flowbits:${op} takes bits joined by '&' (all of them), got '${names}'`);
          if (op === 'noalert') noalert = true;
          else
            flowbits.push({
              op,
              names: (names ?? '').split(/[|&]/).map((x) => x.trim()),
              any: (names ?? '').includes('|'),
            });
          break;
        }
        case 'noalert':
          noalert = true;
          break;
        case 'alert':
          alertOnPass = true;
          break;
        case 'classtype':
          // Snort 3 refuses a rule whose class is not defined, as Suricata's detect-classtype.c does
          // looked up in any case; alerts carry the name as the class was defined
          cls = this.classes.get(v.trim().toLowerCase());
          if (cls === undefined)
            throw new Error(
              `classtype: unknown class '${v.trim()}' (not a built-in class: define it in a classification.config, --classification FILE)`,
            );
          break;
        case 'tag':
          // the packets after an alert that a packet log takes too (`Engine.tagged`); alerts are the same
          (tags ??= []).push(parseTag(v));
          break;
        case 'priority':
          // a whole number from 1 (it was Number(v): 'abc' gave NaN)
          if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 0x7fffffff)
            throw new Error(`priority: expected a whole number from 1, got '${v}'`);
          priority = Number(v);
          break;
      }
      // raw_data (Snort 3: the payload before an inspector normalized it) is pkt_data here: no inspector
      // rewrites a payload (telnet's option negotiation stays in it)
      // (steps enter only at the ends, by push or unshift: the new ones are found from both ends, where a
      // pass over every step per option was quadratic in a rule's options)
      const b = buf === 'raw_data' ? 'pkt_data' : buf;
      for (let k = 0; k < steps.length && !bufOf.has(steps[k]!); k++) bufOf.set(steps[k]!, b);
      for (let k = steps.length - 1; k >= 0 && !bufOf.has(steps[k]!); k--) bufOf.set(steps[k]!, b);
      if (o.keyword.startsWith('sip_') && r.proto === 'tcp') {
        // SIP over TCP: the messages of the reassembled stream (SipStream)
        this.sipRules = true;
        forced = 'stream';
      }
    }
    /** file_data and no HTTP buffer: the files of a protocol parser other than HTTP's (FTP, mail). */
    const fileDataOnly =
      [...bufOf.values()].some((b) => b === 'file_data') &&
      [...bufOf.values()].every((b) => b === 'file_data' || b === 'pkt_data');
    // file_data on the ftp service: the files of FTP data connections, which are inspected as their
    // reassembled stream, as a stream rule is
    const ftpData =
      fileDataOnly &&
      proto === 6 &&
      /\bftp(-data)?\b/.test(service) &&
      !/\b(http|smtp|pop3|imap)\b/.test(service);
    if (ftpData) {
      for (const [st, b] of bufOf) if (b === 'file_data') bufOf.set(st, 'pkt_data');
      forced = 'stream';
      this.ftpRules = true;
    }
    const http = r.proto === 'http' || [...bufOf.values()].some((b) => b !== 'pkt_data');
    if (http && r.proto !== 'http' && proto !== 6) throw new Error(`HTTP buffers on a ${r.proto} rule`);
    // file_data on a mail service: the decoded MIME parts of SMTP/POP3/IMAP messages
    const mail =
      fileDataOnly &&
      http &&
      r.proto !== 'http' &&
      /\b(smtp|pop3|imap)\b/.test(service) &&
      !/\bhttp\b/.test(service);
    if (b64 && !b64.step)
      throw new Error('base64_decode needs a base64_data after it (without one the rule cannot alert)');
    const hasPayloadMatch = steps.some(
      (s) => s.kind === 'content' || s.kind === 'pcre' || s.kind === 'subbuffer' || s.kind === 'dce',
    );
    const packetOnly = steps.some((s) => packetOnlySteps.has(s.kind));
    // Suricata's IP-only types (docs: rules/rule-types): nothing but addresses and protocol, ports any; a
    // flow keyword or a flowbits condition makes a packet rule (flowbits set/unset/toggle do not)
    const ipOnly =
      !http &&
      steps.length === 0 &&
      !flow &&
      !flowbits.some((fb) => fb.op === 'isset' || fb.op === 'isnotset') &&
      r.srcPorts.trim() === 'any' &&
      r.dstPorts.trim() === 'any'
        ? negates(r.src, this.vars) || negates(r.dst, this.vars)
          ? ('like-ip-only' as const)
          : ('ip-only' as const)
        : undefined;
    const mode: Compiled['mode'] = ipOnly
      ? 'packet'
      : mail
        ? 'mail'
        : http
          ? 'http'
          : (forced ??
            (r.proto === 'tcp-pkt'
              ? 'packet'
              : r.proto === 'tcp-stream'
                ? 'stream'
                : proto === 6 && hasPayloadMatch && !packetOnly
                  ? 'both'
                  : 'packet'));
    const n = stepCount(steps);
    if (n > ruleStepsMax)
      throw new Error(`${n} detection steps; at most ${ruleStepsMax} are evaluated (one call deep each)`);
    // every field set here, in one order (undefined when absent), so all compiled rules share one shape
    // and the rule loops' property reads stay monomorphic
    const c: Compiled = {
      rule: r,
      proto,
      mode,
      http: undefined,
      dce: dce ? true : undefined,
      ftpData: ftpData ? true : undefined,
      spanMax: firstContentSpan(steps),
      fast: undefined,
      rest: undefined,
      httpFast: undefined,
      hasPayloadMatch,
      header: mode === 'packet' ? headerSteps(steps)?.header : undefined,
      src: this.addrTestOf(r.src),
      dst: this.addrTestOf(r.dst),
      sp: portTest(r.srcPorts, this.vars),
      dp: portTest(r.dstPorts, this.vars),
      headerClass: this.headerClassOf(r),
      steps,
      flow: flow ?? undefined,
      flowbits,
      // threshold.config's suppress and event_filter entries for the rule, with its own threshold or
      // detection_filter as they leave it (see EventFilters)
      rate: this.eventFilters ? this.eventFilters.rateOf(r.gid, r.sid, rate) : rate,
      rateFilters: this.eventFilters?.rateFiltersOf(r.gid, r.sid),
      noalert,
      alertOnPass,
      order: 0,
      ipOnly: ipOnly || undefined,
      classtype: cls?.name,
      // a rule's own priority, else its class's (Snort's and Suricata's default priority of a classtype)
      priority: priority ?? cls?.priority,
      tags,
      latencyTimeouts: 0,
      suspendedAt: -1,
      profChecks: 0,
      profUs: 0,
      profMaxUs: 0,
    };
    // stream rules read the requests of TCP streams; UDP rules those of datagrams, fragments reassembled
    if (dce && mode === 'stream') this.dceRules = true;
    if (dce && (r.proto === 'udp' || r.proto === 'ip')) this.dceDatagramRules = true;
    if (http) c.http = this.compileHttp(steps, bufOf, flow, mail ? 'mail' : service);
    return c;
  }

  /** Groups an HTTP rule's steps by buffer and decides which messages it inspects, and when. */
  private compileHttp(
    steps: Step[],
    bufOf: Map<Step, string>,
    flow: Compiled['flow'],
    service: string,
  ): HttpRule {
    const ids = [...new Set(bufOf.values())];
    // base names (Snort 3 parameters stripped: `http_header:field=host` is an http_header)
    const bufs = new Set(ids.map((b) => splitBuffer(b).base));
    // buffers of this message (not of its request, `request` parameter) decide its side
    const own = new Set(
      ids.filter((b) => !splitBuffer(b).params.includes('request')).map((b) => splitBuffer(b).base),
    );
    const fromRequest = ids.some((b) => splitBuffer(b).params.includes('request'));
    if (
      service !== 'mail' &&
      bufs.has('file_data') &&
      ![...bufs].some((b) => b.startsWith('http_')) &&
      service &&
      !/\bhttp\b/.test(service)
    )
      throw new Error(
        `file_data on ${service.replace(/\s+/g, '')} needs that protocol's parser (files are taken from HTTP bodies, the MIME parts of smtp, pop3 and imap messages, and FTP data connections)`,
      );
    const groups: HttpRule['groups'] = [];
    for (const st of steps) {
      const buffer = bufOf.get(st) ?? 'pkt_data';
      const g = groups[groups.length - 1];
      if (g && g.buffer === buffer) g.steps.push(st);
      else groups.push({ buffer, steps: [st] });
    }
    const any = (set: Set<string>) => [...own].some((b) => set.has(b));
    const side: HttpRule['side'] = flow?.toClient
      ? 'response'
      : flow?.toServer
        ? 'request'
        : service === 'mail'
          ? 'both'
          : any(responseBuffers) || fromRequest || (bufs.has('file_data') && !any(requestBuffers))
            ? 'response'
            : any(requestBuffers)
              ? 'request'
              : 'both';
    const needsBody =
      [...bufs].some((b) => bodyBuffers.has(b)) ||
      ids.some((b) => splitBuffer(b).params.includes('with_body'));
    return { side, needsBody, groups };
  }

  /** Address tests by spec, shared by the rules with that spec. */
  private readonly addrTests = new Map<string, AddrTest>();

  /**
   * A rule's address test, shared by every rule with the same spec and remembering its last answer: the
   * rules consulted for one packet mostly name the same few specs ($HOME_NET, $EXTERNAL_NET, any) and
   * test the same two addresses, so each spec is evaluated about once per packet instead of once per rule.
   */
  private addrTestOf(spec: string): AddrTest {
    let t = this.addrTests.get(spec);
    if (t) return t;
    // built in any case, so a spec this engine cannot take fails here with its own error; then the test of
    // an earlier engine of this thread with the same expansion, if any (see sharedAddrTests)
    const test = addrBytesTest(spec, this.vars);
    const remembering = (): AddrTest => {
      // the last IPv4 address (as a signed 32-bit number) and its answer (0: none yet, 1 fails, 2 passes),
      // in a typed array: a closure variable holding a number past 2^30 is a new heap number per store
      const memo = new Int32Array(2);
      return (a) => {
        if (a.length !== 4) return test(a);
        const x = v4Of(a) | 0;
        if (memo[1] === 0 || memo[0] !== x) {
          memo[0] = x;
          memo[1] = test(a) ? 2 : 1;
        }
        return memo[1] === 2;
      };
    };
    const key = expandedSpec(spec, this.vars);
    t = key === undefined ? remembering() : sharedEntry(sharedAddrTests, addrTestsShared, key, remembering);
    this.addrTests.set(spec, t);
    return t;
  }

  /** The number of a rule's header (addresses, ports, direction) among the rules loaded. */
  private headerClassOf(r: Rule): number {
    const key = `${r.src} ${r.srcPorts} ${r.direction} ${r.dst} ${r.dstPorts}`;
    let n = this.headerClasses.get(key);
    if (n === undefined) {
      n = this.headerClasses.size;
      this.headerClasses.set(key, n);
    }
    return n;
  }
}
