/**
 * A stream on one machine: ingestion (chunk, block, dedupe by block id, progress-log append), the
 * bottom-up indexer (level-0 merge, add operator, watermarks, orphans), compaction, the hybrid query,
 * erasure, tiers, retention and gc. Blocks and index nodes live in an ObjectStore; progress lives in the
 * stream's progress log. What a search computes from a node or a page is in search.ts, how it reads them
 * in reads.ts, the decoded nodes kept in nodecache.ts.
 */

import { isAscii } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { checkAtLeastZero, checkWhole, kindOf, makeDirsSync, writeFileDurableSync } from '@strata/cli';
import { type ObjectStore, openStore, TieredStore } from '@strata/objstore';
import {
  blockId,
  blockPageRows,
  checkChunk,
  decodeBlock,
  type EncodedBlock,
  type EncodeOptions,
  encodeBlock,
  encodeBlockAsync,
} from './block.js';
import { CursorError, type CursorPosition, formatCursor, parseCursor } from './cursor.js';
import { checkChunkBytes, parseDdl, type StreamDef } from './ddl.js';
import { type Cell, type Row, RowParser } from './formats.js';
import { columnKeys, keysOf, unionKeys } from './keys.js';
import {
  type ChildRun,
  decodeNode,
  dropPointers,
  encodeNode,
  type IndexNode,
  leafNode,
  mergeAll,
  mergeChildren,
  mergeNodes,
} from './node.js';
import { NodeCache } from './nodecache.js';
import { OrderedAppends } from './ordered.js';
import { ProgressLog, type ProgressRecord } from './progress.js';
import { columnsOf, type Expr, evalExpr, mayMatchRange, parseQuery, requiredNeedles } from './query.js';
import { SearchReads } from './reads.js';
import { ByteRowParser } from './rowbytes.js';
import {
  checkSearch,
  evalPlan,
  matchingRows,
  pageMay,
  planFor,
  type SearchOptions,
  type SearchResult,
  type SearchStats,
} from './search.js';

export interface IndexPolicy {
  /** Merge operator: two level-0 nodes merge while both have fewer keys than this. */
  mergeKeysMax: number;
  /** Add operator: children are added to a parent until it has this many keys. */
  addKeysMax: number;
  /** Bound on children per node. */
  fanoutMax: number;
  /** Bound on index levels. */
  levelsMax: number;
  /**
   * Compaction: once this many blocks were indexed since the last compaction, the indexer runs
   * `compact()`, which merges runs of adjacent small nodes under one parent (or among the orphans) into
   * fewer nodes. Counted from the progress log (the level-0 coverage at its last `compact` record), so a
   * restarted indexer, or another process, goes on counting where the log says. 0: never.
   */
  compactEveryBlocks: number;
  /**
   * Bound on children of a node compaction builds (at least fanoutMax). Nodes the merge operator closed
   * because they reached fanoutMax while still small (few keys per block) are merged up to this.
   */
  compactFanoutMax: number;
}

export const defaultPolicy: IndexPolicy = {
  mergeKeysMax: 50_000,
  addKeysMax: 2_000_000,
  fanoutMax: 64,
  levelsMax: 8,
  compactEveryBlocks: 64,
  compactFanoutMax: 1024,
};

/**
 * Refuses an index policy or stream option that cannot mean what it says, naming it: each a whole number
 * from its least sensible value (a fanout of 0 or 1 built a chain of one-child nodes, searches read 100
 * times the nodes; NaN compared false everywhere, so bounds of NaN bound nothing; a page of 0 keys failed
 * only once the first node was written).
 */
export function checkStreamOptions(opts: Partial<IndexPolicy> & StreamOptions): void {
  const least: [keyof IndexPolicy | keyof StreamOptions, number][] = [
    ['mergeKeysMax', 1],
    ['addKeysMax', 1],
    ['fanoutMax', 2],
    ['levelsMax', 1],
    ['compactEveryBlocks', 0],
    ['compactFanoutMax', 1],
    ['nodeCacheBytes', 0],
    ['nodePageCacheBytes', 0],
    ['nodePageKeys', 1],
  ];
  for (const [name, min] of least) {
    const v = opts[name];
    if (v !== undefined) checkWhole(`Stream option ${name}`, v, min);
  }
  if (opts.nowMs !== undefined && typeof opts.nowMs !== 'function')
    throw new TypeError(
      `Stream option nowMs must be a function returning milliseconds, got ${kindOf(opts.nowMs)}`,
    );
}

/** A gc grace period: milliseconds >= 0 (NaN compared false: a grace of NaN deleted nothing, ever). */
function checkGraceMs(what: string, ms: unknown): void {
  checkAtLeastZero(what, ms, 'milliseconds');
}

/** What a maintain pass did (`Stream.maintain`). */
export interface MaintainStats {
  /** Objects moved from the express tier to standard, blocks expired under RETAIN, objects gc deleted. */
  moved: number;
  expired: number;
  deleted: number;
  /** Index nodes rewritten to drop the keys of expired blocks from the nodes that reach past them. */
  expiredNodes: number;
  /** Blocks whose erasure had stopped before its index drop, finished here, and the index nodes rewritten. */
  erasuresFinished: number;
  erasureNodes: number;
}

/** A maintain pass as one line (the CLI's and the server's reports); the index repairs when there were any. */
export function maintainSummary(r: MaintainStats): string {
  return [
    `moved ${r.moved} objects to standard, expired ${r.expired} blocks, deleted ${r.deleted} objects`,
    ...(r.expiredNodes > 0 ? [`, rewrote ${r.expiredNodes} index nodes holding expired keys`] : []),
    ...(r.erasuresFinished > 0
      ? [`, finished the erasure of ${r.erasuresFinished} blocks (${r.erasureNodes} index nodes rewritten)`]
      : []),
  ].join('');
}

/** What a compaction pass did. */
export interface CompactStats {
  /** Runs of adjacent small nodes merged, and how many nodes they were (each run became one node). */
  runs: number;
  nodesMerged: number;
  /** Nodes rewritten above the runs: each parent's pointer lists remapped, each ancestor's child renamed. */
  pathNodes: number;
  /** `compact` records appended, and those that lost a race (the pass stops there; the next one retries). */
  records: number;
  racesLost: number;
}

/** Index objects younger than this are never garbage-collected (an indexer may be about to record them), in ms. */
export const gcGraceMsDefault = 10 * 60_000;
/** Bound on add records of one level that lose races in one indexer pass before it leaves the rest to the next. */
export const addRetriesMax = 16;
/**
 * The closed nodes waiting at a level join the open parent above once their keys (summed) reach this
 * fraction of the parent's, or they fill it (addBatch); until then they are orphans, visited by searches.
 */
export const addWaitFraction = 0.5;
/** Bound on bottom-up sweeps of one compaction pass (each sweep that does anything removes nodes). */
export const compactSweepsMax = 16;
/** Bound on retries of a search whose view named an object another process has since deleted. */
export const searchRetriesMax = 3;
/**
 * Bound on the runs of removed rows a `rewrite` record carries (`erased`: two numbers a run), so an
 * erasure of every other row of a large block does not write a record of hundreds of KB. Past it the
 * record carries none, and a search cursor inside that block is refused.
 */
export const eraseRunsMax = 1024;

/** Bound on attempts to rewrite one block's index path while racing indexers change it. */
export const eraseRetriesMax = 16;
/**
 * Deletes gc has in flight at once. On a `file:` store each delete syncs the directory: one at a time they
 * took 1.7 ms each here, 16 at a time 0.2-0.3 ms (the syncs share the file system's journal commits).
 */
const gcDeletesInFlight = 16;

function setHas(sorted: Float64Array, k: number): boolean {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < k) lo = mid + 1;
    else hi = mid;
  }
  return lo < sorted.length && sorted[lo] === k;
}

/** Bound on a file's chunks ingested at once (parsed, written or appended, not yet acknowledged). */
export const ingestChunksInFlightMax = 3;

/**
 * Rows per page of a stream whose index holds no TOKENS column (declared columns' values only, or no
 * index). Each page costs a compressed stream per column, a key filter and min/max: 2,048 rows halve the
 * brotli calls of such a block (about 150 for a 4 MiB chunk of HDFS lines with 1,024), and its value
 * keys, few and in most pages, gain little from finer filters. Readers take any page size (each page's
 * rows are in the directory).
 */
export const valuePageRows = 2048;

/** Bound on bytes read from a file per read call while ingesting. */
export const readChunkBytes = 1 << 20;

interface BlockInfo {
  seq: number;
  /** Position of its record in the progress log (the first record of a block id wins). */
  pos: number;
  id: string;
  key: string;
  source: string;
  from: number;
  to: number;
  rows: number;
  rawBytes: number;
  bytes: number;
  min: Cell[];
  max: Cell[];
  leaf?: string;
  dir?: number;
  at?: number;
  /** Rewrites of the block by erasures (its rows after an erased one moved): a search cursor names it. */
  rewrites?: number;
  /** Per rewrite, the runs of rows it removed (its record's `erased`), or null when not recorded. */
  erasedRuns?: (number[] | null)[];
}
interface NodeInfo {
  level: number;
  from: number;
  to: number;
  key: string;
  keys: number;
  bytes: number;
  /** Children of the node (level 0: blocks); unknown for nodes recorded before records carried it. */
  children?: number;
}

export interface IngestStats {
  lines: number;
  blocksWritten: number;
  blocksDeduped: number;
  bytes: number;
  /** `ingestFile` with `final: false`: bytes of a last line without a newline, left for the next run. */
  unfinishedBytes?: number;
  /**
   * `ingestFile` of a json or logfmt stream: the columns to which no line of the call gave a value (a
   * field the lines do not have, a name misspelt in the DDL say, or none of the column's type), when it
   * ingested lines. A regex or
   * loghub DDL refuses such a column (its fields are known from the DDL); a json or logfmt line's only
   * from the line. (Counted over the lines this Stream parsed meanwhile: chunks it took for others too.)
   */
  emptyColumns?: string[];
}

export interface ChunkOptions {
  /** The chunk's level-0 leaf as the agent built and shipped it (encoded), and its keys (checked). */
  leaf?: Uint8Array;
  leafKeys?: Float64Array;
  /** Recompute the leaf from the rows and refuse a shipped one that differs. */
  verifyLeaf?: boolean;
}

export interface StreamOptions {
  /** The clock (ms since the epoch) for ingestion times, retention and tier moves; default Date.now. */
  nowMs?: () => number;
  /**
   * Bytes of encoded index nodes kept decoded in memory at most (default `nodeCacheBytesMax`), besides the
   * index's current nodes above level 0: those stay whatever their size (they grow with the index, with no
   * bound) and are not counted in it.
   */
  nodeCacheBytes?: number;
  /**
   * Bytes of HLN2 nodes' directories and pages that searches read in parts, kept at most (LRU, default
   * `nodePageCacheBytesMax`).
   */
  nodePageCacheBytes?: number;
  /**
   * Keys a page of the HLN2 nodes this Stream writes, and expects in those it reads when it sizes a first
   * get (tests; default `nodePageKeys`, or more).
   */
  nodePageKeys?: number;
}

/**
 * Gets of at most this many bytes (a block's pages, a level-0 index node) are read from the stream's
 * `file:` store with synchronous calls (objstore's `fileSyncReadBytesMax`): such objects are usually in
 * the page cache, and through the thread pool a needle's page read waited 10-17 ms whenever V8 compiled
 * a large function on a background thread (the 54th and 125th search of a process, every run).
 */
const syncReadBytesMax = 2 * 2 ** 20;

/**
 * The stream's object store under the DDL's STORAGE clause. `express FOR d THEN standard`: a TieredStore
 * whose express tier is DIR/express and standard tier DIR/objects, with the stream's prefix in class
 * `auto` (written to express, moved to standard by `maintain` once idle for d). One class throughout:
 * that tier only (`standard` is DIR/objects, so data written before tiers existed is found either way).
 */
