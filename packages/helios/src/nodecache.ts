/**
 * The decoded index nodes a Stream keeps: what its indexer wrote or read, and the nodes its searches read
 * whole (HLN1).
 */

import type { IndexNode } from './node.js';

/**
 * Bound on decoded index nodes kept in memory per open stream, in nodes, but for the index's current
 * nodes above level 0, which stay whatever the bounds (`NodeCache.put`).
 */
export const nodeCacheMax = 256;
/**
 * And in the bytes of their encodings (a node of the upper levels can hold many MB of keys: 256 of them
 * alone could hold most of a large stream's index), with the same exception.
 */
export const nodeCacheBytesMax = 64 * 2 ** 20;

/** Which nodes the index's current view holds (the cache asks when it has to drop some). */
export interface CurrentNodes {
  /** Keys of the current nodes above level 0. */
  upper(): Set<string>;
  /** Keys of the current level-0 nodes. */
  level0(): Set<string>;
}

export class NodeCache {
  /** By key, least recently used first, with their encoded sizes. */
  private readonly nodes = new Map<string, { node: IndexNode; bytes: number }>();
  private held = 0;

  constructor(
    private readonly current: CurrentNodes,
    /** Bound on the encoded bytes of the nodes that can be dropped (`StreamOptions.nodeCacheBytes`). */
    public bytesMax = nodeCacheBytesMax,
  ) {}

  /** The node under `key`, now the most recently used; undefined when not kept. */
  get(key: string): IndexNode | undefined {
    const hit = this.nodes.get(key);
    if (!hit) return undefined;
    this.nodes.delete(key);
    this.nodes.set(key, hit);
    return hit.node;
  }

  has(key: string): boolean {
    return this.nodes.has(key);
  }

  /** The encoded size of the node under `key` as it was put (0 when not kept). */
  bytesOf(key: string): number {
    return this.nodes.get(key)?.bytes ?? 0;
  }

  /**
   * Keeps a node, then drops the least recently used ones past `nodeCacheMax` nodes or the byte bound,
   * except the index's current nodes above level 0: every search goes through them, and at 10M lines two of
   * them (a 36 MB root over a 36 MB child) outgrew the 64 MiB bound, so each needle evicted and fetched
   * them both again (100 ms a query instead of 1). So only superseded nodes and level-0 ones are evicted,
   * and the bounds are on them alone; the upper levels stay on top, as a B-tree keeps its inner nodes
   * (counted in the bound, they left no room for the level-0 nodes once they outgrew it). What is not in
   * the current view goes first, least recently used first (superseded nodes, which only a search of an
   * older view reads, and blocks' leaves, which the indexer reads once), then current level-0 nodes. An
   * upper node just written (`upper`: its record follows) is not counted in the call that puts it, so
   * nothing is evicted to make room for it; from the next node put on it counts as not current until its
   * record lands (one that never lands, after a failed append or a lost race, goes first), so it holds
   * the cache past its bounds by that one node at most. Before, an indexer's superseded parents (each
   * version of a growing 36 MB level-1 node) and the new version not yet recorded pushed the current
   * level-0 nodes of the stream's first blocks out, and the first needles there fetched and checked them
   * again (1-3 ms each).
   */
  put(key: string, node: IndexNode, bytes: number, upper = false): void {
    this.delete(key);
    this.nodes.set(key, { node, bytes });
    this.held += bytes;
    if (this.nodes.size <= nodeCacheMax && this.held <= this.bytesMax) return;
    const pinned = this.current.upper();
    if (upper) pinned.add(key);
    let count = this.nodes.size;
    let held = this.held;
    for (const [k, c] of this.nodes)
      if (pinned.has(k)) {
        count--;
        held -= c.bytes;
      }
    const live = this.current.level0();
    for (const current of [false, true])
      for (const k of [...this.nodes.keys()]) {
        if (count <= nodeCacheMax && held <= this.bytesMax) return;
        if (k === key || pinned.has(k) || live.has(k) !== current) continue;
        held -= this.nodes.get(k)!.bytes;
        count--;
        this.delete(k);
      }
  }

  delete(key: string): void {
    const had = this.nodes.get(key);
    if (!had) return;
    this.nodes.delete(key);
    this.held -= had.bytes;
  }

  /** The nodes kept, their encoded bytes, and those of them kept whatever the bounds. */
  get stats(): { nodes: number; bytes: number; upperNodes: number; upperBytes: number } {
    const upper = this.current.upper();
    let upperNodes = 0;
    let upperBytes = 0;
    for (const [k, c] of this.nodes)
      if (upper.has(k)) {
        upperNodes++;
        upperBytes += c.bytes;
      }
    return { nodes: this.nodes.size, bytes: this.held, upperNodes, upperBytes };
  }
}
