// A search's cursor: its text form (fuzzed), pages through the index and the tail, rows ingested and the
// index built and compacted between pages, an erasure under a cursor, and the CLI's --cursor.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import {
  CursorError,
  commands,
  createStream,
  cursorCharsMax,
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

  it('a malformed cursor is refused naming it; one inside a block an erasure rewrote since is refused', async () => {
    const { s } = await streamOf('erase', 20, 100_000);
    try {
      expect(s.blockCount).toBe(1);
      await expect(s.search(s.parse(''), { cursor: 'page2' })).rejects.toThrow(
        /search: malformed cursor 'page2': expected c1\.SEQ\.ROW\.REWRITES/,
      );
      const first = await s.search(s.parse(''), { limit: 10 });
      await s.erase('n = 3');
      // its rows moved: row 10 is now what was row 11
      await expect(s.search(s.parse(''), { cursor: first.cursor! })).rejects.toThrow(
        /cursor 'c1\.0\.10\.0' points inside block 0, which an erasure has rewritten since/,
      );
      // a cursor made after the erasure works
      const again = await s.search(s.parse(''), { limit: 10 });
      const rest = await s.search(s.parse(''), { cursor: again.cursor! });
      expect([...again.rows, ...rest.rows].map((r) => r[2])).toEqual(
        Array.from({ length: 20 }, (_, i) => i).filter((i) => i !== 3),
      );
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
