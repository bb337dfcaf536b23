/**
 * A detection worker (worker_threads): one Engine over the flows the main thread hashes to it. Protocol
 * (see `parallel.ts`): `init` sets the run's engine up, each `batch` is a run of prepared packets in
 * capture order, `finish` flushes the flows; every reply carries the alerts raised, each with its emission
 * index. The worker keeps the rules and options of the last `init` (an `init` without rules means "the same
 * rules as before"), and with `spare` on `finish` it builds the next run's engine from them right after
 * replying, so that a pool reused with the same rules and options starts its next run on an engine built
 * between runs. A spare is a new Engine, never a used one reset: it has no state of the run before.
 */
import { parentPort } from 'node:worker_threads';
import { threadCpuMs } from './cpu.js';
import { decodeInto, newDecodeStats, PacketRecord } from './decode.js';
import { type Alert, Engine, type EngineOptions } from './detect.js';
import { rejectFrames } from './reject.js';
import type { Rule } from './rules.js';
import { inspectPrepared, type PreparedPacket } from './run.js';

/**
 * Per packet in a batch's `meta`: n, tsUs, link type, checksums (0 bad, 1 good or not validated, 2 the IP
 * header's good and the transport checksum to be checked here), frame offset, frame length, whole length.
 */
export const metaFields = 7;

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
  | { type: 'batch'; id: number; meta: Float64Array; data: Uint8Array }
  | { type: 'finish'; pcapCnt: number; tsUs: number; spare: boolean }
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
    }
  | {
      type: 'done';
      alerts: Alert[];
      stats: Engine['stats'];
      flows: Engine['flowStats'];
      peakBytes: number;
      httpAnomalies: Engine['httpAnomalies'];
    };

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
function runBatch(engine: Engine, id: number, meta: Float64Array, data: Uint8Array): void {
  const t0 = performance.now();
  const c0 = threadCpuMs() ?? 0;
  const out: Alert[] = [];
  const verdicts: WorkerVerdict[] = [];
  const ips = engine.opts.ips === true;
  for (let k = 0; k < meta.length; k += metaFields) {
    const n = meta[k]!;
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
      ? decodeInto(record, 101, whole, decodeStats, l4Checksum)
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
  const reply: FromWorker = {
    type: 'alerts',
    id,
    alerts: relabel(out),
    verdicts,
    busyMs: performance.now() - t0,
    cpuMs: (threadCpuMs() ?? 0) - c0,
  };
  parentPort!.postMessage(reply);
}

function handle(m: ToWorker): void {
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
    runBatch(engine, m.id, m.meta, m.data);
    return;
  }
  const alerts = relabel(engine.finish({ pcapCnt: m.pcapCnt, tsUs: m.tsUs }));
  const reply: FromWorker = {
    type: 'done',
    alerts,
    stats: engine.stats,
    flows: engine.flowStats,
    peakBytes: engine.budget.peakBytes,
    httpAnomalies: engine.httpAnomalies,
  };
  parentPort!.postMessage(reply);
  engine = undefined;
  if (m.spare && rules) {
    // the next run's engine, built while the main thread merges and until its next init (which waits)
    // (done is sent: a failure here is not replied; the next init builds the engine and reports it)
    const c0 = threadCpuMs() ?? 0;
    try {
      const e = new Engine(rules, { ...engineOpts, deferRates: true });
      spare = { engine: e, cpuMs: (threadCpuMs() ?? 0) - c0 };
    } catch {
      spare = undefined;
    }
  }
}

/** Every message gets one reply: an error is sent back, not thrown (the thread would end, its pool hang). */
function onMessage(m: ToWorker): void {
  try {
    handle(m);
  } catch (e) {
    parentPort!.postMessage({
      type: 'failed',
      error: e instanceof Error ? e : new Error(String(e)),
    } satisfies FromWorker);
  }
}

parentPort?.on('message', onMessage);
