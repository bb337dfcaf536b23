import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { createStream, exportParquet, Stream } from '@strata/helios';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'helios-export-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Parquet export', () => {
  // Node's mkdir({ recursive: true }) never returned here: every mkdir under /proc answers ENOENT
  it.skipIf(!existsSync('/proc/self'))(
    'into a directory that cannot be made fails, and does not hang',
    async () => {
      createStream(dir, `CREATE STREAM px SOURCES ('x') FORMAT json COLUMNS (n INT) INDEX (n)`);
      const s = await Stream.open(dir, 'px');
      try {
        await expect(exportParquet(s, '/proc/strata-no-such/pq')).rejects.toThrow(/ENOENT.*mkdir/);
      } finally {
        await s.close();
      }
    },
  );

  it('cells UTF-8 or a BIGINT cannot hold: a lone surrogate is U+FFFD, an integer past 2^53 no value (each failed the export)', async () => {
    createStream(
      dir,
      `CREATE STREAM odd SOURCES ('x') FORMAT json COLUMNS (n INT, s STRING, t TEXT) INDEX (s, TOKENS(t))`,
    );
    // JSON's escapes make the lone surrogates; the numbers come as text, the way logs carry them
    const lines = [
      '{"n": "99999999999999999999", "s": "a\\ud800b", "t": "x \\udc00"}',
      '{"n": "9007199254740991", "s": "\\ud83d\\ude00", "t": "fine"}',
    ];
    writeFileSync(join(dir, 'odd.jsonl'), `${lines.join('\n')}\n`);
    const s = await Stream.open(dir, 'odd');
    try {
      await s.ingestFile(join(dir, 'odd.jsonl'));
      // a number past 2^53 is not the integer written: no value, as another malformed cell
      expect((await s.search(s.parse(''))).rows.map((r) => r[0])).toEqual([null, 9007199254740991]);
      await exportParquet(s, join(dir, 'pq-odd'));
    } finally {
      await s.close();
    }
    const db = await DuckDBInstance.create(':memory:');
    const con = await db.connect();
    try {
      const got = (
        await con.runAndReadAll(`SELECT n, s, t FROM '${join(dir, 'pq-odd/rows.parquet')}' ORDER BY _row`)
      ).getRows();
      expect(got.map((r) => [r[0] === null ? null : String(r[0]), r[1], r[2]])).toEqual([
        [null, 'a\ufffdb', 'x \ufffd'],
        ['9007199254740991', '\ud83d\ude00', 'fine'],
      ]);
    } finally {
      con.closeSync();
      db.closeSync();
    }
  });

  it('DuckDB reads the rows and the index back with the right counts', async () => {
    createStream(
      dir,
      `CREATE STREAM ev SOURCES ('x') FORMAT json COLUMNS (ts TIMESTAMP, user STRING, n INT, msg TEXT) INDEX (user, TOKENS(msg))`,
    );
    const t0 = Date.UTC(2024, 0, 1);
    const lines = Array.from({ length: 3000 }, (_, i) =>
      JSON.stringify({ ts: t0 + i * 1000, user: `u${i % 9}`, n: i, msg: `it's id_${i} ok` }),
    );
    writeFileSync(join(dir, 'ev.jsonl'), `${lines.join('\n')}\n`);
    const s = await Stream.open(dir, 'ev', { mergeKeysMax: 800, addKeysMax: 5000 });
    let entries = 0;
    try {
      await s.ingestFile(join(dir, 'ev.jsonl'), { chunkBytes: 16 * 1024 });
      await s.indexAll();
      const r = await exportParquet(s, join(dir, 'pq'));
      expect(r.rows).toBe(3000);
      entries = r.indexEntries;
      expect(entries).toBeGreaterThan(3000);
    } finally {
      await s.close();
    }
    const db = await DuckDBInstance.create(':memory:');
    const con = await db.connect();
    try {
      const q = async (sql: string) => (await con.runAndReadAll(sql)).getRows();
      const rows = join(dir, 'pq/rows.parquet');
      expect(Number((await q(`SELECT count(*) FROM '${rows}'`))[0]![0])).toBe(3000);
      expect(Number((await q(`SELECT count(*) FROM '${rows}' WHERE contains(msg, 'id_1234 ')`))[0]![0])).toBe(
        1,
      );
      expect(Number((await q(`SELECT count(*) FROM '${rows}' WHERE "user" = 'u3'`))[0]![0])).toBe(333);
      expect(String((await q(`SELECT min(ts) FROM '${rows}'`))[0]![0])).toMatch(/^2024-01-01 00:00:00/);
      const idx = join(dir, 'pq/index.parquet');
      expect(Number((await q(`SELECT count(*) FROM '${idx}'`))[0]![0])).toBe(entries);
      expect(Number((await q(`SELECT count(DISTINCT level) FROM '${idx}'`))[0]![0])).toBeGreaterThan(1);
    } finally {
      con.closeSync();
      db.closeSync();
    }
  });
});
