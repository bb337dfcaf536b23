/**
 * A deterministic simulation harness for virtual consensus. Loglets and the MetaStore are wrapped so that
 * every operation's request and reply travel through a simulated network: a seeded PRNG delays, reorders,
 * drops (the caller sees a timeout; the operation may or may not have happened) and duplicates them, and a
 * virtual clock orders everything. Clients append and reconfigure concurrently; a checker then verifies the
 * invariants. A failing seed replays exactly.
 */

import { MemStore, mulberry32 } from '@strata/objstore';
import {
  type Chain,
  type Loglet,
  LogletUnavailableError,
  type LogRecord,
  type MetaStore,
  type Payload,
  type TailInfo,
  type Versioned,
} from './contract.js';
import { MemoryLoglet, MemoryMetaStore } from './providers/memory.js';
import { ObjectStoreLoglet } from './providers/objstore.js';
import { StripedLoglet } from './providers/striped.js';
import { VirtualLog } from './virtual.js';

/** The seeded PRNG of the simulation (mulberry32, shared with objstore's latency model). */
export const prng = mulberry32;

export interface Faults {
  /** Probability that a message is dropped (the caller times out). */
  drop: number;
  /** Probability that a request is delivered twice. */
  duplicate: number;
  /** Message delay is uniform in [0, delayMax) virtual ms: reordering comes from this. */
  delayMax: number;
}

function before(a: { at: number; seq: number }, b: { at: number; seq: number }): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** The simulated world: a virtual clock and an event queue ordered by (time, sequence). */
export class Sim {
  now = 0;
  private seq = 0;
  /** A binary min-heap of events by (at, seq). */
  private readonly queue: { at: number; seq: number; run: () => void }[] = [];
  readonly rand: () => number;

  constructor(
    readonly seed: number,
    readonly faults: Faults,
  ) {
    this.rand = prng(seed);
  }

  schedule(delay: number, run: () => void): void {
    const q = this.queue;
    const e = { at: this.now + delay, seq: this.seq++, run };
    let i = q.push(e) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(e, q[p]!)) break;
      q[i] = q[p]!;
      i = p;
    }
    q[i] = e;
  }

  /** A timer on the virtual clock. */
  setTimer(fn: () => void, ms: number): { cancel(): void } {
    let live = true;
    this.schedule(ms, () => {
      if (live) fn();
    });
    return {
      cancel: () => {
        live = false;
      },
    };
  }

  private pop(): { at: number; seq: number; run: () => void } | undefined {
    const q = this.queue;
    const top = q[0];
    const last = q.pop();
    if (q.length > 0 && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= q.length) break;
        const r = l + 1;
        const c = r < q.length && before(q[r]!, q[l]!) ? r : l;
        if (!before(q[c]!, last)) break;
        q[i] = q[c]!;
        i = c;
      }
      q[i] = last;
    }
    return top;
  }

  /** The virtual clock, for components that sleep. */
  clock(): { sleep: (ms: number) => Promise<void>; nowMs: () => number } {
    return { sleep: (ms) => new Promise<void>((r) => this.schedule(ms, r)), nowMs: () => this.now };
  }

  /** Sends an operation over the simulated network: delayed, maybe dropped or duplicated. */
  rpc<T>(op: () => Promise<T>): Promise<T> {
    const f = this.faults;
    return new Promise<T>((resolve, reject) => {
      const deliver = () => {
        op().then(
          (v) => {
            if (this.rand() < f.drop)
              this.schedule(f.delayMax * 4, () =>
                reject(new LogletUnavailableError('timed out (reply lost)')),
              );
            else this.schedule(this.rand() * f.delayMax, () => resolve(v));
          },
          (e) => this.schedule(this.rand() * f.delayMax, () => reject(e)),
        );
      };
      if (this.rand() < f.drop) {
        this.schedule(f.delayMax * 4, () => reject(new LogletUnavailableError('timed out (request lost)')));
        return;
      }
      this.schedule(this.rand() * f.delayMax, deliver);
      if (this.rand() < f.duplicate)
        this.schedule(this.rand() * f.delayMax, () => void op().catch(() => undefined));
    });
  }

  /** Runs events until the queue is empty and `done` has settled. */
  async run(done: Promise<unknown>): Promise<void> {
    let settled = false;
    void done.finally(() => {
      settled = true;
    });
    for (let steps = 0; steps < 5_000_000; steps++) {
      // let pending promise callbacks run before the next event
      await new Promise<void>((r) => setImmediate(r));
      const e = this.pop();
      if (!e) {
        if (settled) return;
        continue;
      }
      this.now = e.at;
      e.run();
    }
    throw new Error(`simulation (seed ${this.seed}) did not finish`);
  }
}

