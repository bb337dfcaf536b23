/** Running a capture through the engine: decode every packet, inspect it, collect alerts and stats. */

import { createReadStream, createWriteStream, openSync, type WriteStream } from 'node:fs';
import { compileFilter, type PacketFilter } from './bpf.js';
import { threadCpuMs } from './cpu.js';
import { type Decoded, type DecodeFailure, decodeInto, newDecodeStats, PacketRecord } from './decode.js';
import { Defragmenter, type DefragOptions, type DefragStats } from './defrag.js';
import { Engine, zeroCounts } from './detect.js';
import type { Alert, EngineOptions, EngineStats, RuleLatencyRecord, RuleProfileRow } from './engine-api.js';
import type { FlowTableStats } from './flow.js';
import type { HttpAnomalies } from './http.js';
import {
  dateUsMax,
  type Packet,
  PcapWriter,
  readCaptureBatchesToCut,
  type TruncatedCaptureError,
} from './pcap.js';
import { rejectFrames } from './reject.js';
import { parseRuleText, type Rule } from './rules.js';
import { copyBytes } from './stream.js';

export interface RunResult {
  alerts: Alert[];
  packets: number;
  bytes: number;
  seconds: number;
  /**
   * Where the capture ended inside a record (its writer stopped mid-record): the packets before it were
   * inspected and their alerts are here.
   */
  truncated?: string;
  /**
   * CPU seconds of this thread in the packet loop (from the first packet read to the end, without building
   * the engine: what Snort's packet-loop timer counts); undefined where thread CPU time is not available.
   */
  loopCpuSeconds?: number;
  decodeFailures: number;
  /** Packets decoded through an encapsulation (tunnels: `Decoded.tunnels`). */
  tunneled: number;
  /** With a capture filter (`filter`): the packets it refused (not inspected). */
  packetsFiltered?: number;
  /**
   * Link types of packets the decoder does not know (none inspected: their alerts are missing), and how many
   * such packets; absent when there were none.
   */
  unsupportedLinks?: UnsupportedLinks;
  rulesLoaded: number;
  rulesSkipped: { sid: number; reason: string }[];
  /** What the configuration holds that does nothing (`Engine.warnings`: a threshold.config entry for no rule). */
  warnings: string[];
  errors: string[];
  stats: EngineStats;
  flows: FlowTableStats;
  defrag: DefragStats | undefined;
  /** Most bytes held by stream reassembly at once. */
  reassemblyPeakBytes: number;
  /** Malformed HTTP input by reason. */
  httpAnomalies: HttpAnomalies;
  /** Rules whose evaluation threw (`Engine.ruleFaults`: counted as no match), with the first error. */
  ruleFaults: { rule: string; error: string }[];
  /** Inspections that threw outside any rule (`Engine.packetFaults`), the first ones. */
  packetFaults: { where: string; error: string }[];
  /** With `profileRules`: each rule evaluated, the most total time first (`Engine.ruleProfile`). */
  ruleProfile: RuleProfileRow[];
  /** With `ruleLatency`: the rules that timed out (`Engine.ruleLatency`), slowest first. */
  ruleLatency: ({ rule: string } & RuleLatencyRecord)[];
  /**
   * IPS (`ips`): packets passed on (written to `out` when given) and dropped, and the resets and ICMP
   * unreachables sent back for reject rules (written to `out` after the packet they answer).
   */
  verdicts?: { passed: number; dropped: number; responses: number };
  /** With `logPcap`: the packets the packet log took (`PacketLog`). */
  packetsLogged?: number;
}

/** Packets of link types the decoder does not know (`RunResult.unsupportedLinks`). */
export interface UnsupportedLinks {
  linkTypes: number[];
  packets: number;
}

/** What becomes of the last packet pushed into a `Pipeline`. */
export interface Verdict {
  /** Dropped (IPS): a drop/reject rule matched it, or its flow was dropped. */
  drop: boolean;
  /** The frame passed on: the captured one, or a copy rewritten by inline normalization. */
  frame: Uint8Array;
  /** Frames sent back for a reject rule (a TCP reset or an ICMP unreachable to the sender), if any. */
  responses: Uint8Array[];
}

/**
 * Parses rule text (`parseRuleText`: comments skipped, `\` continuations joined); every syntax error is
 * collected with file:line:column. (It split on every newline: a rule continued with `\` was two errors.)
 */
