/**
 * Detection on several cores (worker_threads). Each packet's flow (its 5-tuple in canonical order, so both
 * directions agree, through a keyed HighwayHash-64; `FlowSharder`) goes to one worker: every packet of a
 * flow goes to the same worker, in capture order, so each worker's Engine sees whole flows. Two ways to get
 * the packets there:
 *
 * - By default (and always for IPS, or a capture that cannot be read twice, a pipe): the main thread reads,
 *   prepares and routes each packet and sends it in a batch (one transferred buffer per batch) to its
 *   worker, which decodes it again and inspects it; with IPS the packets are passed on in capture order
 *   with their workers' verdicts.
 * - `reader: 'workers'`, IDS on a regular file (`capture`): each worker reads the file itself (up to its
 *   size when the run started), prepares every packet (decode, defragment, checksum decision, as one thread
 *   does), routes it as every other worker does and inspects its own. The main thread reads nothing: it
 *   waits, merges the alerts and decides the thresholds. The reading and preparing is done N times, in
 *   parallel: more CPU in all, and each worker's share of it grows by what the main thread spent.
 *
 * Alerts come back tagged with the packet they were raised on and are merged in capture order (one worker
 * inspects each packet); threshold, detection_filter and (without IPS) rate_filter, whose state spans
 * flows, are decided on the main thread in that order (the workers run with `deferRates`; matches that
 * count but do not alert come as silent alerts), so the alerts are the ones one Engine raises.
 * The alerts of the end-of-input flush (each worker drains its own flows) are put in the order one
 * engine drains all of them (by each flow's last packet, then its first: `Alert.flushOrder`). Each worker
 * sweeps its flow table at every packet of the capture, its own and the others' (the main thread sends it
 * the numbers and times of the packets it routed elsewhere, `Engine.tick`; a worker that reads does it
 * itself), so a flow times out at the packet it does on one engine, and the alerts of flows that timed out
 * at one packet are merged in the order one engine's sweep takes them (`Alert.timedOut`). What still
 * differs: flow ids (unique, numbered per worker), and where more than `sweepFlowsPerPacket` flows of the
 * whole capture time out at one packet (one engine leaves the rest to the next packets, each worker
 * sweeps that many of its own).
 *
 *   main reads:     capture -> prepare -> route -> batch -> worker i: Engine -> alerts, verdicts -+
 *   workers read:   worker i: capture -> prepare -> route -> (its own) Engine -> alerts ----------+
 *   merge by (pcapCnt, emission) -> thresholds -> alerts                        <----------------+
 */
