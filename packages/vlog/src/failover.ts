/**
 * Failure detection for native loglets. Delos' NativeLoglet has no leader election: when its sequencer
 * or a LogServer stops answering, the VirtualLog reconfigures to a new NativeLoglet without it. Two things
 * trigger that here: an operation of a client with a `failover` policy fails (VirtualLogOptions.failover),
 * or a `FailureDetector` finds a member unhealthy on one of its periodic checks.
 *
 * `nativeFailover(pool)` is the policy: it checks the active loglet's members (the sequencer must serve the
 * loglet, every LogServer must answer and keep up with the committed tail) and names a replacement loglet
 * that keeps the healthy members and takes spares from the pool, or nothing when every member is healthy
 * or too few spares answer. Replacement loglets get a fresh id (`BASE.gN`, N the segment's index).
 */
import { checkTimerMs } from '@strata/cli';
import type { Loglet, Segment } from './contract.js';
import { NativeLoglet, nativeSpec, parseNativeSpec, pingAll } from './providers/native.js';
import type { Failover, VirtualLog } from './virtual.js';

export interface NativePool {
  /** Sequencers that may take over (the active one may be among them). */
  sequencers: string[];
  /** LogServers that may take over. */
  servers: string[];
  /** LogServers per new loglet (default: as many as the failed loglet had). */
  replicas?: number;
  /**
   * The fewest LogServers a replacement may have (default: `replicas`, so a failover never lowers the
   * fault tolerance; with fewer spares answering it waits).
   */
  minReplicas?: number;
  /** How long a member may take to answer a check (default 1,000 ms). */
  timeoutMs?: number;
}

/** The loglet id a replacement gets: the base id (without a `.gN` suffix) and the segment's index. */
export function successorId(id: string, index: number): string {
  return `${id.replace(/\.g\d+$/, '')}.g${index + 1}`;
}

/** The failover policy for native loglets over a pool of spare sequencers and LogServers. */
export function nativeFailover(pool: NativePool): Failover {
  const timeoutMs = pool.timeoutMs ?? 1_000;
  /** Per loglet: the committed tail seen at the previous check, to spot a LogServer that fell behind. */
  const lastCommitted = new Map<string, number>();
  return async ({
    loglet,
    index,
    segment,
    error,
  }: {
    loglet: Loglet;
    index: number;
    segment: Segment;
    error?: Error;
  }) => {
    if (!(loglet instanceof NativeLoglet)) return undefined;
    const h = await loglet.health(timeoutMs);
    const key = `${loglet.id}@${loglet.start}`;
    const before = lastCommitted.get(key);
    if (h.committed !== undefined) lastCommitted.set(key, h.committed);
    const failed = new Set<string>();
    for (const [a, tail] of h.servers) {
      // no answer; or, on a detector's periodic check (no error), still missing records that were
      // committed a whole check ago
      if (tail === undefined || (!error && before !== undefined && tail < before)) failed.add(a);
    }
    // a sealed loglet whose successor never landed (its reconfigurer failed) is replaced too
    if (h.sequencer === 'ok' && failed.size === 0 && !h.sealed) return undefined;
    const n = pool.replicas ?? loglet.servers.length;
    const keep = loglet.servers.filter((a) => !failed.has(a));
    const spares = pool.servers.filter((a) => !loglet.servers.includes(a));
    const live = spares.length > 0 ? await pingAll(spares, timeoutMs, loglet.net) : [];
    const servers = [...keep, ...live].slice(0, n);
    if (servers.length < Math.max(1, pool.minReplicas ?? n)) return undefined;
    let sequencer = loglet.sequencer;
    if (h.sequencer === 'dead') {
      const others = pool.sequencers.filter((a) => a !== loglet.sequencer);
      const up = others.length > 0 ? await pingAll(others, timeoutMs, loglet.net) : [];
      if (up.length === 0) return undefined;
      // rotate through the pool so that racing detectors tend to agree
      sequencer = up[index % up.length]!;
    }
    // a 'lost' sequencer (restarted: it cannot claim the old loglet) serves a new loglet id
    return nativeSpec(sequencer, servers, successorId(parseNativeSpec(segment.spec).id, index));
  };
}

export interface FailureDetectorOptions {
  /** Between checks (default 500 ms). */
  intervalMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** Checks the active loglet of a VirtualLog periodically and reconfigures it away from failed members. */
export class FailureDetector {
  private running = false;
  private loop?: Promise<void>;
  /** Reconfigurations this detector made. */
  failovers = 0;

  constructor(
    readonly log: VirtualLog,
    readonly failover: Failover,
    readonly o: FailureDetectorOptions = {},
  ) {
    if (o.intervalMs !== undefined) checkTimerMs('FailureDetector intervalMs', o.intervalMs);
  }

  /** One check: returns whether it reconfigured the log. */
  async check(): Promise<boolean> {
    await this.log.refresh();
    const i = this.log.segments.length - 1;
    if (i < 0) return false;
    const before = this.log.segments.length;
    const loglet = await this.log.activeLoglet();
    const moved = await this.log.failOver(i, loglet, undefined, this.failover);
    if (moved && this.log.segments.length > before) this.failovers++;
    return moved;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const sleep = this.o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    this.loop = (async () => {
      while (this.running) {
        await sleep(this.o.intervalMs ?? 500);
        if (!this.running) break;
        try {
          await this.check();
        } catch {
          // a check that fails (the MetaStore unreachable, say) is retried at the next interval
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
