/**
 * Deterministic simulation of the NativeLoglet protocol itself: the real Sequencer, LogServer, FileLoglet,
 * NativeLoglet, VirtualLog and failure detector run unchanged over a simulated network and simulated disks,
 * driven by one seeded PRNG and a virtual clock, so a failing seed replays exactly.
 *
 * - Network: each connection delivers in order (as TCP does) after a random delay; connections from
 *   different nodes interleave in any order; a connection may reset (everything in flight is lost and
 *   the caller sees it); a node may be partitioned away for a while (its messages wait, as TCP would
 *   retransmit them, and callers time out meanwhile); a request may be delivered twice.
 * - Disks: writes are durable only once synced; a crash keeps the synced bytes plus a random prefix of
 *   the unsynced ones (a torn write); small files are replaced atomically.
 * - Processes: LogServers crash and restart on their disks (recovery runs); sequencers crash and restart
 *   as a new incarnation.
 *
 * Writers append through VirtualLogs with the native failover policy, a FailureDetector runs beside them,
 * and at the end, with every process restarted but one LogServer gone for good, two fresh readers read
 * the whole log. The checker verifies: the chain is contiguous; the
 * log is dense below its tail; both readers see the same log; every acknowledged append is at its
 * acknowledged position; a record appears more than once only if an attempt to append it failed (and so
 * was retried); no loglet acknowledged a position at or past the end its segment was sealed at.
 */
import { type Chain, LogletUnavailableError, type Payload, SealedError } from './contract.js';
import { FailureDetector, nativeFailover } from './failover.js';
import type { Disk } from './providers/disk.js';
import { MemoryMetaStore } from './providers/memory.js';
import {
  type ConnectionHandler,
  encodeBody,
  type Header,
  type Link,
  LogServer,
  NativeLoglet,
  type Net,
  nativeLogletId,
  nativeSpec,
  parseNativeSpec,
  prepareNative,
  Sequencer,
  type Wire,
} from './providers/native.js';
import { Sim, SimMeta, type SimReport } from './sim.js';
import { VirtualLog } from './virtual.js';

export interface NativeFaults {
  /** Per message: probability that its connection resets. */
  reset: number;
  /** Per request: probability that it is delivered twice. */
  duplicate: number;
  /** One-way delay is uniform in [0, delayMax) virtual ms. */
  delayMax: number;
  /** An fsync takes uniform [0, fsyncMax) virtual ms. */
  fsyncMax: number;
  /** Process crashes (each followed by a restart) during the run. */
  crashes: number;
  /** Partitions (one node cut off for a while) during the run. */
  partitions: number;
}

interface Node {
  name: string;
  up: boolean;
  gen: number;
  isolated: boolean;
  connection?: () => ConnectionHandler;
}

interface SimLink {
  open: boolean;
  from: Node;
  fromGen: number;
  to: Node;
  toGen: number;
  /** Virtual time of the last delivery in each direction (in-order delivery). */
  lastUp: number;
  lastDown: number;
  onFrame?: (h: Header, body: Buffer) => void;
  onClose?: () => void;
  closedFired: boolean;
}

/** What a run's faults did, to show that a schedule exercised them. */
export interface NativeSimStats {
  serverCrashes: number;
  sequencerCrashes: number;
  partitions: number;
  resets: number;
  duplicates: number;
  /** Unsynced bytes that survived crashes as torn writes. */
  tornBytes: number;
  /** Reconfigurations made by the failure detector (the rest were made by failing writers). */
  detectorFailovers: number;
}

export interface NativeSimReport extends SimReport {
  stats: NativeSimStats;
}

/** The simulated network. */
class SimNetwork {
  resets = 0;
  duplicates = 0;
  readonly nodes = new Map<string, Node>();
  private readonly links = new Set<SimLink>();
  /** Messages held back by partitions, released when they heal. */
  private held: (() => void)[] = [];

  constructor(
    private readonly sim: Sim,
    readonly faults: NativeFaults,
  ) {}

  node(name: string): Node {
    let n = this.nodes.get(name);
    if (!n) this.nodes.set(name, (n = { name, up: true, gen: 0, isolated: false }));
    return n;
  }

  private cut(l: SimLink): boolean {
    return l.from.isolated || l.to.isolated;
  }

