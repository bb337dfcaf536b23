/**
 * The detection engine: the Pigasus pipeline over decoded packets. Flows and TCP state (`flow.ts`), stream
 * reassembly per direction with a window of inspected bytes, and the application parsers fed from the
 * reassembled streams (HTTP, SMTP/POP3/IMAP with MIME, DCE/RPC over TCP and SMB, SIP, FTP, TLS); in front
 * of the full matcher (`match.ts`) the filter stages (`groups.ts`): port groups (stage 1), a multi-string
 * prefilter over the rules' fast patterns (stage 2), the all-strings check (stage 3), then addresses,
 * header fields, flow and flowbits; then thresholds, actions (IPS verdicts, Suricata's semantics) and rule
 * and packet latency. Rules are compiled by `compile.ts`; those with options it cannot evaluate are
 * skipped and listed.
 */

import { type Compiled, type HttpRule, RuleCompiler } from './compile.js';
import { DceDatagramDefrag, type DceRequest, DceSession } from './dcerpc.js';
import type { Decoded } from './decode.js';
import {
  type Alert,
  checkEngineOptions,
  defaultActionOrder,
  defaultStreamChunkBytes,
  defaultVars,
  type EngineOptions,
  type EngineStats,
  inspectionRecursionMaxDefault,
  type PacketLatencyOptions,
  type PacketVerdict,
  packetLatencyOf,
  type RuleLatencyRecord,
  type RuleProfileRow,
  ruleLatencyOf,
} from './engine-api.js';
import { type ExceptionKind, type ResolvedPolicies, resolveExceptionPolicies } from './exception-policy.js';
import { type EvictReason, type Flow, FlowTable, type FlowTableStats, TcpState } from './flow.js';
import { FtpControl } from './ftp.js';
import {
  consultedOf,
  fastContent,
  type GroupedFlow,
  PortGroups,
  packetAdmits,
  type RuleGroup,
  ScanKind,
  type ScannedWindow,
} from './groups.js';
import { type HttpAnomalies, type HttpMessage, HttpSession, httpStartsAs, newHttpAnomalies } from './http.js';
import { HttpBuffers } from './http-buffers.js';
import { type HttpMarks, HttpPrefilter, type HttpSideRules } from './http-prefilter.js';
import { type MailAnomalies, type MailMessage, MailSession, newMailAnomalies } from './mail.js';
import { type FlowInspection, headerPass, latin1Of, type MatchCtx, matchCtx, matchSteps } from './match.js';
import { type MimeAnomalies, newMimeAnomalies, parseMime } from './mime.js';
import { type AddrTest, addrBytesTest, type PortTest, portTest } from './netspec.js';
import type { TagSpec } from './option-tests.js';
import { type RejectTarget, rejectTargetOf } from './reject.js';
import type { Rule } from './rules.js';
import { SipStream } from './sip.js';
import { SmbSession, smbPorts } from './smb.js';
import {
  type Chunk,
  copyBytes,
  type OverlapPolicy,
  overlapPolicies,
  ReassemblyBudget,
  reassemblyMemcapDefault,
  StreamReassembler,
} from './stream.js';
import {
  type RateDecision,
  type RateEvent,
  type RateFilterSpec,
  RateLimiter,
  type RateSpec,
} from './threshold.js';
import { latencyEventsGid } from './threshold-config.js';
import { TlsSession } from './tls.js';

/**
 * Bytes of already inspected stream kept before new data, so matches can straddle segments: a match that
 * needs more earlier bytes than this is not found (absolute offset/depth still count from the stream start).
 * 4 KiB costs ~15% over per-packet matching on ndpi-mix-a with the community rules; 32 KiB cost 6x.
 */
export const streamWindowBytes = 4 * 1024;

/** Stream bytes inspected at once at most (a larger release is inspected piece by piece). */
export const streamPieceBytesMax = 16 * 1024;

/** FTP data connections expected at once at most, and for how long after their announcement. */
export const ftpExpectedMax = 1024;
const ftpExpectedUs = 300_000_000;

/**
 * An empty array whose elements kind is already V8's for objects: code optimized on one engine's arrays,
 * which had taken objects, deoptimized ("wrong map") at a later engine's first packet, whose empty `[]`
 * still had the kind of small integers.
 */
/** Sets every number in `o` (and in the objects it holds) to zero, in place (a reset's counts). */
export function zeroCounts(o: object): void {
  const r = o as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    const v = r[k];
    if (typeof v === 'number') r[k] = 0;
    else if (typeof v === 'object' && v !== null) zeroCounts(v);
  }
}

function objectArray<T extends object>(): T[] {
  const a = [{}] as T[];
  a.length = 0;
  return a;
}

/** The FTP control port test: `$FTP_PORTS` (21 when it is not a valid port spec). */
export function ftpPortTest(vars: Record<string, string>): PortTest {
  try {
    return portTest('$FTP_PORTS', vars);
  } catch {
    return portTest('21', vars);
  }
}

/** Alerts one rule may raise on one stream delivery at most. */
const streamAlertsPerDeliveryMax = 64;

/** One direction of a TCP session: its reassembler and the window the stream rules run over. */
interface DirStream extends ScannedWindow {
  r: StreamReassembler;
  /** No stream inspection beyond this (reassembly depth reached, or memory refused). */
  done: boolean;
  /** Stream offset where the last segment with PSH ended. */
  pushEnd: number;
}

/** What an alert of a match says of its packet or stream data (the rule's fields apart). */
interface MatchEvent {
  src: string;
  sp: number;
  dst: string;
  dp: number;
  proto: number;
  flowId: number;
  ipVersion: 4 | 6;
  stream: boolean;
}

interface FlowData extends FlowInspection, GroupedFlow {
  ipVersion: 4 | 6;
  /** The packet the flow began with (its number in the capture): one engine's flows are numbered so. */
  firstPkt: number;
  /** Endpoints as text: [client, server] (for alerts). */
  addrs: [string, string];
  /** Endpoints' addresses as bytes (copies): [client, server] (for address tests). */
  addrBytes: [Uint8Array, Uint8Array];
  streams: [DirStream | undefined, DirStream | undefined];
  /** The last acknowledgment number each side sent (what it has of the other side's stream). */
  ackFrom: [number | undefined, number | undefined];
  /** HTTP parsing of the two directions (created with the first stream data when HTTP rules are loaded). */
  http?: HttpSession;
  /**
   * SMTP/POP3/IMAP parsing (created with the first stream data when mail rules are loaded); null once the
   * flow is known not to be mail (the session is let go).
   */
  mail?: MailSession | null;
  /**
   * Suricata's flow action, set by the first drop (IPS) or pass whose action applies to the flow: the
   * flow's later packets are not inspected (and, dropped, not passed on).
   */
  action?: 'drop' | 'pass';
  /** Whether each direction has had its first packet (IP-only rules run on it only). */
  seen: [boolean, boolean];
  /**
   * A session picked up midstream (roles from its first packet: a SYN/ACK's receiver, else the higher
   * port, `receiverIsClient`), with HTTP rules loaded: its first data packet settles them (`settleRoles`).
   */
  rolesOpen?: boolean;
  /** A `tag` of scope session set by an alert of the flow: what is left of it. */
  tag?: TagLeft;
  /** DCE/RPC over TCP (when dce_* rules are loaded), from the first stream data. */
  dce?: DceSession;
  /**
   * DCE/RPC in SMB named pipes (when dce_* rules are loaded): on a server port of `smbPorts`, or where the
   * connection's first bytes are an SMB message (`smbSniff`).
   */
  smb?: SmbSession;
  /**
   * Off the SMB ports, while the first bytes do not yet tell SMB from DCE/RPC straight over TCP: each
   * direction's first bytes so far (at most `smbSniffBytes`).
   */
  smbSniff?: [number[], number[]];
  /** Connectionless DCE/RPC calls in fragments (when UDP dce_* rules are loaded), from the first one. */
  dceDatagram?: DceDatagramDefrag;
  /** SIP over TCP, each direction (when TCP sip_* rules are loaded). */
  sip?: [SipStream, SipStream];
  /** Bytes the SIP and DCE/RPC trackers hold between deliveries, charged to the reassembly budget. */
  trackerBytes?: number;
  /** An FTP control connection (when ftp file_data rules are loaded and the server port is an FTP port). */
  ftp?: FtpControl;
  /** A data connection an FTP control connection announced: its stream is a file. */
  ftpData?: boolean;
}

/**
 * The latency events' messages (their generator is `latencyEventsGid`, 134, as Snort 3's latency module
 * raises them; its `latency_rules`: 1 a rule tree suspended, 2 re-enabled after its suspend time, 3 a
 * packet fastpathed).
 */
const latencyEventMsg = {
  1: 'rule tree suspended due to latency',
  2: 'rule tree re-enabled after suspend timeout',
  3: 'packet fastpathed due to latency',
} as const;

/** First bytes of a direction that tell SMB from DCE/RPC off the SMB ports (`Engine.smbSniff`). */
const smbSniffBytes = 8;

/** What is left of a tag: packets, bytes (of payload) and the time it ends (Infinity: no bound). */
interface TagLeft {
  packets: number;
  bytes: number;
  untilUs: number;
}

/** Hosts with a tag at most (the oldest tag is dropped for a new host past it). */
const tagHostsMax = 4096;

/** Takes a packet of `bytes` at `tsUs` into tag `t`: whether the tag covers it (else it has run out). */
function takeTag(t: TagLeft, bytes: number, tsUs: number): boolean {
  if (t.packets <= 0 || t.bytes <= 0 || tsUs > t.untilUs) return false;
  t.packets--;
  t.bytes -= bytes;
  return true;
}

/** Swaps the two sides' entries of a per-direction pair. */
function swapPair(pair: [unknown, unknown]): void {
  const t = pair[0];
  pair[0] = pair[1];
  pair[1] = t;
}

/** The stats counter of each exception whose policy was applied. */
const exceptionStat: Record<ExceptionKind, keyof EngineStats> = {
  reassemblyMemcap: 'exceptionReassemblyMemcap',
  midstream: 'exceptionMidstream',
  appLayerError: 'exceptionAppLayerError',
  defragMemcap: 'exceptionDefragMemcap',
};

