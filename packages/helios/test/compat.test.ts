// A log an older helios wrote, read and carried on by this version: the progress records of a stream's
// history (ingest, index, compaction, an erasure, retention) are read back without the optional fields
// added since (each one's absence has an older meaning this version keeps), by fresh Streams that then
// search, scan, check the index and go on writing: their own records are whole.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stream } from '@strata/helios';
import { afterAll, describe, expect, it } from 'vitest';
import { checkIndex, expectIndexEqualsScan, keyOf, secretsStream, storedKeys } from './index-check.js';

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
function readAsOlder(s: Stream, before: number): () => void {
  const proto = Object.getPrototypeOf((s as unknown as { log: LogLike }).log) as LogLike;
  const read = proto.read;
  proto.read = async function (this: LogLike, from: number, to: number) {
    const recs = await read.call(this, from, to);
    return recs.map((r, i) => {
      if (from + i >= before) return r;
      const c = { ...r };
      for (const f of newer[r.t as string] ?? []) delete c[f];
      return c;
    });
  };
  return () => {
    proto.read = read;
  };
}

/** The log's tail (records written so far). */
async function tailOf(s: Stream): Promise<number> {
  return (await (s as unknown as { log: { checkTail(): Promise<{ tail: number }> } }).log.checkTail()).tail;
}

describe('a log written by an older helios', () => {
  it('is read as it was written: searches, scans and the index agree; erased and expired rows stay gone', async () => {
    const dir = join(root, 'older');
    const { lines, file } = secretsStream(dir, ddl, 700);
    const clock = { now: Date.now() - 40 * dayMs };
    const w = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
    let before: number;
    try {
      // day 0: half the lines; day 20: the rest; indexed, compacted, u3 erased; day 31: retention
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
      before = await tailOf(w);
    } finally {
      await w.close();
    }
    const restore = readAsOlder(w, before);
    try {
      const queries = ["user = 'u3'", "user = 'u4'", "msg CONTAINS 'common_1'", "msg CONTAINS 'secret_640'"];
      const r = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
      try {
        const counts = await expectIndexEqualsScan(r, queries);
        expect(counts[0]).toBe(0); // erased
        expect(counts[1]).toBeGreaterThan(0);
        expect(
          (await r.search(r.parse("msg CONTAINS 'common_0'"))).rows.every((row) => Number(row[0]) >= 350),
        ).toBe(true); // day 0 expired
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
    } finally {
      restore();
    }
  });
});
