/**
 * A detection worker (worker_threads): one Engine over the flows the main thread hashes to it. Protocol
 * (see `parallel.ts`): `init` builds the engine, each `batch` is a run of prepared packets in capture
 * order, `finish` flushes the flows; every reply carries the alerts raised, each with its emission index.
 */
import { parentPort } from 'node:worker_threads';
import { threadCpuMs } from './cpu.js';
import { decodeInto, newDecodeStats, PacketRecord } from './decode.js';
import { type Alert, Engine, type EngineOptions } from './detect.js';
import { rejectFrames } from './reject.js';
import type { Rule } from './rules.js';
import { inspectPrepared, type PreparedPacket } from './run.js';

/** Per packet in a batch's `meta`: n, tsUs, link type, checksumOk, frame offset, frame length, whole length. */
export const metaFields = 7;

export type ToWorker =
  | { type: 'init'; rules: Rule[]; opts: EngineOptions; index: number; workers: number }
  | { type: 'batch'; id: number; meta: Float64Array; data: Uint8Array }
  | { type: 'finish'; pcapCnt: number; tsUs: number };

export type FromWorker =
  | { type: 'ready'; loaded: number; skipped: { sid: number; reason: string }[] }
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

function onMessage(m: ToWorker): void {
  if (m.type === 'init') {
    engine = new Engine(m.rules, { ...m.opts, deferRates: true });
    index = m.index;
    workers = m.workers;
    parentPort!.postMessage({ type: 'ready', loaded: engine.compiled.length, skipped: engine.skipped });
    return;
  }
  if (!engine) throw new Error('ids worker: a batch before init');
  if (m.type === 'batch') {
    const t0 = performance.now();
    const c0 = threadCpuMs() ?? 0;
    const out: Alert[] = [];
    const verdicts: WorkerVerdict[] = [];
    const ips = engine.opts.ips === true;
    for (let k = 0; k < m.meta.length; k += metaFields) {
      const [n, tsUs, linkType, ok, off, len, wholeLen] = m.meta.subarray(
        k,
        k + metaFields,
      ) as unknown as number[];
      const frame = m.data.subarray(off!, off! + len!);
      const whole = wholeLen ? m.data.subarray(off! + len!, off! + len! + wholeLen) : undefined;
      const r = whole
        ? decodeInto(record, 101, whole, decodeStats)
        : decodeInto(record, linkType!, frame, decodeStats);
      if (typeof r === 'string') continue; // decoded once already on the main thread: cannot happen
      const d = record;
      const x: PreparedPacket = {
        d,
        n: n!,
        tsUs: tsUs!,
        frame,
        linkType: linkType!,
        whole,
        checksumOk: ok === 1,
      };
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
      id: m.id,
      alerts: relabel(out),
      verdicts,
      busyMs: performance.now() - t0,
      cpuMs: (threadCpuMs() ?? 0) - c0,
    };
    parentPort!.postMessage(reply);
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
}

parentPort?.on('message', onMessage);