export class Engine {
  readonly compiled: Compiled[] = [];
  readonly skipped: { sid: number; reason: string }[] = [];
  /** What the configuration holds that does nothing (threshold.config entries for no loaded rule), to tell. */
  readonly warnings: string[] = [];
  /** threshold.config's suppress and event_filter for the latency events, by sid (gid 134). */
  private readonly latencyRates: Record<keyof typeof latencyEventMsg, RateSpec | undefined>;
  /** The flows of the run (a new table at `reset`). */
  flows: FlowTable<FlowData>;
  /** Stream memory of the run (a new budget at `reset`). */
  budget: ReassemblyBudget;
  /** `inspectionRecursionMax` as step evaluations per rule and buffer (no bound: infinity). */
  private readonly stepBudget: number;
  private readonly vars: Record<string, string>;
  /** host-os-policy entries, most specific (longest prefix) first, as Suricata's radix lookup picks. */
  private readonly hostPolicies: { test: AddrTest; bits: number; policy: OverlapPolicy }[] = [];
  /** Alerts raised outside `inspect` (flows flushed on eviction), handed out by the next call. */
  private pending: Alert[] = objectArray();
  /** threshold and detection_filter state (a new limiter at `reset`). */
  rates = new RateLimiter();
  /** The rate decision left to the merger for the alert made next (`deferRates`). */
  private deferred: { spec: RateSpec; event: RateEvent } | undefined;
  /** `deferRates` without IPS: rate_filters are counted by the merger too (`Alert.rateFilter`). */
  private readonly deferFilters: boolean;
  /** The rate_filter count left to the merger for the match under way (`actionOf` to `alert`). */
  private deferredFilter: { filters: RateFilterSpec[]; event: RateEvent } | undefined;
  /** For the alerts of the stream delivery under way: bytes missing before it, and whether a flow ends. */
  private deliveryGapBytes = 0;
  private flushing = false;
  /** Set while `finish` drains the flow table (the end-of-input flush). */
  private draining = false;
  /** Set while `deliver` hands out the other direction's acknowledged data first. */
  private releasingOther = false;
  private nowUs = 0;
  private pktNo = 0;
  /** The packet under inspection is a datagram rebuilt from fragments (`inspect`). */
  private rebuiltFrag = false;
  readonly stats: EngineStats = {
    packets: 0,
    inspected: 0,
    alerts: 0,
    rulesEvaluated: 0,
    ruleFaults: 0,
    packetFaults: 0,
    pcreStepLimits: 0,
    ruleEvalsTimed: 0,
    ruleEvalTimeouts: 0,
    ruleSuspensions: 0,
    ruleReenables: 0,
    packetTimeouts: 0,
    packetsFastpathed: 0,
    segmentsInOrder: 0,
    segmentsOutOfOrder: 0,
    segmentsRetransmitted: 0,
    segmentsDropped: 0,
    overlapsDifferent: 0,
    streamBytes: 0,
    streamDeliveries: 0,
    badChecksums: 0,
    httpRequests: 0,
    httpResponses: 0,
    httpRulesEvaluated: 0,
    httpRulesPrefiltered: 0,
    mailMessages: 0,
    mailParts: 0,
    mailRulesEvaluated: 0,
    dceCallsReassembled: 0,
    dceSmbRequests: 0,
    rulesPrefiltered: 0,
    packetsDropped: 0,
    packetsRewritten: 0,
    flowsDropped: 0,
    flowsPassed: 0,
    flowsReversed: 0,
    packetsTagged: 0,
    portGroups: 0,
    portGroupsRefused: 0,
    stageInspections: 0,
    stagePortGroupOut: 0,
    stagePrefilterOut: 0,
    stageAllStringsOut: 0,
    stageFullMatcherIn: 0,
    rulesAllStringsFiltered: 0,
    exceptionReassemblyMemcap: 0,
    exceptionMidstream: 0,
    exceptionAppLayerError: 0,
    exceptionDefragMemcap: 0,
  };
  /** Stream data inspected as it arrives: `streamRelease: 'immediate'`, the default with `ips`. */
  private readonly inline: boolean;
  /** The verdict on the packet inspected last (see `EngineOptions.ips`). */
  readonly verdict: PacketVerdict = { drop: false, payload: undefined, reject: false, rejectTo: 'src' };
  /**
   * The matches of the packet being inspected (stream, HTTP and packet rules), whose actions are applied
   * when its inspection ends, in rule order; and the order of the first pass among them (rules after it
   * are not evaluated any more, their alerts are taken back).
   */
  private readonly matches: {
    c: Compiled;
    fd: FlowData;
    flowScope: boolean;
    alert: Alert | undefined;
    out: Alert[];
    /** The match's action: the rule's, or a rate_filter's (`actionOf`). */
    action: string;
  }[] = objectArray();
  private passOrder = Number.POSITIVE_INFINITY;
  /** Rules in inspection order: pass, then drop/reject, then alert (Suricata's default action order). */
  private ordered: Compiled[];
  /** HTTP rules in inspection order, run on HTTP messages (not on packets or raw stream data). */
  private httpOrdered: Compiled[] = [];
  /** Whether a loaded rule tests the SSL/TLS state (then every TCP stream's records are followed). */
  private readonly tlsRules: boolean;
  /** Whether a loaded stream rule tests DCE/RPC (then every TCP stream's PDUs are followed). */
  private readonly dceRules: boolean;
  /** Whether a loaded UDP rule tests DCE/RPC (then connectionless requests' fragments are reassembled). */
  private readonly dceDatagramRules: boolean;
  /** Whether a loaded TCP rule tests SIP (then every TCP stream is cut into SIP messages while it parses). */
  private readonly sipRules: boolean;
  /** Whether a loaded rule inspects FTP files (then FTP control connections are followed). */
  private readonly ftpRules: boolean;
  private readonly ftpPorts: PortTest;
  /** Data connections announced and not yet seen: responder `addr:port` -> until when (capture time). */
  private readonly ftpExpected = new Map<string, number>();
  /** Malformed HTTP input by reason (all flows). */
  readonly httpAnomalies: HttpAnomalies = newHttpAnomalies();
  /** Rules whose evaluation threw (`EngineStats.ruleFaults`), `gid:sid` -> the first error, at most 64 rules. */
  readonly ruleFaults = new Map<string, string>();
  /** Inspections that threw outside any rule (`EngineStats.packetFaults`): the first 16, with where. */
  readonly packetFaults: { where: string; error: string }[] = [];
  /** With `EngineOptions.ruleLatency`: the rules that timed out, `gid:sid` -> their record, at most 64 rules. */
  readonly ruleLatency = new Map<string, RuleLatencyRecord>();
  /** The clock rule latency reads, in milliseconds (a test may set another). */
  latencyClock: () => number = () => performance.now();
  private readonly latency: ReturnType<typeof ruleLatencyOf>;
  private readonly packetLatency: Required<PacketLatencyOptions> | undefined;
  private readonly profiling: boolean;
  /** Whether rule evaluations go through `timed` (any latency option or profiling on). */
  private readonly timing: boolean;
  /** Packet latency: when the packet under inspection came in (latencyClock), and what became of it. */
  private pktStartMs = Number.POSITIVE_INFINITY;
  /** The packet under inspection (none in the end-of-input flush): latency events are raised on it. */
  private current: Decoded | undefined;
  private pktTimedOut = false;
  private fastpathed = false;
  /** Where the alerts of the HTTP messages being parsed go. */
  private httpOut: Alert[] = [];
  /** Mail rules (file_data on smtp, pop3, imap) in inspection order, run on each MIME part of a message. */
  private mailOrdered: Compiled[] = [];
  /** Malformed mail framing and MIME input by reason (all flows). */
  readonly mailAnomalies: MailAnomalies = newMailAnomalies();
  readonly mimeAnomalies: MimeAnomalies = newMimeAnomalies();

  get flowStats(): FlowTableStats {
    return this.flows.stats;
  }

  constructor(
    rules: Rule[],
    readonly opts: EngineOptions = {},
  ) {
    // from JavaScript anything can come: a string was taken as rules of its characters, and a null among
    // the rules failed as "Cannot read properties of null"
    if (!Array.isArray(rules))
      throw new TypeError(`Engine: expected an array of rules (parseRules(...).rules), got ${typeof rules}`);
    const bad = rules.findIndex((r) => typeof r !== 'object' || r === null || typeof r.sid !== 'number');
    if (bad >= 0)
      throw new TypeError(
        `Engine: rule ${bad} is not a parsed rule (parseRule), got ${JSON.stringify(rules[bad])?.slice(0, 60) ?? String(rules[bad])}`,
      );
    checkEngineOptions(opts);
    this.vars = { ...defaultVars, ...opts.vars };
    this.rates.countInto(this.stats); // suppressed and rate-filtered matches in the stats
    const steps = opts.inspectionRecursionMax ?? inspectionRecursionMaxDefault;
    if (!Number.isSafeInteger(steps) || steps < 0)
      throw new RangeError(`inspectionRecursionMax must be a non-negative integer, got ${steps}`);
    this.stepBudget = steps === 0 ? Number.POSITIVE_INFINITY : steps;
    this.latency = ruleLatencyOf(opts.ruleLatency);
    this.packetLatency = packetLatencyOf(opts.packetLatency);
    if (opts.profileRules !== undefined && typeof opts.profileRules !== 'boolean')
      throw new TypeError(`profileRules: true or false, got ${String(opts.profileRules)}`);
    this.profiling = opts.profileRules === true;
    this.timing = this.latency !== undefined || this.packetLatency !== undefined || this.profiling;
    this.inline = (opts.streamRelease ?? (opts.ips ? 'immediate' : 'ack')) === 'immediate';
    this.exceptions = resolveExceptionPolicies(
      opts.exceptionPolicy,
      opts.ips === true,
      opts.midstream === true,
    );
    this.budget = new ReassemblyBudget(opts.reassemblyMemcapBytes ?? reassemblyMemcapDefault);
    if (opts.overlapPolicy && !overlapPolicies.includes(opts.overlapPolicy))
      throw new RangeError(
        `unknown overlap policy '${opts.overlapPolicy}' (one of ${overlapPolicies.join(', ')})`,
      );
    for (const [policy, specs] of Object.entries(opts.hostOsPolicy ?? {})) {
      if (!overlapPolicies.includes(policy as OverlapPolicy))
        throw new RangeError(`unknown host OS policy '${policy}' (one of ${overlapPolicies.join(', ')})`);
      for (const spec of specs ?? []) {
        const m = /\/(\d+)$/.exec(spec);
        const bits = m ? Number(m[1]) : spec.includes(':') ? 128 : 32;
        this.hostPolicies.push({
          test: addrBytesTest(spec, this.vars),
          bits,
          policy: policy as OverlapPolicy,
        });
      }
    }
    this.hostPolicies.sort((a, b) => b.bits - a.bits);
    this.flows = this.newFlowTable();
    this.ordered = this.compiled;
    // one rule per gid:sid, as Suricata loads them: a higher rev replaces the rule before it, an equal or
    // lower one is refused (the community set loaded twice raised every alert twice)
    const latest = new Map<string, Rule>();
    for (const r of rules) {
      const key = `${r.gid}:${r.sid}`;
      const had = latest.get(key);
      if (!had || r.rev > had.rev) latest.set(key, r);
    }
    const kept = new Set(latest.values());
    const compiler = new RuleCompiler(this.vars, opts, this.countPcreStepLimit);
    for (const r of rules) {
      if (!kept.has(r)) {
        this.skipped.push({
          sid: r.sid,
          reason: 'a duplicate gid:sid (the highest rev, the first of equals, is kept)',
        });
        continue;
      }
      try {
        const c = compiler.compile(r);
        if (c) this.compiled.push(c);
      } catch (e) {
        this.skipped.push({ sid: r.sid, reason: (e as Error).message });
      }
    }
    this.latencyRates = {
      1: compiler.eventRate(latencyEventsGid, 1),
      2: compiler.eventRate(latencyEventsGid, 2),
      3: compiler.eventRate(latencyEventsGid, 3),
    };
    this.warnings.push(...compiler.thresholdWarnings());
    if (opts.deferRates) refuseDeferredGates(this.compiled, opts.ips === true);
    this.deferFilters = opts.deferRates === true && opts.ips !== true;
    this.tlsRules = compiler.tlsRules;
    this.dceRules = compiler.dceRules;
    this.dceDatagramRules = compiler.dceDatagramRules;
    this.sipRules = compiler.sipRules;
    this.ftpRules = compiler.ftpRules;
    this.tagRules = this.compiled.some((c) => c.tags !== undefined);
    const order = opts.actionOrder ?? defaultActionOrder;
    const rank = (a: string) => {
      const i = order.indexOf(a === 'sdrop' ? 'drop' : rejectTargetOf(a) ? 'reject' : a);
      return i < 0 ? order.length : i;
    };
    const sorted = [...this.compiled].sort((x, y) => rank(x.rule.action) - rank(y.rule.action));
    sorted.forEach((c, i) => {
      c.order = i;
    });
    this.ordered = sorted.filter((c) => c.mode !== 'http' && c.mode !== 'mail');
    this.httpOrdered = sorted.filter((c) => c.mode === 'http');
    this.mailOrdered = sorted.filter((c) => c.mode === 'mail');
    for (const c of this.ordered) c.fast = fastContent([{ buffer: '', steps: c.steps }])?.bytes;
    this.httpPrefilter = new HttpPrefilter(this.httpOrdered, opts.prefilter !== false, Engine.httpAdmits);
    this.groups = new PortGroups(this.ordered, this.vars, opts, this.stats);
    // What the first packets would otherwise make lazily, made now: code V8 optimized on an earlier engine
    // (before a rule reload, or the bench's warm-up engine) saw those paths once, long ago, and deoptimized
    // when this engine took them (see `objectArray`). The scratch arrays are sized for good (the port groups'
    // by `PortGroups`, the HTTP sides' by `HttpPrefilter`): the header classes are all numbered by now
    // (rules are compiled only here).
    this.headerSeen = new Uint8Array(compiler.headerClasses.size);
    this.ftpPorts = ftpPortTest(this.vars);
  }

  private newFlowTable(): FlowTable<FlowData> {
    const opts = this.opts;
    return new FlowTable<FlowData>({
      midstream: opts.midstream === true,
      asyncOneside: opts.asyncOneside === true,
      vlanAgnostic: opts.vlanAgnostic === true,
      tunnelAgnostic: opts.tunnelAgnostic === true,
      ...(opts.flowsMax !== undefined && { flowsMax: opts.flowsMax }),
      ...(opts.flowTimeouts && { timeouts: opts.flowTimeouts }),
      owner: this,
      onEvict: Engine.flowEvicted,
    });
  }

