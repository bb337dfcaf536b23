// A log an older helios wrote, read and carried on by this version: the progress records of a stream's
// history (ingest, index, compaction, an erasure, retention) are read back without the optional fields
// added since (each one's absence has an older meaning this version keeps), by fresh Streams that then
// search, scan, check the index and go on writing: their own records are whole.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeNode, encodeNode, Stream } from '@strata/helios';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkIndex,
  expectIndexEqualsScan,
  keyOf,
  listKeys,
  secretsStream,
  storedKeys,
} from './index-check.js';

const root = mkdtempSync(join(tmpdir(), 'helios-compat-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ddl = `CREATE STREAM ev SOURCES ('file:ev.jsonl') FORMAT json
  COLUMNS (n INT, user STRING, msg TEXT) INDEX (user, TOKENS(msg)) RETAIN 30 DAYS`;
const policy = { mergeKeysMax: 40, addKeysMax: 200, fanoutMax: 4, compactEveryBlocks: 0 };
const dayMs = 86_400_000;

/** The optional fields of each record type, by the date they came (README, Compatibility). */
const newer: Record<string, string[]> = {
  block: ['dir', 'at'],
  node: ['base', 'child', 'epoch', 'expired', 'children'],
  renode: ['free'],
  rewrite: ['base', 'erased', 'dir'],
  erase: ['done'],
};

interface LogLike {
  read(from: number, to: number): Promise<Record<string, unknown>[]>;
}

/**
 * Until `restore` is called, every Stream reads the log's records before `before` without the fields
 * `newer` lists for their type (as an older helios wrote them).
 */
function readAsOlder(s: Stream, before: number, sizes = new Map<string, number>()): () => void {
  const proto = Object.getPrototypeOf((s as unknown as { log: LogLike }).log) as LogLike;
  const read = proto.read;
  proto.read = async function (this: LogLike, from: number, to: number) {
    const recs = await read.call(this, from, to);
    return recs.map((r, i) => {
      if (from + i >= before) return r;
      const c = resize(structuredClone(r), sizes) as Record<string, unknown>;
      for (const f of newer[r.t as string] ?? []) delete c[f];
      return c;
    });
  };
  return () => {
    proto.read = read;
  };
}

/** `v` with every `bytes` beside a `key` that `sizes` holds replaced by its size there (in place). */
function resize(v: unknown, sizes: Map<string, number>): unknown {
  if (Array.isArray(v)) for (const x of v) resize(x, sizes);
  else if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const n = typeof o.key === 'string' ? sizes.get(o.key) : undefined;
    if (n !== undefined && 'bytes' in o) o.bytes = n;
    for (const x of Object.values(o)) resize(x, sizes);
  }
  return v;
}

/** The log's tail (records written so far). */
async function tailOf(s: Stream): Promise<number> {
  return (await (s as unknown as { log: { checkTail(): Promise<{ tail: number }> } }).log.checkTail()).tail;
}

/**
 * A stream's history written by this version: day-0 lines, day-20 lines, indexed, compacted, u3 erased,
 * retention at day 31. Returns the writer (closed), where its records end, and what the checks need.
 */
async function history(name: string) {
  const dir = join(root, name);
  const { lines, file } = secretsStream(dir, ddl, 700);
  const clock = { now: Date.now() - 40 * dayMs };
  const w = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
  try {
    writeFileSync(file, `${lines.slice(0, 350).join('\n')}\n`);
    await w.ingestFile(file, { chunkBytes: 1024 });
    const day0 = w.blockCount;
    clock.now += 20 * dayMs;
    writeFileSync(file, `${lines.join('\n')}\n`);
    await w.ingestFile(file, { chunkBytes: 1024 });
    await w.indexAll();
    await w.compact();
    expect((await w.erase("user = 'u3'", { gcGraceMs: 0 })).rows).toBe(100);
    clock.now += 11 * dayMs;
    expect((await w.maintain({ graceMs: 0 })).expired).toBe(day0);
    await w.gc({ graceMs: 0 });
    return { w, before: await tailOf(w), dir, lines, file, clock };
  } finally {
    await w.close();
  }
}

/** Fresh Streams of this version read the history (as `readAsOlder` serves it), check it, carry on. */
async function readAndCarryOn(h: Awaited<ReturnType<typeof history>>): Promise<void> {
  const { dir, lines, file, clock } = h;
  const queries = ["user = 'u3'", "user = 'u4'", "msg CONTAINS 'common_1'", "msg CONTAINS 'secret_640'"];
  const r = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
  try {
    const counts = await expectIndexEqualsScan(r, queries);
    expect(counts[0]).toBe(0); // erased
    expect(counts[1]).toBeGreaterThan(0);
    const common = await r.search(r.parse("msg CONTAINS 'common_0'"));
    expect(common.rows.every((row) => Number(row[0]) >= 350)).toBe(true); // day 0 expired
    await checkIndex(r);
    // this version carries on: more rows, an erasure, the indexer, compaction, maintain and gc
    const more = lines.map((l, i) => JSON.stringify({ ...JSON.parse(l), n: 1000 + i }));
    writeFileSync(file, `${[...lines, ...more].join('\n')}\n`);
    await r.ingestFile(file, { chunkBytes: 1024 });
    expect((await r.erase("user = 'u4'", { gcGraceMs: 0 })).rows).toBeGreaterThan(0);
    await r.indexAll();
    await r.compact();
    await r.maintain({ graceMs: 0 });
    await r.gc({ graceMs: 0 });
    const after = await expectIndexEqualsScan(r, queries);
    expect(after[0]).toBe(100); // u3 of the new rows
    expect(after[1]).toBe(0);
    await checkIndex(r);
    const stored = await storedKeys(r);
    expect(keyOf(r, 1, 'u4').filter((k) => stored.keys.has(k))).toEqual([]);
  } finally {
    await r.close();
  }
  // and a second reader of the same log agrees
  const r2 = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
  try {
    await expectIndexEqualsScan(r2, queries);
    await checkIndex(r2);
  } finally {
    await r2.close();
  }
}

describe('a log written by an older helios', () => {
  it('is read as it was written: searches, scans and the index agree; erased and expired rows stay gone', async () => {
    const h = await history('older');
    const restore = readAsOlder(h.w, h.before);
    try {
      await readAndCarryOn(h);
    } finally {
      restore();
    }
  });

  it("with its index nodes stored as HLN1 (read whole) and without their children's ranges", async () => {
    const h = await history('hln1');
    // every live and superseded node object of the history as an older version stored it
    const sizes = new Map<string, number>();
    const s = await Stream.open(h.dir, 'ev', policy);
    try {
      for (const key of await listKeys(s.store, 'ev/nodes/')) {
        const node = decodeNode(await s.store.get(key), key);
        delete node.header.ranges;
        const bytes = encodeNode(node, 1);
        await s.store.put(key, bytes);
        sizes.set(key, bytes.length);
      }
    } finally {
      await s.close();
    }
    expect(sizes.size).toBeGreaterThan(3);
    const restore = readAsOlder(h.w, h.before, sizes);
    try {
      await readAndCarryOn(h);
    } finally {
      restore();
    }
  });
});