  private alive(l: SimLink): boolean {
    return l.open && l.from.gen === l.fromGen && l.to.gen === l.toGen && l.from.up && l.to.up;
  }

  close(l: SimLink): void {
    l.open = false;
    this.links.delete(l);
    if (!l.closedFired) {
      l.closedFired = true;
      // the client learns of it after a delay
      this.sim.schedule(this.sim.rand() * this.faults.delayMax, () => l.onClose?.());
    }
  }

  /** Crashes a node: its connections break, its in-memory state is gone. */
  crash(name: string): void {
    const n = this.node(name);
    n.up = false;
    n.gen++;
    for (const l of [...this.links]) if (l.from === n || l.to === n) this.close(l);
  }

  restart(name: string, connection: () => ConnectionHandler): void {
    const n = this.node(name);
    n.up = true;
    n.connection = connection;
  }

  isolate(name: string, on: boolean): void {
    this.node(name).isolated = on;
    if (!on) {
      const h = this.held;
      this.held = [];
      for (const f of h) f();
    }
  }

  /** Sends one message along `l` (up: client to server), in order, after a delay. */
  private transmit(l: SimLink, up: boolean, deliver: () => void): void {
    if (!this.alive(l)) return;
    if (this.sim.rand() < this.faults.reset) {
      this.resets++;
      this.close(l);
      return;
    }
    const go = () => {
      if (!this.alive(l)) return;
      const at = Math.max(this.sim.now + this.sim.rand() * this.faults.delayMax, up ? l.lastUp : l.lastDown);
      if (up) l.lastUp = at;
      else l.lastDown = at;
      this.sim.schedule(at - this.sim.now, () => {
        if (!this.alive(l)) return;
        if (this.cut(l)) this.held.push(() => this.transmitHeld(l, deliver));
        else deliver();
      });
    };
    if (this.cut(l)) this.held.push(go);
    else go();
  }

  private transmitHeld(l: SimLink, deliver: () => void): void {
    if (this.alive(l))
      this.sim.schedule(this.sim.rand() * this.faults.delayMax, () => this.alive(l) && deliver());
  }

  /** The network as seen from node `from` in its current incarnation. */
  view(from: string): Net {
    const fromNode = this.node(from);
    const fromGen = fromNode.gen;
    return {
      setTimer: (fn, ms) => this.sim.setTimer(fn, ms),
      connect: (addr: string): Link => {
        const to = this.node(addr);
        const l: SimLink = {
          open: true,
          from: fromNode,
          fromGen,
          to,
          toGen: to.gen,
          lastUp: 0,
          lastDown: 0,
          closedFired: false,
        };
        let handler: ConnectionHandler | undefined;
        const ready = new Promise<void>((resolve, reject) => {
          const attempt = () => {
            if (!to.up || !to.connection || fromNode.gen !== fromGen || !fromNode.up) {
              l.open = false;
              l.closedFired = true;
              reject(new LogletUnavailableError(`${addr}: connection refused`));
              return;
            }
            l.toGen = to.gen;
            handler = to.connection();
            this.links.add(l);
            resolve();
          };
          this.sim.schedule(this.sim.rand() * this.faults.delayMax, () => {
            if (this.cut(l)) this.held.push(attempt);
            else attempt();
          });
        });
        ready.catch(() => undefined);
        const reply: Wire = {
          send: (h, body) => {
            const buf = encodeBody(body ?? []);
            const copy = JSON.parse(JSON.stringify(h)) as Header;
            this.transmit(l, false, () => l.onFrame?.(copy, buf));
          },
        };
        return {
          ready,
          send: (h, body) => {
            const buf = encodeBody(body ?? []);
            const copy = JSON.parse(JSON.stringify(h)) as Header;
            const deliver = () => handler?.(copy, buf, reply);
            this.transmit(l, true, deliver);
            if (this.sim.rand() < this.faults.duplicate) {
              this.duplicates++;
              this.transmit(l, true, deliver);
            }
          },
          onFrame: (cb) => {
            l.onFrame = cb;
          },
          onClose: (cb) => {
            l.onClose = cb;
          },
          close: () => {
            l.onClose = undefined;
            this.close(l);
          },
        };
      },
    };
  }
}

interface SimFile {
  data: Buffer;
  durable: number;
}