import { webcrypto } from 'node:crypto';
import { closeSync, fstatSync, openSync, statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { DefragStats } from './defrag.js';
import type { Alert, EngineOptions, EngineStats, RuleLatencyRecord, RuleProfileRow } from './engine-api.js';
import { type FlowTableStats, flowsMaxDefault, flowsMaxLimit } from './flow.js';
import { type HttpAnomalies, newHttpAnomalies } from './http.js';
import { readCaptureBatchesToCut, type TruncatedCaptureError } from './pcap.js';
import type { Rule } from './rules.js';
import {
  type CaptureInput,
  captureStream,
  latencyRows,
  Pipeline,
  type RunOptions,
  type RunResult,
  type UnsupportedLinks,
  VerdictSink,
} from './run.js';
import { FlowSharder, routesFtp } from './shard.js';
import { reassemblyMemcapDefault } from './stream.js';
import { RateLimiter } from './threshold.js';
import { ThresholdConfigError, type ThresholdEntry } from './threshold-config.js';
import {
  type Flushed,
  type FromWorker,
  metaFields,
  type ToWorker,
  tickFields,
  type WorkerVerdict,
} from './worker.js';

/** Packets per batch sent to a worker at most. */
export const batchPacketsMax = 512;
/** Other workers' packets (their numbers and times, `tickFields`) a batch carries at most. */
export const batchTicksMax = 4096;
/** Frame bytes per batch at most. */
export const batchBytesMax = 512 * 1024;
/** Batches in flight per worker at most (the reader waits beyond: memory stays bounded). */
export const batchesInFlightMax = 4;
/** Workers at most. */
export const workersMax = 64;
/**
 * IPS: captured packets held for their verdicts at most (the reader then sends every partial batch and
 * waits): packets are passed on in capture order, so one flow's slow worker holds the others' back.
 */
export const heldPacketsMax = 16_384;

export interface WorkerLoad {
  packets: number;
  bytes: number;
  alerts: number;
  /** Time spent inspecting (not waiting). */
  busyMs: number;
  /** CPU time of the worker's thread while inspecting (Linux; 0 where unknown). */
  cpuMs: number;
}

/**
 * Where a parallel run's wall time went, ms: from the start until every worker was set up (the main thread
 * reads and prepares meanwhile), from then until the last batch came back, and the flush at the end.
 */
export interface ParallelPhases {
  initMs: number;
  batchesMs: number;
  finishMs: number;
  /** Each worker's engine set up for the run (built, or a spare taken): wall and thread CPU ms. */
  workerInitMs: number[];
  workerInitCpuMs: number[];
  /** Every worker ran on a spare engine, made ready after the run before (`spareEngines`), taking this CPU. */
  spareEngines: boolean;
  workerSpareCpuMs: number[];
  /** Who read the capture: each worker (`reader: 'workers'`, IDS on a regular file), or the main thread. */
  reader: 'workers' | 'main';
}

export type ParallelResult = RunResult & { workers: WorkerLoad[]; phases: ParallelPhases };

interface Slot {
  worker: Worker;
  load: WorkerLoad;
  inFlight: number;
  /** Resolved when a batch comes back (the reader waits on it when too many are in flight). */
  wake: (() => void) | undefined;
  /** The requests waiting for their reply, in the order sent (a worker replies to each, in order). */
  replies: { resolve: (m: FromWorker) => void; reject: (e: unknown) => void }[];
  /** Why the worker's thread ended (an uncaught error, or it exited): every request fails with it. */
  down: Error | undefined;
  /** The batch being filled: its packets' fields (`count` of them), their frames' bytes, their numbers. */
  batch: Batch;
  nextId: number;
}

/**
 * threshold.config's rate_filter changes a match's action, while its counts span flows other workers hold:
 * the merger counts them (the workers run with `deferRates`) and gives each alert its action, which is all
 * an action does without IPS, but for a pass (it cuts the packet's later rules, in the worker, at once).
 * Refused, naming the entry: any rate_filter with IPS (the new action decides the packet), and one whose
 * new action is pass. A rule of action pass under a rate_filter is refused by the workers' engines.
 */
export function refuseRateFilters(
  entries: readonly ThresholdEntry[] | undefined,
  workers: number,
  ips: boolean,
): void {
  if (workers <= 1) return;
  const e = entries?.find((x) => x.kind === 'rate_filter' && (ips || x.newAction === 'pass'));
  if (e)
    throw new ThresholdConfigError(
      `${e.file}:${e.line}: ${ips ? 'rate_filter with IPS' : 'rate_filter new_action pass'} needs one engine (a worker acts before the count, which spans flows ${workers} workers share out, is decided): run without --workers`,
    );
}

/**
 * The engine options each of `workers` workers runs with: the bounds on what all flows together hold (the
 * flow table's `flowsMax`, the reassembly memcap), given or default, shared out among them, so that the
 * process holds no more than one engine would (flows hash evenly over the workers). A value the engine
 * would refuse is passed as it is, for its error to name it.
 */
export function workerShare(opts: EngineOptions, workers: number): EngineOptions {
  const share = (v: number | undefined, dflt: number, max = Number.MAX_SAFE_INTEGER) => {
    const x = v ?? dflt;
    return Number.isSafeInteger(x) && x >= 1 && x <= max ? Math.max(1, Math.floor(x / workers)) : x;
  };
  if (workers <= 1) return opts;
  return {
    ...opts,
    flowsMax: share(opts.flowsMax, flowsMaxDefault, flowsMaxLimit),
    reassemblyMemcapBytes: share(opts.reassemblyMemcapBytes, reassemblyMemcapDefault),
  };
}

/** How a worker is started: the compiled worker.js, or (sources run through tsx, as in tests) worker.ts. */
function spawn(): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const url = new URL('./worker.ts', here).href;
    return new Worker(
      `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url)}); })`,
      { eval: true },
    );
  }
  return new Worker(new URL('./worker.js', here));
}

export interface ParallelRunnerOptions {
  /**
   * After each run, every worker keeps its engine for the next run with the same rules and options, reset
   * (`Engine.reset`: no state of the run, the automata it built from traffic kept; if the reset fails, the
   * next run builds one), so that the next `run` neither waits for an engine nor runs a new engine's first pass.
   * Off by default: a pool used for one capture would keep engines it never uses.
   */
  spareEngines?: boolean;
}

/**
 * A pool of detection workers, reused across captures (`run` sets each worker's engine up again). A
 * rule set is sent to the workers once: a later `run` with the same rules (the same array, or one holding
 * the same Rule objects in the same order, not changed since) reuses the workers' copies. `close` ends
 * the threads.
 */
export class ParallelRunner {
  private readonly slots: Slot[];
  /**
   * Batch buffers the workers sent back, to be filled again: a new 576 KiB buffer per batch cost its
   * allocation, the page faults of its first writes and the collections its external memory brought on
   * (about 0.3-0.8 ms of the process's CPU a batch in a probe, against 0.04 ms reused; ndpi-mix-a is about 70
   * batches). At most `workers * (batchesInFlightMax + 1)`.
   */
  private readonly freeBatches: Batch[] = [];
  /** `routesFtp` of the rules sent last (`sent`). */
  private sentRoutesFtp = false;
  private readonly spareEngines: boolean;
  /** The rules the workers hold (a copy of the array sent), and the options their spares were built with. */
  private sent: Rule[] | undefined;
  private readonly hashKey = webcrypto.getRandomValues(new Uint8Array(32));

