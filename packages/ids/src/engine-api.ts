/**
 * What the detection engine (`detect.ts`) takes and gives: its options with their defaults and checks, its
 * alerts, its verdict on a packet, its counters, and its rule latency and profile records.
 */

import type { ClassificationEntry } from './classification.js';
import type { ExceptionPolicyOptions } from './exception-policy.js';
import type { FlowTimeouts } from './flow.js';
import type { HttpOptions } from './http.js';
import type { MailOptions } from './mail.js';
import type { MimeOptions } from './mime.js';
import type { RejectTarget } from './reject.js';
import type { OverlapPolicy } from './stream.js';
import type { RateEvent, RateFilterSpec, RateSpec } from './threshold.js';
import type { ThresholdEntry } from './threshold-config.js';

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
  flowId?: number;
  /** 1-based number (in the capture) of the packet being inspected when the alert was raised. */
  pcapCnt?: number;
  ipVersion?: 4 | 6;
  /** An ICMP or ICMPv6 packet's type and code (its alerts have no ports: srcPort and dstPort are 0). */
  icmpType?: number;
  icmpCode?: number;
  /** Raised on reassembled stream data (not one packet's payload). */
  stream?: boolean;
  /** The bytes inspected: the packet's payload, or the newly delivered stream bytes. */
  payload?: Uint8Array;
  /** Stream bytes missing right before `payload`. */
  gapBytes?: number;
  /** The captured frame (packet alerts; set by the Pipeline) and its link type. */
  packet?: Uint8Array;
  linkType?: number;
  /** Suricata's pkt_src: `wire/pcap`, or `stream (flow timeout)` for data flushed when a flow ended. */
  pktSrc?: string;
  /** With `deferRates`: the threshold / detection_filter decision still to take (see `RateLimiter`). */
  rate?: { spec: RateSpec; event: RateEvent };
  /**
   * With `deferRates` (IDS only): the threshold.config rate_filters over the rule, still to count this match
   * (`RateLimiter.rateFilterAction`); the action they give replaces `action`.
   */
  rateFilter?: { filters: RateFilterSpec[]; event: RateEvent };
  /**
   * With `deferRates`: a match the merger counts (its `rate` and `rateFilter`) but does not report: a
   * noalert rule's match under a rate_filter, or an alert a pass on the packet took back after its counts.
   */
  silent?: true;
  /**
   * With `deferRates`, an alert of the end-of-input flush: its flow's last packet time and first packet
   * number, the order one engine flushes flows in (the merger sorts the workers' flushes by it).
   */
  flushOrder?: [number, number];
  /**
   * With `deferRates`, an alert of a flow that timed out (flushed by the sweep before a packet, its own
   * worker's or another's: `Engine.tick`): its flow's timeout class, last packet time and first packet
   * number, the order one engine's sweep flushes flows in before the packet's own alerts (the merger
   * sorts the workers' alerts of one packet by it).
   */
  timedOut?: [number, number, number];
  /** Raised by an engine in IPS mode (`EngineOptions.ips`), where a drop rule's action drops the packet. */
  ips?: true;
}