export function loadRules(text: string, file: string): { rules: Rule[]; errors: string[] } {
  const { rules, errors } = parseRuleText(text, file);
  return { rules, errors: errors.map((e) => e.message) };
}

/** A packet ready for the engine (see `Pipeline.prepare`). */
export interface PreparedPacket {
  d: Decoded;
  /** 1-based number in the capture. */
  n: number;
  tsUs: number;
  /** The captured frame (or the rebuilt datagram behind its link header), for alerts. */
  frame: Uint8Array;
  linkType: number;
  /** A datagram rebuilt from fragments (raw IP), when it was. */
  whole: Uint8Array | undefined;
  /** The encapsulations its fragments came through (`whole`'s own counted in `d.tunnels` on top), else 0. */
  wholeTunnels?: number;
  checksumOk: boolean;
  /**
   * The transport checksum is still to be checked (`Pipeline.checksumsLater`): `checksumOk` says only
   * whether the IP header's is right, and whoever inspects the packet decodes it again with the checksum.
   */
  checksumLater?: boolean;
}

/**
 * Runs a prepared packet through an engine; packet alerts get the frame they were raised on (in IPS mode,
 * stream alerts too: the packet that completed the match, as Suricata logs it inline), as passed on.
 */
export function inspectPrepared(engine: Engine, x: PreparedPacket): Alert[] {
  const alerts = engine.inspect(x.d, x.tsUs, x.n, x.checksumOk, x.whole !== undefined);
  const norm = engine.verdict.payload;
  if (norm) {
    const f = rewritePayload(x.frame, x.d, norm);
    if (f) x.frame = f;
  }
  const ips = engine.opts.ips === true;
  for (const a of alerts)
    if (a.pcapCnt === x.n && (!a.stream || (ips && a.pktSrc === 'wire/pcap')) && a.silent === undefined) {
      a.packet = copyBytes(x.frame);
      a.linkType = x.linkType;
    }
  return alerts;
}

/**
 * A copy of `frame` with the TCP payload of `d` (a view into it) replaced by `payload` and the TCP
 * checksum updated to match (RFC 1624, so a checksum that was wrong stays wrong by as much); undefined
 * when the payload is not in the frame (a datagram rebuilt from fragments) or is tunneled (an outer
 * UDP or GRE checksum over it would no longer hold): the frame then goes on as sent.
 */
export function rewritePayload(frame: Uint8Array, d: Decoded, payload: Uint8Array): Uint8Array | undefined {
  if (d.tunnels > 0) return undefined;
  const at = d.payload.byteOffset - frame.byteOffset;
  if (d.payload.buffer !== frame.buffer || at < 0 || at + payload.length > frame.length) return undefined;
  if (payload.length !== d.payload.length) return undefined;
  const out = copyBytes(frame);
  let sum = 0;
  const ck = d.l4Offset !== undefined ? d.l4Offset + 16 : -1;
  if (ck >= 0 && ck + 2 <= at) sum = ~((out[ck]! << 8) | out[ck + 1]!) & 0xffff;
  // the payload starts at an even offset from the TCP header (its length is a multiple of 4)
  for (let i = 0; i < payload.length; i += 2) {
    const old = (out[at + i]! << 8) | (i + 1 < payload.length ? out[at + i + 1]! : 0);
    const now = (payload[i]! << 8) | (i + 1 < payload.length ? payload[i + 1]! : 0);
    sum += (~old & 0xffff) + now;
  }
  out.set(payload, at);
  if (ck >= 0 && ck + 2 <= at) {
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    const c = ~sum & 0xffff;
    out[ck] = c >>> 8;
    out[ck + 1] = c & 0xff;
  }
  return out;
}

/** The responses of a packet that drew none (shared, never changed). */
const noResponses = Object.freeze([]) as unknown as Uint8Array[];
/** The frame of a verdict and a prepared packet before the first packet (nothing is written into it). */
const noFrame = new Uint8Array(0);

/** Bytes of a capture read at a time (fewer, larger reads than the stream default of 64 KiB). */
export const captureReadBytes = 1024 * 1024;

/** Unknown link types a Pipeline names at most (a capture of many interfaces may have as many). */
const unknownLinkTypesMax = 16;

/** Packets `validateChecksums: 'auto'` looks at before it decides. */
export const checksumSamplePackets = 1000;