  /**
   * The engine as it was built, for the next capture: no flow, no stream memory, no threshold or rate
   * state, every count and record at zero, no rule suspended. Kept are the compiled rules and what the
   * engine learned of traffic that changes no result: the port groups it made and the automata it built
   * for them and for the HTTP buffers (so the next capture runs as a later pass does, not as a new engine's
   * first). A capture run after `reset` raises the alerts and counts a new engine would (`test/reset.test.ts`
   * checks both, alert by alert and count by count). Flows still held are dropped uninspected: `finish`
   * first to inspect them. The objects the counts are in (`stats`, `httpAnomalies`, ...) are the same
   * objects, set to zero: a caller that keeps a run's counts copies them first (`runPipeline` does).
   */
  reset(): void {
    this.flows = this.newFlowTable();
    this.tagHosts.clear();
    this.tagged = false;
    this.currentFlow = undefined;
    this.budget = new ReassemblyBudget(this.opts.reassemblyMemcapBytes ?? reassemblyMemcapDefault);
    zeroCounts(this.stats);
    this.rates = new RateLimiter();
    this.rates.countInto(this.stats);
    this.pending = objectArray();
    this.deferred = undefined;
    this.deferredFilter = undefined;
    this.deliveryGapBytes = 0;
    this.flushing = false;
    this.draining = false;
    this.releasingOther = false;
    this.nowUs = 0;
    this.pktNo = 0;
    this.rebuiltFrag = false;
    const v = this.verdict;
    v.drop = false;
    v.payload = undefined;
    v.reject = false;
    v.rejectTo = 'src';
    this.matches.length = 0;
    this.passOrder = Number.POSITIVE_INFINITY;
    this.ftpExpected.clear();
    zeroCounts(this.httpAnomalies);
    zeroCounts(this.mailAnomalies);
    zeroCounts(this.mimeAnomalies);
    this.ruleFaults.clear();
    this.packetFaults.length = 0;
    this.ruleLatency.clear();
    this.pktStartMs = Number.POSITIVE_INFINITY;
    this.current = undefined;
    this.pktTimedOut = false;
    this.fastpathed = false;
    this.httpOut = [];
    this.headerSeen.fill(0);
    for (const c of this.compiled) {
      c.latencyTimeouts = 0;
      c.suspendedAt = -1;
      c.profChecks = 0;
      c.profUs = 0;
      c.profMaxUs = 0;
    }
    this.groups.reset();
  }

  /** The port groups of the packet and stream rules, and their prefilter (stages 1 to 3). */
  private readonly groups: PortGroups;
  /** The HTTP rules by side of a message, and their prefilter. */
  private readonly httpPrefilter: HttpPrefilter<Engine, FlowData>;

  /** `HttpPrefilter`'s `admits`: one function for every engine, the engine as `owner`. */
  private static httpAdmits(owner: Engine, cls: number, c: Compiled, fd: FlowData, dir: number): boolean {
    return owner.httpHeaderPasses(cls, c, fd, dir);
  }

  /** The flow table's `onEvict`: one function for every engine, the engine as the table's owner. */
  private static flowEvicted(f: Flow<FlowData>, reason: EvictReason, owner: unknown): void {
    (owner as Engine).flushFlow(f, reason);
  }

