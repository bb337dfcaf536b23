/**
 * A detection worker (worker_threads): one Engine over the flows hashed to it. Protocol (see
 * `parallel.ts`): `init` sets the run's engine up; then either each `batch` is a run of packets the main
 * thread prepared, in capture order, and `finish` flushes the flows; or (`reader: 'workers'`) `capture`, on
 * which the worker reads the capture file itself, prepares every packet (decode, defragment, checksum
 * decision), routes it as every other worker does (`FlowSharder`) and inspects its own, then flushes its
 * flows. Every reply carries the alerts raised, in the order raised. Messages are handled one at a time, in
 * order (a `capture` reads asynchronously: the ones behind it wait). The worker keeps the rules and options
 * of the last `init` (an `init` without rules means "the same rules as before"), and with `spare` on
 * `finish` (or `capture`) it keeps its engine for the next run, reset right after replying, so that a pool
 * reused with the same rules and options starts its next run on an engine made ready between runs. A spare is the run's engine reset (`Engine.reset`): none of the run's state, but the
 * automata it built from traffic (before 2026-12-07 a new Engine, whose first pass cost 1.4-2.4 times a
 * later one's).
 */
import { read } from 'node:fs';
import { promisify } from 'node:util';
import { parentPort } from 'node:worker_threads';
import { threadCpuMs } from './cpu.js';
import { decodeInto, newDecodeStats, PacketRecord } from './decode.js';
import type { DefragOptions, DefragStats } from './defrag.js';
import { Engine } from './detect.js';
import type { Alert, EngineOptions, RuleLatencyRecord, RuleProfileRow } from './engine-api.js';
import { readCaptureBatchesToCut, type TruncatedCaptureError } from './pcap.js';
import { rejectFrames } from './reject.js';
import type { Rule } from './rules.js';
import {
  captureReadBytes,
  inspectPrepared,
  Pipeline,
  type PreparedPacket,
  type UnsupportedLinks,
} from './run.js';
import { FlowSharder } from './shard.js';

/**
 * Per packet in a batch's `meta`: n, tsUs, link type, checksums (0 bad, 1 good or not validated, 2 the IP
 * header's good and the transport checksum to be checked here), frame offset, frame length, whole length,
 * the tunnels the whole datagram's fragments came through (`PreparedPacket.wholeTunnels`).
 */
export const metaFields = 8;
/**
 * Per packet the main thread routed to another worker since this worker's last batch: its number and time,
 * in a batch's `ticks` (pairs, in capture order): the worker sweeps its flow table at each (`Engine.tick`),
 * so a flow times out at the packet it does on one engine.
 */
export const tickFields = 2;

export type ToWorker =
  | {
      type: 'init';
      /** Absent: the rules of the last init (the pool sends a rule set once). */
      rules?: Rule[];
      opts: EngineOptions;
      /** The options as JSON: a spare engine is used only when they are the ones it was built with. */
      optsKey: string;
      index: number;
      workers: number;
    }
  | { type: 'batch'; id: number; meta: Float64Array; data: Uint8Array; ticks: Float64Array }
  | { type: 'finish'; pcapCnt: number; tsUs: number; spare: boolean }
  | {
      type: 'capture';
      /**
       * The capture, opened once by the main thread (a descriptor of the process, shared by its threads), so
       * that every worker reads the same file even when its path is renamed over during the run; read by
       * position, never closed here.
       */
      fd: number;
      /** Bytes of the file read at most (its size when the run started: every worker reads the same). */
      bytes: number;
      validateChecksums: boolean | 'auto' | undefined;
      defrag: boolean | DefragOptions | undefined;
      /** The capture filter (`PipelineOptions.filter`). */
      filter: string | undefined;
      /** The pool's flow hash key, and whether FTP data connections follow their control connection. */
      hashKey: Uint8Array;
      ftp: boolean;
      spare: boolean;
    }
  /** Answered once the worker has done everything sent before it (a spare engine built included). */
  | { type: 'ping' };