export type PipelineOptions = EngineOptions & {
  /**
   * Checksum validation (default on). `auto` as Suricata's pcap checksum-checks: validation is turned off
   * when more than 10% of the first 1,000 packets fail it (checksum offloading on the capturing host).
   */
  validateChecksums?: boolean | 'auto';
  /** IP defragmentation (default on; an object sets its bounds). */
  defrag?: boolean | DefragOptions;
  /**
   * A capture filter in the pcap-filter language (`compileFilter`, bpf.ts: `tcp port 80 and not host
   * 10.0.0.1`): a packet it refuses is not inspected (with IPS, passed on as captured), counted in
   * `Pipeline.filtered`. Fragments are tested as the datagram they rebuild.
   */
  filter?: string;
};

export type RunOptions = PipelineOptions & {
  /** With `ips`: the packets passed on (rewritten where inline normalization changed them) go to this pcap. */
  out?: string;
  /** The packet log: the packets that raised an alert or that a `tag` covers go to this pcap (`PacketLog`). */
  logPcap?: string;
};

/**
 * The Pipeline's verdict and prepared packet are made by constructors, not object literals: V8 made the
 * second object of a literal from its boilerplate, which generalized the type of every field holding an
 * object (the frame, the responses, the record), and that deoptimized the packet path optimized on the
 * first engine's Pipeline (push, prepare, inspectPrepared) as soon as a second one was built.
 */
class VerdictRecord implements Verdict {
  drop = false;
  frame: Uint8Array = noFrame;
  responses: Uint8Array[] = noResponses;
}

class PreparedRecord implements PreparedPacket {
  n = 0;
  /** A double from the start (-0): a capture's microseconds are past the small integers (PacketRecord.seq). */
  tsUs = -0;
  frame: Uint8Array = noFrame;
  linkType = 0;
  whole: Uint8Array | undefined = undefined;
  wholeTunnels = 0;
  checksumOk = true;
  checksumLater = false;
  constructor(public d: Decoded) {}
}

/**
 * Packets in, alerts out: decode, defragment, inspect. `push` takes captured frames one at a time (the
 * capture is never held), `finish` flushes the flows at the end of input.
 */
export class Pipeline {
  readonly engine: Engine;
  readonly decodeStats = newDecodeStats();
  /** Reassembled datagrams are decoded again; their counts stay apart from the capture's packets. */
  readonly redecodeStats = newDecodeStats();
  /** The IP defragmenter (a new one at `reset`); undefined with `defrag: false`. */
  defrag: Defragmenter | undefined;
  packets = 0;
  bytes = 0;
  /** Whether checksums are validated now (`auto` may turn it off after its sample). */
  validating: boolean;
  private sampled = 0;
  private sampledBad = 0;
  /**
   * Leave the transport checksum of every packet validated outside the `auto` sample (with validation
   * `true`, the CLI's default `all`: every packet) to whoever inspects them (`PreparedPacket.checksumLater`):
   * the workers of a parallel run, which decode every packet again, so that the main thread, which all of
   * them wait on, does not sum every payload byte.
   */
  checksumsLater = false;
  /**
   * The verdict on the last packet pushed. A fragment is passed on as it comes: the verdict on its datagram
   * falls on the fragment that completed it (without which the receiver cannot rebuild the datagram).
   */
  readonly verdict: Verdict = new VerdictRecord();
  /** The one decoded-packet record and prepared packet `prepare` fills for every packet (see PacketRecord). */
  private readonly record = new PacketRecord();
  private readonly prepared: PreparedPacket = new PreparedRecord(this.record);

  constructor(
    rules: Rule[],
    readonly opts: PipelineOptions = {},
  ) {
    this.engine = new Engine(rules, opts);
    const { validateChecksums: v, defrag } = opts;
    if (v !== undefined && typeof v !== 'boolean' && v !== 'auto')
      throw new TypeError(`validateChecksums: true, false or 'auto', got ${String(v)}`);
    if (
      defrag !== undefined &&
      typeof defrag !== 'boolean' &&
      (typeof defrag !== 'object' || defrag === null)
    )
      throw new TypeError(`defrag: true, false or its bounds as an object, got ${String(defrag)}`);
    this.validating = opts.validateChecksums !== false;
    this.defrag = this.newDefrag();
    this.accepts = opts.filter === undefined ? undefined : compileFilter(opts.filter);
  }