export interface EngineOptions {
  vars?: Record<string, string>;
  /**
   * Classes of classification.config files (`parseClassificationConfig`), added to the built-in ones (a
   * class of the same name replaces the built-in one; a later entry an earlier one). A rule whose
   * `classtype:` is in neither is refused (not loaded), as Snort 3 refuses it.
   */
  classifications?: ClassificationEntry[];
  /**
   * threshold.config entries (`parseThresholdConfig`): suppress and event_filter per gid:sid, applied
   * where a rule's matches become alerts (see threshold-config.ts for how they combine with a rule's own
   * threshold and detection_filter). A suppress ip naming a variable undefined in `vars` makes the
   * engine's construction throw.
   */
  thresholdConfig?: ThresholdEntry[];
  /**
   * The multi-string prefilter (default on): rules whose fast pattern does not occur in the inspected
   * bytes are not evaluated. Off: every rule whose header matches runs the full matcher (for comparison).
   */
  prefilter?: boolean;
  /**
   * The all-strings check (stage 3, default off): a rule whose fast pattern occurs goes on only if each of
   * its other positive contents occurs too, all found by the prefilter's one scan. Off by default: on the
   * community rules it puts every content in the automaton, and the bigger scan cost more CPU on the
   * shared traces than the full-matcher work it spared (see the README).
   */
  allStrings?: boolean;
  /**
   * Port groups (default on): a flow direction consults only the rules whose protocol and ports admit
   * it, with a prefilter over their patterns alone. Off: every rule, one prefilter (for comparison).
   */
  portGroups?: boolean;
  /** Port groups built at most (default `portGroupsMax`); past it a new flow direction consults every rule. */
  portGroupsMax?: number;
  /** Pick up TCP sessions without a handshake (Suricata stream.midstream). */
  midstream?: boolean;
  /** Accept TCP sessions seen in one direction only (Suricata stream.async-oneside). */
  asyncOneside?: boolean;
  /**
   * One flow per 5-tuple whatever its VLAN ids (Snort 3's `packets.vlan_agnostic`, Suricata's
   * `vlan.use-for-tracking: false`); by default the first three tell flows apart (`FlowOptions`).
   */
  vlanAgnostic?: boolean;
  /**
   * One flow per 5-tuple whatever the tunnel depth of its packets (Snort 3's flow key holds none); by
   * default the encapsulations undone to reach a packet tell flows apart, as Suricata's recursion level
   * does (`FlowOptions`).
   */
  tunnelAgnostic?: boolean;
  /** Bound on tracked flows (default 65,536). */
  flowsMax?: number;
  flowTimeouts?: Partial<FlowTimeouts>;
  /** Which copy of overlapping TCP data counts (default windows, as Suricata's default host-os-policy). */
  overlapPolicy?: OverlapPolicy;
  /** Per receiving host: policy name -> address specs (Suricata's host-os-policy); first match wins. */
  hostOsPolicy?: Partial<Record<OverlapPolicy, string[]>>;
  /** Bytes of each stream direction reassembled at most (default 1 MiB; 0: no limit, as Suricata's). */
  reassemblyDepthBytes?: number;
  /** Bytes buffered (pending + out of order) per stream direction at most (default 256 KiB). */
  streamBufferBytesMax?: number;
  /** Bytes of stream buffers and windows for all flows together at most (default 64 MiB). */
  reassemblyMemcapBytes?: number;
  /**
   * With `streamRelease: 'ack'`: acknowledged stream data is inspected once this many bytes are ready
   * (default 2,560, Suricata's raw chunk size), when the session closes, or when the flow ends.
   */
  streamChunkBytes?: number;
  /**
   * Leave threshold / detection_filter, and (without `ips`) threshold.config's rate_filter, to the caller:
   * alerts carry `rate` and `rateFilter`, and some are `silent` (parallel workers' merger).
   */
  deferRates?: boolean;
  /** HTTP body bounds (bytes kept per message, decompressed bytes). */
  http?: HttpOptions;
  /** Mail bounds (bytes kept per message, decoded bytes kept per MIME part). */
  mail?: MailOptions & MimeOptions;
  /** Which actions' rules are inspected first (Suricata's action-order; default pass, drop, reject, alert). */
  actionOrder?: string[];
  /**
   * When reassembled data is inspected: `ack` (default without `ips`) once the receiver acknowledges it, so
   * later overlaps are resolved first; `immediate` (inline, Pigasus' fast path; the default with `ips`) as
   * soon as it is in order.
   */
  streamRelease?: 'ack' | 'immediate';
  /**
   * Prevention (Suricata's IPS mode, `--simulate-ips`): a matching drop or reject rule drops the packet
   * (`Engine.verdict`) and, when its action applies to the flow, the rest of the flow; TCP overlaps keep
   * the first copy and a packet whose bytes differ from it is rewritten to it (inline normalization), and
   * a retransmitted packet's bytes are inspected again in the stream.
   */
  ips?: boolean;
  /**
   * Suricata's exception policies (`exception-policy.ts`): what to do when the reassembly memcap is hit, a
   * TCP session is picked up midstream, an HTTP or TLS direction stops on input it cannot parse, or a
   * fragment does not fit the defragmenter (the Pipeline's); `all` for every one. Default: ignore each.
   */
  exceptionPolicy?: ExceptionPolicyOptions;
  /**
   * A pcre exec that backtracks more than this many times fails, as PCRE's match limit makes it (Snort's
   * `pcre_match_limit`, Suricata's `pcre.match-limit`); default `pcreBacktracksMaxDefault`, 0 for no
   * bound. V8 counts backtracks, not the steps of a greedy or lazy loop over a character class, so the
   * bound ends the exponential cases at once but leaves a pattern such as `[^&]+&...$` quadratic in its
   * buffer (see the README's "A bound on pcre backtracking").
   */
  pcreBacktracksMax?: number;
  /**
   * A pcre with a backreference runs in `StepBoundedRegExp` (steps.ts), and one whose loops can make V8
   * polynomial does over a buffer longer than `pcreShortMax`, with a budget of this many steps per byte of
   * its buffer (at least `pcreStepsMin`) for one exec: every instruction, every character a loop takes or a
   * backreference compares, every backtrack. An exec past it fails, counted in `EngineStats.pcreStepLimits`,
   * as PCRE's match limit fails one; so such a pcre costs time linear in its buffer, where V8's RegExp takes
   * quadratic time on some (see the README's "A bound on pcre steps"). Default `pcreStepsPerByteDefault`;
   * 0: they run in V8's RegExp as the others do.
   */
  pcreStepsPerByte?: number;
  /**
   * Rule latency (Snort 3's `latency.rule`; off by default, as there): each rule evaluation is timed, one
   * that takes more than `maxUs` microseconds is a timeout, and with `suspend` a rule that has timed out
   * `suspendThreshold` times (default 5) is not evaluated (no match) for `maxSuspendMs` milliseconds
   * (default 30,000; 0: for the rest of the run), its count starting again after. An evaluation is never
   * cut short (V8 cannot stop a RegExp), so this bounds what a rule built against costs over many packets,
   * not over one. Time is the machine's: with it on, alerts depend on how fast the host runs.
   */
  ruleLatency?: RuleLatencyOptions;
  /**
   * Packet latency (Snort 3's `latency.packet`; off by default): a packet whose detection (its own rules,
   * the stream data and HTTP or mail messages it releases) has run more than `maxUs` microseconds when a
   * rule is about to be evaluated is a timeout (`EngineStats.packetTimeouts`), and with `fastpath` no more
   * rules are evaluated for it (`packetsFastpathed`); its flow, reassembly and HTTP state go on as usual.
   * The end-of-input flush is not bounded. With `fastpath`, alerts depend on how fast the host runs.
   */
  packetLatency?: PacketLatencyOptions;
  /**
   * Rule profiling (Snort 3's `profiler.rules`; off by default): each rule evaluation is timed and summed
   * per rule (`Engine.ruleProfile`: evaluations, total and slowest time), to find the rules a rule set
   * spends its time in. Costs two clock readings an evaluation.
   */
  profileRules?: boolean;
  /**
   * Step evaluations one rule may make over one inspected buffer (its content, pcre and other steps tried
   * from each match of the steps before them); past it the rule does not match. Suricata's
   * `detect.inspection-recursion-limit`, whose default this is; 0 for no bound.
   */
  inspectionRecursionMax?: number;
}