  constructor(
    readonly workers: number,
    opts: ParallelRunnerOptions = {},
  ) {
    if (!Number.isInteger(workers) || workers < 1 || workers > workersMax)
      throw new RangeError(`workers must be an integer from 1 to ${workersMax}, got ${workers}`);
    this.spareEngines = opts.spareEngines === true;
    this.slots = Array.from({ length: workers }, () => {
      const worker = spawn();
      const slot: Slot = {
        worker,
        load: newLoad(),
        inFlight: 0,
        wake: undefined,
        replies: [],
        down: undefined,
        batch: newBatch(),
        nextId: 0,
      };
      worker.on('message', (m: FromWorker) => {
        const r = slot.replies.shift();
        if (m.type === 'failed') r?.reject(m.error);
        else r?.resolve(m);
      });
      const down = (e: Error) => {
        slot.down ??= e;
        for (const r of slot.replies.splice(0)) r.reject(e);
      };
      worker.on('error', down);
      worker.on('exit', (code) => down(new Error(`ids worker: the thread ended (exit code ${code})`)));
      return slot;
    });
  }

  /** Resolves once every worker is idle (with `spareEngines`: the next run's engines are ready). */
  async idle(): Promise<void> {
    if (this.closed) throw new Error('ParallelRunner: idle after close (the worker threads have ended)');
    await Promise.all(this.slots.map((s) => this.request(s, { type: 'ping' })));
  }

  /** Ends the worker threads; a `run` after it fails at once saying so. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private closed = false;
  /** The last run called, while one is under way or waiting (resolves when it ends, however it ends). */
  private queue: Promise<void> | undefined;

