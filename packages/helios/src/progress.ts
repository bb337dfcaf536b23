/**
 * The progress log: an append-only log of JSON records on a @strata/vlog VirtualLog. A resolved append is
 * durably committed; a crash mid-append leaves the records either committed or absent (vlog's contract).
 *
 *   position:  0        1        2              tail
 *              [block]  [block]  [node ...]     | next append goes here
 *
 * Shared by processes: a new log's segments are ObjectStoreLoglets on a file: store (each batch one object
 * put with If-None-Match, so racing appenders of several servers and indexers get distinct positions).
 * An ObjectStoreLoglet reads a segment from its first object, so the log rolls to a fresh segment every
 * `segmentRecordsMax` records (seal + CAS of the chain in the file MetaStore); a roll left half done by a
 * killed process is finished by the next appender (VirtualLog's failover option). Logs created before
 * this (a file loglet) keep their loglet and are safe for one process only.
 */
import { openLog, type VirtualLog } from '@strata/vlog';

export type ProgressRecord =
  | {
      t: 'block';
      id: string;
      key: string;
      source: string;
      from: number;
      to: number;
      rows: number;
      rawBytes: number;
      bytes: number;
      min: (string | number | null)[];
      max: (string | number | null)[];
      leaf?: string;
      /** When it was acknowledged (ms since the epoch, the ingesting process's clock): retention's age. */
      at?: number;
    }
  | {
      t: 'node';
      level: number;
      from: number;
      to: number;
      key: string;
      keys: number;
      bytes: number;
      /**
       * Conditions that make racing indexers safe (absent in old logs: applied as they come): `base` is
       * the key of the node at (level, from) this one replaces, or null for a new node at the level's end;
       * `child` (levels above 0) the key of the level-below node it adds. A record whose conditions do not
       * hold when it is replayed lost a race and is ignored by every reader.
       */
      base?: string | null;
      child?: string;
      /** Level 0: the number of block rewrites (erasures) in the view it was built from; stale: ignored. */
      epoch?: number;
    }
  | {
      /**
       * Erasure rewrote these nodes in place (same level and range, new object without the erased keys):
       * applied only if every `old` is still the live node at (level, from), all or none.
       */
      t: 'renode';
      nodes: { level: number; from: number; old: string; key: string; keys: number; bytes: number }[];
    }
  | { t: 'wm'; level: number; to: number }
  | {
      t: 'rewrite';
      seq: number;
      key: string;
      rows: number;
      bytes: number;
      min: (string | number | null)[];
      max: (string | number | null)[];
      /** The block's new level-0 leaf (without the erased rows' keys). */
      leaf?: string;
    }
  | {
      /** Retention: blocks [0, upTo) are past RETAIN and deleted (queries and the indexer skip them). */
      t: 'expire';
      upTo: number;
      at: number;
    }
  | {
      t: 'erase';
      /** A HighwayHash of the expression, not its text: the log must not keep the erased values. */
      where: string;
      blocks: number[];
      rows: number;
      at: number;
    };

/** Records per segment of a shared log before it rolls to a new one (bounds the cost of a read). */
export const segmentRecordsMax = 64;
/** The loglet of a new progress log: object-store loglets in DIR/log, relative to the log's directory. */
export const sharedLogletSpec = 'objstore:file:log';

/** Bound on one record's encoded size. */
export const recordBytesMax = 1 << 20;

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * The stream's progress log on a @strata/vlog VirtualLog (file loglets, file MetaStore under `dir`).
 * Records are JSON; a resolved append is durably committed (the VirtualLog contract).
 */
export class ProgressLog {
  private constructor(
    private readonly log: VirtualLog,
    private readonly spec: string | undefined,
  ) {}

  static async open(dir: string, name: string): Promise<ProgressLog> {
    const spec = sharedLogletSpec;
    const log = await openLog(name, {
      meta: `file:${dir}`,
      loglet: spec,
      cwd: dir,
      create: true,
      // a roll whose author died between seal and CAS: finish it with the same kind of segment
      failover: async ({ segment }) => (segment.spec === spec ? spec : undefined),
    });
    const segs = log.segments;
    return new ProgressLog(log, segs[segs.length - 1]?.spec === spec ? spec : undefined);
  }

  /** Whether other processes may share this log (its segments are object-store loglets). */
  get shared(): boolean {
    return this.spec !== undefined;
  }

  /** Appends records as one batch; resolves with their positions once committed. */
  async append(batch: ProgressRecord[]): Promise<number[]> {
    const payloads = batch.map((r) => {
      const b = enc.encode(JSON.stringify(r));
      if (b.length > recordBytesMax)
        throw new Error(`progress record of ${b.length} bytes is over recordBytesMax`);
      return b;
    });
    const pos = await this.log.append(payloads);
    const segs = this.log.segments;
    const last = segs[segs.length - 1];
    if (this.spec && last && pos[pos.length - 1]! + 1 - last.start >= segmentRecordsMax)
      await this.log.reconfigure(this.spec, { ifActive: segs.length - 1 });
    return pos;
  }

  /** Records in [from, to). */
  async read(from: number, to: number): Promise<ProgressRecord[]> {
    const recs = await this.log.read(from, to);
    return recs.map((r) => {
      try {
        return JSON.parse(dec.decode(r.payload)) as ProgressRecord;
      } catch {
        throw new Error(`progress log record ${r.position} is not JSON (corrupt log)`);
      }
    });
  }

  async checkTail(): Promise<{ tail: number; sealed: boolean }> {
    return this.log.checkTail();
  }

  async close(): Promise<void> {
    await this.log.close();
  }
}