async function openStreamStore(dataDir: string, def: StreamDef): Promise<ObjectStore> {
  // (parseDdl refuses other classes, and standard THEN express, where the DDL names them)
  const std = resolve(dataDir, 'objects');
  const exp = resolve(dataDir, 'express');
  const { hot, cold, hotForMs } = def.storage;
  makeDirsSync(std);
  if (hot === 'standard') return openStore(`file:${std}`, { fileSyncReadBytesMax: syncReadBytesMax });
  makeDirsSync(exp);
  return openStore(`file:${std}`, {
    fileSyncReadBytesMax: syncReadBytesMax,
    tiers: {
      expressUrl: `file:${exp}`,
      classes: { [`${def.name}/`]: cold === 'express' ? 'express' : 'auto' },
      idleMsBeforeStandard: hotForMs,
    },
  });
}

/**
 * Where each line of a chunk ends: `at[i]` for i < `count` is line i's newline, or the chunk's end for a
 * last line without one. One typed array reused for every chunk of an ingest (grown when short): an array
 * grown by push to 30,000 lines a chunk was copied at each growth, its last copies in the large-object
 * space (fresh pages every chunk).
 */
class LineEnds {
  at = new Uint32Array(1 << 15);
  count = 0;

  /** Finds the lines of a chunk of `length` characters, `newlineAt(from)` its next newline (-1: none). */
  find(length: number, newlineAt: (from: number) => number): this {
    let n = 0;
    let at = this.at;
    const push = (e: number) => {
      if (n === at.length) {
        const grown = new Uint32Array(at.length * 2);
        grown.set(at);
        at = grown;
        this.at = grown;
      }
      at[n++] = e;
    };
    for (let e = newlineAt(0); e >= 0; e = newlineAt(e + 1)) push(e);
    if ((n === 0 ? 0 : at[n - 1]! + 1) < length) push(length);
    this.count = n;
    return this;
  }
}

/** The data directory layout: DIR/objects (file: store, the standard tier), DIR/express (the express tier), DIR/streams/NAME/{stream.ddl,progress/} (progress: a vlog VirtualLog). */
/** A row as an object of its stream's columns (a missing cell as null): JSON lines, HTTP answers. */
export function rowObject(def: StreamDef, r: Row): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  def.columns.forEach((c, i) => {
    o[c.name] = r[i] ?? null;
  });
  return o;
}

export function streamDir(dataDir: string, name: string): string {
  return join(dataDir, 'streams', name);
}

/** Creates a stream from DDL text under a data directory. */
export function createStream(dataDir: string, ddl: string, file = 'DDL'): StreamDef {
  const def = parseDdl(ddl, file);
  const dir = streamDir(dataDir, def.name);
  if (existsSync(join(dir, 'stream.ddl')))
    throw new Error(`stream '${def.name}' already exists in ${dataDir}`);
  makeDirsSync(dir);
  // durable before the call returns: an empty stream.ddl after a crash would keep the stream from opening
  writeFileDurableSync(join(dir, 'stream.ddl'), ddl);
  return def;
}

/** Bytes of a file's head that identify it across restarts (with its inode). */
export const fingerprintBytes = 256;

function fingerprint(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(fingerprintBytes);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const nl = buf.subarray(0, n).indexOf(10);
    const head = buf.subarray(0, nl >= 0 ? nl + 1 : n);
    return blockId('fingerprint', 0, head.length, head);
  } finally {
    closeSync(fd);
  }
}

export class Stream {
  private blocks: BlockInfo[] = [];
  private ids = new Map<string, number>();
  private levels: Map<number, NodeInfo>[] = [];
  private wm: number[] = [];
  private applied = 0;
  /** Blocks [0, expiredUpTo) are past retention: deleted, skipped by queries, never re-indexed. */
  private expiredUpTo = 0;
  /**
   * Records every reader ignores because they lost a race (replayed from the log, so the same in every
   * process): a second block record of an id, a node, renode, compact or rewrite record whose conditions
   * failed.
   */
  readonly racesLost = { blocks: 0, nodes: 0, renodes: 0, compacts: 0, rewrites: 0 };
  /**
   * This process's `rewrite` and `renode` records not yet known applied, by the first new object each
   * names (`appendAwaited`): true once applied.
   */
  private readonly awaited = new Map<string, boolean>();
  /**
   * Applied `rewrite` records (by new block object key, to the block's sequence number) whose index drop
   * no record has said finished yet (an `erase` record's `done`): an erasure killed or failing between
   * the rewrite and its `renode` leaves the erased keys in the nodes above the block until
   * `finishErasures` drops them. Replayed from the log, so the same in every process.
   */
  private readonly dropsPending = new Map<string, number>();
  /**
   * Blocks indexed (level-0 coverage) when the index was last compacted: at the last `compact` record
   * applied (replayed from the log, so the same in every process and after a restart), or when this
   * Stream's last pass ended, which records nothing when it had nothing to merge (`compactEveryBlocks`).
   */
  private indexedAtCompact = 0;
  /** What the compaction passes of this Stream did, summed. */
  readonly compactions: CompactStats & { passes: number } = {
    passes: 0,
    runs: 0,
    nodesMerged: 0,
    pathNodes: 0,
    records: 0,
    racesLost: 0,
  };
  /** Block rewrites (erasures) applied so far: level-0 node records name the count they were built at. */
  private rewrites = 0;
  /** Decoded index nodes: what the indexer wrote or read, and the nodes searches read whole. */
  private readonly nodes: NodeCache;
  /** How searches read nodes and blocks, and what they keep of them. */
  private readonly reads: SearchReads;
  /** Keys a page of the HLN2 nodes this Stream writes (`StreamOptions.nodePageKeys`). */
  private readonly nodePageKeys: number | undefined;
  readonly parser: RowParser;
  /** The parser of ASCII chunks' bytes, for the loghub templates it takes (else undefined). */
  private readonly byteParser: ByteRowParser | undefined;
  private tsCol: number;

  private constructor(
    /** The stream's DDL text (agents fetch it to build leaves). */
    readonly ddl: string,
    readonly def: StreamDef,
    readonly store: ObjectStore,
    readonly log: ProgressLog,
    readonly policy: IndexPolicy,
    /** The clock for ingestion times, retention and tier moves (injected by tests). */
    readonly nowMs: () => number,
    opts: StreamOptions,
  ) {
    this.nodes = new NodeCache(
      {
        upper: () => this.upperNodeKeys(),
        level0: () => new Set([...(this.levels[0]?.values() ?? [])].map((n) => n.key)),
      },
      opts.nodeCacheBytes,
    );
    this.reads = new SearchReads(store, this.nodes, (key) => this.node(key), {
      pageCacheBytes: opts.nodePageCacheBytes,
      nodePageKeys: opts.nodePageKeys,
    });
    this.nodePageKeys = opts.nodePageKeys;
    this.parser = new RowParser(def);
    this.byteParser = ByteRowParser.for(def, this.parser);
    this.tsCol = def.columns.findIndex((c) => c.type === 'TIMESTAMP');
  }

  /** Opens a stream created with createStream. */
  static async open(
    dataDir: string,
    name: string,
    opts: Partial<IndexPolicy> & StreamOptions = {},
  ): Promise<Stream> {
    checkStreamOptions(opts);
    const { nowMs, nodeCacheBytes, nodePageCacheBytes, nodePageKeys, ...policy } = opts;
    const dir = streamDir(dataDir, name);
    const ddlPath = join(dir, 'stream.ddl');
    if (!existsSync(ddlPath))
      throw new Error(
        `no stream '${name}' in ${resolve(dataDir)} (create it with: strata stream create --ddl FILE)`,
      );
    const ddl = readFileSync(ddlPath, 'utf8');
    const def = parseDdl(ddl, ddlPath, { existing: true });
    const store = await openStreamStore(dataDir, def);
    let log: ProgressLog;
    try {
      log = await ProgressLog.open(join(dir, 'progress'), 'progress');
    } catch (e) {
      await store.close();
      throw e;
    }
    const s = new Stream(ddl, def, store, log, { ...defaultPolicy, ...policy }, nowMs ?? Date.now, {
      nodeCacheBytes,
      nodePageCacheBytes,
      nodePageKeys,
    });
    try {
      await s.catchUp();
    } catch (e) {
      await s.close(); // a log this version cannot read: the caller gets the error, not a half-open stream
      throw e;
    }
    return s;
  }

  async close(): Promise<void> {
    await this.log.close();
    await this.store.close();
  }

  /** Applies progress-log records not yet applied to the in-memory view. */
  private async catchUp(): Promise<void> {
    const { tail } = await this.log.checkTail();
    const from = this.applied;
    if (tail > from) {
      const recs = await this.log.read(from, tail);
      // A concurrent catch-up of this Stream (a search beside the indexer or a scheduled maintain) may
      // have applied some of them meanwhile: apply each record once, in order.
      for (let p = this.applied; p < tail; p++) {
        this.apply(recs[p - from]!, p);
        this.applied = p + 1;
      }
    }
  }

  /** How far level `level` covers: the largest end of its nodes (0 when it has none). */
  private coverage(level: number): number {
    let to = 0;
    for (const n of this.levels[level]?.values() ?? []) if (n.to > to) to = n.to;
    return to;
  }

  /**
   * Whether a node record's conditions hold in the current view (see ProgressRecord): it extends its
   * level past its coverage, replacing exactly the node it was built from, and a parent adds exactly the
   * child it read. Every reader replays the same log, so every reader drops the same losers.
   */
  private nodeHolds(r: Extract<ProgressRecord, { t: 'node' }>): boolean {
    if (r.base === undefined) return true; // an old log: one indexer
    // built from leaves an erasure has rewritten since: it may hold erased keys
    if (r.level === 0 && r.epoch !== undefined && r.epoch !== this.rewrites) return false;
    // built from leaves read before an expiry that reaches into it: it may hold expired blocks' keys
    if (
      r.level === 0 &&
      r.expired !== undefined &&
      Math.max(r.from, r.expired) < Math.min(r.to, this.expiredUpTo)
    )
      return false;
    const cov = this.coverage(r.level);
    if (r.to <= cov) return false;
    // a node under a parent is not replaced: the parent names its object (gc would delete it)
    if (r.base !== null && r.from < (this.wm[r.level] ?? 0)) return false;
    const cur = this.levels[r.level]?.get(r.from);
    if (r.base === null ? r.from !== cov : cur?.key !== r.base || cur.to !== cov) return false;
    if (r.level > 0) {
      // the children it adds, in order from the level's coverage: `added` (several), else `child`
      const added = r.added ?? (r.child !== undefined ? [r.child] : []);
      let at = cov;
      for (const key of added) {
        const c = this.levels[r.level - 1]?.get(at);
        if (!c || c.key !== key) return false;
        at = c.to;
      }
      if (added.length === 0 || at !== r.to) return false;
    }
    return true;
  }

  /**
   * Whether a compaction record's conditions hold in the current view (see ProgressRecord): each run's
   * old nodes are live and adjacent and span the run, each path node is live, and the top rewritten node
   * is still not under a parent (else that parent would name an object the record supersedes).
   */
  private compactHolds(r: Extract<ProgressRecord, { t: 'compact' }>): boolean {
    const lv = this.levels[r.level];
    if (!lv || r.runs.length === 0) return false;
    for (const run of r.runs) {
      let at = run.from;
      for (const o of run.old) {
        const cur = lv.get(o.from);
        if (o.from !== at || cur?.key !== o.key) return false;
        at = cur.to;
      }
      if (at !== run.to || run.old.length < 2) return false;
    }
    for (const n of r.path) if (this.levels[n.level]?.get(n.from)?.key !== n.old) return false;
    const top = r.path[r.path.length - 1];
    return this.orphan(top?.level ?? r.level, top?.from ?? r.runs[0]!.from);
  }

