// A search's cursor: its text form (fuzzed), pages through the index and the tail, rows ingested and the
// index built and compacted between pages, erasures between pages, and the CLI's --cursor.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import {
  CursorError,
  commands,
  createStream,
  cursorCharsMax,
  eraseRunsMax,
  formatCursor,
  parseCursor,
  Stream,
} from '@strata/helios';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

const root = mkdtempSync(join(tmpdir(), 'helios-cursor-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ddl = `CREATE STREAM ev SOURCES ('file:ev.jsonl') FORMAT json
  COLUMNS (ts TIMESTAMP, user STRING, n INT, msg TEXT) INDEX (user, TOKENS(msg))`;
const t0 = Date.UTC(2024, 0, 1);
const line = (i: number) =>
  JSON.stringify({ ts: new Date(t0 + i * 1000).toISOString(), user: `u${i % 3}`, n: i, msg: `event ${i}` });

/** A stream of `n` rows in blocks of about `chunkBytes`, numbered 0.. in `n`. */
async function streamOf(name: string, n: number, chunkBytes = 1024): Promise<{ s: Stream; dir: string }> {
  const dir = join(root, name);
  createStream(dir, ddl);
  const file = join(dir, 'ev.jsonl');
  writeFileSync(file, Array.from({ length: n }, (_, i) => `${line(i)}\n`).join(''));
  const s = await Stream.open(dir, 'ev', { mergeKeysMax: 8, addKeysMax: 40, fanoutMax: 2 });
  await s.ingestFile(file, { chunkBytes });
  return { s, dir };
}

/** Every page of a search, concatenated: the `n` column of each row, and the cursors given. */
async function pages(
  s: Stream,
  where: string,
  limit: number,
  useIndex = true,
  between?: () => Promise<void>,
) {
  const ns: unknown[] = [];
  const cursors: string[] = [];
  let cursor: string | undefined;
  for (let k = 0; k < 1000; k++) {
    const r = await s.search(s.parse(where), { limit, useIndex, ...(cursor ? { cursor } : {}) });
    ns.push(...r.rows.map((row) => row[2]));
    if (r.cursor === undefined) return { ns, cursors };
    cursors.push(r.cursor);
    cursor = r.cursor;
    await between?.();
  }
  throw new Error('no last page in 1000');
}

describe('search cursor: its text', () => {
  it('round-trips; anything else is a CursorError naming what was given (fuzzed)', () => {
    fc.assert(
      fc.property(
        fc.record({
          seq: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
          row: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
          rewrites: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        }),
        (p) => {
          expect(parseCursor(formatCursor(p))).toEqual(p);
        },
      ),
    );
    const words = fc.constantFrom('c1', 'c2', '.', '0', '00', '1', '-1', '9007199254740993', 'x', ' ', '1e3');
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 80 }),
          fc.array(words, { maxLength: 9 }).map((ws) => ws.join('')),
        ),
        (text) => {
          let p: ReturnType<typeof parseCursor>;
          try {
            p = parseCursor(text);
          } catch (e) {
            expect(e).toBeInstanceOf(CursorError);
            expect((e as Error).message).toContain('malformed cursor');
            if (text.length <= cursorCharsMax) expect((e as Error).message).toContain(`'${text}'`);
            return;
          }
          // what parses is exactly what formatCursor writes
          expect(formatCursor(p)).toBe(text);
        },
      ),
      { numRuns: 2000 },
    );
    for (const bad of ['', 'c1.1.2', 'c1.1.2.3.4', 'c1.01.2.3', 'c1.1.2.-3', 'c1.99999999999999999.0.0'])
      expect(() => parseCursor(bad), bad).toThrow(/malformed cursor/);
    expect(() => parseCursor(12)).toThrow(/malformed cursor number: expected a string/);
    expect(() => parseCursor('x'.repeat(100))).toThrow(/longer than 64 characters/);
  });
});

describe('search cursor: pages', () => {
  it('pages through index and tail: every row once, in order, for limits 1 to 7; none past the last', async () => {
    const { s } = await streamOf('basic', 60, 1024);
    try {
      expect(s.blockCount).toBeGreaterThan(4);
      await s.indexStep(3); // part indexed, part tail
      for (const where of ['', "user = 'u1'", "msg CONTAINS 'event'", 'n >= 50 OR n < 3'])
        for (const useIndex of [true, false]) {
          const all = (await s.search(s.parse(where), { useIndex })).rows.map((r) => r[2]);
          expect(all.length).toBeGreaterThan(0);
          for (let limit = 1; limit <= 7; limit++)
            expect((await pages(s, where, limit, useIndex)).ns, `${where} ${limit}`).toEqual(all);
        }
      // a limit that takes everything: no cursor; one row short: a cursor and an empty last page
      expect((await s.search(s.parse(''), { limit: 61 })).cursor).toBeUndefined();
      const cut = await s.search(s.parse(''), { limit: 60 });
      expect(cut.cursor).toBeDefined();
      const last = await s.search(s.parse(''), { limit: 60, cursor: cut.cursor! });
      expect([last.rows, last.cursor]).toEqual([[], undefined]);
      // limit 0: the cursor given, back
      const zero = await s.search(s.parse(''), { limit: 0, cursor: cut.cursor! });
      expect(zero.cursor).toBe(cut.cursor);
      // a cursor counts only the rows after it
      const after = await s.search(s.parse(''), {
        cursor: (await s.search(s.parse(''), { limit: 25 })).cursor!,
      });
      expect(after.stats.rowsMatched).toBe(35);
      expect(after.rows.map((r) => r[2])).toEqual(Array.from({ length: 35 }, (_, i) => 25 + i));
    } finally {
      await s.close();
    }
  });

  it('rows ingested, the index built and compacted between pages: each row once, the new ones after', async () => {
    const { s, dir } = await streamOf('between', 30, 1024);
    let added = 30;
    let offset = 0;
    const reader = await Stream.open(dir, 'ev');
    try {
      const between = async () => {
        const lines = [line(added), line(added + 1)];
        added += 2;
        const content = Buffer.from(lines.map((l) => `${l}\n`).join(''));
        expect(await s.ingestChunk('agent:a', offset, offset + content.length, lines, content)).toBe(true);
        offset += content.length;
        await s.indexStep(2);
        await s.compact();
      };
      const { ns } = await pages(reader, '', 4, true, between);
      expect(ns).toEqual(Array.from({ length: added }, (_, i) => i));
    } finally {
      await reader.close();
      await s.close();
    }
  });

  it('a malformed cursor is refused naming it', async () => {
    const { s } = await streamOf('malformed', 20, 100_000);
    try {
      await expect(s.search(s.parse(''), { cursor: 'page2' })).rejects.toThrow(
        /search: malformed cursor 'page2': expected c1\.SEQ\.ROW\.REWRITES/,
      );
      // more rewrites than its block has had: not a cursor of this stream
      await expect(s.search(s.parse(''), { cursor: 'c1.0.5.7' })).rejects.toThrow(
        /cursor 'c1\.0\.5\.7' points inside block 0, which has been rewritten 0 times, not 7/,
      );
    } finally {
      await s.close();
    }
  });

  it('erasures between pages: the cursor maps through the rows they removed; nothing skipped or repeated', async () => {
    const { s } = await streamOf('erase', 40, 100_000);
    try {
      expect(s.blockCount).toBe(1);
      const ns = async (r: { rows: unknown[][] }) => r.rows.map((row) => row[2]);
      const p1 = await s.search(s.parse(''), { limit: 10 });
      expect(await ns(p1)).toEqual(Array.from({ length: 10 }, (_, i) => i));
      // before the cursor, its last row, and after it
      await s.erase('n = 3 OR n = 9 OR n = 12');
      const p2 = await s.search(s.parse(''), { limit: 10, cursor: p1.cursor! });
      expect(await ns(p2)).toEqual([10, 11, 13, 14, 15, 16, 17, 18, 19, 20]);
      // two erasures before the next page, one of runs
      await s.erase('n >= 5 AND n < 8');
      await s.erase('n = 20 OR n = 21 OR n = 30');
      const p3 = await s.search(s.parse(''), { cursor: p2.cursor! });
      expect(await ns(p3)).toEqual([22, 23, 24, 25, 26, 27, 28, 29, 31, 32, 33, 34, 35, 36, 37, 38, 39]);
      // with the index, and through a query
      await s.indexAll();
      const q1 = await s.search(s.parse("user = 'u1'"), { limit: 3 });
      await s.erase("user = 'u2'");
      const q2 = await s.search(s.parse("user = 'u1'"), { cursor: q1.cursor! });
      expect([...(await ns(q1)), ...(await ns(q2))]).toEqual([1, 4, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37]);
    } finally {
      await s.close();
    }
  });

  it(`a cursor inside a block whose erasure removed more than ${eraseRunsMax} runs is refused, naming it`, async () => {
    const n = 3 * eraseRunsMax + 30;
    const { s } = await streamOf('erase-runs', n, 1 << 20);
    try {
      expect(s.blockCount).toBe(1);
      const first = await s.search(s.parse(''), { limit: 10 });
      await s.erase("user = 'u0'"); // every third row: eraseRunsMax + some runs
      await expect(s.search(s.parse(''), { cursor: first.cursor! })).rejects.toThrow(
        /cursor 'c1\.0\.10\.0' points inside block 0, which an erasure has rewritten since without recording the rows it removed; search again without the cursor/,
      );
      // a cursor made after it works
      const again = await s.search(s.parse(''), { limit: 10 });
      const rest = await s.search(s.parse(''), { cursor: again.cursor! });
      expect(again.rows.length + rest.rows.length).toBe(n - Math.ceil(n / 3));
    } finally {
      await s.close();
    }
  });
});

describe('search cursor: CLI', () => {
  async function run(...argv: string[]) {
    const c = captureIo('', {}, root);
    const [name, ...rest] = argv;
    const cmd = commands.find((x) => x.name === name)!;
    const code = await runCommand(cmd, rest, c.io);
    return { code, out: c.stdout(), err: c.stderr() };
  }

  it('prints the next cursor on stderr; --cursor continues after it; a malformed one is a usage error', async () => {
    const { s } = await streamOf('cli/d', 12, 512);
    await s.close();
    const args = ['search', 'ev', '--where', "msg CONTAINS 'event'", '--data', join(root, 'cli', 'd')];
    const p1 = await run(...args, '--limit', '5', '--json');
    expect(p1.code).toBe(0);
    expect(
      p1.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).n),
    ).toEqual([0, 1, 2, 3, 4]);
    const { cursor } = JSON.parse(p1.err) as { cursor: string };
    const p2 = await run(...args, '--limit', '5', '--cursor', cursor);
    expect(p2.code).toBe(0);
    expect(p2.out.trim().split('\n')).toHaveLength(5);
    expect(p2.out).toMatch(/event 5\b/);
    const next = /^next page: --cursor (\S+)\n$/.exec(p2.err)?.[1];
    expect(next).toBeDefined();
    const p3 = await run(...args, '--limit', '5', '--json', '--cursor', next!);
    expect(
      p3.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).n),
    ).toEqual([10, 11]);
    expect(p3.err).toBe('');
    expect((await run(...args, '--count', '--cursor', next!)).out).toBe('2\n');
    const bad = await run(...args, '--cursor', 'c1.x');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--cursor: search: malformed cursor 'c1\.x'/);
  });
});
