// Model-based test of a stream through its public API: random sequences of adds (from a file and as
// agents' chunks, some sent twice), searches (with and without the index, limits, time ranges), erasures,
// indexer steps, compactions, gc, close and reopen, and a second reader, against a naive model: an array
// of the rows added, scanned linearly, with CONTAINS read as the README says (every token of the text is a
// token of the value), written here without the package's tokenize.
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStream, Stream } from '@strata/helios';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

const root = mkdtempSync(join(tmpdir(), 'helios-model-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ddlOf = (index: string, format = 'json') => `CREATE STREAM ev SOURCES ('file:ev.jsonl') FORMAT ${format}
  COLUMNS (ts TIMESTAMP, user STRING, n INT, msg TEXT, f FLOAT) ${index}`;
const ddl = ddlOf('INDEX (user, n, TOKENS(msg))');
/** The model test's index choices: values and tokens, tokens of a STRING, none, values of every kind. */
const indexes = [
  'INDEX (user, n, TOKENS(msg))',
  'INDEX (TOKENS(user), TOKENS(msg))',
  '',
  'INDEX (ts, f, user, msg)',
];
const t0 = Date.UTC(2024, 0, 1);

interface MRow {
  ts: number;
  user: string | null;
  n: number | null;
  msg: string;
  f: number | null;
}

const long = 'L'.repeat(140);
/** Values that share prefixes, are empty, non-ASCII, long, or need quoting. */
const userPool = [
  '',
  'a',
  'ab',
  'abc',
  'é',
  'e\u0301',
  '日本',
  '😀',
  `${long}x`,
  `${long}y`,
  "o'neil",
  'back\\slash',
  'quo"te',
  ' sp ',
];
const tokenPool = [
  'a',
  'ab',
  'abc',
  'blk_-1',
  'blk_-12',
  '10.0.0.1',
  'x.y',
  'ünï',
  '日本語',
  `${long}x`,
  `${long}y`,
  'Case',
  'case',
];
const sepPool = [' ', ', ', '/', ' -- ', '\t', '"', "'"];

const msgArb = fc
  .array(fc.tuple(fc.constantFrom(...tokenPool), fc.constantFrom(...sepPool)), { maxLength: 5 })
  .map((ps) => ps.map(([t, s]) => t + s).join(''));
const rowArb: fc.Arbitrary<MRow> = fc.record({
  ts: fc.integer({ min: 0, max: 50 }).map((d) => t0 + d * 1000),
  user: fc.option(fc.constantFrom(...userPool), { nil: null, freq: 6 }),
  n: fc.option(fc.integer({ min: -3, max: 5 }), { nil: null, freq: 6 }),
  msg: msgArb,
  f: fc.option(fc.constantFrom(0, 1.5, -2, 0.1, 1e21, 3), { nil: null, freq: 4 }),
});

/** A row as a logfmt line, as go-logfmt writes one (a quoted value with JSON's escapes). */
function logfmtLine(r: MRow): string {
  const pairs: string[] = [`ts=${new Date(r.ts).toISOString()}`];
  if (r.user !== null) pairs.push(`user=${JSON.stringify(r.user)}`);
  if (r.n !== null) pairs.push(`n=${r.n}`);
  pairs.push(`msg=${JSON.stringify(r.msg)}`);
  if (r.f !== null) pairs.push(`f=${r.f}`);
  return pairs.join(' ');
}

function jsonLine(r: MRow): string {
  return JSON.stringify({
    ts: new Date(r.ts).toISOString(),
    ...(r.user === null ? {} : { user: r.user }),
    ...(r.n === null ? {} : { n: r.n }),
    msg: r.msg,
    ...(r.f === null ? {} : { f: r.f }),
  });
}

// --- the model's own reading of the query language -------------------------------------------------

type Q =
  | { k: 'user='; v: string }
  | { k: 'userIn'; vs: string[] }
  | { k: 'n'; op: '=' | '!=' | '<' | '>='; v: number }
  | { k: 'contains'; text: string }
  | { k: 'msg='; v: string }
  | { k: 'ts'; op: '=' | '<' | '>='; v: number }
  | { k: 'f'; op: '=' | '!=' | '<'; v: number }
  | { k: 'not'; a: Q }
  | { k: 'and' | 'or'; a: Q; b: Q };

const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
function text(q: Q): string {
  switch (q.k) {
    case 'user=':
      return `user = ${quote(q.v)}`;
    case 'userIn':
      return `user IN (${q.vs.map(quote).join(', ')})`;
    case 'n':
      return `n ${q.op} ${q.v}`;
    case 'contains':
      return `msg CONTAINS ${quote(q.text)}`;
    case 'msg=':
      return `msg = ${quote(q.v)}`;
    case 'ts':
      return `ts ${q.op} '${new Date(q.v).toISOString()}'`;
    case 'f':
      return `f ${q.op} ${q.v}`;
    case 'not':
      return `NOT (${text(q.a)})`;
    default:
      return `(${text(q.a)}) ${q.k.toUpperCase()} (${text(q.b)})`;
  }
}

const tokenChar = (c: number) =>
  (c >= 48 && c <= 57) ||
  (c >= 65 && c <= 90) ||
  (c >= 97 && c <= 122) ||
  c === 95 ||
  c === 45 ||
  c === 46 ||
  c > 127;
/** Tokens as the README defines them: maximal runs of token characters, leading and trailing . and - dropped. */
function tokens(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  const flush = () => {
    const t = cur.replace(/^[.-]+/, '').replace(/[.-]+$/, '');
    if (t !== '') out.push(t);
    cur = '';
  };
  for (const ch of s) {
    if ([...ch].every((_, i) => tokenChar(ch.charCodeAt(i)))) cur += ch;
    else flush();
  }
  flush();
  return out;
}

function holds(q: Q, r: MRow): boolean {
  switch (q.k) {
    case 'user=':
      return r.user === q.v;
    case 'userIn':
      return r.user !== null && q.vs.includes(r.user);
    case 'n':
      if (r.n === null) return q.op === '!=';
      return q.op === '=' ? r.n === q.v : q.op === '!=' ? r.n !== q.v : q.op === '<' ? r.n < q.v : r.n >= q.v;
    case 'contains': {
      const have = new Set(tokens(r.msg));
      return tokens(q.text).every((t) => have.has(t));
    }
    case 'msg=':
      return r.msg === q.v;
    case 'ts':
      return q.op === '=' ? r.ts === q.v : q.op === '<' ? r.ts < q.v : r.ts >= q.v;
    case 'f':
      if (r.f === null) return q.op === '!=';
      return q.op === '=' ? r.f === q.v : q.op === '!=' ? r.f !== q.v : r.f < q.v;
    case 'not':
      return !holds(q.a, r);
    case 'and':
      return holds(q.a, r) && holds(q.b, r);
    case 'or':
      return holds(q.a, r) || holds(q.b, r);
  }
}

const atomArb: fc.Arbitrary<Q> = fc.oneof(
  fc.constantFrom(...userPool, 'absent', 'L').map((v): Q => ({ k: 'user=', v })),
  fc
    .array(fc.constantFrom(...userPool, 'zz'), { minLength: 1, maxLength: 3 })
    .map((vs): Q => ({ k: 'userIn', vs })),
  fc
    .tuple(
      fc.constantFrom('=', '!=', '<', '>=') as fc.Arbitrary<'=' | '!=' | '<' | '>='>,
      fc.integer({ min: -4, max: 6 }),
    )
    .map(([op, v]): Q => ({ k: 'n', op, v })),
  fc
    .array(fc.constantFrom(...tokenPool, 'absent', 'blk_-123', `${long}z`, 'ün'), {
      minLength: 1,
      maxLength: 2,
    })
    .map((ts): Q => ({ k: 'contains', text: ts.join(' ') })),
  msgArb.filter((m) => tokens(m).length > 0).map((v): Q => ({ k: 'msg=', v })),
  fc
    .tuple(fc.constantFrom('=', '<', '>=') as fc.Arbitrary<'=' | '<' | '>='>, fc.integer({ min: 0, max: 50 }))
    .map(([op, d]): Q => ({ k: 'ts', op, v: t0 + d * 1000 })),
  fc
    .tuple(
      fc.constantFrom('=', '!=', '<') as fc.Arbitrary<'=' | '!=' | '<'>,
      fc.constantFrom(0, 1.5, 0.1, 1e21, 7),
    )
    .map(([op, v]): Q => ({ k: 'f', op, v })),
);
const queryArb: fc.Arbitrary<Q> = fc.letrec((tie) => ({
  q: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    atomArb,
    atomArb,
    tie('q').map((a): Q => ({ k: 'not', a: a as Q })),
    fc.tuple(tie('q'), tie('q')).map(([a, b]): Q => ({ k: 'and', a: a as Q, b: b as Q })),
    fc.tuple(tie('q'), tie('q')).map(([a, b]): Q => ({ k: 'or', a: a as Q, b: b as Q })),
  ),
})).q as fc.Arbitrary<Q>;

const policyArb = fc.record({
  mergeKeysMax: fc.integer({ min: 1, max: 60 }),
  addKeysMax: fc.integer({ min: 1, max: 200 }),
  fanoutMax: fc.integer({ min: 2, max: 4 }),
  compactEveryBlocks: fc.integer({ min: 0, max: 4 }),
  nodePageKeys: fc.integer({ min: 1, max: 16 }),
});
type Policy = typeof policyArb extends fc.Arbitrary<infer P> ? P : never;

type Op =
  | { op: 'addFile'; rows: MRow[]; chunkBytes: number }
  | { op: 'addChunk'; rows: MRow[]; twice: boolean }
  | { op: 'search'; q: Q; useIndex: boolean; limit?: number; since?: number; until?: number }
  | { op: 'erase'; q: Q }
  | { op: 'index'; blocks: number }
  | { op: 'compact' }
  | { op: 'gc' }
  | { op: 'reopen'; policy?: Policy }
  | { op: 'reader'; q: Q }
  | { op: 'longReader'; q: Q; useIndex: boolean }
  | { op: 'burst'; chunks: MRow[][]; q: Q }
  | { op: 'pages'; q: Q; useIndex: boolean; reader: boolean; limits: number[]; between: Between[] };

/** What happens between two pages of a paged search: rows added or erased, the indexer, compaction, gc. */
type Between =
  | { b: 'add'; rows: MRow[] }
  | { b: 'erase'; q: Q }
  | { b: 'index'; blocks: number }
  | { b: 'compact' | 'gc' | 'none' };
const betweenArb: fc.Arbitrary<Between> = fc.oneof(
  fc.record({ b: fc.constant('add' as const), rows: fc.array(rowArb, { minLength: 1, maxLength: 6 }) }),
  fc.record({ b: fc.constant('index' as const), blocks: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ b: fc.constantFrom('compact' as const, 'gc' as const, 'none' as const) }),
  fc.record({ b: fc.constant('erase' as const), q: atomArb }),
);

/** Whether `a` is `b` with some of its elements left out (elements compared as JSON). */
function subsequence(a: unknown[], b: unknown[]): boolean {
  let j = 0;
  for (const x of a) {
    const t = JSON.stringify(x);
    while (j < b.length && JSON.stringify(b[j]) !== t) j++;
    if (j === b.length) return false;
    j++;
  }
  return true;
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant('addFile' as const),
      rows: fc.array(rowArb, { minLength: 1, maxLength: 30 }),
      chunkBytes: fc.integer({ min: 100, max: 3000 }),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('addChunk' as const),
      rows: fc.array(rowArb, { minLength: 1, maxLength: 10 }),
      twice: fc.boolean(),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('search' as const),
      q: queryArb,
      useIndex: fc.boolean(),
      limit: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined, freq: 2 }),
      since: fc.option(
        fc.integer({ min: 0, max: 50 }).map((d) => t0 + d * 1000),
        { nil: undefined, freq: 2 },
      ),
      until: fc.option(
        fc.integer({ min: 0, max: 50 }).map((d) => t0 + d * 1000),
        { nil: undefined, freq: 2 },
      ),
    }),
    weight: 6,
  },
  { arbitrary: fc.record({ op: fc.constant('erase' as const), q: fc.oneof(atomArb, queryArb) }), weight: 1 },
  {
    arbitrary: fc.record({ op: fc.constant('index' as const), blocks: fc.integer({ min: 1, max: 20 }) }),
    weight: 3,
  },
  { arbitrary: fc.constant({ op: 'compact' as const }), weight: 1 },
  { arbitrary: fc.constant({ op: 'gc' as const }), weight: 1 },
  {
    // with the policy it had, or another (nodes built under other bounds stay)
    arbitrary: fc.record({ op: fc.constant('reopen' as const), policy: policyArb }, { requiredKeys: ['op'] }),
    weight: 1,
  },
  { arbitrary: fc.record({ op: fc.constant('reader' as const), q: queryArb }), weight: 1 },
  {
    // a reader open since the start (a query server beside the writer): it catches up at each search
    arbitrary: fc.record({ op: fc.constant('longReader' as const), q: queryArb, useIndex: fc.boolean() }),
    weight: 2,
  },
  {
    // agents' chunks taken at once by one Stream, beside an indexer step, a search and a compaction
    arbitrary: fc.record({
      op: fc.constant('burst' as const),
      chunks: fc.array(fc.array(rowArb, { minLength: 1, maxLength: 8 }), { minLength: 2, maxLength: 4 }),
      q: queryArb,
    }),
    weight: 1,
  },
  {
    // a search page by page (random limits), rows added and the index built and compacted between pages
    arbitrary: fc.record({
      op: fc.constant('pages' as const),
      q: fc.oneof(
        atomArb,
        queryArb,
        fc.constant({
          k: 'or',
          a: { k: 'contains', text: 'a' },
          b: { k: 'not', a: { k: 'contains', text: 'a' } },
        } as Q),
      ),
      useIndex: fc.boolean(),
      reader: fc.boolean(),
      limits: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 4 }),
      between: fc.array(betweenArb, { minLength: 1, maxLength: 4 }),
    }),
    weight: 3,
  },
);

const asCells = (r: MRow) => [r.ts, r.user, r.n, r.msg, r.f];

/** MODEL_RUNS=n for a longer hunt. */
const modelRuns = Number(process.env.MODEL_RUNS ?? 30);
let runs = 0;
const tally = { ops: 0, searches: 0, rowsFound: 0, erased: 0, indexed: 0, paged: 0 };
describe('model: a stream against an array of its rows', () => {
  it(
    'random adds, searches, erasures, indexing, compaction, gc, reopen and a second reader',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(opArb, { minLength: 1, maxLength: 24, size: 'max' }),
          policyArb,
          fc.constantFrom(...indexes),
          fc.constantFrom('json', 'logfmt'),
          async (ops, policy, index, format) => {
            const line = format === 'json' ? jsonLine : logfmtLine;
            const dir = join(root, `r${runs++}`);
            createStream(dir, ddlOf(index, format));
            const file = join(dir, 'ev.jsonl');
            writeFileSync(file, '');
            let model: MRow[] = [];
            let agentOffset = 0;
            let bursts = 0;
            let s = await Stream.open(dir, 'ev', policy);
            const long = await Stream.open(dir, 'ev');
            const check = async (x: Stream, q: Q, o: Omit<Extract<Op, { op: 'search' }>, 'op' | 'q'>) => {
              const where = text(q);
              let want = model.filter((r) => holds(q, r));
              if (o.since !== undefined) want = want.filter((r) => r.ts >= o.since!);
              if (o.until !== undefined) want = want.filter((r) => r.ts < o.until!);
              if (o.limit !== undefined) want = want.slice(0, o.limit);
              const got = await x.search(x.parse(where), o);
              tally.searches++;
              tally.rowsFound += got.rows.length;
              tally.indexed += got.stats.blocksIndexed;
              expect(got.rows, `${where} ${JSON.stringify(o)}`).toEqual(want.map(asCells));
            };
            try {
              for (const o of ops) {
                tally.ops++;
                switch (o.op) {
                  case 'addFile': {
                    appendFileSync(file, o.rows.map((r) => `${line(r)}\n`).join(''));
                    await s.ingestFile(file, { chunkBytes: o.chunkBytes });
                    model.push(...o.rows);
                    break;
                  }
                  case 'addChunk': {
                    const lines = o.rows.map(line);
                    const content = Buffer.from(lines.map((l) => `${l}\n`).join(''));
                    const from = agentOffset;
                    const to = from + content.length;
                    expect(await s.ingestChunk('agent:h1', from, to, lines, content)).toBe(true);
                    if (o.twice)
                      expect(await s.ingestChunk('agent:h1', from, to, lines, content)).toBe(false);
                    agentOffset = to;
                    model.push(...o.rows);
                    break;
                  }
                  case 'search':
                    await check(s, o.q, {
                      useIndex: o.useIndex,
                      limit: o.limit,
                      since: o.since,
                      until: o.until,
                    });
                    break;
                  case 'erase': {
                    const want = model.filter((r) => holds(o.q, r)).length;
                    const got = await s.erase(text(o.q));
                    expect(got.rows, text(o.q)).toBe(want);
                    tally.erased += want;
                    model = model.filter((r) => !holds(o.q, r));
                    break;
                  }
                  case 'index':
                    await s.indexStep(o.blocks);
                    break;
                  case 'compact':
                    await s.compact();
                    break;
                  case 'gc':
                    await s.gc({ graceMs: 0 });
                    break;
                  case 'reopen':
                    await s.close();
                    s = await Stream.open(dir, 'ev', o.policy ?? policy);
                    break;
                  case 'burst': {
                    // each chunk from an agent of its own; their order in the log is the order they land
                    const source = (i: number) => `agent:b${bursts}-${i}`;
                    bursts++;
                    const sent = o.chunks.map((rows, i) => {
                      const lines = rows.map(line);
                      const content = Buffer.from(lines.map((l) => `${l}\n`).join(''));
                      return s.ingestChunk(source(i), 0, content.length, lines, content);
                    });
                    const before = model.length;
                    const [acks] = await Promise.all([
                      Promise.all(sent),
                      s.indexStep(3),
                      s.search(s.parse(text(o.q))),
                      s.compact(),
                    ]);
                    expect(acks).toEqual(o.chunks.map(() => true));
                    const all = await s.search(s.parse(''), { useIndex: false });
                    expect(all.rows.slice(0, before)).toEqual(model.map(asCells));
                    // the chunks' rows after the others, each chunk one block, in some order
                    const blocks = new Map<number, unknown[][]>();
                    all.seqs.slice(before).forEach((seq, k) => {
                      blocks.set(seq, [...(blocks.get(seq) ?? []), all.rows[before + k]!]);
                    });
                    const left = o.chunks.map((rows) => rows);
                    const want: MRow[] = [];
                    for (const rows of blocks.values()) {
                      const i = left.findIndex(
                        (c) => JSON.stringify(c.map(asCells)) === JSON.stringify(rows),
                      );
                      expect(i, 'a block that is no chunk sent').toBeGreaterThanOrEqual(0);
                      want.push(...left.splice(i, 1)[0]!);
                    }
                    expect(left).toEqual([]);
                    model.push(...want);
                    break;
                  }
                  case 'longReader':
                    await check(long, o.q, { useIndex: o.useIndex });
                    break;
                  case 'pages': {
                    // pages through `s` or a reader open since the start; concatenated, they are every
                    // matching row once, in log order, rows added between pages after the others; a row
                    // erased between pages may have come in an earlier page, or not at all
                    const x = o.reader ? long : s;
                    const where = text(o.q);
                    const got: unknown[][] = [];
                    const ever = [...model];
                    let cursor: string | undefined;
                    const pagesMax = 2 * (model.length + 6 * o.between.length) + 10;
                    for (let k = 0; ; k++) {
                      expect(k, `${where}: pages past ${pagesMax}`).toBeLessThan(pagesMax);
                      // a limit of 0 returns the cursor it was given: it cannot be every page's
                      const limit = o.limits[k % o.limits.length]! || (k % 2 === 0 ? 0 : 1);
                      const page = await x.search(x.parse(where), {
                        useIndex: o.useIndex,
                        limit,
                        ...(cursor === undefined ? {} : { cursor }),
                      });
                      expect(page.rows.length, where).toBeLessThanOrEqual(limit);
                      got.push(...page.rows);
                      tally.searches++;
                      if (page.cursor === undefined) break;
                      expect(page.rows.length, `${where}: a cursor only at the limit`).toBe(limit);
                      cursor = page.cursor;
                      // each in turn after the first pages, once: the search then ends
                      const between = o.between[k] ?? { b: 'none' };
                      if (between.b === 'add') {
                        const lines = between.rows.map(line);
                        const content = Buffer.from(lines.map((l) => `${l}\n`).join(''));
                        const from = agentOffset;
                        agentOffset += content.length;
                        expect(await s.ingestChunk('agent:h1', from, agentOffset, lines, content)).toBe(true);
                        model.push(...between.rows);
                        ever.push(...between.rows);
                      } else if (between.b === 'erase') {
                        await s.erase(text(between.q));
                        model = model.filter((r) => !holds(between.q, r));
                      } else if (between.b === 'index') await s.indexStep(between.blocks);
                      else if (between.b === 'compact') await s.compact();
                      else if (between.b === 'gc') await s.gc({ graceMs: 0 });
                    }
                    const want = model.filter((r) => holds(o.q, r)).map(asCells);
                    const everWant = ever.filter((r) => holds(o.q, r)).map(asCells);
                    if (!o.between.some((b) => b.b === 'erase'))
                      expect(got, `${where} in pages`).toEqual(want);
                    else {
                      // every row still there came once, in order; every row that came was there
                      expect(subsequence(want, got), `${where}: a row skipped`).toBe(true);
                      expect(subsequence(got, everWant), `${where}: a row repeated or out of order`).toBe(
                        true,
                      );
                    }
                    // and one unlimited search now
                    expect((await x.search(x.parse(where), { useIndex: o.useIndex })).rows).toEqual(want);
                    tally.paged++;
                    break;
                  }
                  case 'reader': {
                    const r = await Stream.open(dir, 'ev');
                    try {
                      await check(r, o.q, { useIndex: true });
                    } finally {
                      await r.close();
                    }
                    break;
                  }
                }
              }
              // at the end: everything, through the index and without it
              await s.indexAll();
              for (const x of [true, false]) {
                const all = await s.search(s.parse(''), { useIndex: x });
                expect(all.rows).toEqual(model.map(asCells));
              }
            } finally {
              await s.close();
              await long.close();
              rmSync(dir, { recursive: true, force: true });
            }
          },
        ),
        { numRuns: modelRuns },
      );
      console.log(`model test: ${JSON.stringify(tally)}`);
    },
    60_000 + modelRuns * 2_000,
  );
});

/** A stream of `lines` (objects), ingested; its directory and the open Stream. */
async function streamOf(name: string, objs: object[], chunkBytes?: number): Promise<Stream> {
  const dir = join(root, name);
  createStream(dir, ddl);
  const file = join(dir, 'ev.jsonl');
  writeFileSync(file, objs.map((o) => `${JSON.stringify(o)}\n`).join(''));
  const s = await Stream.open(dir, 'ev');
  await s.ingestFile(file, chunkBytes === undefined ? {} : { chunkBytes });
  return s;
}

describe('model: cases it found', () => {
  it('CONTAINS a token past 128 characters matches that token only, not others of its first 128', async () => {
    // a JWT's header and the start of its claims are the same for every token a service issues
    const head = `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.${'eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6'.repeat(3)}`;
    const [a, b] = [`${head}AAAA.sig1`, `${head}BBBB.sig2`];
    expect(head.length).toBeGreaterThan(128);
    const s = await streamOf('long-tokens', [
      { ts: t0, user: 'u1', msg: `login token=${a}` },
      { ts: t0, user: 'u2', msg: `login token=${b}` },
    ]);
    try {
      const msgs = async (q: string, useIndex: boolean) =>
        (await s.search(s.parse(q), { useIndex })).rows.map((r) => r[1]);
      for (const round of ['tail', 'indexed']) {
        if (round === 'indexed') await s.indexAll();
        for (const useIndex of [true, false]) {
          expect(await msgs(`msg CONTAINS '${a}'`, useIndex), round).toEqual(['u1']);
          expect(await msgs(`msg CONTAINS '${b}'`, useIndex), round).toEqual(['u2']);
          expect(await msgs(`msg CONTAINS '${head}CCCC.sig3'`, useIndex), round).toEqual([]);
          expect(await msgs(`msg CONTAINS 'login'`, useIndex), round).toEqual(['u1', 'u2']);
        }
      }
      // erasing one token's rows leaves the other's
      expect((await s.erase(`msg CONTAINS '${a}'`)).rows).toBe(1);
      expect(await msgs(`msg CONTAINS 'login'`, false)).toEqual(['u2']);
      expect(await msgs(`msg CONTAINS '${b}'`, true)).toEqual(['u2']);
    } finally {
      await s.close();
    }
  });
});

describe('model: a file that starts with a byte order mark', () => {
  it('its first line is a row like the others: found by its values, through the index and without it', async () => {
    const dir = join(root, 'bom');
    createStream(dir, ddl);
    const file = join(dir, 'ev.jsonl');
    const rows = [
      { ts: t0, user: 'u1', n: 1, msg: 'first line' },
      { ts: t0, user: 'u2', n: 2, msg: 'second line' },
    ];
    writeFileSync(file, `\ufeff${rows.map((r) => `${JSON.stringify(r)}\n`).join('')}`);
    const s = await Stream.open(dir, 'ev');
    try {
      await s.ingestFile(file);
      for (const round of ['tail', 'indexed']) {
        if (round === 'indexed') await s.indexAll();
        for (const useIndex of [true, false]) {
          const got = await s.search(s.parse("user = 'u1' AND msg CONTAINS 'first'"), { useIndex });
          expect(got.rows, round).toEqual([[t0, 'u1', 1, 'first line', null]]);
        }
      }
    } finally {
      await s.close();
    }
  });
});

describe('model: a long message', () => {
  it("CONTAINS finds a token past a value's 4,096th, through the index and without it", async () => {
    // a stack trace or a dump of ids in one line: 5,000 tokens, the needle last
    const msg = `${Array.from({ length: 5000 }, (_, i) => `frame${i}`).join(' ')} needle_77`;
    // a block a line: keys from the WebAssembly scan (ASCII), the JavaScript scan of the JSON text (a
    // non-ASCII token) and the strings' (a lone surrogate)
    const s = await streamOf(
      'many-tokens',
      [
        { ts: t0, user: 'u1', msg },
        { ts: t0, user: 'u2', msg: 'short needle_78' },
        { ts: t0, user: 'u3', msg: `é ${msg}` },
        { ts: t0, user: 'u4', msg: `\ud800 ${msg}` },
      ],
      1024,
    );
    try {
      const users = async (q: string, useIndex: boolean) =>
        (await s.search(s.parse(q), { useIndex })).rows.map((r) => r[1]);
      for (const round of ['tail', 'indexed']) {
        if (round === 'indexed') await s.indexAll();
        for (const useIndex of [true, false]) {
          expect(await users("msg CONTAINS 'needle_77'", useIndex), round).toEqual(['u1', 'u3', 'u4']);
          expect(await users("msg CONTAINS 'frame4999'", useIndex), round).toEqual(['u1', 'u3', 'u4']);
          expect(await users("msg CONTAINS 'frame1 needle_77'", useIndex), round).toEqual(['u1', 'u3', 'u4']);
        }
      }
      expect(s.blockCount).toBe(4);
      expect((await s.erase("msg CONTAINS 'needle_77'")).rows).toBe(3);
      expect(await users("msg CONTAINS 'needle_78'", true)).toEqual(['u2']);
      expect(await users("msg CONTAINS 'frame4999'", false)).toEqual([]);
    } finally {
      await s.close();
    }
  });
});