  private apply(r: ProgressRecord, pos: number): void {
    switch (r.t) {
      case 'block': {
        if (this.ids.has(r.id)) {
          this.racesLost.blocks++; // a racing server appended it too: the first record wins
          break;
        }
        const seq = this.blocks.length;
        const b: BlockInfo = { seq, pos, ...r };
        this.blocks.push(b);
        this.ids.set(r.id, seq);
        break;
      }
      case 'node': {
        if (!this.nodeHolds(r)) {
          this.racesLost.nodes++;
          break;
        }
        const lv = (this.levels[r.level] ??= new Map());
        for (const from of [...lv.keys()]) if (from > r.from && from < r.to) lv.delete(from);
        lv.set(r.from, {
          level: r.level,
          from: r.from,
          to: r.to,
          key: r.key,
          keys: r.keys,
          bytes: r.bytes,
          ...(r.children !== undefined ? { children: r.children } : {}),
        });
        // A parent covers its children: the watermark below it is at least its end, even if the `wm`
        // record that went with it were missing.
        if (r.level > 0 && r.to > (this.wm[r.level - 1] ?? 0)) this.wm[r.level - 1] = r.to;
        break;
      }
      case 'wm':
        this.wm[r.level] = r.to;
        break;
      case 'rewrite': {
        const b = this.blocks[r.seq];
        // made from another object than the block's now: another erasure's rewrite came first (a record
        // without `base`, from an older version, is applied as it stands)
        if (b && r.base !== undefined && r.base !== b.key) {
          this.racesLost.rewrites++;
          break;
        }
        if (b) {
          if (this.awaited.has(r.key)) this.awaited.set(r.key, true);
          Object.assign(b, { key: r.key, rows: r.rows, bytes: r.bytes, min: r.min, max: r.max });
          if (r.leaf) b.leaf = r.leaf;
          // the new object's directory (a rewrite by an older version records none: not the old one's)
          if (r.dir !== undefined) b.dir = r.dir;
          else delete b.dir;
          b.rewrites = (b.rewrites ?? 0) + 1;
          (b.erasedRuns ??= []).push(r.erased ?? null);
          // its index drop follows (a record of before `base` is not tracked; one without a leaf is of a
          // stream without an index: nothing to drop)
          if (r.base !== undefined && r.leaf !== undefined && r.seq >= this.expiredUpTo)
            this.dropsPending.set(r.key, r.seq);
        }
        this.rewrites++;
        break;
      }
      case 'renode': {
        const top = r.nodes[r.nodes.length - 1];
        const ok =
          r.nodes.every((n) => this.levels[n.level]?.get(n.from)?.key === n.old) &&
          (!r.free || (top !== undefined && this.orphan(top.level, top.from)));
        if (!ok) {
          this.racesLost.renodes++;
          break;
        }
        for (const n of r.nodes)
          Object.assign(this.levels[n.level]!.get(n.from)!, { key: n.key, keys: n.keys, bytes: n.bytes });
        const first = r.nodes[0]?.key;
        if (first !== undefined && this.awaited.has(first)) this.awaited.set(first, true);
        break;
      }
      case 'compact': {
        if (!this.compactHolds(r)) {
          this.racesLost.compacts++;
          break;
        }
        this.indexedAtCompact = Math.max(this.indexedAtCompact, this.coverage(0));
        const lv = this.levels[r.level]!;
        for (const run of r.runs) {
          for (const o of run.old) lv.delete(o.from);
          const { from, to, key, keys, bytes, children } = run;
          lv.set(from, { level: r.level, from, to, key, keys, bytes, children });
        }
        for (const n of r.path)
          Object.assign(this.levels[n.level]!.get(n.from)!, {
            key: n.key,
            keys: n.keys,
            bytes: n.bytes,
            children: n.children,
          });
        break;
      }
      case 'erase':
        for (const key of r.done ?? []) this.dropsPending.delete(key);
        break;
      case 'expire':
        if (r.upTo > this.expiredUpTo) this.expiredUpTo = Math.min(r.upTo, this.blocks.length);
        // blocks past retention need no repair: their nodes are dead
        for (const [key, seq] of this.dropsPending) if (seq < this.expiredUpTo) this.dropsPending.delete(key);
        break;
      default:
        // a record of a later version: skipping it would give this reader a view the writer's does not
        // match (a dropped node, a block it never saw), so it stops here, at every catch-up
        throw new Error(
          `progress log: record ${pos} has a type this version does not know (${JSON.stringify((r as { t: unknown }).t)}): written by a later helios?`,
        );
    }
  }

  /** Where a source's rows have been acknowledged up to (byte offset), for restart without loss or duplicates. */
  checkpoint(source: string): number {
    let to = 0;
    for (const b of this.blocks) if (b.source === source && b.to > to) to = b.to;
    return to;
  }

  get blockCount(): number {
    return this.blocks.length;
  }

  /**
   * The ingestion path for one chunk: block id, dedupe, write block and its level-0 leaf (the one the
   * agent shipped, or built here), then append to the progress log. Returns whether it was new. Resolves
   * after the append is durable: that is the acknowledgement.
   */
  async ingestChunk(
    source: string,
    from: number,
    to: number,
    lines: string[],
    content: Uint8Array,
    opts: ChunkOptions = {},
  ): Promise<boolean> {
    checkChunk(source, from, to, lines, content);
    const id = blockId(source, from, to, content);
    await this.catchUp();
    if (this.ids.has(id)) return false;
    const built = this.buildChunk(id, source, from, to, (i) => lines[i]!, content, lines.length);
    return this.storeChunk(id, built, opts);
  }

  /**
   * The CPU part of a chunk's ingestion, done before this returns: rows, page keys, JSON sections. The
   * promise is the block, resolved when its sections are compressed (on the sections worker thread).
   */
  private buildChunk(
    id: string,
    source: string,
    from: number,
    to: number,
    line: (i: number) => string,
    content: Uint8Array,
    lineCount: number,
    /** Where each line ends, when `content` is all ASCII and is to be parsed as bytes (`byteParser`). */
    asciiEnds?: Uint32Array,
  ): Promise<EncodedBlock> {
    const ncols = this.def.columns.length;
    const bytes = this.byteParser;
    const rows = {
      length: lineCount,
      columns: (a: number, b: number, json?: (Uint8Array | undefined)[]) => {
        const n = Math.max(0, Math.min(b, lineCount) - a);
        if (bytes && asciiEnds && json) {
          const buf = Buffer.from(content.buffer, content.byteOffset, content.byteLength);
          return bytes.page(buf, asciiEnds, a, n, json, line);
        }
        const page: Cell[][] = [];
        for (let c = 0; c < ncols; c++) page.push(new Array<Cell>(n));
        for (let i = 0; i < n; i++) this.parser.rowInto(line(a + i), page, i);
        return page;
      },
    };
    return encodeBlockAsync(
      { id, source, from, to, rawBytes: content.length },
      rows,
      this.def.columns.length,
      this.pageKeyOptions(),
    );
  }

  /** The I/O part: block, leaf, progress-log record; resolves (whether the block was new) when durable. */
  private async storeChunk(id: string, built: Promise<EncodedBlock>, opts: ChunkOptions): Promise<boolean> {
    const rec = await this.writeChunk(id, await built, opts);
    const [pos] = await this.log.append([rec]);
    await this.catchUp();
    return this.acknowledged(id, pos!);
  }

  /** Whether the record at `pos` is the one that counts for block `id` (caught up past it). */
  private acknowledged(id: string, pos: number): boolean {
    // Another server may have appended the same block first: then this record is ignored.
    return this.blocks[this.ids.get(id)!]?.pos === pos;
  }

  /**
   * Writes a chunk's block and leaf (at once); resolves with its progress-log record, not yet appended.
   * Each write has object keys of its own (the block id and a random stamp), so two writers of one chunk
   * at once (two servers, or two ingests of one file) never replace an object the other appended: the
   * first record of the id wins, and the loser's objects are garbage for `gc`. With one key per id, the
   * loser rewrote the winner's block after its record landed, and a writer of another page size (1,024
   * rows with TOKENS, 2,048 without, or an older version's) left a reader that had cached the
   * directory reading the wrong byte ranges (caught only by the pages' checksums).
   */
  private async writeChunk(id: string, block: EncodedBlock, opts: ChunkOptions): Promise<ProgressRecord> {
    const { bytes, header, pageKeys, directoryBytes } = block;
    const stamp = `w${randomBytes(6).toString('hex')}`;
    const key = `${this.def.name}/blocks/${id}.${stamp}`;
    const writes = [this.store.put(key, bytes)];
    let leaf: string | undefined;
    if (this.def.index.length > 0) {
      leaf = `${this.def.name}/leaves/${id}.${stamp}`;
      if (opts.leaf && opts.leafKeys) {
        if (opts.verifyLeaf) {
          const want = unionKeys(pageKeys);
          const got = opts.leafKeys;
          if (want.length !== got.length || want.some((k, i) => k !== got[i])) {
            await Promise.allSettled(writes);
            throw Object.assign(
              new Error(
                `shipped leaf of block ${id}: ${got.length} keys, the rows give ${want.length} others`,
              ),
              { status: 400 },
            );
          }
        }
        writes.push(this.store.put(leaf, opts.leaf));
      } else writes.push(this.store.put(leaf, encodeNode(leafNode(0, 0, 1, 0, unionKeys(pageKeys)))));
    }
    await Promise.all(writes);
    return {
      t: 'block',
      id,
      key,
      source: header.source,
      from: header.from,
      to: header.to,
      rows: header.rows,
      rawBytes: header.rawBytes,
      bytes: bytes.length,
      min: header.min,
      max: header.max,
      ...(leaf ? { leaf } : {}),
      dir: directoryBytes,
      at: this.nowMs(),
    };
  }

  /**
   * Blocks of an indexed stream carry a key filter per page (the page's index keys, unsorted). Pages hold
   * `blockPageRows` rows in a stream with a TOKENS index (a needle decodes one page of its column), else
   * `valuePageRows`.
   */
  private pageKeyOptions(): EncodeOptions {
    const pageRows = this.def.index.some((d) => d.tokens) ? blockPageRows : valuePageRows;
    return this.def.index.length > 0
      ? { pageRows, pageKeys: (page, columnsJson) => columnKeys(this.def, page, columnsJson) }
      : { pageRows };
  }

