/**
 * How a Stream's searches read index nodes and blocks: in parts, sized by what earlier reads found, through
 * bounded caches of what they read.
 */

import type { ObjectStore } from '@strata/objstore';
import { BlockReader, blockDirectoryBytesMax } from './block.js';
import { BytesLru } from './lru.js';
import {
  decodeNode,
  type IndexNode,
  lookup,
  NodeDirectory,
  type NodePage,
  nodePageKeys,
  nodePagesMax,
  nodeVersion,
} from './node.js';
import type { NodeCache } from './nodecache.js';
import type { NodeView, SearchStats } from './search.js';

/**
 * What a search keeps of the HLN2 nodes it reads in parts (their headers and directories, and the pages it
 * looked keys up in): LRU, at most this many bytes, every level alike.
 */
export const nodePageCacheBytesMax = 32 * 2 ** 20;
/** Bound on what a search's first get of an HLN2 node asks for (its header and directory). */
const nodePrefixBytesMax = 1 << 20;
/**
 * Bytes of block directories a Stream keeps for searches (a 4 MiB chunk's is about 35 KiB: 900 blocks),
 * so a search that comes back to a block fetches only its pages.
 */
export const directoryCacheBytesMax = 32 << 20;

/** What the progress log says of a node's size, when the search knows its record. */
export interface NodeSize {
  keys: number;
  /** Unknown for nodes recorded before records carried it. */
  children?: number;
}

/** The node an entry of the HLN2 page cache belongs to: its directory is keyed by the node, page p by `NODE#p`. */
function pagedNode(k: string): string {
  const hash = k.indexOf('#');
  return hash < 0 ? k : k.slice(0, hash);
}

export class SearchReads {
  /**
   * HLN2 nodes as searches read them, in parts: `KEY` is the node's directory, `KEY#P` its page P. Node
   * objects never change (a new version is a new key).
   */
  private readonly pages: BytesLru<NodeDirectory | NodePage>;
  /** Directories of HLB4/HLB5 blocks searches read, by block key. */
  private readonly directories = new BytesLru<Uint8Array>(directoryCacheBytesMax);
  /**
   * What the first get of an HLN2 node asks for, by level: the largest header and directory seen at that
   * level, in 4 KiB (a level-1 node of 2M keys has an 80 KB directory, a level-0 node of 60K keys 2.4 KB).
   */
  private readonly nodePrefixBytes: number[] = [];
  /** Whether the last node a search opened was HLN1 (read whole: no prefix get first). */
  private lastNodeWhole = false;
  /**
   * What a search's first get of a block asks for: the largest directory seen so far, rounded up to 4 KiB
   * (a 4 MiB chunk's is about 35 KiB), so a needle reads the directory and then its pages, little else.
   */
  private blockPrefixBytes = 4096;
  /** Whether the last block a search opened was an older version (read whole: no range get first). */
  private lastBlockWhole = false;
  /** Per column: the largest page section a search inflated (BlockReader.inflatedBytesHint). */
  private readonly inflatedBytesHint: number[] = [];
  private readonly nodePageKeys: number | undefined;

  constructor(
    private readonly store: ObjectStore,
    /** The Stream's decoded nodes: a node there answers from memory, a node read whole goes there. */
    private readonly nodes: NodeCache,
    /** Reads a node whole through the Stream (and its node cache). */
    private readonly load: (key: string) => Promise<IndexNode>,
    opts: {
      /** Bound on the page cache (`StreamOptions.nodePageCacheBytes`). */
      pageCacheBytes?: number;
      /** Keys a page of the HLN2 nodes read (`StreamOptions.nodePageKeys`). */
      nodePageKeys?: number;
    } = {},
  ) {
    this.pages = new BytesLru(opts.pageCacheBytes ?? nodePageCacheBytesMax);
    this.nodePageKeys = opts.nodePageKeys;
  }