  private request(s: Slot, m: ToWorker, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      if (s.down) return reject(s.down);
      s.replies.push({ resolve, reject });
      s.worker.postMessage(m, transfer);
    });
  }

  /**
   * Runs one capture through the pool; the alerts come back in capture order. With `ips`, each worker
   * decides the verdicts of its flows' packets (a verdict depends on the flow only: thresholds, decided
   * here, gate alerts, not actions), and the packets are passed on (to `out`) in capture order.
   * `reader: 'workers'` (IDS on a regular file only; else the main thread reads) makes each worker read the
   * capture itself; by default the main thread reads and sends the packets in batches (measured faster at 2
   * and 4 workers: see the README). A run called while another is under way waits for it to end (and
   * opens its capture then).
   */
  async run(
    input: CaptureInput,
    rules: Rule[],
    opts: RunOptions & { reader?: 'workers' | 'main' } = {},
  ): Promise<ParallelResult> {
    refuseRateFilters(opts.thresholdConfig, this.workers, opts.ips === true);
    // one run at a time: the workers hold one engine each and the slots one batch and load each, so two
    // runs at once mixed their packets (one failed with "a batch before init", the other lost alerts)
    // a run with none before it starts at once, not a turn of the event loop later: a path is opened
    // when `run` is called (a file renamed over right after is not read)
    const before = this.queue;
    let done!: () => void;
    const mine = new Promise<void>((res) => {
      done = res;
    });
    this.queue = mine;
    try {
      if (before) await before;
      if (this.closed) throw new Error('ParallelRunner: run after close (the worker threads have ended)');
      return await this.runOne(input, rules, opts);
    } finally {
      done();
      if (this.queue === mine) this.queue = undefined;
    }
  }

  private async runOne(
    input: CaptureInput,
    rules: Rule[],
    opts: RunOptions & { reader?: 'workers' | 'main' },
  ): Promise<ParallelResult> {
    const t0 = performance.now();
    if (opts.out !== undefined && !opts.ips) throw new Error('out: a pcap of passed packets needs ips');
    const { validateChecksums, defrag, filter, out, reader, ...given } = opts;
    const engineOpts = workerShare(given, this.workers);
    const sent = this.sent;
    const same = sent !== undefined && sent.length === rules.length && sent.every((r, i) => r === rules[i]);
    this.sent = [...rules];
    const optsKey = JSON.stringify(engineOpts);
    // each worker reads the file itself only when it holds the same bytes for each of them: a regular file,
    // read up to its size now (a pipe cannot be read N times; a file still growing is read as it is now),
    // opened here once, so that the workers read this file even when its path is renamed over during the
    // run (a path that is not a regular file is not opened here: opening a FIFO waits for its writer)
    let size: number | undefined;
    let fd: number | undefined;
    if (!opts.ips && reader === 'workers' && typeof input === 'string' && statSync(input).isFile()) {
      fd = openSync(input, 'r');
      const st = fstatSync(fd);
      if (st.isFile()) size = st.size;
      else {
        closeSync(fd);
        fd = undefined;
      }
    }
    // not awaited before reading: the main thread (or each worker, behind its init) reads while the
    // workers set up (the batches queue behind init; at most batchesInFlightMax each)
    let tReady = t0;
    const ready = Promise.all(
      this.slots.map((s, index) =>
        this.request(s, {
          type: 'init',
          ...(!same && { rules }),
          opts: engineOpts,
          optsKey,
          index,
          workers: this.workers,
        }),
      ),
    ).then((r) => {
      tReady = performance.now();
      return r;
    });
    for (const s of this.slots) {
      s.load = newLoad();
      // a run that threw (a bad capture) may have left a batch unsent: its packets and ticks are not this run's
      s.batch.count = 0;
      s.batch.bytes = 0;
      s.batch.ns = [];
      s.batch.tickCount = 0;
    }
    // (of the rules the workers hold: looked at again only when they were sent again)
    if (!same) this.sentRoutesFtp = routesFtp(rules);
    const ftp = this.sentRoutesFtp;
    const spare = this.spareEngines;
    let shards: Sharded;
    if (size !== undefined && fd !== undefined) {
      const bytes = size;
      const captured = this.slots.map((s) =>
        this.request(s, {
          type: 'capture',
          fd,
          bytes,
          validateChecksums,
          defrag,
          filter,
          hashKey: this.hashKey,
          ftp,
          spare,
        }),
      );
      // the first failure (a worker's set-up, its capture, its thread) fails the run at once; the other
      // workers' replies still come (their queues stay in step for the next run) and are dropped
      for (const c of captured) c.catch(() => undefined);
      // closed once every worker is done with it (a failed run returns before the others are)
      const open = fd;
      void Promise.allSettled(captured)
        .then(() => closeSync(open))
        .catch(() => undefined);
      const replies = await Promise.all([ready, ...captured]);
      const done = replies.slice(1) as Extract<FromWorker, { type: 'captured' }>[];
      this.slots.forEach((s, i) => {
        const r = done[i]!;
        s.load.packets = r.ownPackets;
        s.load.bytes = r.ownBytes;
        s.load.alerts = raisedCount(r.raised);
        s.load.busyMs = r.busyMs;
        s.load.cpuMs = r.cpuMs;
      });
      const first = done[0]!;
      shards = {
        raised: done.map((r) => r.raised),
        done,
        tBatches: performance.now(),
        packets: first.packets,
        bytes: first.bytes,
        decodeFailures: first.decodeFailures,
        tunneled: first.tunneled,
        filtered: first.filtered,
        unsupportedLinks: first.unsupportedLinks,
        defrag: first.defrag,
        defragExceptions: first.defragExceptions,
        truncated: first.truncated,
      };
    } else shards = await this.runBatches(input, opts, ready, ftp);
    const readies = await ready;
    sameEngines(readies);
    const tBatches = shards.tBatches;
    const tDone = performance.now();
    // merge: by the packet an alert was raised on; within a packet, the alerts of flows that timed out
    // there (any worker's) first, in the order one engine's sweep takes the flows, then the packet's own,
    // which one worker raised, in order
    const tagged: { a: Alert; k: number }[] = [];
    let k = 0;
    for (const alerts of shards.raised) for (const a of alerts) tagged.push({ a, k: k++ });
    tagged.sort((x, y) => (x.a.pcapCnt ?? 0) - (y.a.pcapCnt ?? 0) || sweepOrder(x.a, y.a) || x.k - y.k);
    const merged = tagged.map((t) => {
      delete t.a.timedOut;
      return t.a;
    });
    // the end-of-input flushes, flow by flow in the order one engine drains them (by last packet, then
    // first; each worker's in its order), one by one (spread as arguments, 150,000 alerts overflowed the stack)
    const flushed: { a: Alert; k: number }[] = [];
    for (const r of shards.done) for (const a of r.alerts) flushed.push({ a, k: k++ });
    const inf = Number.POSITIVE_INFINITY;
    flushed.sort(
      (x, y) =>
        (x.a.flushOrder?.[0] ?? inf) - (y.a.flushOrder?.[0] ?? inf) ||
        (x.a.flushOrder?.[1] ?? inf) - (y.a.flushOrder?.[1] ?? inf) ||
        x.k - y.k,
    );
    for (const { a } of flushed) {
      delete a.flushOrder;
      merged.push(a);
    }
    // the merger decides thresholds and suppressions (the workers defer them), and counts them
    const rated: Partial<EngineStats> = {};
    const rates = new RateLimiter();
    rates.countInto(rated);
    const alerts = merged.filter((a) => {
      // the rate_filter first, as one engine asks it before the threshold (actionOf, then rateDecision)
      const f = a.rateFilter;
      if (f) {
        delete a.rateFilter;
        const action = rates.rateFilterAction(f.filters, f.event);
        if (action !== undefined) a.action = action;
      }
      const r = a.rate;
      if (r) {
        delete a.rate;
        if (!rates.allow(r.spec, r.event)) return false;
      }
      // counted, not reported: a noalert match, or an alert a pass took back (see Alert.silent)
      return a.silent === undefined;
    });
    const stats = sumStats([...shards.done.map((r) => r.stats), rated as EngineStats]);
    stats.alerts = alerts.length;
    // the reader's defragmenter (the main thread's, or each reading worker's, as every one rebuilds every
    // datagram: the first's)
    stats.exceptionDefragMemcap = shards.defragExceptions;
    const first = readies[0];
    return {
      alerts,
      packets: shards.packets,
      bytes: shards.bytes,
      seconds: (performance.now() - t0) / 1000,
      ...(shards.truncated !== undefined && { truncated: shards.truncated }),
      decodeFailures: shards.decodeFailures,
      tunneled: shards.tunneled,
      ...(filter !== undefined && { packetsFiltered: shards.filtered }),
      ...(shards.unsupportedLinks && { unsupportedLinks: shards.unsupportedLinks }),
      defrag: shards.defrag,
      rulesLoaded: first?.type === 'ready' ? first.loaded : 0,
      rulesSkipped: first?.type === 'ready' ? first.skipped : [],
      warnings: first?.type === 'ready' ? first.warnings : [],
      errors: [],
      stats,
      flows: sumFlows(shards.done.map((r) => r.flows)),
      reassemblyPeakBytes: shards.done.reduce((n, r) => n + r.peakBytes, 0),
      httpAnomalies: sumAnomalies(shards.done.map((r) => r.httpAnomalies)),
      ruleFaults: firstFaults(shards.done),
      ruleLatency: latencyRows(mergeLatency(shards.done)),
      packetFaults: shards.done.flatMap((r) => r.packetFaults).slice(0, 16),
      ruleProfile: mergeProfiles(shards.done.map((r) => r.ruleProfile)),
      workers: this.slots.map((s) => ({ ...s.load })),
      phases: {
        initMs: tReady - t0,
        batchesMs: tBatches - tReady,
        finishMs: tDone - tBatches,
        workerInitMs: readies.map((r) => (r.type === 'ready' ? r.initMs : 0)),
        workerInitCpuMs: readies.map((r) => (r.type === 'ready' ? r.initCpuMs : 0)),
        spareEngines: readies.every((r) => r.type === 'ready' && r.spare),
        workerSpareCpuMs: readies.map((r) => (r.type === 'ready' ? r.spareCpuMs : 0)),
        reader: size !== undefined ? 'workers' : 'main',
      },
      ...(shards.verdicts && { verdicts: shards.verdicts }),
    };
  }

  /**
   * The main thread reads, prepares and routes every packet and sends it in a batch to its worker (IPS:
   * the packets are passed on in capture order with their verdicts); then each worker flushes its flows.
   */
  private async runBatches(
    input: CaptureInput,
    opts: RunOptions,
    ready: Promise<unknown>,
    ftp: boolean,
  ): Promise<Sharded> {
    const { validateChecksums, defrag, out } = opts;
    // a worker that fails (setting up or on a batch): the run fails with its error, and the reader
    // waiting for room in a worker's queue is woken, not left waiting for batches that never come back
    let failed: { e: unknown } | undefined;
    const fail = (e: unknown) => {
      failed ??= { e };
      for (const s of this.slots) {
        const w = s.wake;
        s.wake = undefined;
        w?.();
      }
    };
    ready.catch(fail);
    // the main thread's pipeline only prepares packets (it holds no rules; its engine never sees a packet, so
    // its flow table is the smallest: one of the default 65,536 slots took 1-2 ms a run to make)
    const pipe = new Pipeline([], {
      flowsMax: 16,
      ...(validateChecksums !== undefined && { validateChecksums }),
      ...(defrag !== undefined && { defrag }),
      // the defragmenter's exception policy acts here, where fragments are rebuilt
      ...(opts.exceptionPolicy && { exceptionPolicy: opts.exceptionPolicy }),
      ...(opts.ips && { ips: true }),
      ...(opts.midstream && { midstream: true }),
      ...(opts.overlapPolicy && { overlapPolicy: opts.overlapPolicy }),
      ...(opts.filter !== undefined && { filter: opts.filter }),
    });
    // the workers decode every packet again: they sum the payloads for the transport checksums, in parallel
    pipe.checksumsLater = true;
    // rules on FTP files: a data connection goes to the worker of its control connection
    const shard = new FlowSharder(this.workers, this.hashKey, ftp ? { vars: opts.vars } : undefined);
    const collected: { alerts: Alert[]; order: number }[] = [];
    const pending: Promise<void>[] = [];
    let order = 0;
    // IPS: every packet read waits here for its verdict, and leaves in capture order
    const sink = opts.ips ? new VerdictSink(out) : undefined;
    const held = new Map<
      number,
      {
        tsUs: number;
        linkType: number;
        origLength: number;
        data: Uint8Array;
        ready: boolean;
        v?: WorkerVerdict;
      }
    >();
    let nextOut = 1;
    let draining: Promise<void> = Promise.resolve();
    const drain = (): Promise<void> => {
      draining = draining.then(async () => {
        for (let h = held.get(nextOut); h?.ready; h = held.get(nextOut)) {
          held.delete(nextOut++);
          await sink!.packet(h, h.v?.drop ?? false, h.v?.frame ?? h.data, h.v?.responses ?? []);
        }
      });
      return draining;
    };
    const flush = (s: Slot) => {
      const b = s.batch;
      if (b.count === 0 && b.tickCount === 0) return;
      // views of the batch's length over its buffers, which go to the worker (transferred, not copied)
      const data = b.data.subarray(0, b.bytes);
      const meta = b.meta.subarray(0, b.count * metaFields);
      const ticks = b.ticks.subarray(0, b.tickCount * tickFields);
      const ns = b.ns;
      s.batch = this.freeBatches.pop() ?? newBatch();
      s.inFlight++;
      const mine = order++;
      // this run's load: a run that failed leaves batches in flight, whose replies come during the next run
      const load = s.load;
      pending.push(
        // (the ticks are a view of the meta's buffer: one transfer for both, as each costs)
        this.request(s, { type: 'batch', id: s.nextId++, meta, data, ticks }, [
          meta.buffer as ArrayBuffer,
          data.buffer as ArrayBuffer,
        ]).then(
          (r) => {
            s.inFlight--;
            if (r.type === 'alerts') {
              if (r.meta && r.data && this.freeBatches.length < this.slots.length * (batchesInFlightMax + 1))
                this.freeBatches.push(batchOver(r.meta.buffer as ArrayBuffer, r.data));
              collected.push({ alerts: r.alerts, order: mine });
              load.busyMs += r.busyMs;
              load.cpuMs += r.cpuMs;
              load.alerts += raisedCount(r.alerts);
              if (sink) {
                for (const v of r.verdicts) held.get(v.n)!.v = v;
                for (const n of ns) held.get(n)!.ready = true;
                void drain().catch(() => undefined); // a write error surfaces when the run awaits it
              }
            }
            const w = s.wake;
            s.wake = undefined;
            w?.();
          },
          (e) => {
            s.inFlight--;
            fail(e);
          },
        ),
      );
    };
    // a full batch sent, and the reader held while its worker has too many in flight
    const send = async (s: Slot) => {
      flush(s);
      while (s.inFlight >= batchesInFlightMax && !failed) await new Promise<void>((r) => (s.wake = r));
      if (failed) throw failed.e;
    };
    let lastTsUs = 0;
    const cut: { error?: TruncatedCaptureError } = {};
    try {
      for await (const batch of readCaptureBatchesToCut(captureStream(input), cut))
        for (const p of batch) {
          const x = pipe.prepare(p);
          lastTsUs = p.tsUs;
          if (sink) {
            sink.first(p);
            // a copy: the capture reader's memory is not ours to keep; not inspected: passed at its turn
            held.set(pipe.packets, {
              tsUs: p.tsUs,
              linkType: p.linkType,
              origLength: p.origLength,
              data: new Uint8Array(p.data),
              ready: !x,
              // a fragment the defragmenter's exception policy drops
              ...(pipe.exceptionDropped && { v: { n: pipe.packets, drop: true } }),
            });
            if (!x && held.get(nextOut)?.ready) void drain().catch(() => undefined);
            if (held.size > heldPacketsMax) {
              for (const s of this.slots) flush(s);
              await Promise.all(pending);
              if (failed) throw failed.e;
              await drain();
            }
          }
          if (!x) continue;
          const s = this.slots[shard.of(x.d)]!;
          // the other workers sweep their flow tables at this packet's time (`Engine.tick`)
          if (tickOthers(this.slots, s, x.n, x.tsUs))
            for (const o of this.slots) if (o.batch.tickCount >= batchTicksMax) await send(o);
          const b = s.batch;
          const frameLen = x.frame.length;
          const wholeLen = x.whole?.length ?? 0;
          const m = b.count * metaFields;
          b.meta[m] = x.n;
          b.meta[m + 1] = x.tsUs;
          b.meta[m + 2] = x.linkType;
          // 2: the worker checks the transport checksum (`checksumsLater`), the IP header's being right
          b.meta[m + 3] = !x.checksumOk ? 0 : x.checksumLater ? 2 : 1;
          b.meta[m + 4] = b.bytes;
          b.meta[m + 5] = frameLen;
          b.meta[m + 6] = wholeLen;
          b.meta[m + 7] = x.wholeTunnels ?? 0;
          b.count++;
          b.ns.push(x.n);
          // copied into the batch: the capture reader's memory is not ours to keep until the batch leaves
          if (b.bytes + frameLen + wholeLen > b.data.length) {
            const grown = new Uint8Array(Math.max(2 * b.data.length, b.bytes + frameLen + wholeLen));
            grown.set(b.data.subarray(0, b.bytes));
            b.data = grown;
          }
          b.data.set(x.frame, b.bytes);
          if (x.whole) b.data.set(x.whole, b.bytes + frameLen);
          b.bytes += frameLen + wholeLen;
          s.load.packets++;
          s.load.bytes += frameLen;
          if (b.count >= batchPacketsMax || b.bytes >= batchBytesMax) await send(s);
        }
      for (const s of this.slots) flush(s);
      await Promise.all(pending);
      if (failed) throw failed.e;
      if (sink) await drain();
    } finally {
      await sink?.close();
    }
    await ready;
    const tBatches = performance.now();
    const spare = this.spareEngines;
    const done = await Promise.all(
      this.slots.map((s) =>
        this.request(s, { type: 'finish', pcapCnt: pipe.packets, tsUs: lastTsUs, spare }),
      ),
    );
    return {
      raised: collected.sort((x, y) => x.order - y.order).map((c) => c.alerts),
      done: done.map((r) => r as Extract<FromWorker, { type: 'done' }>),
      tBatches,
      packets: pipe.packets,
      bytes: pipe.bytes,
      decodeFailures: pipe.decodeFailures,
      tunneled: pipe.tunneled,
      filtered: pipe.filtered,
      unsupportedLinks: pipe.unsupportedLinks,
      defrag: pipe.defrag?.stats,
      defragExceptions: pipe.engine.stats.exceptionDefragMemcap,
      truncated: cut.error?.message,
      ...(sink && { verdicts: sink.counts }),
    };
  }
}