  /** The last packet is to be dropped: a fragment the defragmenter had no memory for, by its policy. */
  private exceptionDrop = false;

  private newDefrag(): Defragmenter | undefined {
    const opts = this.opts;
    return opts.defrag === false
      ? undefined
      : new Defragmenter({
          ...(opts.overlapPolicy && { policy: opts.overlapPolicy }),
          ...(typeof opts.defrag === 'object' && opts.defrag),
        });
  }

  /**
   * Ready for the next capture, as a new Pipeline of the same rules and options would be, without building
   * its engine again (`Engine.reset`: the rules stay compiled, the automata built from traffic stay): no
   * fragment held, the `auto` checksum sample begun again, every count at zero. Flows not flushed with
   * `finish` are dropped. The count objects are the same, set to zero (a caller keeping them copies first).
   */
  reset(): void {
    this.engine.reset();
    zeroCounts(this.decodeStats);
    zeroCounts(this.redecodeStats);
    this.defrag = this.newDefrag();
    this.packets = 0;
    this.bytes = 0;
    this.validating = this.opts.validateChecksums !== false;
    this.sampled = 0;
    this.sampledBad = 0;
    this.filtered = 0;
    this.unknownLinks.clear();
    const v = this.verdict;
    v.drop = false;
    v.frame = noFrame;
    v.responses = noResponses;
  }

  /** Packets (datagrams, for fragments) the capture filter (`filter`) refused. */
  filtered = 0;
  private readonly accepts: PacketFilter | undefined;

  /** One captured frame; returns the alerts it raised. */
  push(p: Packet): Alert[] {
    this.verdict.drop = false;
    this.verdict.frame = p.data;
    this.verdict.responses = noResponses;
    const x = this.prepare(p);
    if (!x) {
      if (this.exceptionDrop) this.verdict.drop = true;
      return [];
    }
    const decodedFrom = x.frame;
    const alerts = inspectPrepared(this.engine, x);
    this.verdict.drop = this.engine.verdict.drop;
    if (this.engine.verdict.reject)
      this.verdict.responses = rejectFrames(
        decodedFrom,
        x.linkType,
        x.d,
        x.whole,
        this.engine.verdict.rejectTo,
      );
    if (this.engine.verdict.payload && x.frame !== p.data && !x.whole) this.verdict.frame = x.frame;
    return alerts;
  }

  /**
   * The part of `push` before the engine: decoding, defragmentation and the checksum decision (which
   * `auto` takes over the first packets of the whole capture); undefined when there is nothing to inspect.
   * The packet returned (and its `d`) is this pipeline's one record, overwritten by the next call.
   */
  prepare(p: Packet): PreparedPacket | undefined {
    // a packet from an API caller: its bytes and a time a Date holds (one without data failed as "Cannot
    // read properties of undefined", a string was decoded as nothing, a time past the year 275760 threw
    // when its alerts were printed)
    if (!(p.data instanceof Uint8Array) || !(Math.abs(p.tsUs) <= dateUsMax) || !Number.isInteger(p.linkType))
      throw new TypeError(
        `Pipeline: expected a packet of { tsUs: microseconds a Date holds, linkType: an integer, data: a Uint8Array }, got tsUs ${p.tsUs}, linkType ${p.linkType}, data ${p.data === null ? 'null' : typeof p.data === 'object' ? p.data.constructor.name : typeof p.data}`,
      );
    const n = ++this.packets;
    this.bytes += p.data.length;
    this.exceptionDrop = false;
    const d = this.record;
    // the transport checksum only where it is validated here: during the `auto` sample, or when
    // validating and not left to the workers
    const sampling = this.opts.validateChecksums === 'auto' && this.sampled < checksumSamplePackets;
    const l4Checksum = sampling || (this.validating && !this.checksumsLater);
    const failed = decodeInto(d, p.linkType, p.data, this.decodeStats, l4Checksum);
    if (typeof failed === 'string') return this.undecoded(failed, p.linkType);
    let frame = p.data;
    let whole: Uint8Array | undefined;
    let wholeTunnels = 0;
    if (d.frag && this.defrag) {
      // the defragmenter copies what it keeps; the record then holds the datagram rebuilt
      const memoryDrops = this.defrag.stats.dropped.memory;
      whole = this.defrag.add(d, p.tsUs);
      if (!whole) {
        if (this.defrag.stats.dropped.memory !== memoryDrops) this.defragException();
        return undefined;
      }
      // decoded again as the datagram, behind the tunnels its fragments came through (`tunnels` stays theirs)
      wholeTunnels = d.tunnels;
      if (typeof decodeInto(d, 101, whole, this.redecodeStats, l4Checksum, wholeTunnels) === 'string')
        return undefined;
      frame = this.defrag.lastFrame ?? whole;
    }
    if (this.accepts && !this.accepts(d)) {
      this.filtered++;
      return undefined;
    }
    // Suricata's checksum validation: a packet with a bad checksum is still inspected on its own, but it
    // does not move TCP state or go into a stream
    const valid = d.ipChecksumOk && d.l4ChecksumOk;
    if (sampling) {
      this.sampled++;
      if (!valid) this.sampledBad++;
      if (this.sampled === checksumSamplePackets && this.sampledBad * 10 > this.sampled)
        this.validating = false;
    }
    const x = this.prepared;
    x.n = n;
    x.tsUs = p.tsUs;
    x.frame = frame;
    x.linkType = p.linkType;
    x.whole = whole;
    x.wholeTunnels = wholeTunnels;
    x.checksumOk = !this.validating || valid;
    x.checksumLater = this.validating && !l4Checksum;
    return x;
  }