/**
 * Step evaluations a rule makes at most over an inspected buffer, by default (Suricata's default
 * `inspection-recursion-limit`, 3,000). A rule of relative contents tries each later match of a content
 * after each match of the one before it: five unanchored ones over a payload of a thousand matches of the
 * first four and none of the fifth is of the order of 10^12 tries.
 */
export const inspectionRecursionMaxDefault = 3000;

/** The verdict on the packet `Engine.inspect` looked at last. */
export interface PacketVerdict {
  /** Dropped (IPS): by a drop/reject rule, or its flow was dropped before. */
  drop: boolean;
  /** Inline normalization: the payload as passed on, when it differs from the captured one. */
  payload: Uint8Array | undefined;
  /** A reject rule matched (IPS): besides the drop, a reset or ICMP unreachable goes out (`rejectFrames`). */
  reject: boolean;
  /** With `reject`: to whom (`reject`/`rejectsrc` the sender, `rejectdst` the destination; both when both matched). */
  rejectTo: RejectTarget;
}

/** Bytes of acknowledged stream data inspected at once at least (Suricata's toserver/toclient-chunk-size). */
export const defaultStreamChunkBytes = 2560;

/** Suricata's default action-order: a matching pass rule ends the inspection before any alert. */
export const defaultActionOrder = ['pass', 'drop', 'reject', 'alert'];

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
  // Snort 3's snort_defaults.lua (Suricata's yaml has no SIP servers): the SIP rules need it
  SIP_SERVERS: '$HOME_NET',
};