/** The disks of one LogServer node: files survive crashes as far as they were synced. */
class SimFs {
  readonly files = new Map<string, SimFile>();
  gen = 0;
  tornBytes = 0;

  constructor(private readonly sim: Sim) {}

  /** A crash: unsynced bytes are lost, except for a random prefix of them (a torn write). */
  crash(): void {
    this.gen++;
    for (const f of this.files.values()) {
      const extra = Math.floor(this.sim.rand() * (f.data.length - f.durable + 1));
      this.tornBytes += extra;
      f.data = Buffer.from(f.data.subarray(0, f.durable + extra));
      f.durable = f.data.length;
    }
  }

  disk(dir: string, fsyncMax: number): Disk {
    const gen = this.gen;
    const check = () => {
      if (this.gen !== gen) throw new LogletUnavailableError(`${dir}: the server crashed`);
    };
    const file = (name: string) => {
      const k = `${dir}/${name}`;
      let f = this.files.get(k);
      if (!f) this.files.set(k, (f = { data: Buffer.alloc(0), durable: 0 }));
      return f;
    };
    const after = (ms: number) => new Promise<void>((r) => this.sim.schedule(ms, r));
    return {
      label: dir,
      read: async (name) => {
        check();
        const f = this.files.get(`${dir}/${name}`);
        return f ? Buffer.from(f.data) : undefined;
      },
      readAt: async (name, pos, len) => {
        check();
        const f = file(name);
        if (pos + len > f.data.length) throw new Error(`${dir}/${name}: short read at ${pos}`);
        return Buffer.from(f.data.subarray(pos, pos + len));
      },
      create: async (name) => {
        check();
        file(name);
      },
      writeAt: async (name, pos, bufs) => {
        check();
        const f = file(name);
        const b = Buffer.concat(bufs);
        const data = Buffer.alloc(Math.max(f.data.length, pos + b.length));
        f.data.copy(data);
        b.copy(data, pos);
        f.data = data;
        // bytes from pos on are not durable until the next sync (a crash keeps a random prefix of them)
        f.durable = Math.min(f.durable, pos);
      },
      sync: async (name) => {
        check();
        const f = file(name);
        const upTo = f.data.length;
        await after(this.sim.rand() * fsyncMax);
        check();
        f.durable = Math.max(f.durable, Math.min(upTo, f.data.length));
      },
      truncate: async (name, len) => {
        check();
        const f = file(name);
        f.data = Buffer.from(f.data.subarray(0, len));
        f.durable = Math.min(f.durable, len);
        await after(this.sim.rand() * fsyncMax);
        check();
        f.durable = f.data.length;
      },
      replace: async (name, data) => {
        check();
        await after(this.sim.rand() * fsyncMax);
        check();
        const b = Buffer.from(data);
        this.files.set(`${dir}/${name}`, { data: b, durable: b.length });
      },
      close: async () => undefined,
    };
  }
}

export interface NativeSimOptions {
  writers?: number;
  appendsPerWriter?: number;
  /** LogServers in the pool (3 per loglet). */
  servers?: number;
  /** Sequencers in the pool. */
  sequencers?: number;
  faults?: Partial<NativeFaults>;
  /** A deliberately broken seal that skips the repair, to show that the checker catches it. */
  skipRepair?: boolean;
}