  /**
   * An index node for a search. A node this Stream holds decoded (one its indexer wrote or read, or an HLN1
   * node) answers from memory. Else an HLN2 node is read in parts: its header and directory (one get of
   * about the largest directory seen, a second when this one is longer), then for each key looked up the
   * one page that may hold it (one range get), all kept in the page cache (LRU, bounded). An HLN1 node is
   * read whole, as before (after a search met one, the next node is fetched whole in one get).
   */
  async node(key: string, stats: SearchStats, info?: NodeSize): Promise<NodeView> {
    const whole = this.nodes.get(key);
    if (whole) return { header: whole.header, find: (k) => lookup(whole, k) };
    let dir = this.pages.get(key) as NodeDirectory | undefined;
    // what the first get fetched past the directory (pages there are not fetched again)
    let head: Uint8Array | undefined;
    if (!dir) {
      if (this.lastNodeWhole) return this.wholeNode(key, stats);
      const level = Number(/\/nodes\/L(\d+)\//.exec(key)?.[1] ?? 0);
      // about the largest directory seen at the level, or what this node's record says it holds: its
      // keys (the directory's pages, at the default page size) and children (the header's names)
      let ask = this.nodePrefixBytes[level] ?? 4096;
      if (info) {
        const K = this.nodePageKeys ?? Math.max(nodePageKeys, Math.ceil(info.keys / nodePagesMax));
        const pages = Math.ceil(info.keys / K);
        const header = 512 + (info.children ?? 64) * (level > 0 ? 96 : 12);
        const guess = Math.ceil((24 + pages * 20 + header) / 4096) * 4096;
        ask = Math.min(nodePrefixBytesMax, Math.max(ask, guess));
      }
      let bytes = await this.store.get(key, { range: { start: 0, end: ask - 1 } });
      stats.nodeGets++;
      stats.nodeBytesFetched += bytes.length;
      if (nodeVersion(bytes) === 1) {
        this.lastNodeWhole = true;
        // the whole object when it is shorter than what was asked for
        if (bytes.length < ask) return this.wholeNode(key, stats, bytes);
        return this.wholeNode(key, stats);
      }
      this.lastNodeWhole = false;
      const need = NodeDirectory.bytesNeeded(bytes, key);
      // fewer bytes than asked for: the object ends there (a store clips a range at the end), so it is
      // not asked for more, and its size is checked against the header (a truncated node fails here,
      // naming it, not in the store's range check)
      const objectBytes = bytes.length < ask ? bytes.length : undefined;
      if (bytes.length < need && objectBytes === undefined) {
        const rest = await this.nodeRange(key, bytes.length, need, key);
        stats.nodeGets++;
        stats.nodeBytesFetched += rest.length;
        const all = new Uint8Array(bytes.length + rest.length);
        all.set(bytes);
        all.set(rest, bytes.length);
        bytes = all;
      }
      dir = NodeDirectory.parse(bytes.subarray(0, need), key, objectBytes);
      this.nodePrefixBytes[level] = Math.min(
        nodePrefixBytesMax,
        Math.max(ask, Math.ceil(need / 4096) * 4096),
      );
      this.pages.put(key, dir, dir.bytes);
      head = bytes;
    }
    const d = dir;
    return {
      header: d.header,
      find: async (k) => {
        const p = d.pageOf(k);
        if (p < 0) return new Uint32Array(0);
        const pk = `${key}#${p}`;
        let page = this.pages.get(pk) as NodePage | undefined;
        if (!page) {
          const [start, end] = d.range(p);
          // the page's bytes in an array of their own: what the first get or the store returned may be a
          // view of a larger buffer (a Buffer's slice() is one; a FileStore read under 4 KiB comes from
          // Node's 8 KiB pool), which the cache would keep alive while counting the page's bytes only
          let bytes: Uint8Array;
          if (head && end <= head.length) bytes = new Uint8Array(head.subarray(start, end));
          else {
            bytes = await this.nodeRange(key, start, end, `${key}: page ${p} of ${d.pages}`);
            stats.nodeGets++;
            stats.nodeBytesFetched += bytes.length;
            if (bytes.byteLength !== bytes.buffer.byteLength) bytes = new Uint8Array(bytes);
          }
          page = d.page(p, bytes);
          this.pages.put(pk, page, bytes.length);
        }
        return page.find(k);
      },
    };
  }

  /**
   * Bytes [start, end) of a node object; a range past its end (a node shorter than its header or
   * directory says) fails naming `what`, not only the store's offsets.
   */
  private async nodeRange(key: string, start: number, end: number, what: string): Promise<Uint8Array> {
    try {
      return await this.store.get(key, { range: { start, end: end - 1 } });
    } catch (e) {
      if ((e as Error).name !== 'RangeError') throw e;
      throw new Error(`${what}: bytes ${start}-${end - 1} are past the object's end (a truncated node)`, {
        cause: e,
      });
    }
  }

  /** A node read whole for a search (HLN1, or any node after an HLN1 one), kept in the node cache. */
  private async wholeNode(key: string, stats: SearchStats, bytes?: Uint8Array): Promise<NodeView> {
    let node: IndexNode;
    if (bytes) {
      node = decodeNode(bytes, key);
      this.nodes.put(key, node, bytes.length);
    } else {
      const before = this.nodes.has(key);
      node = await this.load(key);
      if (!before) {
        stats.nodeGets++;
        stats.nodeBytesFetched += this.nodes.bytesOf(key);
      }
    }
    this.lastNodeWhole = node.header.pageKeys === undefined; // HLN1 (an HLN2 header says its pages)
    return { header: node.header, find: (k) => lookup(node, k) };
  }

  /** Bytes and entries of the HLN2 directories and pages searches keep (tests). */
  get pageCacheStats(): { entries: number; bytes: number; nodeKeys: string[] } {
    const nodeKeys = new Set<string>();
    for (const k of this.pages.keys()) nodeKeys.add(pagedNode(k));
    return { entries: this.pages.size, bytes: this.pages.bytes, nodeKeys: [...nodeKeys] };
  }

  /**
   * A block for a search: its directory from the cache (a block's key names bytes that never change: a
   * rewrite writes a new key), else from one range get (two when it is longer than any seen before).
   */
  async block(key: string, dirBytes?: number): Promise<BlockReader> {
    const dir = this.directories.get(key);
    if (dir) {
      const blk = new BlockReader(dir, key, this.store);
      blk.inflatedBytesHint = this.inflatedBytesHint;
      blk.bytesFetched = 0;
      blk.getsMade = 0;
      return blk;
    }
    let blk: BlockReader;
    if (this.lastBlockWhole) {
      // the last block was HLB2/HLB3 (read whole): so is the next one most likely (a stream's old blocks)
      const bytes = await this.store.get(key);
      blk = new BlockReader(bytes, key, this.store);
    } else {
      // the record's directory size when it has one (blocks written since it was recorded): one get of
      // exactly the directory, also for the first block a process searches
      const known =
        dirBytes !== undefined &&
        Number.isInteger(dirBytes) &&
        dirBytes >= 20 &&
        dirBytes <= blockDirectoryBytesMax;
      blk = await BlockReader.open(this.store, key, known ? dirBytes : this.blockPrefixBytes);
    }
    blk.inflatedBytesHint = this.inflatedBytesHint;
    this.lastBlockWhole = blk.version < 4;
    const d = blk.directory();
    if (d) {
      // the next block's first get asks for about this block's directory (blocks of a stream are alike)
      this.blockPrefixBytes = Math.min(
        blockDirectoryBytesMax,
        Math.max(this.blockPrefixBytes, Math.ceil(d.length / 4096) * 4096),
      );
      this.directories.put(key, d, d.length);
    }
    return blk;
  }

  /** Drops what the page cache holds of nodes that were deleted (unreachable, but holding its room). */
  forgetNodes(gone: Set<string>): void {
    if (gone.size > 0) this.pages.dropWhere((k) => gone.has(pagedNode(k)));
  }
}
