// The index's pointers, checked against the rows: every (key, block) pair of the indexed blocks is in
// exactly one level-0 node, and every key of a node under a parent is pointed to exactly once by it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createStream, decodeNode, keysOf, type Row, type Stream } from '@strata/helios';
import type { ObjectStore } from '@strata/objstore';
import { expect } from 'vitest';

interface Entry {
  level: number;
  node_from: number;
  node_to: number;
  node_key: string;
  key: number;
  child: string;
}

/** Every key under `prefix` in `store`, page by page. */
export async function listKeys(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (let after: string | undefined; ; ) {
    const page = await store.list(prefix, after === undefined ? {} : { startAfter: after });
    out.push(...page.objects.map((o) => o.key));
    if (page.nextStartAfter === undefined) return out;
    after = page.nextStartAfter;
  }
}

/** Fails naming the first pointer that is missing, extra or duplicated; returns live nodes per level. */
export async function checkIndex(s: Stream): Promise<number[]> {
  const want = new Map<number, Set<number>>();
  for await (const { seq, rows } of s.scan()) want.set(seq, new Set(keysOf(s.def, rows)));
  const indexed = s.indexedBlocks; // after the scan caught the view up
  for (const seq of want.keys()) if (seq >= indexed) want.delete(seq);
  const nodes = new Map<string, { level: number; from: number; to: number; keys: Set<number> }>();
  const pointers = new Map<string, number>(); // "level child key" -> how many pointers
  for await (const line of s.indexEntries()) {
    const e = JSON.parse(line) as Entry;
    let n = nodes.get(e.node_key);
    if (!n)
      nodes.set(e.node_key, (n = { level: e.level, from: e.node_from, to: e.node_to, keys: new Set() }));
    n.keys.add(e.key);
    const id = `${e.level} ${e.child} ${e.key}`;
    pointers.set(id, (pointers.get(id) ?? 0) + 1);
  }
  const dup = [...pointers].filter(([, c]) => c > 1).map(([id]) => id);
  expect(dup.slice(0, 3), 'duplicated pointers (level child key)').toEqual([]);
  // level 0: exactly the keys of each indexed block's rows
  const got = new Map<number, Set<number>>();
  for (const id of pointers.keys()) {
    const [level, child, key] = id.split(' ');
    if (level !== '0') continue;
    const seq = Number(child);
    let g = got.get(seq);
    if (!g) got.set(seq, (g = new Set()));
    g.add(Number(key));
  }
  for (const [seq, keys] of want) {
    const g = got.get(seq) ?? new Set<number>();
    const missing = [...keys].filter((k) => !g.has(k)).length;
    const extra = [...g].filter((k) => !keys.has(k)).length;
    expect({ seq, missing, extra }).toEqual({ seq, missing: 0, extra: 0 });
  }
  expect([...got.keys()].filter((seq) => !want.has(seq))).toEqual([]);
  // above: a parent points to a child for exactly the child's keys, and no node under a parent is skipped
  const byLevel: { level: number; from: number; to: number; key: string; keys: Set<number> }[][] = [];
  for (const [key, n] of nodes) (byLevel[n.level] ??= []).push({ ...n, key });
  for (let L = 1; L < byLevel.length; L++) {
    for (const p of byLevel[L] ?? [])
      for (const k of p.keys) expect(p.from, `level ${L} node has key ${k}`).toBeLessThan(p.to);
    for (const c of byLevel[L - 1] ?? []) {
      const under = (byLevel[L] ?? []).some((p) => p.from <= c.from && c.from < p.to);
      for (const k of c.keys) {
        const n = pointers.get(`${L} ${c.key} ${k}`) ?? 0;
        if (under) expect(n, `pointers to level ${L - 1} node ${c.key} for key ${k}`).toBe(1);
        else expect(n, `an orphan has no parent pointing to it`).toBe(0);
      }
    }
    for (const id of pointers.keys()) {
      const [level, child, key] = id.split(' ');
      if (Number(level) !== L) continue;
      expect(nodes.get(child!)?.keys.has(Number(key)), `level ${L} points to ${child} for ${key}`).toBe(true);
    }
  }
  return byLevel.map((l) => l?.length ?? 0);
}

/**
 * Runs `before` (another Stream's erasure, say) when stream `s` first calls its method `method` (a
 * private one, such as `node`, which reads an index node or leaf, or `rewritePath`, which plans an
 * erasure's index path on its view), so that `s`'s view then names what `before` changed. Returns whether
 * it has run.
 */
export function beforeFirstCall(s: Stream, method: string, before: () => Promise<unknown>): () => boolean {
  const st = s as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const original = st[method]!.bind(s);
  let ran = false;
  st[method] = async (...args) => {
    if (!ran) {
      ran = true;
      await before();
    }
    return original(...args);
  };
  return () => ran;
}

/** `beforeFirstCall` at `a`'s first read of an index node or leaf. */
export function beforeFirstNodeRead(a: Stream, before: () => Promise<unknown>): () => boolean {
  return beforeFirstCall(a, 'node', before);
}

/**
 * Creates stream `ev` under `dir` with `ddl` and a file of `count` lines, user u(i % 7), u3's messages
 * secrets (`secret_N`), the others `common_N`; returns the lines and the file.
 */
export function secretsStream(dir: string, ddl: string, count: number): { lines: string[]; file: string } {
  createStream(dir, ddl);
  const lines = Array.from({ length: count }, (_, i) =>
    JSON.stringify({ n: i, user: `u${i % 7}`, msg: i % 7 === 3 ? `secret_${i}` : `common_${i % 3}` }),
  );
  const file = join(dir, 'ev.jsonl');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return { lines, file };
}

/** Every key of every index object of stream `ev` in the store (live or not): node objects and leaves. */
export async function storedKeys(s: Stream): Promise<{ objects: number; keys: Set<number> }> {
  const keys = new Set<number>();
  let objects = 0;
  for (const prefix of ['ev/nodes/', 'ev/leaves/']) {
    for (const key of await listKeys(s.store, prefix)) {
      objects++;
      for (const k of decodeNode(await s.store.get(key), key).keys) keys.add(k);
    }
  }
  return { objects, keys };
}

/** The index keys of one cell value. */
export function keyOf(s: Stream, col: number, v: string): number[] {
  const row: Row = new Array(s.def.columns.length).fill(null);
  row[col] = v;
  return [...keysOf(s.def, [row])];
}

/** Each query's rows through the index equal a full scan's (in order); returns how many rows each gave. */
export async function expectIndexEqualsScan(s: Stream, queries: string[]): Promise<number[]> {
  const counts: number[] = [];
  for (const q of queries) {
    const viaIndex = await s.search(s.parse(q));
    expect(viaIndex.rows, q).toEqual((await s.search(s.parse(q), { useIndex: false })).rows);
    counts.push(viaIndex.rows.length);
  }
  return counts;
}