/** One simulated run of NativeLoglets under faults; see the module comment for what is checked. */
export async function simulateNative(seed: number, o: NativeSimOptions = {}): Promise<NativeSimReport> {
  const faults: NativeFaults = {
    reset: 0.002,
    duplicate: 0.01,
    delayMax: 2,
    fsyncMax: 2,
    crashes: 2,
    partitions: 1,
    ...o.faults,
  };
  const sim = new Sim(seed, { drop: 0.01, duplicate: 0.02, delayMax: 2 });
  const net = new SimNetwork(sim, faults);
  const serverNames = Array.from({ length: o.servers ?? 5 }, (_, i) => `ls${i}:1`);
  const seqNames = Array.from({ length: o.sequencers ?? 2 }, (_, i) => `seq${i}:1`);
  const fss = new Map<string, SimFs>();
  const incarnations = new Map<string, number>();
  const bootServer = (name: string) => {
    let fs = fss.get(name);
    if (!fs) fss.set(name, (fs = new SimFs(sim)));
    const f = fs;
    const s = new LogServer(name, { disk: async (id) => f.disk(id, faults.fsyncMax) });
    net.restart(name, () => s.connection());
  };
  const bootSequencer = (name: string) => {
    const k = (incarnations.get(name) ?? 0) + 1;
    incarnations.set(name, k);
    const s = new Sequencer([], { net: net.view(name), incarnation: `${name}#${k}` });
    net.restart(name, () => s.connection());
  };
  for (const n of serverNames) bootServer(n);
  for (const n of seqNames) bootSequencer(n);

  /** Acknowledged positions by loglet id (one per segment). */
  const acksBySeg = new Map<string, number[]>();
  const uncertain = new Set<string>();
  const timeoutMs = 40;
  class Recording extends NativeLoglet {
    override async append(batch: Payload[]): Promise<number[]> {
      try {
        const ps = await super.append(batch);
        let a = acksBySeg.get(this.id);
        if (!a) acksBySeg.set(this.id, (a = []));
        a.push(...ps);
        return ps;
      } catch (e) {
        for (const p of batch) uncertain.add(Buffer.from(p).toString());
        throw e;
      }
    }
    override async seal() {
      if (!o.skipRepair) return super.seal();
      // the mutation: trust the highest tail of the sealing majority without copying records
      const t = await (this as unknown as { quorum(h: object): Promise<{ h: Header }[]> }).quorum({
        op: 'seal',
      });
      return { tail: Math.max(this.start, ...t.map((r) => Number(r.h.tail))), sealed: true };
    }
  }
  let clients = 0;
  const factory = (client: string) => async (spec: string, start: number, index: number) => {
    const n = parseNativeSpec(spec);
    return new Recording(nativeLogletId(spec, index), start, n.sequencer, n.servers, {
      net: net.view(client),
      timeoutMs,
      clientId: `${client}/${clients++}`,
    });
  };
  const pool = { sequencers: seqNames, servers: serverNames, timeoutMs };
  const meta = new MemoryMetaStore<Chain>();
  await meta.put(
    { segments: [{ start: 0, spec: nativeSpec(seqNames[0]!, serverNames.slice(0, 3), 'log') }] },
    0,
  );
  const clock = sim.clock();
  const violations: string[] = [];
  const acked = new Map<string, number>();
  const writers = o.writers ?? 3;
  const per = o.appendsPerWriter ?? 15;
  let writing = writers;
  const work: Promise<unknown>[] = [];
  for (let c = 0; c < writers; c++) {
    const v = new VirtualLog(new SimMeta(sim, meta), factory(`client${c}:1`), {
      ...clock,
      appendTimeoutMs: 2_000,
      failover: nativeFailover(pool),
      // half the writers ready successors before sealing, so both paths run under faults
      ...(c % 2 === 0
        ? {
            prepare: (spec, index) =>
              prepareNative(spec, index, { net: net.view(`client${c}:1`), timeoutMs }),
          }
        : {}),
    });
    work.push(
      (async () => {
        await v.refresh();
        for (let i = 0; i < per; i++) {
          const payload = `w${c}-${i}`;
          try {
            const [p] = await v.append([Buffer.from(payload)]);
            acked.set(payload, p!);
          } catch (e) {
            uncertain.add(payload);
            // unavailability is allowed (no majority, or no successor in time); anything else is a bug
            if (!(e instanceof LogletUnavailableError) && !(e instanceof SealedError))
              violations.push(`append ${payload}: unexpected ${(e as Error).message}`);
          }
        }
        writing--;
      })(),
    );
  }
  // a failure detector beside the writers
  const dv = new VirtualLog(new SimMeta(sim, meta), factory('detector:1'), { ...clock });
  const detector = new FailureDetector(dv, nativeFailover(pool), { intervalMs: 60, sleep: clock.sleep });
  detector.start();
  // the chaos: crashes and restarts, partitions
  const down = new Set<string>();
  let serverCrashes = 0;
  let sequencerCrashes = 0;
  let partitions = 0;
  work.push(
    (async () => {
      for (let k = 0; k < faults.crashes; k++) {
        await clock.sleep(sim.rand() * 150);
        const all = [...serverNames, ...seqNames].filter((n) => !down.has(n));
        const victim = all[Math.floor(sim.rand() * all.length)]!;
        down.add(victim);
        if (fss.has(victim)) serverCrashes++;
        else sequencerCrashes++;
        net.crash(victim);
        fss.get(victim)?.crash();
        const downFor = sim.rand() * 200;
        void clock.sleep(downFor).then(() => {
          down.delete(victim);
          if (fss.has(victim)) bootServer(victim);
          else bootSequencer(victim);
        });
      }
    })(),
    (async () => {
      for (let k = 0; k < faults.partitions; k++) {
        await clock.sleep(sim.rand() * 150);
        const names = [...serverNames, ...seqNames];
        const victim = names[Math.floor(sim.rand() * names.length)]!;
        net.isolate(victim, true);
        partitions++;
        await clock.sleep(sim.rand() * 150);
        net.isolate(victim, false);
      }
    })(),
  );
  const writersDone = Promise.all(work).then(async () => {
    while (writing > 0) await clock.sleep(10);
    await detector.stop();
  });
  await sim.run(writersDone);
  // heal: every node up, no more faults, then read back with two fresh clients
  for (const n of serverNames) if (!net.nodes.get(n)!.up) bootServer(n);
  for (const n of seqNames) if (!net.nodes.get(n)!.up) bootSequencer(n);
  Object.assign(faults, { reset: 0, duplicate: 0 });
  // and one LogServer gone for good: every loglet must still be readable from the majority it has left
  const gone = serverNames[Math.floor(sim.rand() * serverNames.length)]!;
  net.crash(gone);
  const logs: { position: number; payload: string }[][] = [];
  let chain: Chain | undefined;
  for (let r = 0; r < 2; r++) {
    const reader = new VirtualLog(meta, factory(`reader${r}:1`), {
      ...clock,
      appendTimeoutMs: 5_000,
      failover: nativeFailover(pool),
    });
    const got = (async () => {
      await reader.refresh();
      const { tail } = await reader.checkTail();
      return (await reader.read(0, tail)).map((x) => ({
        position: x.position,
        payload: Buffer.from(x.payload).toString(),
      }));
    })();
    let recs: { position: number; payload: string }[] = [];
    await sim.run(
      got.then(
        (x) => {
          recs = x;
        },
        (e: Error) => violations.push(`reader ${r}: ${e.message}`),
      ),
    );
    logs.push(recs);
    chain = (await meta.get()).value;
  }
  // checker
  const segs = chain?.segments ?? [];
  for (let i = 1; i < segs.length; i++)
    if (segs[i]!.start !== segs[i - 1]!.end)
      violations.push(
        `chain gap: segment ${i} starts at ${segs[i]!.start}, previous ends at ${segs[i - 1]!.end}`,
      );
  const [a, b] = logs as [(typeof logs)[0], (typeof logs)[0]];
  if (JSON.stringify(a) !== JSON.stringify(b.slice(0, a.length)))
    violations.push('the two readers disagree on the log');
  const seen = new Map<string, number>();
  for (const [i, r] of a.entries()) {
    if (r.position !== i) violations.push(`position ${r.position} at index ${i}: gap`);
    const prev = seen.get(r.payload);
    if (prev !== undefined && !uncertain.has(r.payload))
      violations.push(
        `payload ${r.payload} appears twice (positions ${prev} and ${r.position}) but was never retried`,
      );
    if (prev === undefined) seen.set(r.payload, r.position);
  }
  const at = new Map(a.map((r) => [r.position, r.payload]));
  for (const [p, pos] of acked)
    if (at.get(pos) !== p)
      violations.push(`acknowledged ${p} at ${pos} but the log has ${at.get(pos)} there`);
  for (const [i, s] of segs.entries()) {
    if (s.end === undefined) continue;
    const id = nativeLogletId(s.spec, i);
    for (const p of acksBySeg.get(id) ?? [])
      if (p >= s.end) violations.push(`loglet ${id} acknowledged ${p} past its sealed end ${s.end}`);
  }
  return {
    seed,
    acknowledged: acked.size,
    reconfigurations: segs.length - 1,
    tail: a.length,
    violations,
    stats: {
      serverCrashes,
      sequencerCrashes,
      partitions,
      resets: net.resets,
      duplicates: net.duplicates,
      tornBytes: [...fss.values()].reduce((n, f) => n + f.tornBytes, 0),
      detectorFailovers: detector.failovers,
    },
  };
}