/**
 * Packet `n` at `tsUs`, routed to `own`: a tick in every other worker's batch. Returns whether a batch's
 * ticks are full (to be sent before more are added).
 */
function tickOthers(slots: Slot[], own: Slot, n: number, tsUs: number): boolean {
  let full = false;
  for (let i = 0; i < slots.length; i++) {
    const o = slots[i]!;
    if (o === own) continue;
    const b = o.batch;
    const at = b.tickCount * tickFields;
    b.ticks[at] = n;
    b.ticks[at + 1] = tsUs;
    if (++b.tickCount >= batchTicksMax) full = true;
  }
  return full;
}

/** Two alerts of one packet: those of flows that timed out first, by class, last seen, first packet. */
function sweepOrder(x: Alert, y: Alert): number {
  const a = x.timedOut;
  const b = y.timedOut;
  if (!a || !b) return a ? -1 : b ? 1 : 0;
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** What the workers did with one capture, before the merge. */
interface Sharded {
  /** Alerts raised on packets: runs in an order that keeps each packet's alerts in the order raised. */
  raised: Alert[][];
  /** Each worker's final flush. */
  done: Flushed[];
  /** When the last packet was inspected (the final flushes after it). */
  tBatches: number;
  packets: number;
  bytes: number;
  decodeFailures: number;
  tunneled: number;
  /** Packets the capture filter refused. */
  filtered: number;
  unsupportedLinks: UnsupportedLinks | undefined;
  defrag: DefragStats | undefined;
  /** Exception policies the reader's defragmenter applied (`EngineStats.exceptionDefragMemcap`). */
  defragExceptions: number;
  truncated: string | undefined;
  verdicts?: RunResult['verdicts'];
}

interface Batch {
  meta: Float64Array;
  count: number;
  data: Uint8Array;
  bytes: number;
  ns: number[];
  /** The packets routed to the other workers since the last batch (`tickFields` each) and how many. */
  ticks: Float64Array;
  tickCount: number;
}

/** Float64 values of a batch's meta buffer: its packets' fields, then its ticks. */
const batchMetaValues = batchPacketsMax * metaFields + batchTicksMax * tickFields;

/**
 * Room for a full batch: its packets' fields and its ticks (one buffer, one transfer), and its frames with
 * one more of up to 64 KiB past the byte bound.
 */
function newBatch(): Batch {
  return batchOver(new ArrayBuffer(batchMetaValues * 8), new Uint8Array(batchBytesMax + 65_536));
}

/** An empty batch over a meta buffer and a data buffer (new, or sent back by a worker). */
function batchOver(metaBuffer: ArrayBuffer, data: Uint8Array): Batch {
  const packetValues = batchPacketsMax * metaFields;
  return {
    meta: new Float64Array(metaBuffer, 0, packetValues),
    count: 0,
    data,
    bytes: 0,
    ns: [],
    ticks: new Float64Array(metaBuffer, packetValues * 8, batchTicksMax * tickFields),
    tickCount: 0,
  };
}

function newLoad(): WorkerLoad {
  return { packets: 0, bytes: 0, alerts: 0, busyMs: 0, cpuMs: 0 };
}

function sumNumbers<T extends object>(xs: T[], init: T): T {
  const out = structuredClone(init) as Record<string, unknown>;
  for (const x of xs)
    for (const [k, v] of Object.entries(x)) {
      if (typeof v === 'number') out[k] = ((out[k] as number) ?? 0) + v;
      else if (v && typeof v === 'object')
        out[k] = sumNumbers([v as object], (out[k] as object | undefined) ?? {});
    }
  return out as T;
}

/** A worker's alerts, less the silent ones it sends only for their counts (`Alert.silent`). */
function raisedCount(alerts: readonly Alert[]): number {
  let n = 0;
  for (const a of alerts) if (a.silent === undefined) n++;
  return n;
}

/** The workers' rule faults, each rule once with the first worker's error. */
function firstFaults(done: { ruleFaults: [string, string][] }[]): { rule: string; error: string }[] {
  const faults = new Map<string, string>();
  for (const r of done)
    for (const [rule, error] of r.ruleFaults) if (!faults.has(rule)) faults.set(rule, error);
  return [...faults].map(([rule, error]) => ({ rule, error }));
}

/**
 * Several engines' records of a rule as one: each count summed, the `slowest` field (a time) the largest;
 * fields that are not numbers kept from the first.
 */
function mergeByRule<T extends object>(entries: Iterable<[string, T]>, slowest: keyof T): Map<string, T> {
  const m = new Map<string, T>();
  for (const [rule, x] of entries) {
    const had = m.get(rule) as Record<string, unknown> | undefined;
    if (!had) {
      m.set(rule, { ...x });
      continue;
    }
    for (const [k, v] of Object.entries(x))
      if (typeof v === 'number')
        had[k] = k === slowest ? Math.max(had[k] as number, v) : (had[k] as number) + v;
  }
  return m;
}

/** The workers' rule latency records, a rule's counts summed and its slowest evaluation kept. */
function mergeLatency(
  done: { ruleLatency: [string, RuleLatencyRecord][] }[],
): Map<string, RuleLatencyRecord> {
  return mergeByRule(
    done.flatMap((r) => r.ruleLatency),
    'slowestUs',
  );
}

/** The workers' rule profiles as one: a rule's evaluations and time summed, its slowest kept. */
export function mergeProfiles(profiles: RuleProfileRow[][]): RuleProfileRow[] {
  const rows = mergeByRule(
    profiles.flat().map((x) => [x.rule, x] as [string, RuleProfileRow]),
    'maxUs',
  );
  return [...rows.values()].sort((a, b) => b.totalUs - a.totalUs);
}

function sumStats(xs: EngineStats[]): EngineStats {
  return sumNumbers(xs, {} as EngineStats);
}

function sumFlows(xs: FlowTableStats[]): FlowTableStats {
  return sumNumbers(xs, {} as FlowTableStats);
}

function sumAnomalies(xs: HttpAnomalies[]): HttpAnomalies {
  return sumNumbers(xs, newHttpAnomalies());
}

/**
 * Throws unless every worker loaded the same rules (the same count and the same skipped sids): the rules
 * are the same text for each, but an engine build that depends on its thread's state (a pcre refused in
 * one worker: see @strata/cli's boundedRegExp) would make a flow's alerts depend on the worker its hash
 * chose, where the run's totals came from worker 0 alone.
 */
export function sameEngines(readies: FromWorker[]): void {
  const rs = readies.filter((r) => r.type === 'ready');
  const key = (r: (typeof rs)[number]) => `${r.loaded}:${r.skipped.map((x) => x.sid).join(',')}`;
  const odd = rs.findIndex((r) => key(r) !== key(rs[0]!));
  if (odd > 0)
    throw new Error(
      `workers built different engines from the same rules: worker 0 loaded ${rs[0]!.loaded} (${rs[0]!.skipped.length} skipped), worker ${odd} loaded ${rs[odd]!.loaded} (${rs[odd]!.skipped.length} skipped)`,
    );
}

/** One capture on `workers` threads (a pool made and closed for it). */
export async function runCaptureParallel(
  input: CaptureInput,
  rules: Rule[],
  opts: RunOptions & { workers: number },
): Promise<ParallelResult> {
  const { workers, ...rest } = opts;
  const pool = new ParallelRunner(workers);
  try {
    return await pool.run(input, rules, rest);
  } finally {
    await pool.close();
  }
}
