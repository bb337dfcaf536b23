/**
 * A deterministic simulation harness for virtual consensus. Loglets and the MetaStore are wrapped so that
 * every operation's request and reply travel through a simulated network: a seeded PRNG delays, reorders,
 * drops (the caller sees a timeout; the operation may or may not have happened) and duplicates them, and a
 * virtual clock orders everything. Clients append and reconfigure concurrently; a checker then verifies the
 * invariants. A failing seed replays exactly.
 */

import { mulberry32 } from '@strata/objstore';
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

/** The simulated world: a virtual clock and an event queue ordered by (time, sequence). */
export class Sim {
  now = 0;
  private seq = 0;
  private readonly queue: { at: number; seq: number; run: () => void }[] = [];
  readonly rand: () => number;

  constructor(
    readonly seed: number,
    readonly faults: Faults,
  ) {
    this.rand = prng(seed);
  }

  schedule(delay: number, run: () => void): void {
    this.queue.push({ at: this.now + delay, seq: this.seq++, run });
    this.queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
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
      const e = this.queue.shift();
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
    readonly inner: MemoryLoglet,
    readonly acks: { position: number; at: number }[],
  ) {}
  get start(): number {
    return this.inner.start;
  }
  async append(batch: Payload[]): Promise<number[]> {
    let done: Promise<number[]> | undefined;
    const ps = await this.sim.rpc(() => (done ??= this.inner.append(batch)));
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

class SimMeta implements MetaStore<Chain> {
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
  } = {},
): Promise<SimReport> {
  const sim = new Sim(seed, { drop: 0.02, duplicate: 0.05, delayMax: 5, ...o.faults });
  const meta = new MemoryMetaStore<Chain>();
  const loglets = new Map<number, SimLoglet>();
  const acksBySeg = new Map<number, { position: number; at: number }[]>();
  const sealedAt = new Map<number, number>();
  const factory = async (_spec: string, start: number) => {
    let l = loglets.get(start);
    if (!l) {
      const acks: { position: number; at: number }[] = [];
      acksBySeg.set(start, acks);
      const inner = new MemoryLoglet(start);
      const seal = inner.seal.bind(inner);
      inner.seal = async () => {
        if (!sealedAt.has(start)) sealedAt.set(start, sim.now);
        if (o.brokenSeal) return { ...(await inner.checkTail()), sealed: true };
        return seal();
      };
      l = new SimLoglet(sim, inner, acks);
      loglets.set(start, l);
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
    const v = new VirtualLog(new SimMeta(sim, meta), factory, { appendTimeoutMs: 1e12, ...sim.clock() });
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
    const v = new VirtualLog(new SimMeta(sim, meta), factory, sim.clock());
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
  const reader = new VirtualLog(meta, async (spec, start) => (await factory(spec, start)).inner);
  await reader.refresh();
  const { tail } = await reader.checkTail();
  const recs = await reader.read(0, tail);
  if (recs.length !== tail) violations.push(`read ${recs.length} records below tail ${tail}: gaps`);
  const seen = new Map<string, number>();
  for (const [i, r] of recs.entries()) {
    if (r.position !== i) violations.push(`position ${r.position} at index ${i}`);
    const p = Buffer.from(r.payload).toString();
    // a record may appear twice only if one copy was never acknowledged (a timed-out retry is not done here)
    if (seen.has(p))
      violations.push(`payload ${p} appears twice (positions ${seen.get(p)} and ${r.position})`);
    seen.set(p, r.position);
  }
  for (const [p, pos] of acked) {
    const got = seen.get(p);
    if (got !== pos) violations.push(`acknowledged ${p} at ${pos} but the log has it at ${got}`);
  }
  // a sealed loglet never acknowledges after its seal
  for (const [start, acks] of acksBySeg) {
    const s = segs.find((x) => x.start === start);
    if (s?.end !== undefined)
      for (const a of acks)
        if (a.position >= s.end)
          violations.push(`segment ${start} acknowledged ${a.position} past its end ${s.end}`);
  }
  return { seed, acknowledged: acked.size, reconfigurations, tail, violations };
}