  /**
   * Ingests a file from its checkpoint: complete lines only, plus a last line without a newline when
   * `final` (the default; with `final: false` such a line waits for the next run, `unfinishedBytes`: a
   * file a writer is still writing would otherwise have a line cut in two rows). The source id includes
   * the inode and a fingerprint of the first line, so a rotated file (a new inode, or a recreated file
   * with another first line) starts at offset 0 while the old one keeps its checkpoint.
   */
  async ingestFile(
    path: string,
    opts: { final?: boolean; chunkBytes?: number; onRead?: (bytes: number) => void } = {},
  ): Promise<IngestStats> {
    const abs = resolve(path);
    const st = statSync(abs);
    const source = `file:${abs}#${st.ino}#${fingerprint(abs)}`;
    // the DDL's CHUNK size as it is (a stream's from before its bound included); a size given here bounded
    if (opts.chunkBytes !== undefined) checkChunkBytes('ingestFile chunkBytes', opts.chunkBytes, 1 << 30);
    const chunkBytes = opts.chunkBytes ?? this.def.chunkBytesMax;
    // The checkpoint is read from a caught-up view: a failed ingest returns before its final catch-up, so
    // the blocks it appended (and another writer's) may not be in the view yet. Started before them, a
    // re-run whose chunks are cut elsewhere (another chunk size, a file grown past a last short chunk)
    // makes other block ids for their lines and ingests them again.
    await this.catchUp();
    let off = this.checkpoint(source);
    const stats: IngestStats = { lines: 0, blocksWritten: 0, blocksDeduped: 0, bytes: 0 };
    const valuedBefore = this.parser.valued.slice();
    if (off > st.size)
      throw new Error(`${abs}: shorter (${st.size} bytes) than its checkpoint ${off}: truncated in place`);
    const fd = openSync(abs, 'r');
    const inflight: Promise<void>[] = [];
    // The view catches up once, after the last append, not after each: a catch-up reads the log's tail
    // back (gets, and a listing of the segment's objects that grows with it), which took about as many
    // system calls as the append itself. Whether each record is the one that counts for its block (another
    // server may have appended the same chunk first) is decided then.
    const appended: { id: string; pos: number }[] = [];
    const appends = new OrderedAppends<ProgressRecord>((recs) => this.log.append(recs));
    try {
      // Reads go straight after the bytes not yet cut, in one buffer reused for every chunk (a chunk's
      // bytes are made a string, or parsed from the buffer by buildChunk, which lays out the whole block
      // before it returns, before the next read): concatenating 1 MiB reads copied each 4 MiB chunk
      // about 2.5 times over. It grows only for a line longer than a chunk.
      let store = Buffer.alloc(Math.min(chunkBytes, st.size - off) + readChunkBytes);
      const lines = new LineEnds();
      let held = 0; // bytes at the start of `store` not yet cut into a chunk
      let pendingFrom = off;
      let readPos = off;
      for (;;) {
        if (store.length - held < readChunkBytes) {
          const grown = Buffer.alloc(store.length * 2);
          store.copy(grown, 0, 0, held);
          store = grown;
        }
        const n = readSync(fd, store, held, readChunkBytes, readPos);
        const eof = n === 0;
        if (!eof) {
          readPos += n;
          held += n;
          opts.onRead?.(n);
        }
        let pending = store.subarray(0, held);
        for (;;) {
          let cut = -1;
          if (pending.length >= chunkBytes) {
            cut = pending.lastIndexOf(10, chunkBytes - 1);
            if (cut < 0) cut = pending.indexOf(10);
          } else if (eof) {
            cut = pending.lastIndexOf(10);
            if (opts.final !== false && pending.length > 0) cut = pending.length - 1;
          }
          if (cut < 0) break;
          const content = pending.subarray(0, cut + 1);
          // An ASCII chunk of a template the byte parser takes is parsed from its bytes (no string made of
          // it); else the chunk is made a string. Where each line ends (a last line without a newline ends
          // at the chunk's end): the lines are made a page at a time, so they die young instead of
          // surviving the chunk (fewer scavenge copies). In ASCII a character is a byte.
          const ascii = this.byteParser !== undefined && isAscii(content);
          const text = ascii ? '' : content.toString('utf8');
          if (ascii) lines.find(content.length, (from) => content.indexOf(10, from));
          else lines.find(text.length, (from) => text.indexOf('\n', from));
          // valid until the next chunk's find: buildChunk lays out the block before it returns
          const ends = lines.at;
          const lineCount = lines.count;
          const line = ascii
            ? (i: number) => content.toString('latin1', i === 0 ? 0 : ends[i - 1]! + 1, ends[i])
            : (i: number) => text.slice(i === 0 ? 0 : ends[i - 1]! + 1, ends[i]);
          const from = pendingFrom;
          const to = from + content.length;
          const id = blockId(source, from, to, content);
          // Against the view as of the catch-up before the checkpoint: a block another writer appends
          // meanwhile is written again here (under keys of its own: `writeChunk`, so nothing the other
          // appended is replaced), and counted deduped (its record first) after the last append.
          if (this.ids.has(id)) stats.blocksDeduped++;
          else {
            // Chunk k is parsed, keyed and laid out here while the chunks before it are compressed, written
            // and appended. Records are appended in file order (the checkpoint is the largest acknowledged
            // offset, so the order is what keeps a failure from skipping lines), several in one batch when
            // they are ready together.
            const rec = this.buildChunk(
              id,
              source,
              from,
              to,
              line,
              content,
              lineCount,
              ascii ? ends : undefined,
            ).then((b) => this.writeChunk(id, b, {}));
            const acked = appends.add(rec).then((pos) => {
              appended.push({ id, pos });
            });
            acked.catch(() => undefined); // awaited below, in order
            inflight.push(acked);
            while (inflight.length >= ingestChunksInFlightMax) await inflight.shift();
          }
          stats.lines += lineCount;
          stats.bytes += content.length;
          pendingFrom += content.length;
          pending = pending.subarray(cut + 1);
          if (pending.length === 0 || (!eof && pending.length < chunkBytes)) break;
        }
        store.copyWithin(0, held - pending.length, held);
        held = pending.length;
        if (eof) break;
      }
      off = pendingFrom;
      if (held > 0) stats.unfinishedBytes = held;
      const kind = this.def.format.kind;
      if ((kind === 'json' || kind === 'logfmt') && stats.lines > 0) {
        const empty = this.def.columns.filter((_, c) => this.parser.valued[c] === valuedBefore[c]);
        if (empty.length > 0) stats.emptyColumns = empty.map((c) => c.name);
      }
      for (const p of inflight) await p;
      await this.catchUp();
      for (const { id, pos } of appended)
        if (this.acknowledged(id, pos)) stats.blocksWritten++;
        else stats.blocksDeduped++;
    } finally {
      // On an error, the chunks in flight still complete (or fail) before this returns.
      await Promise.allSettled(inflight);
      closeSync(fd);
    }
    return stats;
  }

  /**
   * An index node read whole, through the node cache: the indexer's, erasure's and export's reads, and a
   * search's of HLN1 nodes.
   */
  private async node(key: string): Promise<IndexNode> {
    const hit = this.nodes.get(key);
    if (hit) return hit;
    const bytes = await this.store.get(key);
    const n = decodeNode(bytes, key);
    this.nodes.put(key, n, bytes.length);
    return n;
  }

  /** Keys of the index's current nodes above level 0 (kept by the node cache whatever its bounds). */
  private upperNodeKeys(): Set<string> {
    const keys = new Set<string>();
    for (let level = 1; level < this.levels.length; level++)
      for (const n of this.levels[level]?.values() ?? []) keys.add(n.key);
    return keys;
  }

  /** The decoded index nodes kept, their encoded bytes, and those of them kept whatever the bounds (tests). */
  get nodeCacheStats(): { nodes: number; bytes: number; upperNodes: number; upperBytes: number } {
    return this.nodes.stats;
  }

  /** Bytes and entries of the HLN2 directories and pages searches keep (tests). */
  get nodePageCacheStats(): { entries: number; bytes: number; nodeKeys: string[] } {
    return this.reads.pageCacheStats;
  }