  /** Per header class, its test's result on the HTTP message being inspected (0: not tested, 1 pass, 2 fail). */
  private readonly headerSeen: Uint8Array;
  /** The first rule of `g` after the pass that matched on this packet (all of them when none did). */
  private passEnd(g: RuleGroup): number {
    if (this.passOrder === Number.POSITIVE_INFINITY || this.flushing) return g.rules.length;
    let lo = 0;
    let hi = g.rules.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (g.rules[mid]!.order > this.passOrder) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private readonly countPcreStepLimit = () => {
    this.stats.pcreStepLimits++;
  };

  /**
   * Inspects one decoded packet; returns the alerts it raised (and those of flows evicted meanwhile).
   * `pcapCnt`: the packet's 1-based number in its capture, for the alerts (default: inspect calls so far).
   * `checksumOk` false: the packet is matched on its own but moves no TCP state and joins no stream.
   * `rebuiltFrag`: `d` is a datagram rebuilt from fragments (for `flow:no_frag` and `only_frag`).
   */
  inspect(d: Decoded, tsUs: number, pcapCnt?: number, checksumOk = true, rebuiltFrag = false): Alert[] {
    try {
      return this.inspectPacket(d, tsUs, pcapCnt, checksumOk, rebuiltFrag);
    } catch (e) {
      // a fault of the engine's outside any rule (flow table, reassembly, a parser): the packet's
      // inspection ends there (its alerts with it; with ips it is passed), the run goes on and says so
      this.packetFault(e);
      return [];
    }
  }

  private inspectPacket(
    d: Decoded,
    tsUs: number,
    pcapCnt: number | undefined,
    checksumOk: boolean,
    rebuiltFrag: boolean,
  ): Alert[] {
    this.stats.packets++;
    this.startPacketClock();
    this.current = d;
    this.tagged = false;
    this.rebuiltFrag = rebuiltFrag;
    this.pktNo = pcapCnt ?? this.pktNo + 1;
    this.nowUs = tsUs;
    if (!checksumOk) this.stats.badChecksums++;
    this.verdict.drop = false;
    this.verdict.payload = undefined;
    this.verdict.reject = false;
    this.excepted = false; // (set and not yet read when the last packet's inspection failed)
    this.passOrder = Number.POSITIVE_INFINITY;
    const f = this.flows.trackFlow(d, tsUs, checksumOk);
    let toServer = this.flows.toServer;
    const out = this.pending.length > 0 ? this.pending.splice(0) : [];
    let dir = toServer ? 0 : 1;
    const isNew = f.data === undefined;
    const fd = (f.data ??= {
      ipVersion: d.ipVersion,
      firstPkt: this.pktNo,
      addrs: toServer ? [d.src, d.dst] : [d.dst, d.src],
      addrBytes: toServer
        ? [new Uint8Array(d.srcAddr), new Uint8Array(d.dstAddr)]
        : [new Uint8Array(d.dstAddr), new Uint8Array(d.srcAddr)],
      ports: toServer ? [d.srcPort, d.dstPort] : [d.dstPort, d.srcPort],
      streams: [undefined, undefined],
      ackFrom: [undefined, undefined],
      seen: [false, false],
      tlsNow: 0,
    });
    if (isNew && this.ftpExpected.size > 0 && d.proto === 6) {
      // a new flow: the data connection an FTP control connection announced?
      const key = `${fd.addrs[1]}:${fd.ports[1]}`;
      const until = this.ftpExpected.get(key);
      if (until !== undefined) {
        this.ftpExpected.delete(key);
        if (until >= tsUs) fd.ftpData = true;
      }
    }
    if (isNew && d.proto === 6) {
      const fl = d.tcpFlags;
      // a TCP session picked up midstream: its first packet a SYN/ACK, or an ACK without SYN or RST
      if (fl & 0x10 && !(fl & 0x04)) {
        if (this.exceptions.midstream !== 'ignore') this.exception('midstream', fd);
        // roles from the packet's flags or ports: the first data may turn them around (Suricata: any
        // midstream session whose detection finds the server's bytes sent to_server)
        if (this.opts.midstream && this.httpOrdered.length > 0) fd.rolesOpen = true;
      }
    }
    // tags set by alerts of packets before this one (this one's alerts tag the packets after it)
    if (this.tagRules) {
      this.currentFlow = fd;
      if (fd.tag !== undefined || this.tagHosts.size > 0) this.tagPacket(fd, d, tsUs);
    }
    // a dropped or passed flow is not inspected any more (Suricata: FLOW_ACTION_DROP / no packet inspection)
    if (fd.action !== undefined) {
      if (fd.action === 'drop') {
        this.verdict.drop = true;
        this.stats.packetsDropped++;
      }
      return out;
    }
    // a session picked up midstream: its first data may turn it around, and this packet with it
    if (fd.rolesOpen && d.payload.length > 0 && checksumOk && this.settleRoles(f, fd, dir, d.payload)) {
      toServer = !toServer;
      dir = 1 - dir;
    }
    const firstInDir = !fd.seen[dir];
    fd.seen[dir] = true;
    const inStream = d.proto === 6 && checksumOk && this.streamPacket(f, fd, d, dir, out);
    const norm = this.verdict.payload;
    if (this.excepted) {
      // an exception's policy took the packet out of inspection (`exception`): no packet rules
      this.excepted = false;
    } else if (norm) {
      // the packet rules see the normalized payload (the caller's packet gets its own back)
      const own = d.payload;
      d.payload = norm;
      try {
        this.runPacket(f, d, toServer, inStream, firstInDir, out);
      } finally {
        d.payload = own;
      }
    } else this.runPacket(f, d, toServer, inStream, firstInDir, out);
    if (this.matches.length > 0) this.finalize();
    this.passOrder = Number.POSITIVE_INFINITY;
    if (d.payload.length > 0) this.stats.inspected++;
    // a flow just dropped or passed needs no reassembly any more: its memory goes back now
    if (fd.action !== undefined) this.flushFlow(f);
    if (this.verdict.drop) this.stats.packetsDropped++;
    if (norm) this.stats.packetsRewritten++;
    return out;
  }

  /**
   * A match: its alert (if it alerts) is already in `out`; its action is applied when the packet's
   * inspection ends (`finalize`), or at once for data flushed when a flow ends (no packet to decide on).
   */
  /**
   * An app-layer (HTTP or mail) rule matched on a flow: its flowbits, the alert carrying `payload`, and its
   * action, which applies to the flow. Returns whether the rule was a pass (the caller stops there).
   */
  private streamMatched(
    c: Compiled,
    f: Flow<FlowData>,
    fd: FlowData,
    addr: { src: string; sp: number; dst: string; dp: number },
    payload: Uint8Array,
    out: Alert[],
  ): boolean {
    this.applyFlowbits(c, f);
    const action = this.actionOf(c, addr.src, addr.sp, addr.dst, addr.dp, f.id);
    const pass = action === 'pass';
    const e = {
      src: addr.src,
      sp: addr.sp,
      dst: addr.dst,
      dp: addr.dp,
      proto: 6,
      flowId: f.id,
      ipVersion: fd.ipVersion,
    };
    let a: Alert | undefined;
    if (!c.noalert && (!pass || c.alertOnPass)) {
      const d = this.rateDecision(c, e);
      if (d === 'none') return false; // a detection_filter short of its count: no match, no action
      if (d === 'alert') {
        a = this.alert(c, { ...e, stream: true }, action);
        a.payload = payload;
        a.pktSrc = this.flushing ? 'stream (flow timeout)' : 'wire/pcap';
        out.push(a);
      }
    } else this.silentMatch(c, { ...e, stream: true }, out);
    this.matched(c, fd, true, a, out, action);
    return pass;
  }

  private matched(
    c: Compiled,
    fd: FlowData,
    flowScope: boolean,
    alert: Alert | undefined,
    out: Alert[],
    action: string,
  ): void {
    if (this.flushing) {
      this.act(fd, flowScope, action);
      return;
    }
    this.matches.push({ c, fd, flowScope, alert, out, action });
    if (action === 'pass' && c.order < this.passOrder) this.passOrder = c.order;
  }

  /**
   * A match's action: the rule's, or the new action a threshold.config rate_filter over the rule gives it
   * now (which counts the match: asked once per match). A worker (`deferFilters`) leaves the count to the
   * merger: the match's alert (`alert`), or a silent one (`silentMatch`), carries it, and the rule's
   * action applies here (without IPS only drop, sdrop or reject could come instead, which act on nothing).
   */
  private actionOf(c: Compiled, src: string, sp: number, dst: string, dp: number, flowId: number): string {
    this.deferredFilter = undefined;
    const fs = c.rateFilters;
    if (fs === undefined) return c.rule.action;
    const r = c.rule;
    const e = { sid: r.sid, gid: r.gid, src, dst, sp, dp, flowId, tsUs: this.nowUs };
    if (this.deferFilters) {
      this.deferredFilter = { filters: fs, event: e };
      return r.action;
    }
    return this.rates.rateFilterAction(fs, e) ?? r.action;
  }

  /**
   * A match that raises no alert (a noalert rule): with its rate_filter count left to the merger, a silent
   * alert carries it there.
   */
  private silentMatch(c: Compiled, e: MatchEvent, out: Alert[]): void {
    if (this.deferredFilter === undefined) return;
    out.push(this.alert(c, e, c.rule.action, true));
  }

  /**
   * The packet's matches in rule order, as Suricata's PacketAlertFinalize takes them: each action applied
   * until a pass, which ends it; the alerts of the matches after the pass are taken back.
   */
  private finalize(): void {
    const ms = this.matches.sort((x, y) => x.c.order - y.c.order);
    let taken: Set<Alert> | undefined;
    let cut = false;
    for (const m of ms) {
      if (cut) {
        if (m.alert) (taken ??= new Set()).add(m.alert);
        continue;
      }
      this.act(m.fd, m.flowScope, m.action);
      if (m.action === 'pass') cut = true;
    }
    if (taken) {
      this.stats.alerts -= taken.size;
      // a worker's taken-back alerts still carry counts one engine took at the match: the merger's to take
      if (this.opts.deferRates)
        for (const a of taken)
          if (a.rate !== undefined || a.rateFilter !== undefined) {
            a.silent = true;
            taken.delete(a);
          }
      const outs = new Set(ms.map((m) => m.out));
      for (const out of outs) {
        const keep = out.filter((a) => !taken.has(a));
        out.length = 0;
        out.push(...keep);
      }
    }
    this.matches.length = 0;
  }

  /**
   * The exception policies, resolved for this engine's mode (`EngineOptions.exceptionPolicy`); the
   * defragmenter's is the Pipeline's to apply.
   */
  readonly exceptions: ResolvedPolicies;
  /** An exception's policy ended the current packet's inspection (its packet rules are not run). */
  private excepted = false;
  /**
   * A session picked up midstream took its roles from its first packet (a SYN/ACK's receiver, else the
   * higher port the client, as Snort 3's `init_roles_tcp`); the payload of its first data packet, sent in
   * direction `dir`, settles them as Suricata's protocol detection does (FlowSwap, PacketSwap): an HTTP
   * response sent to_server, or a request sent to_client, turns the flow around before its stream or any
   * parser sees the bytes. Returns whether it did (the packet's direction is then the other).
   */
  private settleRoles(f: Flow<FlowData>, fd: FlowData, dir: number, data: Uint8Array): boolean {
    fd.rolesOpen = false;
    const kind = httpStartsAs(data);
    if (kind === undefined || (kind === 'request') === (dir === 0)) return false;
    f.clientAddr = new Uint8Array(fd.addrBytes[1]);
    f.clientPort = fd.ports[1];
    // every per-direction record of the flow, whether or not this session has used it yet
    for (const pair of [
      f.tcp,
      f.seen,
      f.packets,
      f.bytes,
      fd.addrs,
      fd.addrBytes,
      fd.ports,
      fd.streams,
      fd.ackFrom,
      fd.seen,
    ])
      swapPair(pair);
    if (fd.groups) swapPair(fd.groups);
    this.stats.flowsReversed++;
    return true;
  }

  /**
   * Exception `kind` on the current packet of flow `fd`: its policy applied, as Suricata's
   * ExceptionPolicyApply. pass-packet: the packet's rules are not run; drop-packet: nor is it passed on;
   * pass-flow: the flow is not inspected any more (nor reassembled); drop-flow: and its packets, this one
   * on, are dropped; reject: drop-flow, and a reject sent to the packet's sender. Not at the end-of-input
   * flush or a sweep, where there is no packet (the flow is ending anyway).
   */
  private exception(kind: ExceptionKind, fd: FlowData): void {
    const p = this.exceptions[kind];
    if (p === 'ignore' || this.flushing || this.current === undefined) return;
    this.stats[exceptionStat[kind]]++;
    this.excepted = true;
    if (p === 'pass-packet') return;
    if (p !== 'pass-flow') this.verdict.drop = true;
    if (p === 'reject') this.rejectTowards('src');
    if (p === 'drop-packet' || fd.action !== undefined) return;
    fd.action = p === 'pass-flow' ? 'pass' : 'drop';
    if (p === 'pass-flow') this.stats.flowsPassed++;
    else this.stats.flowsDropped++;
  }

  /** The packet's verdict gets a reject towards `to` (with one towards the other side already: both). */
  private rejectTowards(to: RejectTarget): void {
    const v = this.verdict;
    v.rejectTo = !v.reject ? to : v.rejectTo === to ? to : 'both';
    v.reject = true;
  }

  /**
   * A match's action `a`: in IPS mode a drop or reject drops the packet and, when the action's scope is
   * the flow (IP-only rules, stream and HTTP matches), the rest of the flow; a pass scoped to the flow
   * passes the rest of it, unless the packet was already dropped. The first flow action set stays.
   */
  private act(fd: FlowData, flowScope: boolean, a: string): void {
    if (a === 'pass') {
      if (flowScope && !this.verdict.drop && fd.action === undefined) {
        fd.action = 'pass';
        this.stats.flowsPassed++;
      }
      return;
    }
    const to = rejectTargetOf(a);
    if (this.opts.ips && (a === 'drop' || a === 'sdrop' || to)) {
      if (!this.flushing) {
        this.verdict.drop = true;
        if (to) this.rejectTowards(to);
      }
      if (flowScope && fd.action === undefined) {
        fd.action = 'drop';
        this.stats.flowsDropped++;
      }
    }
  }

  /** Ends the input: every flow is flushed (remaining stream data inspected, holes skipped). */
  finish(at?: { pcapCnt: number; tsUs: number }): Alert[] {
    // a worker that saw only part of the capture reports its flushes at the capture's last packet
    if (at) {
      this.pktNo = at.pcapCnt;
      this.nowUs = at.tsUs;
    }
    // the end-of-input flush is no packet's: packet latency does not bound it
    this.pktStartMs = Number.POSITIVE_INFINITY;
    this.fastpathed = false;
    this.current = undefined;
    this.draining = true;
    try {
      this.flows.drain();
    } catch (e) {
      this.packetFault(e, 'the end-of-input flush');
    } finally {
      this.draining = false;
    }
    return this.pending.splice(0);
  }

  /** Feeds a TCP packet to its session's reassembly; returns whether its payload went into the stream. */
  private streamPacket(f: Flow<FlowData>, fd: FlowData, d: Decoded, dir: number, out: Alert[]): boolean {
    let inStream = false;
    const live = f.established || f.state === TcpState.closing;
    if (live && d.payload.length > 0) {
      const st = this.dirStream(f, fd, dir, d.seq);
      if (!st.done) {
        const off = st.r.offsetOf(d.seq);
        const releasedBefore = st.r.released;
        const res = st.r.insert(d.seq, d.payload);
        // inline normalization: the stream kept the first copy of any overlapped bytes; the packet goes on
        // (and is inspected) with those bytes
        if (this.opts.ips && st.r.overlapped) this.normalize(st, off, releasedBefore, d.payload);
        // PSH marks the end of an application write (RFC 9293 3.9.1): a boundary worth inspecting at
        if (d.tcpFlags & 0x08) st.pushEnd = Math.max(st.pushEnd, st.r.offsetOf(d.seq) + d.payload.length);
        if (res === 'in-order') this.stats.segmentsInOrder++;
        else if (res === 'out-of-order') this.stats.segmentsOutOfOrder++;
        else if (res === 'retransmit') this.stats.segmentsRetransmitted++;
        else {
          this.stats.segmentsDropped++;
          if (res === 'memcap') this.exception('reassemblyMemcap', fd);
        }
        inStream = res === 'in-order' || res === 'out-of-order' || res === 'retransmit';
        // inline (Pigasus' fast path) hands data out at once; a receiver that never acknowledges (one-sided
        // capture) must not pin the buffer: past half of it, the contiguous bytes go out unacknowledged
        if (this.inline || st.r.pendingBytes > st.r.bufferBytesMax / 2)
          this.deliver(f, fd, dir, st.r.release(), out);
        // inline, a retransmission is inspected again: the packet's bytes (as the stream has them) with
        // what came before, as Suricata's inline sliding window does
        if (this.opts.ips && res === 'retransmit') {
          const end = off + d.payload.length;
          if (end > st.base && end <= st.base + st.len) {
            this.deliveryGapBytes = 0;
            fd.dceNow = undefined; // the requests found are the last delivery's, at its offsets
            fd.sipNow = undefined;
            this.runStream(
              f,
              fd,
              dir,
              st.window.subarray(0, end - st.base),
              Math.max(off, st.base) - st.base,
              out,
            );
          }
        }
      }
    }
    // an acknowledgment releases what the other side sent up to it (what an IDS may trust the host saw):
    // once streamChunkBytes are ready (Suricata's raw stream chunk size), or up to the end of a pushed
    // write (where Suricata's app-layer parsers would trigger inspection at a message end), or on close
    if (d.tcpFlags & 0x10) {
      fd.ackFrom[dir] = d.ack;
      const other = fd.streams[1 - dir];
      if (other && !other.done) {
        const acked = other.r.offsetOf(d.ack);
        const closing = f.tcp[1 - dir]!.fin || f.tcp[dir]!.fin || f.state === TcpState.closed;
        const chunk = this.opts.streamChunkBytes ?? defaultStreamChunkBytes;
        const ready = Math.min(acked, other.r.contiguousEnd());
        if (
          closing ||
          ready - other.r.released >= chunk ||
          (other.pushEnd > other.r.released && ready >= other.pushEnd)
        )
          this.deliver(f, fd, 1 - dir, other.r.release(acked), out);
      }
    }
    return inStream;
  }

  /**
   * Sets `verdict.payload` to the packet's bytes as the stream holds them (stream offsets from `off`):
   * released bytes from the inspection window, the rest from the reassembler; undefined if all agree.
   */
  private normalize(st: DirStream, off: number, releasedBefore: number, payload: Uint8Array): void {
    let norm: Uint8Array | undefined;
    const from = Math.max(off, st.base);
    const to = Math.min(off + payload.length, releasedBefore, st.base + st.len);
    for (let x = from; x < to; x++) {
      const b = st.window[x - st.base]!;
      if (payload[x - off] !== b) {
        norm ??= copyBytes(payload);
        norm[x - off] = b;
      }
    }
    if (off + payload.length > releasedBefore) {
      const held = norm ?? copyBytes(payload);
      if (st.r.readHeld(off, held) > 0) norm = held;
    }
    this.verdict.payload = norm;
  }

  private dirStream(f: Flow<FlowData>, fd: FlowData, dir: number, seq: number): DirStream {
    const have = fd.streams[dir];
    if (have) return have;
    const half = f.tcp[dir]!;
    const receiver = fd.addrBytes[1 - dir]!;
    // inline (IPS), the first copy of overlapping bytes is kept whatever the receiver (Suricata's IPS docs)
    const policy = this.opts.ips
      ? 'first'
      : (this.hostPolicies.find((h) => h.test(receiver))?.policy ?? this.opts.overlapPolicy ?? 'windows');
    // an SMB connection followed for DCE/RPC is reassembled whole, as Suricata's smb stream-depth default
    // (0: "track it completely"): its pipes' calls come after file copies of any size (PsExec)
    const depth = fd.smb !== undefined || this.smbFlow(fd) ? 0 : this.opts.reassemblyDepthBytes;
    const st: DirStream = {
      r: new StreamReassembler(half.isnSet ? (half.isn + 1) >>> 0 : seq, {
        policy,
        budget: this.budget,
        ...(depth !== undefined && { depthBytes: depth }),
        ...(this.opts.streamBufferBytesMax !== undefined && {
          bufferBytesMax: this.opts.streamBufferBytesMax,
        }),
      }),
      window: new Uint8Array(0),
      len: 0,
      base: 0,
      done: false,
      pushEnd: 0,
    };
    fd.streams[dir] = st;
    return st;
  }

  /** Appends released stream bytes to the direction's window and runs the stream rules over them. */
  private deliver(
    f: Flow<FlowData>,
    fd: FlowData,
    dir: number,
    chunk: Chunk | undefined,
    out: Alert[],
  ): void {
    if (!chunk) return;
    if ((this.httpOrdered.length > 0 || this.mailOrdered.length > 0) && !this.releasingOther) {
      // what this direction's sender has acknowledged of the other stream happened before this data (a
      // response follows its request): it goes out first, or HTTP would see a response before its request
      const o = 1 - dir;
      const os = fd.streams[o];
      const ack = fd.ackFrom[dir];
      if (os && !os.done && ack !== undefined) {
        this.releasingOther = true;
        this.deliver(f, fd, o, os.r.release(os.r.offsetOf(ack)), out);
        this.releasingOther = false;
      }
    }
    // a large release is inspected in pieces: bounded work per rule evaluation (a pcre never sees more
    // than the window plus one piece), matches across the pieces still found through the window
    for (let at = 0; at < chunk.data.length; at += streamPieceBytesMax) {
      const data = chunk.data.subarray(at, at + streamPieceBytesMax);
      this.deliverPiece(f, fd, dir, { off: chunk.off + at, data, gap: chunk.gap && at === 0 }, out);
    }
  }

  private deliverPiece(f: Flow<FlowData>, fd: FlowData, dir: number, chunk: Chunk, out: Alert[]): void {
    const st = fd.streams[dir];
    if (!st || st.done || chunk.data.length === 0) return;
    this.deliveryGapBytes = 0;
    if (chunk.gap || chunk.off !== st.base + st.len) {
      // bytes are missing before this chunk: no match may straddle the hole
      this.deliveryGapBytes = chunk.off - (st.base + st.len);
      st.base = chunk.off;
      st.len = 0;
      st.scan = undefined;
    }
    if (st.len > streamWindowBytes) {
      const drop = st.len - streamWindowBytes;
      st.window.copyWithin(0, drop, st.len);
      st.base += drop;
      st.len = streamWindowBytes;
    }
    const need = st.len + chunk.data.length;
    if (need > st.window.length) {
      const cap = Math.max(need, Math.min(2 * st.window.length, streamWindowBytes + need));
      if (!this.budget.take(cap - st.window.length)) {
        st.done = true; // no memory for this stream: its packets are inspected one by one from now on
        this.stats.segmentsDropped++;
        return;
      }
      const w = new Uint8Array(cap);
      w.set(st.window.subarray(0, st.len));
      st.window = w;
    }
    st.window.set(chunk.data, st.len);
    const newStart = st.len;
    st.len = need;
    this.stats.streamBytes += chunk.data.length;
    this.stats.streamDeliveries++;
    if (this.tlsRules) {
      fd.tls ??= new TlsSession();
      const tls = fd.tls.dirs[dir]!;
      const errors = tls.errors;
      fd.tls.feed(dir as 0 | 1, chunk.data, this.deliveryGapBytes > 0);
      fd.tlsNow = tls.current;
      if (tls.errors !== errors) this.exception('appLayerError', fd);
    }
    if (this.ftpRules) this.ftpFeed(fd, dir, chunk.data);
    if (this.sipRules) {
      fd.sip ??= [new SipStream(), new SipStream()];
      const sip = fd.sip[dir as 0 | 1];
      const errors = sip.errors;
      fd.sipNow = sip.feed(chunk.data, this.deliveryGapBytes > 0);
      if (sip.errors !== errors) this.exception('appLayerError', fd);
    }
    if (this.dceRules) {
      // DCE/RPC in SMB named pipes on the SMB ports and where the first bytes are SMB, else straight over TCP
      if (!fd.smb && !fd.dce && !this.smbFlow(fd) && !this.smbSniff(fd, dir as 0 | 1, chunk.data))
        fd.dceNow = [];
      else if (fd.smb || (!fd.dce && this.smbFlow(fd))) {
        fd.smb ??= new SmbSession();
        const errors = fd.smb.errors;
        fd.dceNow = fd.smb.feed(dir as 0 | 1, chunk.data, this.deliveryGapBytes > 0);
        this.stats.dceSmbRequests += fd.dceNow.length;
        if (fd.smb.errors !== errors) this.exception('appLayerError', fd);
      } else {
        fd.dce ??= new DceSession(true);
        const errors = fd.dce.errors;
        fd.dceNow = fd.dce.feed(dir as 0 | 1, chunk.data, this.deliveryGapBytes > 0);
        if (fd.dce.errors !== errors) this.exception('appLayerError', fd);
      }
      this.countReassembled(fd.dceNow);
    }
    if (fd.sip || fd.dce || fd.smb) this.chargeTrackers(fd);
    this.runStream(f, fd, dir, st.window.subarray(0, st.len), newStart, out, st);
    if (this.httpOrdered.length > 0) this.httpFeed(f, fd, dir, chunk.data, out);
    if (this.mailOrdered.length > 0) this.mailFeed(f, fd, dir, chunk.data, out);
  }

  /** Follows an FTP control connection's bytes; the data connections it announces are expected. */
  private ftpFeed(fd: FlowData, dir: number, data: Uint8Array): void {
    if (fd.ftp === undefined) {
      if (fd.ftpData) return;
      if (!this.ftpPorts(fd.ports[1])) return;
      fd.ftp = new FtpControl();
    }
    for (const e of fd.ftp.feed(dir as 0 | 1, data, fd.addrs[1]!)) {
      if (this.ftpExpected.size >= ftpExpectedMax)
        this.ftpExpected.delete(this.ftpExpected.keys().next().value!);
      this.ftpExpected.set(`${e.addr}:${e.port}`, this.nowUs + ftpExpectedUs);
    }
  }

  /** Hands stream bytes to the flow's mail session; mail rules run on each message it finds. */
  private mailFeed(f: Flow<FlowData>, fd: FlowData, dir: number, data: Uint8Array, out: Alert[]): void {
    const d = dir as 0 | 1;
    if (fd.mail === null) return;
    const mail = (fd.mail ??= new MailSession(
      { message: (m) => this.runMail(f, fd, m) },
      this.mailAnomalies,
      this.budget,
      this.opts.mail,
    ));
    if (!mail.active(d)) return;
    this.httpOut = out;
    if (this.deliveryGapBytes > 0) mail.gap(d);
    mail.push(d, data);
    if (mail.protocol === 'none') {
      mail.dispose();
      fd.mail = null;
    }
  }

  /**
   * The mail rules over one message: each MIME leaf part is one `file_data` (as Snort's SMTP, POP and IMAP
   * inspectors hand each decoded attachment to the file buffer); `pkt_data` is the message as transferred.
   * Each rule at most once per part.
   */
  private runMail(f: Flow<FlowData>, fd: FlowData, m: MailMessage): void {
    this.stats.mailMessages++;
    const dir = m.dir;
    const src = fd.addrs[dir]!;
    const sp = fd.ports[dir]!;
    const dst = fd.addrs[1 - dir]!;
    const dp = fd.ports[1 - dir]!;
    const out = this.httpOut;
    const parts = parseMime(m.raw, this.mimeAnomalies, this.opts.mail);
    for (const part of parts) {
      this.stats.mailParts++;
      const texts = new Map<Uint8Array, () => string>();
      for (const c of this.mailOrdered) {
        if (c.order > this.passOrder && !this.flushing) return; // after a pass matched on this packet
        const h = c.http!;
        if ((h.side === 'request' && dir !== 0) || (h.side === 'response' && dir !== 1)) continue;
        if (!this.headerMatch(c, fd.addrBytes[dir]!, sp, fd.addrBytes[1 - dir]!, dp)) continue;
        if (!this.flowbitsAllow(c, f)) continue;
        this.stats.rulesEvaluated++;
        this.stats.mailRulesEvaluated++;
        const data = (b: string) => (b === 'file_data' ? part.data : m.raw);
        if (!this.guarded(c, matchGroups, c.http!, data, f, texts, this.stepBudget)) continue;
        if (this.streamMatched(c, f, fd, { src, sp, dst, dp }, part.data, out)) return;
      }
    }
  }

  /** Hands stream bytes to the direction's HTTP parser; rules run from its events. */
  private httpFeed(f: Flow<FlowData>, fd: FlowData, dir: number, data: Uint8Array, out: Alert[]): void {
    const http = (fd.http ??= this.newHttpSession(f, fd));
    const p = dir === 0 ? http.request : http.response;
    if (!p.listening) return;
    this.httpOut = out;
    const errors = p.errors;
    if (this.deliveryGapBytes > 0) p.gap(this.deliveryGapBytes);
    p.push(data);
    if (p.errors !== errors) this.exception('appLayerError', fd);
  }

  private newHttpSession(f: Flow<FlowData>, fd: FlowData): HttpSession {
    const on = (side: 'request' | 'response') => ({
      headers: (m: HttpMessage) => {
        if (side === 'request') this.stats.httpRequests++;
        else this.stats.httpResponses++;
        this.runHttp(f, fd, m, false);
      },
      message: (m: HttpMessage) => this.runHttp(f, fd, m, true),
    });
    return new HttpSession(
      { request: on('request'), response: on('response') },
      this.httpAnomalies,
      this.budget,
      // a response stream picked up without its SYN starts where the capture did
      { ...this.opts.http, responseFromStart: f.tcp[1].isnSet, requestFromStart: f.tcp[0].isnSet },
    );
  }

  /**
   * The HTTP rules of one message's side: at its header section (`complete` false) the rules that need no
   * body, at its end (`complete` true) those that do; each rule at most once per message.
   */
  private runHttp(f: Flow<FlowData>, fd: FlowData, m: HttpMessage, complete: boolean): void {
    const bufs = new HttpBuffers(m, this.httpAnomalies, this.opts.http?.decompressedBytesMax);
    // per buffer (by number), which of its automaton's patterns occur in this message (scanned on first need,
    // into marks kept per buffer and cleared when the message's rules are done)
    const found: (HttpMarks | undefined)[] = [];
    const side = this.httpPrefilter.side(m.kind, complete);
    // each header tested once per message (the rules mostly share a few)
    this.headerSeen.fill(0);
    try {
      this.httpRules(f, fd, m, bufs, side, found);
    } finally {
      HttpPrefilter.release(found);
    }
  }

  /**
   * `runHttp`'s rule loop over the message's candidates (`HttpPrefilter.candidates`); `found` lists the
   * buffers it scanned, with their marks. A rule keyed on a buffer whose scan did not mark its pattern is
   * not visited (counted in `httpRulesPrefiltered`, up to where the loop ends).
   */
  private httpRules(
    f: Flow<FlowData>,
    fd: FlowData,
    m: HttpMessage,
    bufs: HttpBuffers,
    side: HttpSideRules,
    found: (HttpMarks | undefined)[],
  ): void {
    // the loop reads the rules' typed arrays, and a rule's object only when it gets past them
    const { rules, order, flowbitsTest, fastBuffer } = side;
    const dir = m.kind === 'request' ? 0 : 1;
    const src = fd.addrs[dir]!;
    const sp = fd.ports[dir]!;
    const dst = fd.addrs[1 - dir]!;
    const dp = fd.ports[1 - dir]!;
    const out = this.httpOut;
    const n = this.httpPrefilter.candidates(side, this, fd, dir, bufs, found);
    const cand = this.httpPrefilter.cand;
    let texts: Map<Uint8Array, () => string> | undefined; // for the first rule matchGroups runs
    let end = rules.length; // where the loop stopped (for the count of rules the prefilter spared)
    let visitedFast = 0;
    for (let kc = 0; kc < n; kc++) {
      const k = cand[kc]!;
      if (order[k]! > this.passOrder && !this.flushing) break; // after a pass matched on this packet
      if (fastBuffer[k]! >= 0) visitedFast++;
      if (!this.httpHeaderPasses(side.headerClass[k]!, rules[k]!, fd, dir)) continue;
      if (flowbitsTest[k] === 1 && !this.flowbitsAllow(rules[k]!, f)) continue;
      const c = rules[k]!;
      this.stats.rulesEvaluated++;
      this.stats.httpRulesEvaluated++;
      texts ??= new Map();
      if (!this.guarded(c, matchGroups, c.http!, (b) => bufs.get(b), f, texts, this.stepBudget)) continue;
      if (this.streamMatched(c, f, fd, { src, sp, dst, dp }, m.raw, out)) {
        end = k + 1;
        break;
      }
    }
    if (this.passOrder !== Number.POSITIVE_INFINITY && !this.flushing) {
      // the first rule after a pass that matched on this packet
      let lo = 0;
      let hi = end;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (order[mid]! > this.passOrder) hi = mid;
        else lo = mid + 1;
      }
      end = lo;
    }
    const spared = side.fastBefore[end]! - visitedFast;
    if (spared > 0) {
      this.stats.rulesPrefiltered += spared;
      this.stats.httpRulesPrefiltered += spared;
    }
  }