/** One rule's line in a profile (`Engine.ruleProfile`). */
export interface RuleProfileRow {
  rule: string;
  checks: number;
  totalUs: number;
  maxUs: number;
}

/** See `EngineOptions.ruleLatency`. */
export interface RuleLatencyOptions {
  maxUs: number;
  suspend?: boolean;
  suspendThreshold?: number;
  maxSuspendMs?: number;
  /** Raise an alert when a rule is suspended (gid 134 sid 1) and re-enabled (sid 2), as Snort 3's `action alert`. */
  alert?: boolean;
}

/** See `EngineOptions.packetLatency`. */
export interface PacketLatencyOptions {
  maxUs: number;
  fastpath?: boolean;
  /** Raise an alert on each packet fastpathed (gid 134 sid 3), as Snort 3's `action alert`. */
  alert?: boolean;
}

const whole = (n: unknown, min: number) => typeof n === 'number' && Number.isSafeInteger(n) && n >= min;

/**
 * The engine's numeric and named options checked (the latencies, `inspectionRecursionMax`, `flowsMax` and
 * the flow timeouts are checked where they are read). Unchecked, NaN as a bound meant no bound (the
 * reassembly memcap, a prefilter's port groups refused to every flow), a negative or fractional one cut
 * streams short, and a bad pcre bound skipped every pcre rule as "backtracksMax must be a positive
 * integer": alerts went missing without a word.
 */
export function checkEngineOptions(o: EngineOptions): void {
  if (typeof o !== 'object' || o === null)
    throw new TypeError(`Engine: expected options as an object, got ${String(o)}`);
  const counts: [string, unknown, number, string][] = [
    ['portGroupsMax', o.portGroupsMax, 0, 'port groups'],
    ['reassemblyDepthBytes', o.reassemblyDepthBytes, 0, 'bytes (0: no limit)'],
    ['streamBufferBytesMax', o.streamBufferBytesMax, 1, 'bytes'],
    ['reassemblyMemcapBytes', o.reassemblyMemcapBytes, 1, 'bytes'],
    ['streamChunkBytes', o.streamChunkBytes, 0, 'bytes'],
    ['pcreBacktracksMax', o.pcreBacktracksMax, 0, 'backtracks (0: no bound)'],
    ['pcreStepsPerByte', o.pcreStepsPerByte, 0, 'steps (0: V8 alone)'],
    ['http.bodyBytesMax', o.http?.bodyBytesMax, 0, 'bytes'],
    ['http.decompressedBytesMax', o.http?.decompressedBytesMax, 0, 'bytes'],
    ['mail.messageBytesMax', o.mail?.messageBytesMax, 0, 'bytes'],
    ['mail.partBytesMax', o.mail?.partBytesMax, 0, 'bytes'],
  ];
  for (const [name, v, min, unit] of counts)
    if (v !== undefined && !whole(v, min))
      throw new RangeError(`${name}: a whole number of ${unit} from ${min}, got ${String(v)}`);
  if (o.streamRelease !== undefined && o.streamRelease !== 'ack' && o.streamRelease !== 'immediate')
    throw new RangeError(`streamRelease: 'ack' or 'immediate', got ${String(o.streamRelease)}`);
  if (
    o.actionOrder !== undefined &&
    !(Array.isArray(o.actionOrder) && o.actionOrder.every((a) => typeof a === 'string'))
  )
    throw new TypeError(`actionOrder: an array of action names, got ${String(o.actionOrder)}`);
  if (o.classifications !== undefined && !Array.isArray(o.classifications))
    throw new TypeError('classifications: an array of entries (parseClassificationConfig)');
  if (o.thresholdConfig !== undefined && !Array.isArray(o.thresholdConfig))
    throw new TypeError('thresholdConfig: an array of entries (parseThresholdConfig)');
}