export type FromWorker =
  | { type: 'pong' }
  /** The message before failed (the worker stays up: the next init sets a new engine up). */
  | { type: 'failed'; error: Error }
  | {
      type: 'ready';
      loaded: number;
      skipped: { sid: number; reason: string }[];
      warnings: string[];
      /** Setting the engine up (building it, or taking the spare): wall and thread CPU ms. */
      initMs: number;
      initCpuMs: number;
      /** The engine is a spare built after the last run; then the thread CPU ms building it took. */
      spare: boolean;
      spareCpuMs: number;
    }
  | {
      type: 'alerts';
      id: number;
      alerts: Alert[];
      /** IPS: the verdicts of the batch's packets that are not "passed as captured". */
      verdicts: WorkerVerdict[];
      busyMs: number;
      cpuMs: number;
      /** The batch's buffers, whole, sent back (transferred) to be filled again. */
      meta?: Float64Array;
      data?: Uint8Array;
    }
  | ({ type: 'done' } & Flushed)
  | ({
      type: 'captured';
      /** The alerts raised on this worker's packets, in the order raised (those of the final flush apart). */
      raised: Alert[];
      /** The capture as read and prepared (every worker reads all of it and counts the same). */
      packets: number;
      bytes: number;
      decodeFailures: number;
      tunneled: number;
      filtered: number;
      unsupportedLinks: UnsupportedLinks | undefined;
      defrag: DefragStats | undefined;
      /** Exception policies its defragmenter applied (`EngineStats.exceptionDefragMemcap`). */
      defragExceptions: number;
      truncated: string | undefined;
      /** This worker's packets and their frames' bytes; the capture loop's wall and thread CPU ms. */
      ownPackets: number;
      ownBytes: number;
      busyMs: number;
      cpuMs: number;
    } & Flushed);

/** A worker's engine at the end of input: the alerts of its flows' final flush, and its counts. */
export interface Flushed {
  alerts: Alert[];
  stats: Engine['stats'];
  flows: Engine['flowStats'];
  peakBytes: number;
  httpAnomalies: Engine['httpAnomalies'];
  ruleFaults: [string, string][];
  ruleLatency: [string, RuleLatencyRecord][];
  packetFaults: { where: string; error: string }[];
  ruleProfile: RuleProfileRow[];
}

/** IPS: what becomes of packet `n` when it is not passed on as captured. */
export interface WorkerVerdict {
  n: number;
  drop: boolean;
  /** The frame rewritten by inline normalization, passed on instead of the captured one. */
  frame?: Uint8Array;
  /** Reject responses, sent after the packet. */
  responses?: Uint8Array[];
}

let engine: Engine | undefined;
/** The rules and options of the last init, and the engine built from them after the last run. */
let rules: Rule[] | undefined;
let engineOpts: EngineOptions = {};
let optsKey = '';
let spare: { engine: Engine; cpuMs: number } | undefined;
let index = 0;
let workers = 1;
const decodeStats = newDecodeStats();
/** The decoded-packet record every packet of this worker is decoded into (nothing keeps it past the packet). */
const record = new PacketRecord();

/** Flow ids stay unique across workers: worker w numbers its flows w+1, w+1+N, ... */
function relabel(alerts: Alert[]): Alert[] {
  for (const a of alerts) if (a.flowId !== undefined) a.flowId = (a.flowId - 1) * workers + index + 1;
  return alerts;
}

/** One batch through the engine (a function of its own: the message handler stays small for the JIT). */
function runBatch(
  engine: Engine,
  id: number,
  meta: Float64Array,
  data: Uint8Array,
  ticks: Float64Array,
): void {
  const t0 = performance.now();
  const c0 = threadCpuMs() ?? 0;
  const out: Alert[] = [];
  const verdicts: WorkerVerdict[] = [];
  const ips = engine.opts.ips === true;
  // the other workers' packets, each before this worker's next packet: both lists are in capture order
  let t = 0;
  for (let k = 0; k < meta.length; k += metaFields) {
    const n = meta[k]!;
    for (; t < ticks.length && ticks[t]! < n; t += tickFields) engine.tick(ticks[t + 1]!, ticks[t]!, out);
    const tsUs = meta[k + 1]!;
    const linkType = meta[k + 2]!;
    const off = meta[k + 4]!;
    const len = meta[k + 5]!;
    const wholeLen = meta[k + 6]!;
    const frame = data.subarray(off, off + len);
    const whole = wholeLen ? data.subarray(off + len, off + len + wholeLen) : undefined;
    // the transport checksum only where the main thread left it to this worker
    const l4Checksum = meta[k + 3] === 2;
    const r = whole
      ? decodeInto(record, 101, whole, decodeStats, l4Checksum, meta[k + 7]!)
      : decodeInto(record, linkType, frame, decodeStats, l4Checksum);
    if (typeof r === 'string') continue; // decoded once already on the main thread: cannot happen
    const d = record;
    const checksumOk = l4Checksum ? d.l4ChecksumOk : meta[k + 3] === 1;
    const x: PreparedPacket = { d, n, tsUs, frame, linkType, whole, checksumOk };
    for (const a of inspectPrepared(engine, x)) out.push(a);
    if (ips) {
      // as Pipeline.push decides it on one thread
      const v = engine.verdict;
      const responses = v.reject ? rejectFrames(frame, x.linkType, d, whole, v.rejectTo) : [];
      const rewritten = v.payload && x.frame !== frame && !whole ? x.frame : undefined;
      if (v.drop || responses.length > 0 || rewritten)
        verdicts.push({
          n: x.n,
          drop: v.drop,
          ...(rewritten && { frame: rewritten }),
          ...(responses.length > 0 && { responses }),
        });
    }
  }
  for (; t < ticks.length; t += tickFields) engine.tick(ticks[t + 1]!, ticks[t]!, out);
  // the batch's buffers go back with the reply (transferred): nothing sent may be a view into them, or it
  // would be overwritten when they are filled again (the engine copies what it keeps; checked here all the same)
  const alerts = relabel(out);
  const buf = data.buffer;
  for (const a of alerts) {
    if (a.payload?.buffer === buf) a.payload = a.payload.slice();
    if (a.packet?.buffer === buf) a.packet = a.packet.slice();
  }
  for (const v of verdicts) {
    if (v.frame?.buffer === buf) v.frame = v.frame.slice();
    if (v.responses?.some((r) => r.buffer === buf)) v.responses = v.responses.map((r) => r.slice());
  }
  const reply: FromWorker = {
    type: 'alerts',
    id,
    alerts,
    verdicts,
    busyMs: performance.now() - t0,
    cpuMs: (threadCpuMs() ?? 0) - c0,
    // (the ticks are a view of the meta's buffer: sent back with it)
    meta: new Float64Array(meta.buffer),
    data: new Uint8Array(buf),
  };
  parentPort!.postMessage(reply, [meta.buffer as ArrayBuffer, buf as ArrayBuffer]);
}

