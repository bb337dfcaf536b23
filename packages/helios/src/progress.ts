/**
 * The progress log: an append-only log of JSON records on a @strata/vlog VirtualLog. A resolved append is
 * durably committed; a crash mid-append leaves the records either committed or absent (vlog's contract).
 *
 *   position:  0        1        2              tail
 *              [block]  [block]  [node ...]     | next append goes here
 *
 * Shared by processes: a new log's segments are ObjectStoreLoglets on a file: store (each batch one object
 * put with If-None-Match, so racing appenders of several servers and indexers get distinct positions).
 * A process new to an ObjectStoreLoglet lists all its objects (on a file: store, reading each one's
 * header), so the log rolls to a fresh segment every `segmentRecordsMax` records (seal + CAS of the chain
 * in the file MetaStore); a roll left half done by a killed process is finished by the next appender
 * (VirtualLog's failover option). Logs created before this (a file loglet) keep their loglet and are safe
 * for one process only.
 */
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirsSync } from '@strata/cli';
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
      /**
       * Bytes of the block's directory (version 4, written since 2026-12-03): a search's first get of the
       * block asks for exactly these, so a cold needle reads a block in two gets (directory, page).
       */
      dir?: number;
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
       * `child` (levels above 0) the key of the level-below node it adds, or `added` the keys of the
       * level-below nodes it adds at once, in order (several children: written since 2026-12-03; a
       * reader from before ignores such a record as a lost race, so its view, indexer and gc differ from
       * this version's: README, Compatibility). A record whose `key` is its child's is a promotion: the
       * level names its single child's object (an erasure from before would delete that object). A
       * record whose conditions do not hold when it is replayed lost a race and is ignored by every reader.
       */
      base?: string | null;
      child?: string;
      added?: string[];
      /** Level 0: the number of block rewrites (erasures) in the view it was built from; stale: ignored. */
      epoch?: number;
      /**
       * Level 0: the expired prefix (`expire`'s upTo) of the view its blocks' keys were read in; an expiry
       * since that reaches into the node makes it lose (it may hold expired blocks' keys). Since 2026-12-07.
       */
      expired?: number;
      /** How many children the node has (absent in old logs: read from the node when compaction needs it). */
      children?: number;
    }
  | {
      /**
       * Compaction at `level`: each run of adjacent live nodes (`old`, in order) is replaced by one node
       * covering the same blocks (`from`, `to`, `key`), and the nodes above them are rewritten
       * copy-on-write to name the new ones (`path`, from level + 1 up: the parent's pointer lists are
       * remapped, each ancestor above it renames its child). Applied all or none, only if every `old` and
       * every `path[i].old` is still the live node at its (level, from), and the top rewritten node (the
       * last of `path`, or the runs when it is empty) is still not under a parent; otherwise it lost a
       * race and every reader ignores it.
       */
      t: 'compact';
      level: number;
      runs: {
        old: { from: number; key: string }[];
        from: number;
        to: number;
        key: string;
        keys: number;
        bytes: number;
        children: number;
      }[];
      path: {
        level: number;
        from: number;
        old: string;
        key: string;
        keys: number;
        bytes: number;
        children: number;
      }[];
    }
  | {
      /**
       * Erasure rewrote these nodes in place (same level and range, new object without the erased keys):
       * applied only if every `old` is still the live node at (level, from), all or none.
       */
      t: 'renode';
      nodes: { level: number; from: number; old: string; key: string; keys: number; bytes: number }[];
      /**
       * The last of `nodes` was under no parent when the record was built: applied only if it still is
       * not (a parent added since names the object this record supersedes, and keeps the erased keys).
       * Absent in old logs: not checked.
       */
      free?: boolean;
    }
  | { t: 'wm'; level: number; to: number }
  | {
      t: 'rewrite';
      seq: number;
      /**
       * The block object the rewrite was made from: applied only if it is still the block's (another
       * erasure's rewrite recorded first wins). Absent in older logs: applied as it stands.
       */
      base?: string;
      key: string;
      rows: number;
      bytes: number;
      min: (string | number | null)[];
      max: (string | number | null)[];
      /** The block's new level-0 leaf (without the erased rows' keys). */
      leaf?: string;
      /** Bytes of the new block's directory (see the block record). */
      dir?: number;
      /**
       * The rows the rewrite removed, as runs of the old block's row numbers: start, end (exclusive),
       * start, end ... ascending; a search cursor inside the block maps its row through them. Absent
       * (older logs, or more than `eraseRunsMax` runs): a cursor inside the block is refused.
       */
      erased?: number[];
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
      /**
       * The `rewrite` records (by their new block object key) whose index drop has finished: until a
       * record names it, a rewrite's block may keep the erased keys in the nodes above it (an erasure
       * killed before its `renode`), and the next erase or maintain drops them. Since 2026-12-07; older
       * readers ignore it. A record of that repair has `where` empty and `rows` 0.
       */
      done?: string[];
    };