  private async putNode(level: number, node: IndexNode): Promise<NodeInfo> {
    const h = node.header;
    // 48 random bits, as a block write's stamp: two writers of one range in one millisecond never share a key
    const key = `${this.def.name}/nodes/L${level}/${h.from}-${h.to}-${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
    const bytes = encodeNode(node, 2, this.nodePageKeys);
    await this.store.put(key, bytes);
    this.nodes.put(key, node, bytes.length, level > 0);
    return {
      level,
      from: h.from,
      to: h.to,
      key,
      keys: node.keys.length,
      bytes: bytes.length,
      children: h.children.length,
    };
  }

  private sorted(level: number): NodeInfo[] {
    return [...(this.levels[level]?.values() ?? [])].sort((a, b) => a.from - b.from);
  }

  /** The live node of `level` whose range holds position `at` (a block or, above 0, a child's start). */
  private covering(level: number, at: number): NodeInfo | undefined {
    for (const n of this.levels[level]?.values() ?? []) if (n.from <= at && at < n.to) return n;
    return undefined;
  }

  /** Whether a node of `level` starting at `from` is under no parent (the level above covers less). */
  private orphan(level: number, from: number): boolean {
    return this.coverage(level + 1) <= from;
  }

  /**
   * Rewrites, copy-on-write, each live node from `level` up that holds the path to position `at`: it loses
   * the child's pointers for `drop` keys (a parent keeps a key while another of its children holds it)
   * and names the child's new object (`childNew`; level 0 keeps its block). `childOld` is the child the
   * first node holds. Stops below the first level with no node over `at` (`free`: the top written node is
   * an orphan) or whose node does not hold the child (not free). Writes the objects, records nothing.
   */
  private async rewritePath(
    level: number,
    at: number,
    childOld: number | string,
    childNew: string | undefined,
    drop: Float64Array,
    /** The child's new node (when the child is a node): a promotion of the child follows it. */
    childInfo?: NodeInfo,
    /** Where the rewritten nodes go, as they are written (a caller whose read missed deletes them). */
    path: (NodeInfo & { old: string })[] = [],
  ): Promise<{ path: (NodeInfo & { old: string })[]; free: boolean }> {
    let child = childInfo;
    for (let L = level; L < this.levels.length; L++) {
      const info = this.covering(L, at);
      if (!info) break;
      if (info.key === childOld && child) {
        // a promotion of the child: it names the child's new object too (the pointers above are to it)
        path.push({ ...child, level: L, from: info.from, to: info.to, old: info.key });
        continue;
      }
      // (an older version's node gets its children's ranges: the one written keeps them)
      const node = this.withChildRanges(await this.node(info.key));
      const i = node.header.children.indexOf(childOld);
      if (i < 0) return { path, free: false };
      const r = dropPointers(node, i, drop, childNew);
      const put = await this.putNode(L, r.node);
      path.push({ ...put, old: info.key });
      child = put;
      childOld = info.key;
      childNew = put.key;
      drop = r.gone;
    }
    return { path, free: true };
  }

  /** How far level 0 covers (blocks [0, this) are indexed). */
  get indexedBlocks(): number {
    return this.coverage(0);
  }

  /**
   * One indexer pass: level-0 leaves for blocks not yet indexed (at most `blocksMax`), merged into the
   * tail level-0 node while both are small; then the add operator level by level. Each node write is
   * followed by its progress-log record (and the watermark it moves) in one append.
   */
  async indexStep(blocksMax = Number.MAX_SAFE_INTEGER): Promise<number> {
    return this.onFreshView(() => this.indexStepOnce(blocksMax));
  }

  /**
   * Runs `op` again (it starts by catching up) when another process's erasure, which deletes the objects
   * it rewrites at once, or gc removed an object this view still named. What a failed try wrote stands
   * (each node is appended with its record) or is garbage for gc (a node whose record was not appended).
   */
  private async onFreshView<T>(op: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (e) {
        if ((e as Error).name !== 'NotFoundError' || attempt >= searchRetriesMax) throw e;
      }
    }
  }

  private async indexStepOnce(blocksMax: number): Promise<number> {
    await this.catchUp();
    if (this.def.index.length === 0) return 0;
    const pol = this.policy;
    let done = 0;
    // The open level-0 node is built in memory and written once, when it closes or the pass ends: one
    // node object and one record per node, not per block. Its parts (the stored tail node it extends, then
    // the blocks' leaves) are merged only when the merge rule needs the union's size (their key counts
    // summed can pass mergeKeysMax only if it can) or the node closes: one balanced merge (mergeAll)
    // instead of copying the growing node once per block, and the same nodes as merging block by block.
    let work:
      | {
          parts: IndexNode[];
          keysUpper: number;
          blocks: number;
          base: string | null;
          epoch: number;
          expired: number;
        }
      | undefined;
    const union = (w: NonNullable<typeof work>) => {
      w.parts = [mergeAll(w.parts)]; // (one part: a leaf gets its filter)
      w.keysUpper = w.parts[0]!.keys.length;
      return w.parts[0]!;
    };
    const flush = async () => {
      if (!work) return;
      const info = await this.putNode(0, union(work));
      await this.log.append([
        { t: 'node', ...info, base: work.base, epoch: work.epoch, expired: work.expired },
      ]);
      await this.catchUp();
      work = undefined;
    };
    const mergeable = (w: NonNullable<typeof work>, keys: number) =>
      keys < pol.mergeKeysMax &&
      w.blocks < pol.fanoutMax &&
      (w.keysUpper < pol.mergeKeysMax || union(w).keys.length < pol.mergeKeysMax);
    const start = (n: IndexNode, base: string | null, epoch: number, expired: number) => ({
      parts: [n],
      keysUpper: n.keys.length,
      blocks: n.header.children.length,
      base,
      epoch,
      expired,
    });
    for (; done < blocksMax; done++) {
      // Re-read after each write: a racing indexer may have moved level 0 on.
      const seq = work ? work.parts[work.parts.length - 1]!.header.to : this.indexedBlocks;
      if (seq >= this.blocks.length) break;
      const b = this.blocks[seq]!;
      // The erasure epoch of the view the keys are read from: taken before the read, because the flush
      // below catches up, and a rewrite applied there must still void a node built from the old leaf.
      const epoch = this.rewrites;
      // and the expired prefix it is read in: an expiry recorded before the node makes it lose
      const expired = this.expiredUpTo;
      let keys: Float64Array;
      if (seq < this.expiredUpTo)
        keys = new Float64Array(0); // past retention: deleted, nothing to find
      else keys = await this.blockKeys(b);
      const leaf = leafNode(0, seq, seq + 1, seq, keys, undefined, false);
      if (!work) {
        const lv0 = this.sorted(0);
        const tail = lv0[lv0.length - 1];
        if (tail && tail.to === seq && tail.from >= (this.wm[0] ?? 0) && tail.to > this.expiredUpTo) {
          const tw = start(await this.node(tail.key), tail.key, epoch, expired);
          if (mergeable(tw, keys.length)) work = tw;
        }
      }
      if (work && mergeable(work, keys.length)) {
        work.parts.push(leaf);
        work.keysUpper += keys.length;
        work.blocks++;
        work.epoch = Math.min(work.epoch, epoch);
        work.expired = Math.min(work.expired, expired);
      } else {
        await flush();
        if (this.indexedBlocks !== seq) continue; // a racing indexer got there first
        work = start(leaf, null, epoch, expired);
      }
    }
    await flush();
    await this.addStep();
    const indexed = this.indexedBlocks;
    if (pol.compactEveryBlocks > 0 && indexed - this.indexedAtCompact >= pol.compactEveryBlocks) {
      await this.compactOnce();
      this.indexedAtCompact = Math.max(this.indexedAtCompact, indexed);
    }
    return done;
  }

  /** A node's number of children (level 0: blocks), read from the node for nodes of old records. */
  private async childCount(n: NodeInfo): Promise<number> {
    if (n.level === 0) return n.to - n.from;
    n.children ??= (await this.node(n.key)).header.children.length;
    return n.children;
  }

  private compactFanoutMax(): number {
    return Math.max(this.policy.fanoutMax, this.policy.compactFanoutMax);
  }

  /** The key bound below which a node of `level` is small: the merge policy's at 0, the add policy's above. */
  private smallKeysMax(level: number): number {
    return level === 0 ? this.policy.mergeKeysMax : this.policy.addKeysMax;
  }

  /**
   * The first group of nodes at `level` that compaction can shrink: the children of one parent, or the
   * orphans (the nodes past the level above's coverage), holding two adjacent nodes that the merge rule
   * would merge (both below the level's key bound) if its fanout bound were compactFanoutMax.
   */
  private async compactionGroup(
    level: number,
  ): Promise<{ nodes: NodeInfo[]; parent?: NodeInfo } | undefined> {
    const nodes = this.sorted(level);
    const parents = this.sorted(level + 1);
    const small = this.smallKeysMax(level);
    let p = 0;
    for (let i = 0; i < nodes.length; ) {
      const first = nodes[i]!;
      while (p < parents.length && parents[p]!.to <= first.from) p++;
      const parent = parents[p] && parents[p]!.from <= first.from ? parents[p] : undefined;
      const end = parent ? parent.to : (parents[p]?.from ?? Number.POSITIVE_INFINITY);
      let j = i;
      while (j < nodes.length && nodes[j]!.from < end) j++;
      // nodes in a gap before a parent would be neither children nor orphans: never seen, never touched
      if (parent || p >= parents.length)
        for (let k = i; k + 1 < j; k++) {
          const a = nodes[k]!;
          const b = nodes[k + 1]!;
          if (
            a.from >= this.expiredUpTo &&
            a.keys < small &&
            b.keys < small &&
            !this.isAlias(a) &&
            !this.isAlias(b) &&
            (await this.childCount(a)) + (await this.childCount(b)) <= this.compactFanoutMax()
          )
            return { nodes: nodes.slice(i, j), ...(parent ? { parent } : {}) };
        }
      i = j;
    }
    return undefined;
  }

  /**
   * Compacts one group (see compactionGroup): walks it left to right merging each node into the run
   * before it while the merge rule allows (the merge operator, applied after the fact), writes each run's
   * node, the parent with its pointer lists remapped and every ancestor renaming its child, then one
   * `compact` record. Returns what it did, or undefined when the record lost a race. Nothing is deleted:
   * superseded and orphaned objects are gc's (a reader of an older view may still be reading them).
   */
  private async compactGroup(
    level: number,
    group: NodeInfo[],
    parent: NodeInfo | undefined,
  ): Promise<{ runs: number; merged: number; path: number } | undefined> {
    const small = this.smallKeysMax(level);
    const runs: { olds: NodeInfo[]; node: IndexNode }[] = [];
    let acc: { olds: NodeInfo[]; node?: IndexNode; keys: number; children: number } | undefined;
    const close = () => {
      if (acc?.node) runs.push({ olds: acc.olds, node: acc.node });
    };
    for (const n of group) {
      const c = await this.childCount(n);
      if (
        acc &&
        acc.keys < small &&
        n.keys < small &&
        !this.isAlias(n) &&
        acc.children + c <= this.compactFanoutMax()
      ) {
        acc.node = mergeNodes(
          acc.node ?? this.withChildRanges(await this.node(acc.olds[0]!.key)),
          this.withChildRanges(await this.node(n.key)),
        );
        acc.olds.push(n);
        acc.keys = acc.node.keys.length;
        acc.children += c;
      } else {
        close();
        acc =
          n.from >= this.expiredUpTo && !this.isAlias(n)
            ? { olds: [n], keys: n.keys, children: c }
            : undefined;
      }
    }
    close();
    if (runs.length === 0) return { runs: 0, merged: 0, path: 0 };
    const infos = await Promise.all(runs.map((r) => this.putNode(level, r.node)));
    const path: Extract<ProgressRecord, { t: 'compact' }>['path'] = [];
    if (parent) {
      const pn = this.withChildRanges(await this.node(parent.key));
      const ch = pn.header.children;
      const childRuns: ChildRun[] = runs.map((r, i) => {
        const start = ch.indexOf(r.olds[0]!.key);
        if (start < 0 || r.olds.some((o, j) => ch[start + j] !== o.key))
          throw new Error(
            `compact: level ${level + 1} node [${parent.from},${parent.to}) does not hold level ${level} nodes [${r.olds[0]!.from},${r.node.header.to}) in order (inconsistent index view)`,
          );
        const info = infos[i]!;
        return { start, count: r.olds.length, child: info.key, range: [info.from, info.to] };
      });
      const up = await this.putNode(level + 1, mergeChildren(pn, childRuns));
      // each ancestor renames its child; the path ends below a level with no node over it
      const above = await this.rewritePath(
        level + 2,
        parent.from,
        parent.key,
        up.key,
        new Float64Array(0),
        up,
      );
      if (!above.free)
        throw new Error(
          `compact: a node above level ${level + 1} node [${parent.from},${parent.to}) covers it but does not hold it (inconsistent index view)`,
        );
      for (const n of [{ ...up, old: parent.key }, ...above.path])
        path.push({
          level: n.level,
          from: n.from,
          old: n.old,
          key: n.key,
          keys: n.keys,
          bytes: n.bytes,
          children: n.children!,
        });
    }
    const rec: Extract<ProgressRecord, { t: 'compact' }> = {
      t: 'compact',
      level,
      runs: runs.map((r, i) => {
        const { from, to, key, keys, bytes, children } = infos[i]!;
        return {
          old: r.olds.map((o) => ({ from: o.from, key: o.key })),
          from,
          to,
          key,
          keys,
          bytes,
          children: children!,
        };
      }),
      path,
    };
    await this.log.append([rec]);
    await this.catchUp();
    if (!rec.runs.every((r) => this.levels[level]?.get(r.from)?.key === r.key)) return undefined;
    return { runs: runs.length, merged: runs.reduce((n, r) => n + r.olds.length, 0), path: path.length };
  }

  /**
   * `node` (above level 0) with its children's ranges: its own, or (a node an older version wrote without
   * them) each child's range in the view, found by its key.
   */
  private withChildRanges(node: IndexNode): IndexNode {
    const h = node.header;
    if (h.ranges || h.level === 0) return node;
    const byKey = this.nodesByKey(h.level - 1);
    const ranges = h.children.map((c): [number, number] => {
      const n = byKey.get(c as string);
      if (!n)
        throw new Error(
          `level ${h.level} node [${h.from},${h.to}) names a child the view does not hold (${String(c)}): inconsistent index view`,
        );
      return [n.from, n.to];
    });
    // (fields named: a node read in pages has its arrays behind getters, which a spread would not copy)
    const { keys, postOff, post, bloom } = node;
    return { header: { ...h, ranges }, keys, postOff, post, bloom };
  }

  /** The view's nodes of `level` by object key (for nodes an older version wrote without child ranges). */
  private nodesByKey(level: number): Map<string, NodeInfo> {
    const m = new Map<string, NodeInfo>();
    for (const n of this.levels[level]?.values() ?? []) m.set(n.key, n);
    return m;
  }

  /**
   * A compaction pass: at each level from 0 up, group by group (the children of one parent, or the
   * orphans), rewrites runs of adjacent small nodes into fewer nodes covering the same blocks (a node is
   * small below the merge policy's key bound at level 0 and the add policy's above; a run grows while
   * both sides are small and their children fit in compactFanoutMax). Such runs are what the policies
   * leave behind: nodes closed at fanoutMax children with few keys (a stream whose indexed columns have
   * few distinct values closes a level-0 node every fanoutMax blocks), nodes shrunk by erasure, nodes
   * built under a smaller key bound before the stream was reopened with a larger one.
   * Each group is one `compact` record (the new nodes and the rewritten path above them, all or none), so
   * a reader sees the old nodes or the new ones, never a mix, and a crash before the record leaves the old
   * view. The indexer runs it every `compactEveryBlocks` blocks; superseded objects are left to gc.
   */
  async compact(): Promise<CompactStats> {
    return this.onFreshView(() => this.compactOnce());
  }

  private async compactOnce(): Promise<CompactStats> {
    await this.catchUp();
    const st: CompactStats = { runs: 0, nodesMerged: 0, pathNodes: 0, records: 0, racesLost: 0 };
    this.compactions.passes++;
    const add = () => {
      for (const k of ['runs', 'nodesMerged', 'pathNodes', 'records', 'racesLost'] as const)
        this.compactions[k] += st[k];
    };
    if (this.def.index.length === 0) return st;
    // Bottom-up sweeps until one changes nothing: merging parents gathers their children under one
    // parent, where the next sweep can merge them too.
    for (let sweep = 0; sweep < compactSweepsMax; sweep++) {
      const records = st.records;
      for (let L = 0; L < this.levels.length; L++) {
        // each record merges at least one pair, so a level takes fewer records than it has nodes
        for (let left = this.levels[L]?.size ?? 0; left > 0; left--) {
          const g = await this.compactionGroup(L);
          if (!g) break;
          const r = await this.compactGroup(L, g.nodes, g.parent);
          if (r && r.runs === 0) break;
          st.records++;
          if (!r) {
            st.racesLost++;
            add();
            return st;
          }
          st.runs += r.runs;
          st.nodesMerged += r.merged;
          st.pathNodes += r.path;
        }
      }
      if (st.records === records) break;
    }
    add();
    return st;
  }

  private closed(n: NodeInfo, isLast: boolean): boolean {
    if (!isLast) return true;
    return n.keys >= this.smallKeysMax(n.level);
  }

  /**
   * Whether `n` is a promoted node: a level's entry that names its single child's object (the add
   * operator's promotion) instead of an object of its own.
   */
  private isAlias(n: NodeInfo): boolean {
    return n.level > 0 && this.levels[n.level - 1]?.get(n.from)?.key === n.key;
  }

  /**
   * What the add operator does next at level L: the closed orphans at L (every node past the watermark
   * but an open last one) that the open parent at L+1 takes (its end at the watermark, below addKeysMax
   * keys, fanoutMax children and not a promotion), or that start a new parent. Children are taken in
   * order while the parent's keys plus theirs are below addKeysMax (so, as one by one, a parent may pass
   * the bound by one child) and its children below fanoutMax. A new parent takes at least two: a parent of
   * one child would be a copy of it. A closed node that fills a parent alone (addKeysMax keys or more),
   * followed by another closed one, is promoted: the level above names the node's own object, nothing
   * is written. Otherwise the closed orphans wait for the next (they stay orphans: searches visit them),
   * and so do the ones an open parent would take while they hold under addWaitFraction of its keys.
   */
  private async addBatch(
    L: number,
  ): Promise<{ parent: NodeInfo | undefined; children: NodeInfo[]; promote: boolean } | undefined> {
    const pol = this.policy;
    const w = this.wm[L] ?? 0;
    const nodes = this.sorted(L).filter((n) => n.from >= w);
    const pending: NodeInfo[] = [];
    for (let i = 0; i < nodes.length && this.closed(nodes[i]!, i === nodes.length - 1); i++)
      pending.push(nodes[i]!);
    const first = pending[0];
    if (!first) return undefined;
    if (first.from !== w)
      throw new Error(
        `indexer: level ${L} node [${first.from},${first.to}) does not start at watermark ${w}`,
      );
    const parents = this.sorted(L + 1);
    const last = parents[parents.length - 1];
    // not one under a parent (an erasure may have shrunk a node closed by its keys below the bound): a
    // new object for it would leave the parent naming the old one, which gc deletes
    const open =
      last &&
      last.to === w &&
      last.from >= (this.wm[L + 1] ?? 0) &&
      last.keys < pol.addKeysMax &&
      last.to > this.expiredUpTo &&
      !this.isAlias(last) &&
      (await this.childCount(last)) < pol.fanoutMax
        ? last
        : undefined;
    const room = pol.fanoutMax - (open ? await this.childCount(open) : 0);
    let keys = open ? open.keys : 0;
    const children: NodeInfo[] = [];
    for (const c of pending) {
      if (children.length >= room || keys >= pol.addKeysMax) break;
      children.push(c);
      keys += c.keys;
    }
    if (open) {
      // An indexer that follows the log closes a node every few blocks: adding each alone would write
      // the parent whole once per child. So they wait until they fill it or hold a fraction of its keys:
      // a parent's writes then grow geometrically, and each of its keys is copied a few times in all.
      const fills = children.length >= room || keys >= pol.addKeysMax;
      if (!fills && keys - open.keys < open.keys * addWaitFraction) return undefined;
      return { parent: open, children, promote: false };
    }
    if (children.length >= 2) return { parent: undefined, children, promote: false };
    if (pending.length >= 2) return { parent: undefined, children: [first], promote: true };
    return undefined;
  }

  /**
   * The add operator, level by level from 0: the closed orphans of a level go under a parent one level
   * up in batches (addBatch): one node write and one record for all the children a parent takes at once
   * (the record names them: `child` for one, `added` for several), their keys merged in a balanced tree
   * (mergeAll), so a parent's keys are copied a few times as it fills, not once per child.
   */
  private async addStep(): Promise<void> {
    const pol = this.policy;
    for (let L = 0; L + 1 < pol.levelsMax; L++) {
      if ((this.levels[L]?.size ?? 0) < 2 && (this.levels[L + 1]?.size ?? 0) === 0) break;
      for (let lost = 0; lost <= addRetriesMax; ) {
        const batch = await this.addBatch(L);
        if (!batch) break;
        const { parent, children } = batch;
        const w = children[0]!.from;
        let info: NodeInfo;
        if (batch.promote) {
          const c = children[0]!;
          info = { ...c, level: L + 1, children: await this.childCount(c) };
        } else {
          // (a parent an older version wrote gets its children's ranges, so the merge keeps them)
          const parts: IndexNode[] = parent ? [this.withChildRanges(await this.node(parent.key))] : [];
          for (const c of children) {
            const keys = c.to <= this.expiredUpTo ? new Float64Array(0) : (await this.node(c.key)).keys;
            parts.push(leafNode(L + 1, c.from, c.to, c.key, keys, [c.from, c.to], false));
          }
          info = await this.putNode(L + 1, mergeAll(parts));
        }
        // The parent moves the watermark of level L to its end (apply), so one record says both.
        const added = children.map((c) => c.key);
        await this.log.append([
          {
            t: 'node',
            ...info,
            base: parent ? parent.key : null,
            ...(added.length === 1 ? { child: added[0]! } : { added }),
          },
        ]);
        await this.catchUp();
        // Lost a race (another indexer added them, or a compaction rewrote this level or the parent):
        // the next batch is planned on the new view.
        if (this.levels[L + 1]?.get(info.from)?.key !== info.key || (this.wm[L] ?? 0) <= w) lost++;
      }
    }
  }

  /** Runs the indexer until every acknowledged block is indexed. */
  async indexAll(): Promise<void> {
    while ((await this.indexStep(1024)) > 0) {}
  }

  /** Adds `--since`/`--until` as a range on the first TIMESTAMP column. */
  private withTime(e: Expr, opts: SearchOptions): Expr {
    let out = e;
    if (opts.since !== undefined || opts.until !== undefined) {
      if (this.tsCol < 0)
        throw new Error(`stream ${this.def.name} has no TIMESTAMP column for --since/--until`);
      if (opts.since !== undefined)
        out = { k: 'and', a: out, b: { k: 'cmp', col: this.tsCol, op: '>=', v: opts.since } };
      if (opts.until !== undefined)
        out = { k: 'and', a: out, b: { k: 'cmp', col: this.tsCol, op: '<', v: opts.until } };
    }
    return out;
  }

  /** Parses a --where expression for this stream. */
  parse(where: string): Expr {
    return parseQuery(where, this.def);
  }

  /**
   * The hybrid scan: descend from the top level's nodes, then from each orphan to the right of what the
   * level above covers, level by level; then every block the index does not cover yet (the tail of the
   * progress log). Candidate blocks are pruned by min/max and every row is verified, so the result is
   * exactly what a scan of every acknowledged block returns. Rows come in log order (block, then row);
   * a search that stops at `limit` returns a `cursor` from which the next page continues (cursor.ts).
   */
  async search(expr: Expr, opts: SearchOptions = {}): Promise<SearchResult> {
    checkSearch(expr, opts);
    return this.onFreshView(() => this.searchOnce(expr, opts));
  }

  private async searchOnce(expr: Expr, opts: SearchOptions): Promise<SearchResult> {
    await this.catchUp();
    const e = this.withTime(expr, opts);
    const limit = opts.limit ?? Number.MAX_SAFE_INTEGER;
    const from =
      opts.cursor === undefined
        ? { seq: 0, row: 0, rewrites: 0 }
        : this.cursorNow(parseCursor(opts.cursor), opts.cursor);
    // blocks before the cursor's are passed over like expired ones
    const floor = Math.max(this.expiredUpTo, from.seq);
    const stats: SearchStats = {
      blocksTotal: this.blocks.length,
      blocksIndexed: 0,
      tailBlocks: 0,
      nodesRead: 0,
      orphansVisited: 0,
      candidateBlocks: 0,
      prunedByMinMax: 0,
      prunedByNeedle: 0,
      blocksRead: 0,
      pagesRead: 0,
      pagesSkipped: 0,
      blockBytesFetched: 0,
      blockGets: 0,
      nodeBytesFetched: 0,
      nodeGets: 0,
      rowsScanned: 0,
      rowsMatched: 0,
      levels: this.levels.map((m, level) => ({ level, nodes: m.size, watermark: this.wm[level] ?? 0 })),
    };
    const candidates = new Set<number>();
    let covered = 0;
    // the plan steers the descent and the pages' key filters; a search without the index uses neither
    const plan = opts.useIndex !== false && this.def.index.length > 0 ? planFor(e, this.def) : null;
    if (plan) {
      const descend = async (key: string, info?: NodeInfo) => {
        const node = await this.reads.node(key, stats, info);
        stats.nodesRead++;
        const sel = await evalPlan(plan, node);
        const idx = sel ? [...sel] : node.header.children.map((_, i) => i);
        const dead = floor;
        for (const i of idx) {
          const c = node.header.children[i]!;
          if (node.header.level === 0) {
            if ((c as number) >= dead) candidates.add(c as number);
            continue;
          }
          // the child as the view knows it (its keys and children: how long its directory is), found by
          // its range, or by its key in a node written without ranges (an older version's)
          const r = node.header.ranges?.[i];
          const below = r
            ? this.levels[node.header.level - 1]?.get(r[0])
            : liveByKey(node.header.level - 1).get(c as string);
          // a child wholly past retention is skipped: gc may have deleted it
          if ((r?.[1] ?? below?.to ?? Number.POSITIVE_INFINITY) > dead)
            await descend(c as string, below?.key === c ? below : undefined);
        }
      };
      // per level, the view's nodes by object key (only for nodes without ranges)
      const byKey: Map<string, NodeInfo>[] = [];
      const liveByKey = (L: number): Map<string, NodeInfo> => (byKey[L] ??= this.nodesByKey(L));
      for (let L = this.levels.length - 1; L >= 0; L--) {
        for (const n of this.sorted(L)) {
          if (n.from < covered) continue;
          if (n.to <= floor) {
            // past retention (its objects may be gone) or before the cursor
            covered = Math.max(covered, n.to);
            continue;
          }
          if (L < this.levels.length - 1) stats.orphansVisited++;
          await descend(n.key, n);
          covered = Math.max(covered, n.to);
        }
      }
    }
    stats.blocksIndexed = covered;
    stats.candidateBlocks = candidates.size;
    for (let s = Math.max(covered, floor); s < this.blocks.length; s++) {
      candidates.add(s);
      stats.tailBlocks++;
    }
    const rows: Row[] = [];
    const seqs: number[] = [];
    const needles = requiredNeedles(e);
    const used = columnsOf(e);
    // where the next page starts: after the last row returned (or where this one started, at limit 0)
    let next: CursorPosition = from;
    for (const seq of [...candidates].sort((a, b) => a - b)) {
      if (rows.length >= limit) break;
      if (seq < floor) continue;
      const b = this.blocks[seq]!;
      if (!mayMatchRange(e, b.min, b.max)) {
        stats.prunedByMinMax++;
        continue;
      }
      // the directory (one range get), then only the pages whose key filters may hold the plan's keys
      const blk = await this.reads.block(b.key, b.dir);
      stats.blocksRead++;
      // the block's rows before the cursor's were returned by an earlier page
      const rowFrom = seq === from.seq ? from.row : 0;
      const pages: number[] = [];
      const pageStart: number[] = [];
      for (let p = 0, start = 0; p < blk.pages.length; start += blk.pages[p]!.rows, p++) {
        pageStart.push(start);
        if (start + blk.pages[p]!.rows <= rowFrom) continue;
        if (plan && !pageMay(plan, (key) => blk.pageMayHold(p, key))) stats.pagesSkipped++;
        else pages.push(p);
      }
      await blk.load(pages);
      stats.blockBytesFetched += blk.bytesFetched;
      stats.blockGets += blk.getsMade;
      let anyPage = false;
      for (const p of pages) {
        if (rows.length >= limit) break;
        if (needles.some((n) => !blk.pageText(p, n.col).includes(n.needle))) {
          stats.pagesSkipped++;
          continue;
        }
        anyPage = true;
        stats.pagesRead++;
        // the page's rows before the cursor's were returned by an earlier page
        const from = Math.max(0, rowFrom - pageStart[p]!);
        for (const i of matchingRows(e, blk, p, needles, used, stats, from)) {
          if (rows.length >= limit) break;
          const at = pageStart[p]! + i;
          rows.push(blk.pageRow(p, i));
          seqs.push(seq);
          next = { seq, row: at + 1, rewrites: b.rewrites ?? 0 };
        }
      }
      if (!anyPage) stats.prunedByNeedle++;
    }
    // stopped at the limit: rows after the last one returned may match (a search that ran out has none)
    if (rows.length >= limit) return { rows, seqs, cursor: formatCursor(next), stats };
    return { rows, seqs, stats };
  }

  /**
   * A cursor's position in the block as it is now: an erasure since the cursor was made removed rows of
   * its block, which moved the rows after them, so its row is mapped through each rewrite's removed runs
   * (the rows before it that went). A CursorError when a rewrite did not record them (an older version,
   * or more than `eraseRunsMax` runs), or when the cursor names more rewrites than the block has had.
   */
  private cursorNow(c: CursorPosition, text: string): CursorPosition {
    const b = this.blocks[c.seq];
    const now = b?.rewrites ?? 0;
    if (!b || c.row === 0 || c.seq < this.expiredUpTo || c.rewrites === now) return { ...c, rewrites: now };
    const refuse = (why: string): never => {
      throw new CursorError(
        `search: cursor '${text}' points inside block ${c.seq}, ${why}; search again without the cursor`,
      );
    };
    if (c.rewrites > now)
      return refuse(`which has been rewritten ${now} times, not ${c.rewrites} (a cursor of another stream?)`);
    let row = c.row;
    for (let k = c.rewrites; k < now; k++) {
      const runs = b.erasedRuns?.[k];
      if (!runs) return refuse('which an erasure has rewritten since without recording the rows it removed');
      let gone = 0;
      for (let j = 0; j + 1 < runs.length && runs[j]! < row; j += 2)
        gone += Math.min(runs[j + 1]!, row) - runs[j]!;
      row -= gone;
    }
    return { seq: c.seq, row, rewrites: now };
  }

  /** Every acknowledged row, block by block (the brute-force view). */
  async *scan(): AsyncGenerator<{ seq: number; rows: Row[] }> {
    await this.catchUp();
    for (const b of this.blocks.slice(this.expiredUpTo))
      yield { seq: b.seq, rows: decodeBlock(await this.store.get(b.key), b.key).rows };
  }

  /**
   * Erasure: finds the blocks through the index, rewrites each without the matching rows (and its leaf
   * without their keys), then rewrites the index nodes above each block so no erased key points to it any
   * more (copy-on-write up the path, one all-or-none `renode` record), records the erasure, and deletes
   * the old block, leaf and node objects, and every superseded node object (gc). Afterwards neither a
   * search, a full scan nor a look at the stored index nodes finds the erased values' keys (unless other
   * rows still hold them).
   */
  async erase(
    where: string,
    opts: { gcGraceMs?: number } = {},
  ): Promise<{ blocks: number; rows: number; nodesRewritten: number }> {
    if (opts.gcGraceMs !== undefined) checkGraceMs('erase gcGraceMs', opts.gcGraceMs);
    const e = this.parse(where);
    // an earlier erasure (this one run before, say) that stopped before its index drop
    let nodesRewritten = (await this.finishErasures()).nodes;
    const hit = await this.search(e);
    const seqs = [...new Set(hit.seqs)];
    let rowsRemoved = 0;
    const done: string[] = [];
    for (const seq of seqs) {
      const r = await this.eraseBlock(seq, e);
      rowsRemoved += r.rows;
      nodesRewritten += r.nodes;
      if (r.rewrite !== undefined) done.push(r.rewrite);
    }
    await this.log.append([
      {
        t: 'erase',
        where: blockId('erase', 0, 0, new TextEncoder().encode(where)),
        blocks: seqs,
        rows: rowsRemoved,
        at: Date.now(),
        ...(done.length > 0 ? { done } : {}),
      },
    ]);
    await this.catchUp();
    await this.gc({ graceMs: opts.gcGraceMs ?? gcGraceMsDefault });
    return { blocks: seqs.length, rows: rowsRemoved, nodesRewritten };
  }

  /**
   * Rewrites block `seq` without the rows `e` matches, on the view as it is now. The `rewrite` record names
   * the block object it was made from (`base`) and is applied only if that is still the block's object:
   * another erasure of the same block (another process, or this one) that recorded its rewrite first wins,
   * and this one is made again from the winner's block, so neither puts back rows the other removed. A
   * losing try's objects are deleted (nothing names them); a block object deleted under the read (the
   * winner deletes the one it replaced) is a miss that catches up and tries again. Returns the rows this
   * erasure removed (none when the block no longer has any it matches), the index nodes it rewrote, and
   * the key of its rewrite (its index drop finished: the caller records that).
   */
  private async eraseBlock(seq: number, e: Expr): Promise<{ rows: number; nodes: number; rewrite?: string }> {
    const ncols = this.def.columns.length;
    for (let attempt = 0; attempt < eraseRetriesMax; attempt++) {
      await this.catchUp();
      if (seq < this.expiredUpTo) return { rows: 0, nodes: 0 };
      const b = this.blocks[seq]!;
      let blk: ReturnType<typeof decodeBlock>;
      try {
        blk = decodeBlock(await this.store.get(b.key), b.key);
      } catch (err) {
        if ((err as Error).name === 'NotFoundError') continue; // rewritten and deleted meanwhile
        throw err;
      }
      const keep: Row[] = [];
      // the removed rows as runs [start, end) of the old block's rows, for search cursors inside it
      const erased: number[] = [];
      blk.rows.forEach((r, i) => {
        if (!evalExpr(e, r)) keep.push(r);
        else if (erased.length > 0 && erased[erased.length - 1] === i) erased[erased.length - 1] = i + 1;
        else erased.push(i, i + 1);
      });
      if (keep.length === blk.rows.length) return { rows: 0, nodes: 0 };
      const { bytes, header, pageKeys, directoryBytes } = encodeBlock(
        { id: b.id, source: b.source, from: b.from, to: b.to, rawBytes: b.rawBytes },
        keep,
        ncols,
        this.pageKeyOptions(),
      );
      const stamp = `e${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
      const key = `${this.def.name}/blocks/${b.id}.${stamp}`;
      await this.store.put(key, bytes);
      let gone = new Float64Array(0);
      let leaf: string | undefined;
      if (this.def.index.length > 0) {
        const before = keysOf(this.def, blk.rows);
        const after = unionKeys(pageKeys);
        gone = before.filter((k) => !setHas(after, k));
        leaf = `${this.def.name}/leaves/${b.id}.${stamp}`;
        await this.store.put(leaf, encodeNode(leafNode(0, 0, 1, 0, after)));
      }
      const oldKey = b.key;
      const oldLeaf = b.leaf;
      const applied = await this.appendAwaited(
        {
          t: 'rewrite',
          seq,
          base: oldKey,
          key,
          rows: keep.length,
          bytes: bytes.length,
          min: header.min,
          max: header.max,
          ...(leaf ? { leaf } : {}),
          dir: directoryBytes,
          ...(erased.length <= 2 * eraseRunsMax ? { erased } : {}),
        },
        key,
      );
      if (!applied) {
        // another erasure's rewrite of this block was recorded first: ours lost, and names nothing (one
        // recorded after ours and applied on top of it leaves ours won: the block's key is then not ours)
        await this.store.delete(key);
        if (leaf) await this.store.delete(leaf);
        continue;
      }
      const nodes = gone.length > 0 ? await this.dropFromIndex(seq, gone) : 0;
      await this.store.delete(oldKey);
      if (oldLeaf) await this.store.delete(oldLeaf).catch(() => undefined);
      return { rows: blk.rows.length - keep.length, nodes, rewrite: key };
    }
    throw new Error(
      `erase: block ${seq} kept being rewritten by other erasures under ${eraseRetriesMax} attempts`,
    );
  }