  /**
   * A fragment the defragmenter dropped for its memory (with its datagram): the defrag-memcap exception
   * policy, counted in the engine's stats. A fragment is not inspected either way; drop-packet and reject
   * drop it (`exceptionDrop`; no reject is sent for a fragment: its transport header may be in another).
   */
  private defragException(): void {
    const p = this.engine.exceptions.defragMemcap;
    if (p === 'ignore') return;
    this.engine.stats.exceptionDefragMemcap++;
    if (p === 'drop-packet' || p === 'reject') this.exceptionDrop = true;
  }

  /** Whether `prepare` refused the last packet to have it dropped (an exception policy: `defragException`). */
  get exceptionDropped(): boolean {
    return this.exceptionDrop;
  }

  /** End of input: what the flows still hold is inspected. */
  finish(): Alert[] {
    return this.engine.finish();
  }

  /** Link types the decoder did not know (at most `unknownLinkTypesMax` named). */
  private readonly unknownLinks = new Set<number>();

  /** A packet the decoder refused: its link type noted when that was the reason (off the decoded path). */
  private undecoded(reason: DecodeFailure, linkType: number): undefined {
    if (reason === 'unsupported-link' && this.unknownLinks.size < unknownLinkTypesMax)
      this.unknownLinks.add(linkType);
    return undefined;
  }

  /** Packets of link types the decoder does not know, and those types; undefined when none. */
  get unsupportedLinks(): UnsupportedLinks | undefined {
    const packets = this.decodeStats.failures['unsupported-link'];
    return packets === 0 ? undefined : { linkTypes: [...this.unknownLinks], packets };
  }

  get decodeFailures(): number {
    const a = this.decodeStats;
    const b = this.redecodeStats;
    return a.packets - a.decoded + b.packets - b.decoded;
  }

  /** Packets decoded through an encapsulation (a datagram rebuilt from fragments counts once more). */
  get tunneled(): number {
    return this.decodeStats.tunneled + this.redecodeStats.tunneled;
  }
}

/**
 * A pcap written as packets come: created (or truncated) at once, so a path that cannot be written is an
 * error before any packet is read; one link type, the capture's first packet's (`first`).
 */
class PcapOut {
  private readonly file: WriteStream;
  private readonly writer: PcapWriter;
  private readonly closed: Promise<void>;
  private linkType: number | undefined;

  constructor(path: string) {
    const file = createWriteStream('', { fd: openSync(path, 'w') });
    this.file = file;
    this.closed = new Promise<void>((res, rej) => file.on('close', res).on('error', rej));
    this.closed.catch(() => undefined);
    this.writer = new PcapWriter(file);
  }

  /** Notes the capture's first link type (the file's, even when its first packets are not written). */
  first(p: { linkType: number }): void {
    this.linkType ??= p.linkType;
  }