/** Records per segment of a shared log before it rolls to a new one (bounds the cost of a read). */
export const segmentRecordsMax = 64;
/** The loglet of a new progress log: object-store loglets in DIR/log, relative to the log's directory. */
export const sharedLogletSpec = 'objstore:file:log';

/** Records read per call, and appended per batch, when a log is copied onto the shared loglet. */
const migrateReadMax = 4096;
const migrateBatchMax = 32;

/** Finishes (or discards) a migration to the shared log that a crash interrupted (see migrateToShared). */
function recoverMigration(dir: string): void {
  const tmp = `${dir}.new`;
  if (!existsSync(tmp)) return;
  if (!existsSync(join(tmp, 'COMPLETE'))) {
    if (existsSync(dir)) rmSync(tmp, { recursive: true, force: true }); // never swapped in: discard
    return;
  }
  if (existsSync(dir)) renameSync(dir, `${dir}.old-${Date.now()}`);
  renameSync(tmp, dir);
}

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
    private spec: string | undefined,
  ) {}

  static async open(dir: string, name: string): Promise<ProgressLog> {
    recoverMigration(dir);
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

  /** Whether other processes may share this log (its active segment is an object-store loglet). */
  get shared(): boolean {
    return this.spec !== undefined;
  }

  /**
   * Moves a log created before the shared log (a file loglet: one process only, and vlog locks its
   * directory to one process even once sealed) onto the shared loglet by copying its records, in order
   * and so at the same positions, into a new log built beside it in DIR.new, marked complete, then swapped
   * in (DIR -> DIR.old-TIME, DIR.new -> DIR; `open` finishes a swap a crash interrupted). Run it while no
   * process has the stream open. Returns how many records were copied (0: already shared).
   */
  static async migrateToShared(dir: string, name: string): Promise<number> {
    recoverMigration(dir);
    const old = await ProgressLog.open(dir, name);
    let recs: ProgressRecord[] = [];
    try {
      if (old.shared) return 0;
      const { tail } = await old.checkTail();
      for (let p = 0; p < tail; p += migrateReadMax)
        recs = recs.concat(await old.read(p, Math.min(tail, p + migrateReadMax)));
    } finally {
      await old.close();
    }
    const tmp = `${dir}.new`;
    rmSync(tmp, { recursive: true, force: true });
    makeDirsSync(tmp);
    const nw = await ProgressLog.open(tmp, name);
    try {
      for (let i = 0; i < recs.length; i += migrateBatchMax) {
        const pos = await nw.append(recs.slice(i, i + migrateBatchMax));
        if (pos[0] !== i) throw new Error(`progress log migration: batch ${i} landed at ${pos[0]}`);
      }
    } finally {
      await nw.close();
    }
    writeFileSync(join(tmp, 'COMPLETE'), String(recs.length));
    recoverMigration(dir);
    return recs.length;
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