/** A loglet behind the simulated network. Duplicated appends are not replayed (the request carries an id). */
class SimLoglet implements Loglet {
  constructor(
    private readonly sim: Sim,
    readonly inner: Loglet,
    readonly acks: { position: number; at: number }[],
    /** Payloads whose append failed here: they may be in the log and are sent again by the VirtualLog. */
    readonly uncertain: Set<string>,
  ) {}
  get start(): number {
    return this.inner.start;
  }
  async append(batch: Payload[]): Promise<number[]> {
    let done: Promise<number[]> | undefined;
    let ps: number[];
    try {
      ps = await this.sim.rpc(() => (done ??= this.inner.append(batch)));
    } catch (e) {
      if (e instanceof LogletUnavailableError)
        for (const p of batch) this.uncertain.add(Buffer.from(p).toString());
      throw e;
    }
    for (const p of ps) this.acks.push({ position: p, at: this.sim.now });
    return ps;
  }
  checkTail(): Promise<TailInfo> {
    return this.sim.rpc(() => this.inner.checkTail());
  }
  read(from: number, to: number): Promise<LogRecord[]> {
    return this.inner.read(from, to);
  }
  prefixTrim(pos: number): Promise<void> {
    return this.sim.rpc(() => this.inner.prefixTrim(pos));
  }
  async seal(): Promise<TailInfo> {
    // sealing retries until it gets through: it is idempotent
    for (;;) {
      try {
        return await this.sim.rpc(() => this.inner.seal());
      } catch (e) {
        if (!(e instanceof LogletUnavailableError)) throw e;
      }
    }
  }
  async close(): Promise<void> {}
}

/** The MetaStore behind the simulated network (a get retries until it gets through). */
export class SimMeta implements MetaStore<Chain> {
  constructor(
    private readonly sim: Sim,
    readonly inner: MemoryMetaStore<Chain>,
  ) {}
  async get(): Promise<Versioned<Chain>> {
    for (;;) {
      try {
        return await this.sim.rpc(() => this.inner.get());
      } catch (e) {
        if (!(e instanceof LogletUnavailableError)) throw e;
      }
    }
  }
  put(value: Chain, expectedVersion: number): Promise<number> {
    let done: Promise<number> | undefined;
    return this.sim.rpc(() => (done ??= this.inner.put(value, expectedVersion)));
  }
  async close(): Promise<void> {}
}

export interface SimReport {
  seed: number;
  acknowledged: number;
  reconfigurations: number;
  tail: number;
  violations: string[];
}

/**
 * One simulated run: `clients` writers append `appendsPerClient` records each while `reconfigurers`
 * clients race to reconfigure; then the checker reads the log back with a fresh client.
 */