  /**
   * Appends `rec` (a `rewrite` or `renode` record whose first new object is `key`) and catches up; true
   * when it was applied. Known from the record itself, not from the view after the catch-up: another
   * record may already stand on top of it there (a later erasure's rewrite of the same block or node).
   */
  private async appendAwaited(rec: ProgressRecord, key: string): Promise<boolean> {
    this.awaited.set(key, false);
    let applied = false;
    try {
      await this.log.append([rec]);
      await this.catchUp();
    } finally {
      applied = this.awaited.get(key) === true;
      this.awaited.delete(key);
    }
    return applied;
  }

  /** Records the rewritten index `path` as one all-or-none `renode` record; true when it was applied. */
  private appendRenode(path: (NodeInfo & { old: string })[], free: boolean): Promise<boolean> {
    const nodes = path.map(({ level, from, old, key, keys, bytes }) => ({
      level,
      from,
      old,
      key,
      keys,
      bytes,
    }));
    return this.appendAwaited({ t: 'renode', nodes, ...(free ? { free } : {}) }, nodes[0]!.key);
  }

  /**
   * Removes block `seq`'s pointers for `gone` keys from the live nodes above it: the level-0 node that
   * holds the block, then each parent that holds that node, up to where no live node holds the child.
   * One all-or-none `renode` record; retried on a fresh view when a racing indexer changed the path.
   */
  private async dropFromIndex(seq: number, gone: Float64Array): Promise<number> {
    for (let attempt = 0; attempt < eraseRetriesMax; attempt++) {
      await this.catchUp();
      // Past retention (an expiry landed since the block was read): the nodes over it are dead, deleted
      // by gc or about to be; there is nothing to drop keys from.
      if (seq < this.expiredUpTo) return 0;
      // Up every level that holds the child: even with no key left to drop, a parent must name the
      // child's new object, because the old one (which holds the erased keys) is deleted. The path stops
      // early at an orphan range above that does not hold this child.
      const written: (NodeInfo & { old: string })[] = [];
      let planned: Awaited<ReturnType<Stream['rewritePath']>>;
      try {
        planned = await this.rewritePath(0, seq, seq, undefined, gone, undefined, written);
      } catch (e) {
        if ((e as Error).name !== 'NotFoundError') throw e;
        // A node of this view was replaced and deleted after the catch-up (another erasure deletes the
        // nodes it rewrites at once, gc the ones compaction superseded): plan again on a fresh view. Given
        // up here, the block stayed rewritten with its keys in the index, and no later erase found its
        // rows to drop them.
        for (const n of written) await this.store.delete(n.key).catch(() => undefined);
        continue;
      }
      const { path, free } = planned;
      if (path.length === 0) return 0;
      // free: an indexer that puts the top node under a parent before this lands makes it lose (retried)
      if (await this.appendRenode(path, free)) {
        for (const n of path) await this.store.delete(n.old).catch(() => undefined);
        return path.length;
      }
      for (const n of path) await this.store.delete(n.key).catch(() => undefined);
    }
    throw new Error(`erase: the index path of block ${seq} kept changing under ${eraseRetriesMax} attempts`);
  }