/** Packet latency's settings checked; undefined when off (no options, or maxUs 0). */
export function packetLatencyOf(
  o: PacketLatencyOptions | undefined,
): Required<PacketLatencyOptions> | undefined {
  if (o === undefined) return undefined;
  if (typeof o !== 'object' || o === null)
    throw new TypeError(`packetLatency: expected { maxUs, fastpath? }, got ${String(o)}`);
  const { maxUs, fastpath = false, alert = false } = o;
  if (!whole(maxUs, 0))
    throw new RangeError(`packetLatency.maxUs: a whole number of microseconds, got ${maxUs}`);
  if (typeof fastpath !== 'boolean')
    throw new TypeError(`packetLatency.fastpath: true or false, got ${fastpath}`);
  if (typeof alert !== 'boolean') throw new TypeError(`packetLatency.alert: true or false, got ${alert}`);
  return maxUs === 0 ? undefined : { maxUs, fastpath, alert };
}

/** Rule latency's settings checked, with Snort 3's defaults; undefined when off (no options, or maxUs 0). */
export function ruleLatencyOf(
  o: RuleLatencyOptions | undefined,
): { maxUs: number; suspend: boolean; threshold: number; maxSuspendMs: number; alert: boolean } | undefined {
  if (o === undefined) return undefined;
  if (typeof o !== 'object' || o === null)
    throw new TypeError(
      `ruleLatency: expected { maxUs, suspend?, suspendThreshold?, maxSuspendMs? }, got ${String(o)}`,
    );
  const { maxUs, suspend = false, suspendThreshold = 5, maxSuspendMs = 30_000, alert = false } = o;
  if (!whole(maxUs, 0))
    throw new RangeError(`ruleLatency.maxUs: a whole number of microseconds, got ${maxUs}`);
  if (typeof suspend !== 'boolean') throw new TypeError(`ruleLatency.suspend: true or false, got ${suspend}`);
  if (!whole(suspendThreshold, 1))
    throw new RangeError(`ruleLatency.suspendThreshold: a whole number from 1, got ${suspendThreshold}`);
  if (!whole(maxSuspendMs, 0))
    throw new RangeError(`ruleLatency.maxSuspendMs: a whole number of milliseconds, got ${maxSuspendMs}`);
  if (typeof alert !== 'boolean') throw new TypeError(`ruleLatency.alert: true or false, got ${alert}`);
  return maxUs === 0 ? undefined : { maxUs, suspend, threshold: suspendThreshold, maxSuspendMs, alert };
}

/** One rule's record under `EngineOptions.ruleLatency` (`Engine.ruleLatency`). */
export interface RuleLatencyRecord {
  timeouts: number;
  suspensions: number;
  /** Its slowest evaluation, microseconds. */
  slowestUs: number;
}