  /** Whether a rule of header class `cls` admits the message's direction (tested once per class a message). */
  private httpHeaderPasses(cls: number, c: Compiled, fd: FlowData, dir: number): boolean {
    const seen = this.headerSeen;
    let hs = seen[cls]!;
    if (hs === 0)
      hs = seen[cls] = this.headerMatch(
        c,
        fd.addrBytes[dir]!,
        fd.ports[dir]!,
        fd.addrBytes[1 - dir]!,
        fd.ports[1 - dir]!,
      )
        ? 1
        : 2;
    return hs === 1;
  }

  /** Whether the flow is read as SMB for its DCE/RPC pipes: DCE/RPC rules loaded, an SMB server port. */
  private smbFlow(fd: FlowData): boolean {
    return this.dceRules && smbPorts.has(fd.ports[1]);
  }

  /**
   * Off the SMB ports: whether the connection's first bytes decide it, in direction `dir` given `data` next.
   * SMB when a direction's first message is a NetBIOS session message holding an SMB1 or SMB2 header (a
   * session message type 0x00, and 0xff or 0xfe then "SMB" after its 4-byte header: what Snort 3's wizard
   * takes for dce_smb on any port); then the flow gets an SMB reader, fed the first bytes held so far, and
   * its streams lose their depth. Otherwise, once a direction's first byte is not 0x00 (a DCE/RPC PDU's is
   * its version, 5) or its first 8 bytes are not that, DCE/RPC straight over TCP, fed the same. Until then
   * (at most 7 bytes a direction, cut as an evader would) nothing is decided and nothing read.
   */
  private smbSniff(fd: FlowData, dir: 0 | 1, data: Uint8Array): boolean {
    const sniff = fd.smbSniff;
    // this direction's first bytes: those held from its earlier deliveries, then these
    const held = sniff ? sniff[dir].length : 0;
    const have = held + data.length;
    const first = (k: number) => (k < held ? sniff![dir][k]! : data[k - held]!);
    if (have === 0 || (first(0) === 0x00 && have < smbSniffBytes)) {
      (fd.smbSniff ??= [[], []])[dir].push(...data);
      return false;
    }
    const smb =
      first(0) === 0x00 &&
      (first(4) === 0xff || first(4) === 0xfe) &&
      first(5) === 0x53 &&
      first(6) === 0x4d &&
      first(7) === 0x42;
    fd.smbSniff = undefined;
    const reader = smb ? (fd.smb = new SmbSession()) : (fd.dce = new DceSession(true));
    // the bytes held from earlier deliveries, each direction's in order, before this delivery's
    if (sniff)
      for (const d of [0, 1] as const)
        if (sniff[d].length > 0) reader.feed(d, Uint8Array.from(sniff[d]), false);
    if (smb) for (const st of fd.streams) st?.r.keepWhole();
    return true;
  }