  /** Blocks whose latest erasure may not have finished dropping its keys from the index (see `finishErasures`). */
  get erasuresUnfinished(): number[] {
    return [...new Set(this.dropsPending.values())]
      .filter((seq) => seq >= this.expiredUpTo)
      .sort((a, b) => a - b);
  }

  /**
   * Finishes the index drop of every rewrite the log has no completion for (an erasure killed or failing
   * between its `rewrite` and its `renode` record): drops block `seq`'s pointers for the keys its live
   * level-0 node points to it for and its current leaf does not have (`dropFromIndex`: conditional
   * `renode` records, retried on races), then appends one `erase` record (`where` empty, no rows) whose
   * `done` names the rewrites finished. Run beside the erasure itself (another process) this is only
   * duplicate work: whichever renode lands first drops the keys, the other is replanned and drops nothing
   * new. Returns the blocks finished and the index nodes rewritten.
   */
  private async finishErasures(): Promise<{ blocks: number; nodes: number }> {
    await this.catchUp();
    if (this.dropsPending.size === 0) return { blocks: 0, nodes: 0 };
    const pending = [...this.dropsPending];
    const seqs = [...new Set(pending.map(([, seq]) => seq))].sort((a, b) => a - b);
    let nodes = 0;
    for (const seq of seqs) {
      const stale = await this.staleKeys(seq);
      if (stale.length > 0) nodes += await this.dropFromIndex(seq, stale);
    }
    const done = pending.map(([key]) => key);
    await this.log.append([{ t: 'erase', where: '', blocks: seqs, rows: 0, at: Date.now(), done }]);
    await this.catchUp();
    return { blocks: seqs.length, nodes };
  }