export interface EngineStats {
  packets: number;
  inspected: number;
  alerts: number;
  /**
   * Matches whose alert a threshold.config suppress entry held back, and those a threshold,
   * detection_filter or event_filter held back (`RateLimiter.countInto`; with `deferRates` the merger's).
   */
  alertsSuppressed?: number;
  alertsRateFiltered?: number;
  /** Matches whose action a threshold.config rate_filter changed (`RateLimiter.rateFilterAction`). */
  actionsRateFiltered?: number;
  rulesEvaluated: number;
  /**
   * Rule evaluations that threw (a fault of the engine's, not of the traffic): each counted as no match, the
   * rule named in `Engine.ruleFaults`; the run goes on (one such rule failed whole runs).
   */
  ruleFaults: number;
  /**
   * Packet inspections that threw outside any rule (the flow table, reassembly, a parser: a fault of the
   * engine's): the packet's inspection ends there, the run goes on; the first ones in `Engine.packetFaults`.
   */
  packetFaults: number;
  /** Execs in the step machine that ran out of steps (`EngineOptions.pcreStepsPerByte`): no match. */
  pcreStepLimits: number;
  /** With `EngineOptions.ruleLatency`: rule evaluations timed, over `maxUs`, suspensions, re-enables. */
  ruleEvalsTimed: number;
  ruleEvalTimeouts: number;
  ruleSuspensions: number;
  ruleReenables: number;
  /** With `EngineOptions.packetLatency`: packets over `maxUs` when a rule was next due, and those fastpathed. */
  packetTimeouts: number;
  packetsFastpathed: number;
  /** TCP segments with payload by what the reassembler did with them. */
  segmentsInOrder: number;
  segmentsOutOfOrder: number;
  segmentsRetransmitted: number;
  segmentsDropped: number;
  /** Overlaps where the copies differed (the policy decided). */
  overlapsDifferent: number;
  /** Stream bytes handed to the stream rules. */
  streamBytes: number;
  streamDeliveries: number;
  /** Packets with a bad IP or TCP/UDP checksum (when validated). */
  badChecksums: number;
  /** HTTP messages parsed (header sections) and HTTP rule evaluations. */
  httpRequests: number;
  httpResponses: number;
  httpRulesEvaluated: number;
  /**
   * HTTP rules the per-buffer prefilter spared, not visited as their fast pattern was not in its buffer (a
   * buffer no rule keyed on it admits by header is not scanned: its rules count here too); up to where the
   * message's rules end (a pass). Also counted in `rulesPrefiltered`.
   */
  httpRulesPrefiltered: number;
  /** Mail messages found (SMTP, POP3, IMAP), their MIME leaf parts, and mail rule evaluations. */
  mailMessages: number;
  mailParts: number;
  mailRulesEvaluated: number;
  /** DCE/RPC calls sent in fragments and reassembled (over TCP and UDP; a stub at its bound counts too). */
  dceCallsReassembled: number;
  /** DCE/RPC requests found in SMB named pipes (ports 139 and 445; reassembled calls included). */
  dceSmbRequests: number;
  /** Rule evaluations the prefilter spared (their fast pattern was not in the bytes). */
  rulesPrefiltered: number;
  /** IPS: packets dropped, those rewritten by inline normalization, flows dropped; flows passed by a pass rule. */
  packetsDropped: number;
  packetsRewritten: number;
  flowsDropped: number;
  flowsPassed: number;
  /**
   * Sessions picked up midstream (`midstream`) turned around at their first stream bytes: the ports had
   * made the server the client, and an HTTP response came to_server or a request to_client (Suricata's
   * flow reversal after protocol detection).
   */
  flowsReversed: number;
  /** Packets tagged by the `tag` option of a rule that alerted before them (`Engine.tagged`). */
  packetsTagged: number;
  /** Port groups built (distinct sets of rules that flows consult). */
  portGroups: number;
  /** Flow directions that consulted every rule because a new group would pass `portGroupsMax`. */
  portGroupsRefused: number;
  /**
   * The filter stages, per inspection (a packet's own payload, or a stream chunk): inspections, those whose
   * port group holds a rule of the kind inspected (stage 1 out), those where a rule passed the prefilter
   * (stage 2 out), those where a rule had every one of its contents present (stage 3 out), and those where
   * a rule reached the full matcher (after addresses, header fields, flow and flowbits: stage 4 in).
   */
  stageInspections: number;
  stagePortGroupOut: number;
  stagePrefilterOut: number;
  stageAllStringsOut: number;
  stageFullMatcherIn: number;
  /** Rule evaluations the all-strings check spared (a content other than the fast pattern was absent). */
  rulesAllStringsFiltered: number;
  /**
   * Exception policies applied (`EngineOptions.exceptionPolicy`, not counted when the policy is ignore), by
   * exception: Suricata's exception_policy.tcp.reassembly, .tcp.midstream, .app_layer.error and
   * .defrag.memcap counters. The defragmenter's are the Pipeline's (its reader's).
   */
  exceptionReassemblyMemcap: number;
  exceptionMidstream: number;
  exceptionAppLayerError: number;
  exceptionDefragMemcap: number;
}