  /** Counts the DCE/RPC calls among `reqs` reassembled from fragments (`EngineStats.dceCallsReassembled`). */
  private countReassembled(reqs: DceRequest[]): void {
    for (const r of reqs) if (r.reassembled) this.stats.dceCallsReassembled++;
  }

  /**
   * Charges what the SIP and DCE/RPC trackers hold between deliveries (a header section or PDU start in
   * pieces) to the reassembly budget; refused, they let it go and follow the flow no further.
   */
  private chargeTrackers(fd: FlowData): void {
    const held =
      (fd.sip ? fd.sip[0].heldBytes + fd.sip[1].heldBytes : 0) +
      (fd.dce?.heldBytes ?? 0) +
      (fd.smb?.heldBytes ?? 0) +
      (fd.dceDatagram?.heldBytes ?? 0);
    const was = fd.trackerBytes ?? 0;
    if (held > was && !this.budget.take(held - was)) {
      fd.sip?.[0].drop();
      fd.sip?.[1].drop();
      fd.dce?.drop();
      fd.smb?.drop();
      fd.dceDatagram?.drop();
      this.budget.give(was);
      fd.trackerBytes = 0;
      return;
    }
    if (held < was) this.budget.give(was - held);
    fd.trackerBytes = held;
  }

  /** Flushes a flow leaving the table: its buffered stream data is inspected, its memory given back. */
  private flushFlow(f: Flow<FlowData>, reason?: EvictReason): void {
    const fd = f.data;
    if (!fd) return;
    const mark = this.pending.length;
    this.flushFlowData(f, fd);
    if (!this.opts.deferRates || this.pending.length === mark) return;
    // a worker's end-of-input flush: the merger puts the flows of all workers in the order one engine
    // drains them (by last packet, then by first: `FlowTable.drain`)
    if (this.draining)
      for (let i = mark; i < this.pending.length; i++) this.pending[i]!.flushOrder = [f.lastUs, fd.firstPkt];
    // a flow timed out at a packet: the merger puts the flows of all workers timed out at that packet in
    // the order one engine's sweep takes them (by class, then last seen), before the packet's own alerts
    else if (reason === 'timeout') {
      const order: [number, number, number] = [this.flows.classOf(f), f.lastUs, fd.firstPkt];
      for (let i = mark; i < this.pending.length; i++) this.pending[i]!.timedOut = order;
    }
  }

  /** Packet latency: a packet's (or a tick's) work starts now. */
  private startPacketClock(): void {
    if (this.packetLatency === undefined) return;
    this.pktStartMs = this.latencyClock();
    this.pktTimedOut = false;
    this.fastpathed = false;
  }

  /**
   * A packet of the capture another worker inspects (number `pcapCnt`, at `tsUs`): this engine's flows
   * idle past their timeouts by then are flushed now, as one engine sweeps its table before every packet,
   * so their alerts carry the packet one engine gives them. Appends those alerts to `out` and returns it.
   * (`ParallelRunner` tells each worker the times of the packets it routes to the others.)
   */
  tick(tsUs: number, pcapCnt: number, out: Alert[] = []): Alert[] {
    this.pktNo = pcapCnt;
    this.nowUs = tsUs;
    this.current = undefined;
    this.startPacketClock();
    try {
      this.flows.sweep(tsUs);
    } catch (e) {
      this.packetFault(e);
    }
    if (this.pending.length > 0) {
      for (const a of this.pending) out.push(a);
      this.pending.length = 0;
    }
    return out;
  }

  private flushFlowData(f: Flow<FlowData>, fd: FlowData): void {
    for (const dir of [0, 1]) {
      const st = fd.streams[dir];
      if (!st) continue;
      this.flushing = true;
      // a dropped or passed flow is not inspected any more, at its end either
      if (!st.done && fd.action === undefined)
        for (const c of st.r.flush()) this.deliver(f, fd, dir, c, this.pending);
      this.flushing = false;
      st.r.dispose();
      this.budget.give(st.window.length);
      st.window = new Uint8Array(0);
      st.done = true;
    }
    if (fd.trackerBytes) {
      this.budget.give(fd.trackerBytes);
      fd.trackerBytes = 0;
      fd.sip?.[0].drop();
      fd.sip?.[1].drop();
      fd.dce?.drop();
      fd.smb?.drop();
      fd.dceDatagram?.drop();
    }
    if (fd.mail) {
      // a message cut short by the end of the connection is inspected as is (not after a drop or pass)
      this.httpOut = this.pending;
      this.flushing = true;
      if (fd.action === undefined) fd.mail.end();
      this.flushing = false;
      fd.mail.dispose();
      fd.mail = undefined;
    }
    if (fd.http && fd.action !== undefined) {
      fd.http.dispose();
      fd.http = undefined;
    }
    if (fd.http) {
      // the connection is over: a body read until close ends here, a message cut short is inspected as is
      this.httpOut = this.pending;
      this.flushing = true;
      fd.http.request.end();
      fd.http.response.end();
      this.flushing = false;
      fd.http.dispose();
      fd.http = undefined;
    }
  }

  /** The stream rules over one window of a direction; each match must end in the new bytes. */
  private runStream(
    f: Flow<FlowData>,
    fd: FlowData,
    dir: number,
    payload: Uint8Array,
    newStart: number,
    out: Alert[],
    window?: DirStream,
  ): void {
    const toServer = dir === 0;
    const src = fd.addrs[dir]!;
    const sp = fd.ports[dir]!;
    const dst = fd.addrs[1 - dir]!;
    const dp = fd.ports[1 - dir]!;
    const srcAddr = fd.addrBytes[dir]!;
    const dstAddr = fd.addrBytes[1 - dir]!;
    let latin1: (() => string) | undefined; // made for the first rule the full matcher evaluates
    const g = this.groups.groupOf(fd, dir, 6);
    if (window) this.groups.prefilterWindow(g, window, newStart);
    else this.groups.prefilterScan(g, payload, g.matcher);
    // the filter stages this inspection passed (each counted once: EngineStats.stage*)
    this.groups.startInspection();
    let full = false;
    // stage 1: the stream rules; a DCE/RPC rule needs a request in this delivery (most have no content to
    // prefilter on); an FTP file rule, an FTP data connection. Visited: the candidates (stage 2 passed); the
    // rules stage 1 admits and stage 2 spares are counted
    let ctx: MatchCtx | undefined; // one for every evaluation here (matchCtx resets it)
    const dceOk = (fd.dceNow?.length ?? 0) > 0;
    const ftpOk = fd.ftpData === true;
    const n = this.groups.candidates(g, g.streamAlways);
    const cand = this.groups.cand;
    let end = this.passEnd(g); // after a pass matched on this packet
    let passed = 0;
    for (let kc = 0; kc < n; kc++) {
      const i = cand[kc]!;
      if (i >= end) break;
      const c = g.rules[i]!;
      // (a packet rule comes here only through its fast pattern: the stream's list leaves the others out)
      if (c.mode === 'packet') continue;
      if (c.dce && !dceOk) continue;
      if (c.ftpData && !ftpOk) continue;
      if (g.fp[i]! >= 0) passed++;
      if (!this.groups.stringsPass(g, i)) continue;
      if (!this.headerMatch(c, srcAddr, sp, dstAddr, dp)) continue;
      if (c.flow && !c.flow.stateless) {
        // stream data is an established flow's
        if (c.flow.notEstablished) continue;
        if (c.flow.toServer && !toServer) continue;
        if (c.flow.toClient && toServer) continue;
      }
      if (!this.flowbitsAllow(c, f)) continue;
      this.stats.rulesEvaluated++;
      if (!full) {
        full = true;
        this.stats.stageFullMatcherIn++;
      }
      // a rule that does not move the cursor (ssl_state, sip_stat_code...) matches once per delivery
      let minEnd = c.hasPayloadMatch ? newStart : -1;
      for (let k = 0; k < (c.hasPayloadMatch ? streamAlertsPerDeliveryMax : 1); k++) {
        ctx = matchCtx(
          ctx,
          payload,
          newStart,
          minEnd,
          Number.isFinite(c.spanMax) ? minEnd - c.spanMax + 1 : 0,
          undefined,
          (latin1 ??= latin1Of(payload)),
          f,
          this.stepBudget,
        );
        if (!this.guarded(c, matchSteps, c.steps, 0, ctx, 0)) break;
        minEnd = ctx.end;
        this.applyFlowbits(c, f);
        const action = this.actionOf(c, src, sp, dst, dp, f.id);
        const pass = action === 'pass';
        const e = { src, sp, dst, dp, proto: 6, flowId: f.id, ipVersion: fd.ipVersion };
        let a: Alert | undefined;
        if (!c.noalert && (!pass || c.alertOnPass)) {
          const d = this.rateDecision(c, e);
          if (d === 'none') continue; // a detection_filter short of its count: no match, no action
          if (d === 'alert') {
            a = this.alert(c, { ...e, stream: true }, action);
            a.payload = copyBytes(payload, newStart); // the window is reused
            if (this.deliveryGapBytes > 0) a.gapBytes = this.deliveryGapBytes;
            a.pktSrc = this.flushing ? 'stream (flow timeout)' : 'wire/pcap';
            out.push(a);
          }
        } else this.silentMatch(c, { ...e, stream: true }, out);
        // a stream match's action applies to the flow; a pass ends the inspection of this data
        this.matched(c, fd, true, a, out, action);
        if (pass) {
          end = i + 1;
          break;
        }
      }
      if (end === i + 1) break;
    }
    const key = -1 - ((dceOk ? 1 : 0) * 2 + (ftpOk ? 1 : 0));
    let pre = consultedOf(g, key);
    if (!pre)
      pre = this.groups.consultedPrefix(g, key, (c) =>
        c.mode === 'packet' ? 0 : (c.dce && !dceOk) || (c.ftpData && !ftpOk) ? 1 : 2,
      );
    if (pre[2 * end]! > 0) this.stats.stagePortGroupOut++;
    this.stats.rulesPrefiltered += pre[2 * end + 1]! - passed;
  }