  /** Appends `data` as a packet of captured packet `p` (its time and link type; `origLength` if given). */
  async write(p: { tsUs: number; linkType: number }, data: Uint8Array, origLength?: number): Promise<void> {
    if (!this.writer.started) await this.writer.start(this.linkType ?? p.linkType);
    await this.writer.write({
      tsUs: p.tsUs,
      linkType: p.linkType,
      data,
      ...(origLength !== undefined && { origLength }),
    });
  }

  /** Ends the file (no packets: an empty capture of the first link type, or Ethernet) and waits for it. */
  async close(): Promise<void> {
    try {
      if (!this.writer.started) await this.writer.start(this.linkType ?? 1);
    } finally {
      this.file.end();
    }
    await this.closed;
  }
}

/**
 * IPS output, in capture order: counts the verdicts and, with a path, writes the packets passed on to a
 * pcap, each followed by the reject responses it drew (one link type: the first packet's).
 */
export class VerdictSink {
  readonly counts = { passed: 0, dropped: 0, responses: 0 };
  private readonly out: PcapOut | undefined;

  constructor(path: string | undefined) {
    this.out = path !== undefined ? new PcapOut(path) : undefined;
  }

  /** Notes the capture's first link type (the file's, even when its first packets are dropped). */
  first(p: { linkType: number }): void {
    this.out?.first(p);
  }

  /** Whether packets are written (`packet` must be awaited); else `count` takes the verdicts. */
  get writing(): boolean {
    return this.out !== undefined;
  }

  /** The verdict on one captured packet when nothing is written: the counts alone. */
  count(drop: boolean, responses: number): void {
    if (drop) this.counts.dropped++;
    else this.counts.passed++;
    this.counts.responses += responses;
  }

  /** The verdict on one captured packet: passed on as `frame`, or dropped; then its reject responses. */
  async packet(
    p: { tsUs: number; linkType: number; origLength?: number },
    drop: boolean,
    frame: Uint8Array,
    responses: Uint8Array[],
  ): Promise<void> {
    if (drop) this.counts.dropped++;
    else {
      this.counts.passed++;
      await this.out?.write(p, frame, p.origLength);
    }
    for (const data of responses) {
      this.counts.responses++;
      await this.out?.write(p, data);
    }
  }

  /** Ends the file, if any, and waits for it. */
  async close(): Promise<void> {
    await this.out?.close();
  }
}

/**
 * The packet log (`RunOptions.logPcap`, `strata ids --log-pcap`; Snort's log_pcap, Suricata's conditional
 * pcap-log): the captured packets that raised an alert or that an alert's `tag` covers (`Engine.tagged`),
 * in capture order and as captured.
 */
export class PacketLog {
  /** Packets written. */
  packets = 0;
  private readonly out: PcapOut;

  constructor(path: string) {
    this.out = new PcapOut(path);
  }

  /** One captured packet, written when `logged`. */
  async packet(
    p: { tsUs: number; linkType: number; data: Uint8Array; origLength?: number },
    logged: boolean,
  ) {
    this.out.first(p);
    if (!logged) return;
    this.packets++;
    await this.out.write(p, p.data, p.origLength);
  }

  close(): Promise<void> {
    return this.out.close();
  }
}

/** A capture to run: a file's path, or a stream of its bytes (standard input, `strata ids -`). */
export type CaptureInput = string | NodeJS.ReadableStream;

/**
 * The capture's bytes, read `captureReadBytes` at a time from a path. Anything else that is not a stream
 * is a TypeError saying what it got (a JavaScript caller's bytes in memory failed deep in the reader with
 * "stream[Symbol.asyncIterator] is not a function"; wrap them: `Readable.from([bytes])`).
 */
export function captureStream(input: CaptureInput): AsyncIterable<Buffer> {
  if (typeof input === 'string') return createReadStream(input, { highWaterMark: captureReadBytes });
  if (typeof (input as Partial<AsyncIterable<Buffer>> | null)?.[Symbol.asyncIterator] !== 'function') {
    const got =
      input === null
        ? 'null'
        : typeof input === 'object'
          ? (input as object).constructor?.name
          : typeof input;
    throw new TypeError(
      `capture input: a path or a readable stream, not ${got ?? 'an object'}${input instanceof Uint8Array ? ' (bytes in memory: Readable.from([bytes]))' : ''}`,
    );
  }
  return input as AsyncIterable<Buffer>;
}