export async function simulate(
  seed: number,
  o: {
    clients?: number;
    appendsPerClient?: number;
    reconfigurers?: number;
    faults?: Partial<Faults>;
    /** A deliberately broken seal (reports the tail, seals nothing), to show that the checker catches it. */
    brokenSeal?: boolean;
    /**
     * The loglets behind the network: one MemoryLoglet per segment shared by all clients, or an
     * ObjectStoreLoglet per client per segment over one shared in-memory object store (racing clients
     * then meet in its conditional puts), or a StripedLoglet per client per segment over three shared
     * MemoryLoglets, each stripe behind the network on its own (racing appenders fill each other's holes).
     */
    loglet?: 'memory' | 'objstore' | 'striped';
  } = {},
): Promise<SimReport> {
  const sim = new Sim(seed, { drop: 0.02, duplicate: 0.05, delayMax: 5, ...o.faults });
  const meta = new MemoryMetaStore<Chain>();
  const loglets = new Map<string, SimLoglet>();
  const stripes = new Map<string, MemoryLoglet>();
  const store = new MemStore();
  const acksBySeg = new Map<number, { position: number; at: number }[]>();
  const uncertain = new Set<string>();
  const sealedAt = new Map<number, number>();
  // loglets by segment index: segments sealed empty share their start with their successor
  const factoryFor = (client: string) => async (_spec: string, start: number, index: number) => {
    const key = o.loglet === 'objstore' || o.loglet === 'striped' ? `${client}/${index}` : String(index);
    let l = loglets.get(key);
    if (!l) {
      let acks = acksBySeg.get(index);
      if (!acks) acksBySeg.set(index, (acks = []));
      const inner: Loglet =
        o.loglet === 'objstore'
          ? new ObjectStoreLoglet(store, `seg-${index}`, start)
          : o.loglet === 'striped'
            ? new StripedLoglet(
                start,
                [0, 1, 2].map((i) => {
                  const k = `${index}.s${i}`;
                  let m = stripes.get(k);
                  if (!m) stripes.set(k, (m = new MemoryLoglet(0)));
                  // the checker's reader runs after the simulation: no network under it
                  return client === 'reader' ? m : new SimLoglet(sim, m, [], new Set());
                }),
                client === 'reader' ? {} : sim.clock(),
              )
            : new MemoryLoglet(start);
      const seal = inner.seal.bind(inner);
      inner.seal = async () => {
        if (!sealedAt.has(index)) sealedAt.set(index, sim.now);
        if (o.brokenSeal) return { ...(await inner.checkTail()), sealed: true };
        return seal();
      };
      l = new SimLoglet(sim, inner, acks, uncertain);
      loglets.set(key, l);
    }
    return l;
  };
  await meta.put({ segments: [{ start: 0, spec: 'sim://0' }] }, 0);
  const violations: string[] = [];
  const acked = new Map<string, number>(); // payload -> position
  let reconfigurations = 0;
  const clients = o.clients ?? 3;
  const per = o.appendsPerClient ?? 20;
  const work: Promise<unknown>[] = [];
  for (let c = 0; c < clients; c++) {
    const v = new VirtualLog(new SimMeta(sim, meta), factoryFor(`c${c}`), {
      appendTimeoutMs: 1e12,
      ...sim.clock(),
    });
    work.push(
      (async () => {
        await v.refresh();
        for (let i = 0; i < per; i++) {
          const payload = `c${c}-${i}`;
          try {
            const [p] = await v.append([Buffer.from(payload)]);
            acked.set(payload, p!);
          } catch (e) {
            if (!(e instanceof LogletUnavailableError))
              violations.push(`append ${payload}: unexpected ${(e as Error).message}`);
          }
        }
      })(),
    );
  }
  for (let r = 0; r < (o.reconfigurers ?? 2); r++) {
    const v = new VirtualLog(new SimMeta(sim, meta), factoryFor(`r${r}`), sim.clock());
    work.push(
      (async () => {
        await v.refresh();
        for (let k = 0; k < 2; k++) {
          await new Promise<void>((res) => sim.schedule(sim.rand() * 40, res));
          try {
            await v.reconfigure(`sim://r${r}-${k}`);
            reconfigurations++;
          } catch (e) {
            if (!(e instanceof LogletUnavailableError))
              violations.push(`reconfigure: unexpected ${(e as Error).message}`);
          }
        }
      })(),
    );
  }
  await sim.run(Promise.all(work));
  // checker
  const { value: chain } = await meta.get();
  const segs = chain!.segments;
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    if (i > 0 && s.start !== segs[i - 1]!.end)
      violations.push(`chain gap: segment ${i} starts at ${s.start}, previous ends at ${segs[i - 1]!.end}`);
    if (i < segs.length - 1 && s.end === undefined)
      violations.push(`segment ${i} is not the last but has no end`);
  }
  const readerFactory = factoryFor('reader');
  const reader = new VirtualLog(meta, async (spec, start, i) => (await readerFactory(spec, start, i)).inner);
  await reader.refresh();
  const { tail } = await reader.checkTail();
  const recs = await reader.read(0, tail);
  if (recs.length !== tail) violations.push(`read ${recs.length} records below tail ${tail}: gaps`);
  const seen = new Map<string, number>();
  const at = new Map<number, string>();
  for (const [i, r] of recs.entries()) {
    if (r.position !== i) violations.push(`position ${r.position} at index ${i}`);
    const p = Buffer.from(r.payload).toString();
    at.set(r.position, p);
    // a record may appear twice only if an attempt to append it timed out (the VirtualLog sent it again)
    if (seen.has(p) && !uncertain.has(p))
      violations.push(`payload ${p} appears twice (positions ${seen.get(p)} and ${r.position})`);
    if (!seen.has(p)) seen.set(p, r.position);
  }
  for (const [p, pos] of acked)
    if (at.get(pos) !== p)
      violations.push(`acknowledged ${p} at ${pos} but the log has ${at.get(pos)} there`);
  // a sealed loglet never acknowledges after its seal
  for (const [index, acks] of acksBySeg) {
    const s = segs[index];
    if (s?.end !== undefined)
      for (const a of acks)
        if (a.position >= s.end)
          violations.push(`segment ${index} acknowledged ${a.position} past its end ${s.end}`);
  }
  return { seed, acknowledged: acked.size, reconfigurations, tail, violations };
}