  /** `test(...args)`, of rule `c`: a throw is the rule's fault (`ruleFault`) and no match. */
  private guarded<A extends unknown[], T>(c: Compiled, test: (...args: A) => T, ...args: A): T | false {
    if (this.timing) return this.timed(c, test, args);
    return this.evaluate(c, test, args);
  }

  private evaluate<A extends unknown[], T>(c: Compiled, test: (...args: A) => T, args: A): T | false {
    try {
      return test(...args);
    } catch (e) {
      this.ruleFault(c, e);
      return false;
    }
  }

  /**
   * `guarded` under rule or packet latency: a packet past its bound (with fastpath) or a suspended rule is
   * no match; the evaluation is timed and counted.
   */
  private timed<A extends unknown[], T>(c: Compiled, test: (...args: A) => T, args: A): T | false {
    let t0 = 0;
    if (this.packetLatency !== undefined) {
      if (this.fastpathed) return false;
      t0 = this.latencyClock();
      if (this.packetPastBound(t0)) return false;
    }
    const l = this.latency;
    if (l === undefined && !this.profiling) return this.evaluate(c, test, args);
    if (this.packetLatency === undefined) t0 = this.latencyClock();
    if (l !== undefined && c.suspendedAt >= 0 && this.stillSuspended(c, l, t0)) return false;
    const r = this.evaluate(c, test, args);
    const t1 = this.latencyClock();
    this.timedEvaluation(c, (t1 - t0) * 1000, t1);
    return r;
  }

  /**
   * Packet latency, at `now`: whether the packet under inspection is past its bound with fastpath (no more
   * of its rules evaluated); a packet past it is counted once either way.
   */
  private packetPastBound(now: number): boolean {
    const p = this.packetLatency!;
    if ((now - this.pktStartMs) * 1000 <= p.maxUs) return false;
    if (!this.pktTimedOut) {
      this.pktTimedOut = true;
      this.stats.packetTimeouts++;
    }
    if (!p.fastpath) return false;
    this.fastpathed = true;
    this.stats.packetsFastpathed++;
    if (p.alert) this.latencyEvent(3);
    return true;
  }

  /** Rule latency: whether suspended rule `c` stays suspended at `now`; past its time it is enabled again. */
  private stillSuspended(c: Compiled, l: NonNullable<Engine['latency']>, now: number): boolean {
    if (l.maxSuspendMs === 0 || now - c.suspendedAt <= l.maxSuspendMs) return true;
    c.suspendedAt = -1;
    c.latencyTimeouts = 0;
    this.stats.ruleReenables++;
    if (l.alert) this.latencyEvent(2);
    return false;
  }

  /**
   * One timed evaluation of `c` that took `us` and ended at `end`: added to its profile, and under rule
   * latency counted, a timeout recorded, and `c` suspended when past its threshold.
   */
  private timedEvaluation(c: Compiled, us: number, end: number): void {
    if (this.profiling) {
      c.profChecks++;
      c.profUs += us;
      if (us > c.profMaxUs) c.profMaxUs = us;
    }
    const l = this.latency;
    if (l === undefined) return;
    this.stats.ruleEvalsTimed++;
    if (us <= l.maxUs) return;
    this.stats.ruleEvalTimeouts++;
    const key = `${c.rule.gid}:${c.rule.sid}`;
    let rec = this.ruleLatency.get(key);
    if (!rec && this.ruleLatency.size < 64)
      this.ruleLatency.set(key, (rec = { timeouts: 0, suspensions: 0, slowestUs: 0 }));
    if (rec) {
      rec.timeouts++;
      rec.slowestUs = Math.max(rec.slowestUs, us);
    }
    if (l.suspend && ++c.latencyTimeouts >= l.threshold) {
      c.suspendedAt = end;
      this.stats.ruleSuspensions++;
      if (rec) rec.suspensions++;
      if (l.alert) this.latencyEvent(1);
    }
  }

  /** With `profileRules`: every rule evaluated so far, the most total time first (none without it). */
  ruleProfile(): RuleProfileRow[] {
    return this.compiled
      .filter((c) => c.profChecks > 0)
      .map((c) => ({
        rule: `${c.rule.gid}:${c.rule.sid}`,
        checks: c.profChecks,
        totalUs: c.profUs,
        maxUs: c.profMaxUs,
      }))
      .sort((a, b) => b.totalUs - a.totalUs);
  }

  /**
   * A latency event (gid 134) as an alert on the packet under inspection, given with the alerts the engine
   * returns next; none in the end-of-input flush, which has no packet. threshold.config's suppress and
   * event_filter entries for it apply as to a rule's (Snort filters every generator's events).
   */
  private latencyEvent(sid: keyof typeof latencyEventMsg): void {
    const d = this.current;
    if (d === undefined) return;
    const spec = this.latencyRates[sid];
    const e = { src: d.src, sp: d.srcPort, dst: d.dst, dp: d.dstPort, flowId: 0 };
    if (spec && this.decideRate(spec, { ...e, sid, gid: latencyEventsGid, tsUs: this.nowUs }) !== 'alert')
      return;
    const rate = this.deferred;
    this.deferred = undefined;
    this.stats.alerts++;
    this.pending.push({
      ...(rate && { rate }),
      tsUs: this.nowUs,
      sid,
      gid: latencyEventsGid,
      rev: 1,
      msg: latencyEventMsg[sid],
      action: 'alert',
      proto: protoName(d.proto),
      src: d.src,
      srcPort: d.srcPort,
      dst: d.dst,
      dstPort: d.dstPort,
      pcapCnt: this.pktNo,
      ipVersion: d.ipVersion,
    });
  }

  /** A throw out of a packet's inspection outside any rule: counted, the first 16 kept with where. */
  private packetFault(e: unknown, where = `packet ${this.pktNo}`): void {
    this.stats.packetFaults++;
    if (this.packetFaults.length < 16)
      this.packetFaults.push({ where, error: e instanceof Error ? e.message : String(e) });
  }

  private ruleFault(c: Compiled, e: unknown): void {
    this.stats.ruleFaults++;
    const key = `${c.rule.gid}:${c.rule.sid}`;
    if (this.ruleFaults.size < 64 && !this.ruleFaults.has(key))
      this.ruleFaults.set(key, `${e instanceof Error ? e.message : String(e)} (at packet ${this.pktNo})`);
  }

  /**
   * threshold / detection_filter and threshold.config's entries: whether the match alerts, is silent (no
   * alert, its action applies) or is no match (`RateDecision`). With `deferRates` the decision is left to
   * whoever merges the alerts (parallel workers: one limiter must see every worker's matches in capture
   * order); the alert made next carries what it needs (`Alert.rate`), and the action applies (an engine
   * built so refuses the rules for which that would differ: `refuseDeferredGates`).
   */
  private rateDecision(
    c: Compiled,
    e: { src: string; sp: number; dst: string; dp: number; proto: number; flowId: number },
  ): RateDecision {
    if (!c.rate) return 'alert';
    return this.decideRate(c.rate, { ...e, sid: c.rule.sid, gid: c.rule.gid, tsUs: this.nowUs });
  }

  /** `rateDecision` of an event with `spec`: decided here, or left to the merger (`this.deferred`). */
  private decideRate(spec: RateSpec, ev: RateEvent): RateDecision {
    if (this.opts.deferRates) {
      this.deferred = { spec, event: ev };
      return 'alert';
    }
    return this.rates.decide(spec, ev);
  }

  private headerMatch(c: Compiled, src: Uint8Array, sp: number, dst: Uint8Array, dp: number): boolean {
    if (c.src(src) && c.sp(sp) && c.dst(dst) && c.dp(dp)) return true;
    return c.rule.direction === '<>' && c.src(dst) && c.sp(dp) && c.dst(src) && c.dp(sp);
  }

  private flowbitsAllow(c: Compiled, f: Flow<FlowData>): boolean {
    // index loops and a count, no closure or iterator: this runs for most candidate rules of a packet
    const fbs = c.flowbits;
    for (let i = 0; i < fbs.length; i++) {
      const fb = fbs[i]!;
      if (fb.op !== 'isset' && fb.op !== 'isnotset') continue;
      let set = 0;
      const bits = f.bits;
      if (bits !== undefined) for (let j = 0; j < fb.names.length; j++) if (bits.has(fb.names[j]!)) set++;
      const all = set === fb.names.length;
      // a|b (Suricata): isset when any is set, isnotset when any is not set; a&b: all of them
      if (fb.op === 'isset' && !(fb.any ? set > 0 : all)) return false;
      if (fb.op === 'isnotset' && (fb.any ? all : set > 0)) return false;
    }
    return true;
  }

  private applyFlowbits(c: Compiled, f: Flow<FlowData>): void {
    for (const fb of c.flowbits) {
      // (unset on a flow that never set a bit has nothing to clear: no set made for it)
      if (fb.op === 'unset') for (const n of fb.names) f.bits?.delete(n);
      if (fb.op !== 'set' && fb.op !== 'toggle') continue;
      const bits = (f.bits ??= new Set());
      if (fb.op === 'set') for (const n of fb.names) bits.add(n);
      if (fb.op === 'toggle') for (const n of fb.names) bits.has(n) ? bits.delete(n) : bits.add(n);
    }
  }

  /**
   * Whether the last packet inspected was tagged: a `tag` of an alert before it covers its flow (scope
   * session) or its source or destination address (scope src, dst: the alert's source or destination),
   * and has packets, bytes and time left (Suricata's and Snort's tagging; a packet log takes these
   * packets besides those that alerted, `strata ids --log-pcap`).
   */
  tagged = false;
  /** Whether a loaded rule has a `tag` option. */
  private readonly tagRules: boolean;
  /** Tags of scope src or dst by address, oldest first (at most `tagHostsMax`). */
  private readonly tagHosts = new Map<string, TagLeft>();
  /** The flow of the packet under inspection (a session tag set by its alerts goes there). */
  private currentFlow: FlowData | undefined;

  /** Tags the packet if its flow or one of its addresses has a tag with something left. */
  private tagPacket(fd: FlowData, d: Decoded, tsUs: number): void {
    const bytes = d.payload.length;
    let tagged = false;
    if (fd.tag !== undefined) {
      if (takeTag(fd.tag, bytes, tsUs)) tagged = true;
      else fd.tag = undefined;
    }
    if (this.tagHosts.size > 0) {
      // (each host's tag takes the packet: both when both ends have one)
      const bySrc = this.takeHostTag(d.src, bytes, tsUs);
      if (this.takeHostTag(d.dst, bytes, tsUs) || bySrc) tagged = true;
    }
    if (tagged) {
      this.tagged = true;
      this.stats.packetsTagged++;
    }
  }

  /** Whether `host`'s tag covers a packet of `bytes` at `tsUs` (one that has run out is dropped). */
  private takeHostTag(host: string, bytes: number, tsUs: number): boolean {
    const t = this.tagHosts.get(host);
    if (t === undefined) return false;
    if (takeTag(t, bytes, tsUs)) return true;
    this.tagHosts.delete(host);
    return false;
  }

  /** The tags of an alert's rule, set from the next packet on (a new one replaces what is left of one). */
  private setTags(tags: TagSpec[], e: MatchEvent): void {
    for (const t of tags) {
      const left: TagLeft = {
        packets: t.packets,
        bytes: t.bytes,
        untilUs: this.nowUs + t.seconds * 1e6,
      };
      if (t.scope === 'session') {
        // (not for a flow being flushed: no packet of it follows)
        if (!this.flushing && this.currentFlow !== undefined) this.currentFlow.tag = left;
        continue;
      }
      const host = t.scope === 'src' ? e.src : e.dst;
      this.tagHosts.delete(host);
      if (this.tagHosts.size >= tagHostsMax) this.tagHosts.delete(this.tagHosts.keys().next().value!);
      this.tagHosts.set(host, left);
    }
  }