/**
 * A `capture`: every packet read and prepared, routed, this worker's inspected. The transport checksums
 * are summed for this worker's packets only (decoded again with them, as a batch's are).
 */
async function runShard(engine: Engine, m: Extract<ToWorker, { type: 'capture' }>): Promise<FromWorker> {
  const t0 = performance.now();
  const c0 = threadCpuMs() ?? 0;
  const pipe = new Pipeline([], {
    ...(m.validateChecksums !== undefined && { validateChecksums: m.validateChecksums }),
    ...(m.defrag !== undefined && { defrag: m.defrag }),
    ...(engineOpts.overlapPolicy && { overlapPolicy: engineOpts.overlapPolicy }),
    ...(m.filter !== undefined && { filter: m.filter }),
    ...(engineOpts.exceptionPolicy && { exceptionPolicy: engineOpts.exceptionPolicy }),
    ...(engineOpts.midstream && { midstream: true }),
  });
  pipe.checksumsLater = true;
  const shard = new FlowSharder(workers, m.hashKey, m.ftp ? { vars: engineOpts.vars } : undefined);
  const raised: Alert[] = [];
  let ownPackets = 0;
  let ownBytes = 0;
  let tsUs = 0;
  const cut: { error?: TruncatedCaptureError } = {};
  for await (const batch of readCaptureBatchesToCut(readRange(m.fd, m.bytes), cut))
    for (const p of batch) {
      tsUs = p.tsUs;
      let x = pipe.prepare(p);
      if (!x) continue;
      if (shard.of(x.d) !== index) {
        // another worker's packet: this one's flows idle past their timeouts by then time out here
        engine.tick(x.tsUs, x.n, raised);
        continue;
      }
      ownPackets++;
      ownBytes += x.frame.length;
      // the IP header's checksum is right: the transport checksum decides (a wrong IP one, already)
      if (x.checksumLater && x.checksumOk) {
        const whole = x.whole;
        const r = whole
          ? decodeInto(record, 101, whole, decodeStats, true, x.wholeTunnels)
          : decodeInto(record, x.linkType, x.frame, decodeStats, true);
        if (typeof r === 'string') continue; // decoded once already: cannot happen
        x = {
          d: record,
          n: x.n,
          tsUs: x.tsUs,
          frame: x.frame,
          linkType: x.linkType,
          whole,
          checksumOk: record.l4ChecksumOk,
        };
      }
      for (const a of inspectPrepared(engine, x)) raised.push(a);
    }
  const busyMs = performance.now() - t0;
  const cpuMs = (threadCpuMs() ?? 0) - c0;
  return {
    type: 'captured',
    raised: relabel(raised),
    packets: pipe.packets,
    bytes: pipe.bytes,
    decodeFailures: pipe.decodeFailures,
    tunneled: pipe.tunneled,
    filtered: pipe.filtered,
    unsupportedLinks: pipe.unsupportedLinks,
    defrag: pipe.defrag?.stats,
    defragExceptions: pipe.engine.stats.exceptionDefragMemcap,
    truncated: cut.error?.message,
    ownPackets,
    ownBytes,
    busyMs,
    cpuMs,
    ...flushed(engine, { pcapCnt: pipe.packets, tsUs }),
  };
}