/**
 * Runs a capture through a new `Pipeline` of `rules` (see `runPipeline`). With `ips`, every packet gets a
 * verdict; with `out` as well, the packets passed on are written to that pcap (created or truncated; one
 * link type).
 */
export async function runCapture(
  input: CaptureInput,
  rules: Rule[],
  opts: RunOptions = {},
): Promise<RunResult> {
  if (opts.out !== undefined && !opts.ips) throw new Error('out: a pcap of passed packets needs ips');
  return runPipeline(new Pipeline(rules, opts), input, opts.out, opts.logPcap);
}

/**
 * Runs a capture through `pipe`, built with the run's rules and options (`Pipeline(rules, opts)`): one
 * Pipeline serves capture after capture, each run on it as on a new one (it is `reset` first when it has
 * seen packets), without building its engine again. `out`: with the pipeline's `ips`, the pcap the packets
 * passed on are written to. The result's counts are copies: the next run does not change them.
 */
export async function runPipeline(
  pipe: Pipeline,
  input: CaptureInput,
  out?: string,
  logPcap?: string,
): Promise<RunResult> {
  const opts = pipe.opts;
  if (out !== undefined && !opts.ips) throw new Error('out: a pcap of passed packets needs ips');
  if (pipe.packets > 0 || pipe.engine.stats.packets > 0) pipe.reset();
  const alerts: Alert[] = [];
  const t0 = performance.now();
  const cpu0 = threadCpuMs();
  const sink = new VerdictSink(out);
  const log = logPcap !== undefined ? new PacketLog(logPcap) : undefined;
  const inspected = pipe.engine.stats;
  const cut: { error?: TruncatedCaptureError } = {};
  try {
    for await (const batch of readCaptureBatchesToCut(captureStream(input), cut))
      for (const p of batch) {
        sink.first(p);
        const n = inspected.packets;
        const got = pipe.push(p);
        for (const a of got) alerts.push(a);
        // (a packet the engine did not inspect, filtered or held, keeps the last one's `tagged`)
        if (log) await log.packet(p, got.length > 0 || (inspected.packets !== n && pipe.engine.tagged));
        const v = pipe.verdict;
        if (sink.writing) await sink.packet(p, v.drop, v.frame, v.responses);
        else sink.count(v.drop, v.responses.length);
      }
  } finally {
    await sink.close();
    await log?.close();
  }
  const verdicts = sink.counts;
  for (const a of pipe.finish()) alerts.push(a);
  const engine = pipe.engine;
  const cpu1 = threadCpuMs();
  return {
    alerts,
    packets: pipe.packets,
    bytes: pipe.bytes,
    seconds: (performance.now() - t0) / 1000,
    ...(cut.error && { truncated: cut.error.message }),
    ...(cpu0 !== undefined && cpu1 !== undefined && { loopCpuSeconds: (cpu1 - cpu0) / 1000 }),
    decodeFailures: pipe.decodeFailures,
    tunneled: pipe.tunneled,
    ...(opts.filter !== undefined && { packetsFiltered: pipe.filtered }),
    ...(pipe.unsupportedLinks && { unsupportedLinks: pipe.unsupportedLinks }),
    defrag: pipe.defrag && { ...pipe.defrag.stats },
    rulesLoaded: engine.compiled.length,
    rulesSkipped: engine.skipped,
    warnings: engine.warnings,
    errors: [],
    stats: { ...engine.stats },
    flows: { ...engine.flowStats },
    reassemblyPeakBytes: engine.budget.peakBytes,
    httpAnomalies: { ...engine.httpAnomalies },
    ruleFaults: [...engine.ruleFaults].map(([rule, error]) => ({ rule, error })),
    ruleLatency: latencyRows(engine.ruleLatency),
    packetFaults: [...engine.packetFaults],
    ruleProfile: engine.ruleProfile(),
    ...(opts.ips && { verdicts }),
    ...(log && { packetsLogged: log.packets }),
  };
}

/** `Engine.ruleLatency`'s records as rows, slowest first. */
export function latencyRows(
  m: Iterable<[string, RuleLatencyRecord]>,
): ({ rule: string } & RuleLatencyRecord)[] {
  return [...m].map(([rule, r]) => ({ rule, ...r })).sort((a, b) => b.slowestUs - a.slowestUs);
}