  private alert(
    c: Compiled,
    e: MatchEvent,
    /** The match's action (`actionOf`: a rate_filter may have changed the rule's). */
    action: string,
    /** A match sent to the merger only for its counts (`silentMatch`): not counted as an alert. */
    silent = false,
  ): Alert {
    const r = c.rule;
    if (!silent) this.stats.alerts++;
    if (c.tags !== undefined && !silent) this.setTags(c.tags, e);
    const a: Alert = {
      tsUs: this.nowUs,
      sid: r.sid,
      gid: r.gid,
      rev: r.rev,
      msg: r.msg,
      action,
      proto: protoName(e.proto),
      src: e.src,
      srcPort: e.sp,
      dst: e.dst,
      dstPort: e.dp,
      flowId: e.flowId,
      pcapCnt: this.pktNo,
      ipVersion: e.ipVersion,
      stream: e.stream,
    };
    if (c.classtype) a.classtype = c.classtype;
    if (c.priority !== undefined) a.priority = c.priority;
    if (this.opts.ips) a.ips = true;
    const d = this.current;
    if ((e.proto === 1 || e.proto === 58) && d !== undefined && d.proto === e.proto) {
      a.icmpType = d.icmpType;
      a.icmpCode = d.icmpCode;
    }
    if (this.deferred) {
      a.rate = this.deferred;
      this.deferred = undefined;
    }
    if (this.deferredFilter) {
      a.rateFilter = this.deferredFilter;
      this.deferredFilter = undefined;
    }
    if (silent) a.silent = true;
    return a;
  }

  /** The packet rules over one packet's own payload. */
  private runPacket(
    f: Flow<FlowData>,
    d: Decoded,
    toServer: boolean,
    inStream: boolean,
    firstInDir: boolean,
    out: Alert[],
  ): void {
    const fd = f.data!;
    let latin1: (() => string) | undefined; // made for the first rule that reaches the header steps
    const g = this.groups.groupOf(fd, toServer ? 0 : 1, d.proto);
    // a TCP packet outside a stream whose flow is not established (midstream, no handshake seen): stage 1
    // leaves out the rules that need an established flow, which would fail their flow test anyway
    const unest = d.proto === 6 && !inStream && !f.establishedForPacket;
    // a TCP packet whose data went into a stream or whose flow is not established, or a UDP packet: only
    // the patterns of the rules it consults (the same marks for them as the whole automaton's)
    this.groups.prefilterScan(
      g,
      d.payload,
      d.proto === 6
        ? inStream
          ? this.groups.kindScanner(g, ScanKind.tcpInStream, d.payload.length)
          : unest
            ? this.groups.kindScanner(g, ScanKind.tcpUnestablished, d.payload.length)
            : this.groups.groupScanner(g, d.payload.length)
        : d.proto === 17
          ? this.groups.kindScanner(g, ScanKind.udp, d.payload.length)
          : this.groups.groupScanner(g, d.payload.length),
    );
    // the filter stages this inspection passed (each counted once: EngineStats.stage*)
    this.groups.startInspection();
    let full = false;
    // stage 1: the rule kinds a packet inspection consults; a DCE/RPC rule needs a connectionless request
    // (version 4, type request)
    const dceOk = d.proto === 17 && d.payload[0] === 4 && d.payload[1] === 0;
    // (stage 1 leaves the DCE/RPC rules out of any other packet: the list is read for these only)
    if (dceOk && this.dceDatagramRules) {
      fd.dceDatagram ??= new DceDatagramDefrag();
      fd.dceDatagramNow = fd.dceDatagram.feed(d.payload);
      this.countReassembled(fd.dceDatagramNow);
      this.chargeTrackers(fd);
    }
    const key =
      ((((d.proto & 0xff) * 2 + (inStream ? 1 : 0)) * 2 + (firstInDir ? 1 : 0)) * 2 + (dceOk ? 1 : 0)) * 2 +
      (unest ? 1 : 0);
    let ctx: MatchCtx | undefined; // one for every evaluation here (matchCtx resets it)
    // visited: the candidates (stage 2 passed); the rules stage 1 admits and stage 2 spares are counted
    let flags = d.proto === 6 ? d.tcpFlags : -1;
    const alwaysKey = key * 257 + flags + 1;
    let always = g.alwaysKey === alwaysKey ? g.alwaysLast : g.packetAlways.get(alwaysKey);
    if (always) {
      g.alwaysKey = alwaysKey;
      g.alwaysLast = always;
    } else {
      // past the bound on lists (traffic made for it: every flags byte in every port group), a TCP
      // packet's list is its kind's, whatever its flags, as before the lists were per flags byte
      if (flags >= 0 && this.groups.packetAlwaysLists >= this.groups.packetAlwaysListsMax) {
        flags = -1;
        always = g.packetAlways.get(key * 257);
      }
      always ??= this.groups.packetAlways(g, key, d.proto, inStream, firstInDir, unest, dceOk, flags);
    }
    const n = this.groups.candidates(g, always.list);
    const cand = this.groups.cand;
    let end = this.passEnd(g); // after a pass matched on this packet (in its stream)
    let passed = 0;
    for (let k = 0; k < n; k++) {
      const i = cand[k]!;
      if (i >= end) break;
      const c = g.rules[i]!;
      if (!packetAdmits(c, d.proto, inStream, firstInDir, unest)) continue;
      if (c.dce && !dceOk) continue;
      if (g.fp[i]! >= 0) passed++;
      if (!this.groups.stringsPass(g, i)) continue;
      if (!this.headerMatch(c, d.srcAddr, d.srcPort, d.dstAddr, d.dstPort)) continue;
      if (c.flow) {
        if (c.flow.frag !== undefined && (c.flow.frag === 'only') !== this.rebuiltFrag) continue;
        if (!c.flow.stateless) {
          if (c.flow.established && !f.establishedForPacket) continue;
          if (c.flow.notEstablished && f.establishedForPacket) continue;
          if (c.flow.toServer && !toServer) continue;
          if (c.flow.toClient && toServer) continue;
        }
      }
      if (!this.flowbitsAllow(c, f)) continue;
      if (c.hasPayloadMatch && d.payload.length === 0) continue;
      // the header-field tests (stage 1's header filter) first, on the packet alone; the full matcher goes
      // on after them
      const hp = c.header && this.guarded(c, headerPass, c.header, d);
      if (hp === false) continue;
      ctx = matchCtx(ctx, d.payload, 0, -1, 0, d, (latin1 ??= latin1Of(d.payload)), f, this.stepBudget);
      if (hp === undefined && c.header && !this.guarded(c, matchSteps, c.header, 0, ctx, 0)) continue;
      this.stats.rulesEvaluated++;
      if (!full) {
        full = true;
        this.stats.stageFullMatcherIn++;
      }
      if (!this.guarded(c, matchSteps, c.steps, c.header?.length ?? 0, ctx, 0)) continue;
      this.applyFlowbits(c, f);
      // Suricata's action order: a pass ends the inspection of the packet; IP-only rules act on the flow
      const action = this.actionOf(c, d.src, d.srcPort, d.dst, d.dstPort, f.id);
      const pass = action === 'pass';
      if (c.noalert || (pass && !c.alertOnPass)) {
        if (this.deferredFilter !== undefined) {
          const e = { src: d.src, sp: d.srcPort, dst: d.dst, dp: d.dstPort, proto: d.proto, flowId: f.id };
          this.silentMatch(c, { ...e, ipVersion: d.ipVersion, stream: false }, out);
        }
        this.matched(c, fd, c.ipOnly !== undefined, undefined, out, action);
        if (pass) {
          end = i + 1;
          break;
        }
        continue;
      }
      const e = {
        src: d.src,
        sp: d.srcPort,
        dst: d.dst,
        dp: d.dstPort,
        proto: d.proto,
        flowId: f.id,
        ipVersion: d.ipVersion,
      };
      let a: Alert | undefined;
      const decided = this.rateDecision(c, e);
      if (decided === 'none') continue; // a detection_filter short of its count: no match, no action
      if (decided === 'alert') {
        a = this.alert(c, { ...e, stream: false }, action);
        a.payload = copyBytes(d.payload); // the capture reader's memory is not ours to keep
        a.pktSrc = 'wire/pcap';
        out.push(a);
      }
      this.matched(c, fd, c.ipOnly !== undefined, a, out, action);
      if (pass) {
        end = i + 1;
        break;
      }
    }
    // the list's marker counts as visited when the loop got past it
    if (always.marker >= 0 && always.marker < end) this.groups.stringsPass(g, always.marker);
    let pre = consultedOf(g, key);
    if (!pre)
      pre = this.groups.consultedPrefix(g, key, (c) =>
        !packetAdmits(c, d.proto, inStream, firstInDir, unest) ? 0 : c.dce && !dceOk ? 1 : 2,
      );
    if (pre[2 * end]! > 0) this.stats.stagePortGroupOut++;
    this.stats.rulesPrefiltered += pre[2 * end + 1]! - passed;
  }
}

/**
 * An engine that leaves its rate decisions to a merger (`deferRates`: a worker) applies a match's action at
 * once, while a detection_filter, or a threshold or both short of its count, makes the match none at all
 * (`RateDecision`): for a rule whose action matters there (drop, sdrop and reject with IPS; a pass that
 * alerts) the workers would act where one engine does not. Such rules are refused, naming the first. So are
 * rules under a threshold.config rate_filter whose action the worker would need at once: with IPS any (the
 * new action decides the packet), without it a pass on either side (a pass cuts the packet's later rules).
 */
function refuseDeferredGates(compiled: readonly Compiled[], ips: boolean): void {
  for (const c of compiled) {
    const a = c.rule.action;
    const fs = c.rateFilters;
    if (fs !== undefined && (ips || a === 'pass' || fs.some((f) => f.newAction === 'pass')))
      throw new Error(
        `rule ${c.rule.gid}:${c.rule.sid}: ${ips ? 'a rule under a rate_filter needs one engine with IPS' : 'a rate_filter from or to pass needs one engine'}: a worker acts before the count, which spans flows other workers hold, is decided (run without --workers)`,
      );
    const acts =
      (ips && (a === 'drop' || a === 'sdrop' || rejectTargetOf(a) !== undefined)) ||
      (a === 'pass' && c.alertOnPass);
    if (!acts || c.noalert) continue;
    for (let s = c.rate; s !== undefined; s = s.next) {
      if (s.type !== 'detection_filter' && s.type !== 'threshold' && s.type !== 'both') continue;
      const what = s.type === 'detection_filter' ? 'detection_filter' : `${s.kind} (type ${s.type})`;
      throw new Error(
        `rule ${c.rule.gid}:${c.rule.sid}: a ${a} rule whose ${what} can hold a match back needs one engine${ips ? ' with IPS' : ''}: a worker acts before the count is decided (run without --workers)`,
      );
    }
  }
}

function protoName(p: number): string {
  return p === 6 ? 'TCP' : p === 17 ? 'UDP' : p === 1 ? 'ICMP' : p === 58 ? 'IPV6-ICMP' : String(p);
}

/**
 * An HTTP or mail rule's step groups, each over its buffer from the start (a buffer switch resets the
 * cursor). `texts`: the buffers' latin1 closures, one per buffer for every rule run on the message (so
 * they share the text and `firstMatches`).
 */
function matchGroups(
  h: HttpRule,
  buffer: (id: string) => Uint8Array,
  f: Flow<FlowData>,
  texts: Map<Uint8Array, () => string>,
  budget: number,
): boolean {
  const vars = new Map<string, number>();
  const shared = { left: budget };
  for (const g of h.groups) {
    const payload = buffer(g.buffer);
    let latin1 = texts.get(payload);
    if (!latin1) texts.set(payload, (latin1 = latin1Of(payload)));
    const ctx: MatchCtx = {
      payload,
      anchor: 0,
      minEnd: -1,
      firstFrom: 0,
      d: undefined,
      latin1,
      end: 0,
      vars,
      flow: f,
      budget: shared,
    };
    if (!matchSteps(g.steps, 0, ctx, 0)) return false;
  }
  return true;
}