const readAt = promisify(read);

/**
 * Bytes [0, bytes) of a file descriptor, by position (the descriptor's offset is not used, so the workers
 * sharing it do not disturb each other), in reads of `captureReadBytes`; each chunk a buffer of its own
 * (the packets read are views of it). Ends early where the file does (one cut shorter while read).
 */
async function* readRange(fd: number, bytes: number): AsyncGenerator<Buffer> {
  for (let pos = 0; pos < bytes; ) {
    const want = Math.min(captureReadBytes, bytes - pos);
    const buf = Buffer.allocUnsafeSlow(want);
    const { bytesRead } = await readAt(fd, buf, 0, want, pos);
    if (bytesRead === 0) return;
    yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
    pos += bytesRead;
  }
}

/** The engine's final flush and counts; the engine is done with. */
function flushed(e: Engine, last: { pcapCnt: number; tsUs: number }): Flushed {
  engine = undefined;
  return {
    alerts: relabel(e.finish(last)),
    stats: e.stats,
    flows: e.flowStats,
    peakBytes: e.budget.peakBytes,
    httpAnomalies: e.httpAnomalies,
    ruleFaults: [...e.ruleFaults],
    ruleLatency: [...e.ruleLatency],
    packetFaults: [...e.packetFaults],
    ruleProfile: e.ruleProfile(),
  };
}

/**
 * With `spare`: the next run's engine, made after the reply: the run's engine reset (`Engine.reset`: as it
 * was built, with the automata it built from traffic kept, so the next run is not a new engine's first
 * pass). A reset that fails leaves no spare: the next init builds an engine.
 */
function keepSpare(used: Engine): void {
  const c0 = threadCpuMs() ?? 0;
  spare = undefined;
  try {
    used.reset();
    spare = { engine: used, cpuMs: (threadCpuMs() ?? 0) - c0 };
  } catch {
    // none kept
  }
}

async function handle(m: ToWorker): Promise<void> {
  if (m.type === 'init') {
    const t0 = performance.now();
    const c0 = threadCpuMs() ?? 0;
    if (m.rules) rules = m.rules;
    if (!rules) throw new Error('ids worker: init without rules');
    const same = m.rules === undefined && m.optsKey === optsKey;
    engineOpts = m.opts;
    optsKey = m.optsKey;
    const s = same ? spare : undefined;
    spare = undefined;
    engine = undefined; // an init that fails leaves no engine: the batches behind it fail too
    engine = s?.engine ?? new Engine(rules, { ...engineOpts, deferRates: true });
    index = m.index;
    workers = m.workers;
    const reply: FromWorker = {
      type: 'ready',
      loaded: engine.compiled.length,
      skipped: engine.skipped,
      warnings: engine.warnings,
      initMs: performance.now() - t0,
      initCpuMs: (threadCpuMs() ?? 0) - c0,
      spare: s !== undefined,
      spareCpuMs: s?.cpuMs ?? 0,
    };
    parentPort!.postMessage(reply);
    return;
  }
  if (m.type === 'ping') {
    parentPort!.postMessage({ type: 'pong' } satisfies FromWorker);
    return;
  }
  if (!engine) throw new Error('ids worker: a batch before init');
  if (m.type === 'batch') {
    runBatch(engine, m.id, m.meta, m.data, m.ticks);
    return;
  }
  // the run's engine is done with here (a capture that fails leaves none: the next init sets one up)
  const e = engine;
  engine = undefined;
  const reply: FromWorker = m.type === 'capture' ? await runShard(e, m) : { type: 'done', ...flushed(e, m) };
  parentPort!.postMessage(reply);
  // the next run's engine, made ready while the main thread merges and until its next init (which waits)
  if (m.spare) keepSpare(e);
}

/** Every message gets one reply: an error is sent back, not thrown (the thread would end, its pool hang). */
async function onMessage(m: ToWorker): Promise<void> {
  try {
    await handle(m);
  } catch (e) {
    parentPort!.postMessage({
      type: 'failed',
      error: e instanceof Error ? e : new Error(String(e)),
    } satisfies FromWorker);
  }
}

/** The messages, handled one after the other (a `capture` awaits its reads). */
let queue: Promise<void> = Promise.resolve();
parentPort?.on('message', (m: ToWorker) => {
  queue = queue.then(() => onMessage(m));
});
