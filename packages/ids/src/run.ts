/** Running a capture through the engine: decode every packet, inspect it, collect alerts and stats. */
import { createReadStream } from 'node:fs';
import { type Decoded, decode, newDecodeStats } from './decode.js';
import { Defragmenter, type DefragOptions, type DefragStats } from './defrag.js';
import { type Alert, Engine, type EngineOptions, type EngineStats } from './detect.js';
import type { FlowTableStats } from './flow.js';
import type { HttpAnomalies } from './http.js';
import { type Packet, readCapture } from './pcap.js';
import { parseRule, type Rule, RuleSyntaxError } from './rules.js';
import { copyBytes } from './stream.js';

export interface RunResult {
  alerts: Alert[];
  packets: number;
  bytes: number;
  seconds: number;
  decodeFailures: number;
  rulesLoaded: number;
  rulesSkipped: { sid: number; reason: string }[];
  errors: string[];
  stats: EngineStats;
  flows: FlowTableStats;
  defrag: DefragStats | undefined;
  /** Most bytes held by stream reassembly at once. */
  reassemblyPeakBytes: number;
  /** Malformed HTTP input by reason. */
  httpAnomalies: HttpAnomalies;
}

/** Parses rule text line by line; every syntax error is collected with file:line:column. */
export function loadRules(text: string, file: string): { rules: Rule[]; errors: string[] } {
  const rules: Rule[] = [];
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((l, i) => {
    const t = l.trim();
    if (!t || t.startsWith('#')) return;
    try {
      rules.push(parseRule(t, file, i + 1));
    } catch (e) {
      if (e instanceof RuleSyntaxError) errors.push(e.message);
      else throw e;
    }
  });
  return { rules, errors };
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
  checksumOk: boolean;
}

/** Runs a prepared packet through an engine; packet alerts get the frame they were raised on. */
export function inspectPrepared(engine: Engine, x: PreparedPacket): Alert[] {
  const alerts = engine.inspect(x.d, x.tsUs, x.n, x.checksumOk);
  for (const a of alerts)
    if (!a.stream && a.pcapCnt === x.n) {
      a.packet = copyBytes(x.frame);
      a.linkType = x.linkType;
    }
  return alerts;
}

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
};

/**
 * Packets in, alerts out: decode, defragment, inspect. `push` takes captured frames one at a time (the
 * capture is never held), `finish` flushes the flows at the end of input.
 */
export class Pipeline {
  readonly engine: Engine;
  readonly decodeStats = newDecodeStats();
  /** Reassembled datagrams are decoded again; their counts stay apart from the capture's packets. */
  readonly redecodeStats = newDecodeStats();
  readonly defrag: Defragmenter | undefined;
  packets = 0;
  bytes = 0;
  /** Whether checksums are validated now (`auto` may turn it off after its sample). */
  validating: boolean;
  private sampled = 0;
  private sampledBad = 0;

  constructor(
    rules: Rule[],
    readonly opts: PipelineOptions = {},
  ) {
    this.engine = new Engine(rules, opts);
    this.validating = opts.validateChecksums !== false;
    this.defrag =
      opts.defrag === false
        ? undefined
        : new Defragmenter({
            ...(opts.overlapPolicy && { policy: opts.overlapPolicy }),
            ...(typeof opts.defrag === 'object' && opts.defrag),
          });
  }

  /** One captured frame; returns the alerts it raised. */
  push(p: Packet): Alert[] {
    const x = this.prepare(p);
    if (!x) return [];
    return inspectPrepared(this.engine, x);
  }

  /**
   * The part of `push` before the engine: decoding, defragmentation and the checksum decision (which
   * `auto` takes over the first packets of the whole capture); undefined when there is nothing to inspect.
   */
  prepare(p: Packet): PreparedPacket | undefined {
    const n = ++this.packets;
    this.bytes += p.data.length;
    let d = decode(p.linkType, p.data, this.decodeStats);
    if (typeof d === 'string') return undefined;
    let frame = p.data;
    let whole: Uint8Array | undefined;
    if (d.frag && this.defrag) {
      whole = this.defrag.add(d, p.tsUs);
      if (!whole) return undefined;
      const r = decode(101, whole, this.redecodeStats);
      if (typeof r === 'string') return undefined;
      d = r;
      frame = this.defrag.lastFrame ?? whole;
    }
    // Suricata's checksum validation: a packet with a bad checksum is still inspected on its own, but it
    // does not move TCP state or go into a stream
    const valid = d.ipChecksumOk && d.l4ChecksumOk;
    if (this.opts.validateChecksums === 'auto' && this.sampled < checksumSamplePackets) {
      this.sampled++;
      if (!valid) this.sampledBad++;
      if (this.sampled === checksumSamplePackets && this.sampledBad * 10 > this.sampled)
        this.validating = false;
    }
    return { d, n, tsUs: p.tsUs, frame, linkType: p.linkType, whole, checksumOk: !this.validating || valid };
  }

  /** End of input: what the flows still hold is inspected. */
  finish(): Alert[] {
    return this.engine.finish();
  }

  get decodeFailures(): number {
    const a = this.decodeStats;
    const b = this.redecodeStats;
    return a.packets - a.decoded + b.packets - b.decoded;
  }
}

export async function runCapture(
  pcapPath: string,
  rules: Rule[],
  opts: PipelineOptions = {},
): Promise<RunResult> {
  const pipe = new Pipeline(rules, opts);
  const alerts: Alert[] = [];
  const t0 = performance.now();
  for await (const p of readCapture(createReadStream(pcapPath))) for (const a of pipe.push(p)) alerts.push(a);
  for (const a of pipe.finish()) alerts.push(a);
  const engine = pipe.engine;
  return {
    alerts,
    packets: pipe.packets,
    bytes: pipe.bytes,
    seconds: (performance.now() - t0) / 1000,
    decodeFailures: pipe.decodeFailures,
    defrag: pipe.defrag?.stats,
    rulesLoaded: engine.compiled.length,
    rulesSkipped: engine.skipped,
    errors: [],
    stats: engine.stats,
    flows: engine.flowStats,
    reassemblyPeakBytes: engine.budget.peakBytes,
    httpAnomalies: engine.httpAnomalies,
  };
}