  /** A block's index keys: its leaf's (written with it), or its rows' for a block without a leaf. */
  private async blockKeys(b: BlockInfo): Promise<Float64Array> {
    if (b.leaf) return (await this.node(b.leaf)).keys;
    return keysOf(this.def, decodeBlock(await this.store.get(b.key), b.key).rows);
  }

  /**
   * The keys the live level-0 node over block `seq` points to the block for that its current leaf does
   * not have (what an unfinished erasure left), on a fresh view; none when the block is past retention or
   * not indexed. Read again when an object of the view was deleted under the read (another erasure).
   */
  private staleKeys(seq: number): Promise<Float64Array> {
    return this.onFreshView(async () => {
      await this.catchUp();
      const b = this.blocks[seq];
      const info = this.covering(0, seq);
      if (!b || seq < this.expiredUpTo || !info) return new Float64Array(0);
      const node = await this.node(info.key);
      const i = node.header.children.indexOf(seq);
      if (i < 0) return new Float64Array(0);
      const has = await this.blockKeys(b);
      const stale: number[] = [];
      for (let k = 0; k < node.keys.length; k++) {
        if (setHas(has, node.keys[k]!)) continue;
        for (let p = node.postOff[k]!; p < node.postOff[k + 1]!; p++)
          if (node.post[p] === i) {
            stale.push(node.keys[k]!);
            break;
          }
      }
      return Float64Array.from(stale);
    });
  }

  /**
   * Retention's index drop: the live nodes that hold the end of the expired prefix inside their range (a
   * level-0 node over blocks [a, b) with a < expiredUpTo < b, and the parents above) lose every pointer to
   * an expired child, so they keep no key that only expired rows had. Planned on the view as it is
   * (`planExpiredDrop`), one all-or-none `renode` record, then planned again on the new view until a plan
   * finds nothing left: a record that lost a race (an indexer extended the level-0 node, a compaction or
   * an erasure rewrote a node of the path, another maintain did this first) is redone on what won, and
   * one that won leaves nothing. The superseded objects, and those of a losing record, are left to gc (a
   * reader of an older view may still read them). Derived from the view, not from the `expire` record, so
   * a maintain that stopped between the two is finished by the next. Returns the nodes rewritten.
   */
  private async dropExpired(): Promise<number> {
    let nodes = 0;
    for (let attempt = 0; attempt < eraseRetriesMax; attempt++) {
      await this.catchUp();
      const upTo = this.expiredUpTo;
      if (upTo === 0 || this.def.index.length === 0) return nodes;
      const path: (NodeInfo & { old: string })[] = [];
      let free: boolean;
      try {
        free = await this.planExpiredDrop(upTo, path);
      } catch (e) {
        // a node of this view was replaced and deleted under the read (an erasure deletes the nodes it
        // rewrites at once, gc the superseded ones): plan again on a fresh view
        if ((e as Error).name !== 'NotFoundError') throw e;
        continue;
      }
      if (path.length === 0) return nodes;
      // free: an indexer that puts the top node under a parent before this lands makes it lose
      if (await this.appendRenode(path, free)) nodes += path.length;
    }
    throw new Error(
      `maintain: the index nodes over the expired prefix kept changing under ${eraseRetriesMax} attempts`,
    );
  }

  /**
   * Plans `dropExpired` on this view, from level 0 up: the live node of each level whose range holds
   * `upTo` and starts below it loses its pointers to the children wholly below `upTo` (level 0: expired
   * blocks; above: nodes that expired whole), and, when the node below it was rewritten, that child's
   * pointers for the keys it no longer holds, naming its new object (so every level above a rewritten
   * node is rewritten too; a promotion names the new object). A node with nothing to drop and nothing
   * rewritten below is left as it is. Writes the objects into `path`, records nothing; returns whether
   * the top written node is under no parent (`free`), false when a node covers a rewritten child but does
   * not hold it (the path stops there, as an erasure's does).
   */
  private async planExpiredDrop(upTo: number, path: (NodeInfo & { old: string })[]): Promise<boolean> {
    let below: { old: string; info: NodeInfo; gone: Float64Array } | undefined;
    for (let L = 0; L < this.levels.length; L++) {
      const info = this.covering(L, upTo);
      if (!info) return true;
      if (below && info.key === below.old) {
        path.push({ ...below.info, level: L, from: info.from, to: info.to, old: info.key });
        continue;
      }
      // nothing of the prefix under it, or a promotion of a node left as it is
      if (!below && (info.from >= upTo || this.isAlias(info))) continue;
      // each child's end from the node's ranges (an older version's node gets them from the view)
      const node = this.withChildRanges(await this.node(info.key));
      const ch = node.header.children;
      let child = -1;
      if (below) {
        child = ch.indexOf(below.old);
        if (child < 0) return false;
      }
      const dead = new Uint8Array(ch.length);
      if (L === 0) for (let i = 0; i < ch.length; i++) dead[i] = (ch[i] as number) < upTo ? 1 : 0;
      else for (let i = 0; i < ch.length; i++) dead[i] = node.header.ranges![i]![1] <= upTo ? 1 : 0;
      const r = dropPointers(node, child, below?.gone ?? new Float64Array(0), below?.info.key, dead);
      if (!below && r.node.post.length === node.post.length) continue; // no pointer to an expired child
      const put = await this.putNode(L, r.node);
      path.push({ ...put, old: info.key });
      below = { old: info.key, info: put, gone: r.gone };
    }
    return true;
  }

  /**
   * Housekeeping under the DDL's STORAGE and RETAIN clauses, at the stream's clock: moves objects idle for
   * the hot period from the express tier to standard, expires the longest prefix of blocks acknowledged
   * more than RETAIN ago (one `expire` record; queries and the indexer skip them from then on), takes
   * their keys out of the live index nodes that reach past them (`dropExpired`), then collects what
   * nothing live refers to (gc), which deletes the expired blocks, leaves and nodes.
   */
  async maintain(opts: { graceMs?: number } = {}): Promise<MaintainStats> {
    if (opts.graceMs !== undefined) checkGraceMs('maintain graceMs', opts.graceMs);
    await this.catchUp();
    const now = this.nowMs();
    const moved = this.store instanceof TieredStore ? await this.store.moveIdle(now) : 0;
    let upTo = this.expiredUpTo;
    for (;;) {
      const at = this.blocks[upTo]?.at;
      if (at === undefined || at + this.def.retainMs > now) break;
      upTo++;
    }
    const expired = upTo - this.expiredUpTo;
    if (expired > 0) {
      await this.log.append([{ t: 'expire', upTo, at: now }]);
      await this.catchUp();
    }
    // the expired blocks' keys out of the nodes that reach past them (also what a maintain that stopped
    // after its expire record left)
    const expiredNodes = await this.dropExpired();
    // an erasure that stopped before its index drop (blocks expired above need none)
    const finished = await this.finishErasures();
    const deleted = await this.gc(opts);
    return {
      moved,
      expired,
      deleted,
      expiredNodes,
      erasuresFinished: finished.blocks,
      erasureNodes: finished.nodes,
    };
  }

  /**
   * Deletes objects nothing live refers to: blocks past retention or replaced by erasure, node objects that are not a live node at some level
   * (superseded by merge, add or erasure, or written by an indexer whose record lost a race or that died
   * before appending it) and leaves that are no block's leaf. Objects younger than `graceMs` are kept, so
   * an indexer between its put and its append is not robbed. Returns the number of objects deleted.
   */
  async gc(opts: { graceMs?: number } = {}): Promise<number> {
    await this.catchUp();
    const graceMs = opts.graceMs ?? gcGraceMsDefault;
    checkGraceMs('gc graceMs', graceMs);
    const live = new Set<string>();
    const dead = this.expiredUpTo;
    for (const m of this.levels) for (const n of m.values()) if (n.to > dead) live.add(n.key);
    for (const b of this.blocks.slice(dead)) {
      live.add(b.key);
      if (b.leaf) live.add(b.leaf);
    }
    const now = Date.now();
    let deleted = 0;
    const prefixes = ['nodes/', 'leaves/', 'blocks/'].map((p) => `${this.def.name}/${p}`);
    const gone = new Set<string>();
    for (const prefix of prefixes) {
      let after: string | undefined;
      for (;;) {
        const page = await this.store.list(prefix, after === undefined ? {} : { startAfter: after });
        const doomed = page.objects
          .filter((o) => !live.has(o.key) && now - o.modifiedMs >= graceMs)
          .map((o) => o.key);
        for (let i = 0; i < doomed.length; i += gcDeletesInFlight) {
          const batch = doomed.slice(i, i + gcDeletesInFlight);
          // a delete that fails leaves its object for the next pass (counted then)
          const done = await Promise.all(
            batch.map((k) =>
              this.store.delete(k).then(
                () => true,
                () => false,
              ),
            ),
          );
          for (const [j, k] of batch.entries()) {
            this.nodes.delete(k);
            gone.add(k);
            if (done[j]) deleted++;
          }
        }
        if (page.nextStartAfter === undefined) break;
        after = page.nextStartAfter;
      }
    }
    // and the directories and pages of HLN2 nodes searches kept (unreachable through the view, but
    // holding the page cache's room until LRU pushed them out)
    this.reads.forgetNodes(gone);
    return deleted;
  }

  /** Every (node, key, child) of the live index nodes, as NDJSON lines (for export). */
  async *indexEntries(): AsyncGenerator<string> {
    await this.catchUp();
    for (let L = 0; L < this.levels.length; L++)
      for (const n of this.sorted(L)) {
        if (this.isAlias(n)) continue; // a promotion: its object is the level below's node
        if (n.to <= this.expiredUpTo) continue; // past retention: not live (gc deletes its object)
        const node = await this.node(n.key);
        const ch = node.header.children;
        for (let i = 0; i < node.keys.length; i++)
          for (let p = node.postOff[i]!; p < node.postOff[i + 1]!; p++)
            yield `{"level":${L},"node_from":${n.from},"node_to":${n.to},"node_key":${JSON.stringify(n.key)},"key":${node.keys[i]},"child":${JSON.stringify(String(ch[node.post[p]!]))}}`;
      }
  }

  /** Sizes: raw input bytes, block bytes, live index node bytes. */
  sizes(): {
    rawBytes: number;
    blockBytes: number;
    indexBytes: number;
    rows: number;
    blocks: number;
    nodes: number;
    /** Blocks past retention (deleted; not in the other figures). */
    expiredBlocks: number;
  } {
    let rawBytes = 0;
    let blockBytes = 0;
    let rows = 0;
    const dead = this.expiredUpTo;
    for (const b of this.blocks.slice(dead)) {
      rawBytes += b.rawBytes;
      blockBytes += b.bytes;
      rows += b.rows;
    }
    let indexBytes = 0;
    let nodes = 0;
    for (const m of this.levels)
      for (const n of m.values())
        if (n.to > dead && !this.isAlias(n)) {
          indexBytes += n.bytes;
          nodes++;
        }
    return {
      rawBytes,
      blockBytes,
      indexBytes,
      rows,
      blocks: this.blocks.length - dead,
      nodes,
      expiredBlocks: dead,
    };
  }
}
