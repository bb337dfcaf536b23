// Concurrent model-based test: two or three Stream objects on one stream directory (separate processes,
// as far as the progress log knows) run rounds of 1-3 operations at once (`Promise.all`, each on its own
// Stream): ingests of new rows, indexer steps, compactions, erasures of a user or of one row, searches
// (through the index and without it), gc and maintain with a grace of 60 s (retention of 30 days, the
// default, or RETAIN 20 DAYS, under an injected clock that rounds move forward). The model is the set
// of rows ingested minus those erased or expired; a row ingested in the round of an erasure that
// matches it may or may not be erased (tracked as "maybe"). At the end a fresh Stream indexes
// everything, runs maintain and collects with a grace of 0 (nothing else runs then): a scan is the
// model, every search through the index is the scan, the index is exact (`checkIndex`) and no stored
// node or leaf holds a key only erased or expired rows had.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStream, keysOf, type Row, Stream } from '@strata/helios';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { checkIndex, keyOf, storedKeys } from './index-check.js';

const root = mkdtempSync(join(tmpdir(), 'helios-concurrent-model-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const dayMs = 86_400_000;
/** Days of retention: 30 without a RETAIN clause (the default), or RETAIN 20 DAYS. */
const ddlOf = (retainDays: number) => `CREATE STREAM ev SOURCES ('x') FORMAT json
  COLUMNS (id STRING, user STRING, msg TEXT) INDEX (user, TOKENS(msg))${retainDays === 30 ? '' : ` RETAIN ${retainDays} DAYS`}`;
const users = ['u0', 'u1', 'u2', 'u3', 'u4'];
const toks = ['alpha', 'beta', 'gamma', 'delta'];

/** A row to ingest: its id (`rN`) and its own token (`tN`) are given when it is ingested. */
interface NewRow {
  user: string;
  toks: string[];
}
const newRowArb: fc.Arbitrary<NewRow> = fc.record({
  user: fc.constantFrom(...users),
  toks: fc.subarray(toks),
});

type Q =
  | { k: 'user'; u: string }
  | { k: 'tok'; t: string }
  | { k: 'row'; pick: number }
  | { k: 'and'; u: string; t: string };
const qArb: fc.Arbitrary<Q> = fc.oneof(
  fc.constantFrom(...users).map((u): Q => ({ k: 'user', u })),
  fc.constantFrom(...toks).map((t): Q => ({ k: 'tok', t })),
  fc.nat(1000).map((pick): Q => ({ k: 'row', pick })),
  fc.tuple(fc.constantFrom(...users), fc.constantFrom(...toks)).map(([u, t]): Q => ({ k: 'and', u, t })),
);

type Op =
  | { op: 'ingest'; rows: NewRow[] }
  | { op: 'index'; blocks: number }
  | { op: 'compact' }
  | { op: 'eraseUser'; u: string }
  | { op: 'eraseRow'; pick: number }
  | { op: 'search'; q: Q }
  | { op: 'gc' }
  | { op: 'maintain' };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant('ingest' as const),
      rows: fc.array(newRowArb, { minLength: 1, maxLength: 8 }),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({ op: fc.constant('index' as const), blocks: fc.integer({ min: 1, max: 6 }) }),
    weight: 3,
  },
  { arbitrary: fc.constant({ op: 'compact' as const }), weight: 1 },
  {
    arbitrary: fc.record({ op: fc.constant('eraseUser' as const), u: fc.constantFrom(...users) }),
    weight: 2,
  },
  { arbitrary: fc.record({ op: fc.constant('eraseRow' as const), pick: fc.nat(1000) }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('search' as const), q: qArb }), weight: 3 },
  { arbitrary: fc.constant({ op: 'gc' as const }), weight: 1 },
  { arbitrary: fc.constant({ op: 'maintain' as const }), weight: 1 },
);
interface Round {
  /** Days the clock moves forward before the round (rows ingested then are that much younger). */
  days: number;
  /** The Stream the first operation runs on; the next ones on the following Streams. */
  first: number;
  ops: Op[];
}
const roundArb: fc.Arbitrary<Round> = fc.record({
  days: fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, { arbitrary: fc.constantFrom(10, 20), weight: 1 }),
  first: fc.nat(2),
  ops: fc.array(opArb, { minLength: 1, maxLength: 3 }),
});

/** Small nodes, so that levels above 0, merges, adds and compaction happen on a few dozen rows. */
const policyArb = fc.record({
  mergeKeysMax: fc.integer({ min: 5, max: 60 }),
  addKeysMax: fc.integer({ min: 20, max: 200 }),
  fanoutMax: fc.integer({ min: 2, max: 4 }),
  compactEveryBlocks: fc.integer({ min: 0, max: 4 }),
});

interface MRow {
  id: string;
  n: number;
  user: string;
  toks: string[];
  /** The clock when it was ingested. */
  at: number;
  state: 'present' | 'maybe' | 'gone';
}
const msgOf = (r: { n: number; toks: string[] }) => [`t${r.n}`, ...r.toks].join(' ');
const quote = (s: string) => `'${s}'`;

/** MODEL_RUNS=n for a longer hunt. */
const modelRuns = Number(process.env.MODEL_RUNS ?? 40);
/** The test's time: 30 s, and 2 s a run (a run takes 0.3 s here, 0.6 s under a CPU hog). */
const testMs = 30_000 + modelRuns * 2_000;
let runs = 0;
const tally = { rounds: 0, ops: 0, concurrent: 0, searches: 0, erased: 0, expired: 0, maybe: 0 };

describe('concurrent model: Streams on one directory racing against a set of rows', () => {
  it(
    'ingests, indexer steps, compaction, erasures, searches, gc and maintain at once on 2-3 Streams',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(roundArb, { minLength: 1, maxLength: 30 }),
          policyArb,
          fc.integer({ min: 2, max: 3 }),
          fc.constantFrom(30, 20),
          async (rounds, policy, streamCount, retainDays) => {
            const dir = join(root, `r${runs++}`);
            createStream(dir, ddlOf(retainDays));
            const clock = { now: Date.UTC(2026, 0, 1) };
            const opts = { ...policy, nowMs: () => clock.now };
            const model = new Map<string, MRow>();
            let next = 0;
            const streams: Stream[] = [];
            let fresh: Stream | undefined;
            const matches = (q: Q, r: MRow, rowToken: string | undefined): boolean => {
              switch (q.k) {
                case 'user':
                  return r.user === q.u;
                case 'tok':
                  return r.toks.includes(q.t);
                case 'row':
                  return `t${r.n}` === rowToken;
                case 'and':
                  return r.user === q.u && r.toks.includes(q.t);
              }
            };
            const whereOf = (q: Q, rowToken: string | undefined): string => {
              switch (q.k) {
                case 'user':
                  return `user = ${quote(q.u)}`;
                case 'tok':
                  return `msg CONTAINS ${quote(q.t)}`;
                case 'row':
                  return `msg CONTAINS ${quote(rowToken ?? 'none')}`;
                case 'and':
                  return `user = ${quote(q.u)} AND msg CONTAINS ${quote(q.t)}`;
              }
            };
            const ids = (rows: unknown[][]) => rows.map((r) => r[0] as string);
            const t = Date.now();
            try {
              for (let i = 0; i < streamCount; i++) streams.push(await Stream.open(dir, 'ev', opts));
              for (const [ri, round] of rounds.entries()) {
                tally.rounds++;
                clock.now += round.days * dayMs;
                const ops = round.ops.slice(0, streamCount);
                if (ops.length > 1) tally.concurrent++;
                // the rows before the round, by id order, for picks
                const before = [...model.values()].filter((r) => r.state !== 'gone');
                const picked = (pick: number) =>
                  before.length === 0 ? undefined : before[pick % before.length];
                const rowTokenOf = (q: Q) => (q.k === 'row' ? `t${picked(q.pick)?.n ?? -1}` : undefined);
                // rows each ingest op brings, numbered now (in op order)
                const ingested = ops.map((o) =>
                  o.op === 'ingest'
                    ? o.rows.map((r): MRow => {
                        const n = next++;
                        return {
                          id: `r${n}`,
                          n,
                          user: r.user,
                          toks: r.toks,
                          at: clock.now,
                          state: 'present',
                        };
                      })
                    : [],
                );
                const mutates = ops.some((o) =>
                  ['ingest', 'eraseUser', 'eraseRow', 'maintain'].includes(o.op),
                );
                const expires = (r: MRow) => r.at + retainDays * dayMs <= clock.now;
                /** Whether an erasure or maintain of this round may take row `r` (of those before it). */
                const mayGo = (r: MRow) =>
                  r.state === 'maybe' ||
                  ops.some(
                    (o) =>
                      (o.op === 'eraseUser' && o.u === r.user) ||
                      (o.op === 'eraseRow' && picked(o.pick) === r) ||
                      (o.op === 'maintain' && expires(r)),
                  );
                const run = async (o: Op, s: Stream, k: number): Promise<void> => {
                  tally.ops++;
                  switch (o.op) {
                    case 'ingest': {
                      const lines = ingested[k]!.map((r) =>
                        JSON.stringify({ id: r.id, user: r.user, msg: msgOf(r) }),
                      );
                      const content = Buffer.from(lines.map((l) => `${l}\n`).join(''));
                      expect(
                        await s.ingestChunk(`agent:r${ri}-${k}`, 0, content.length, lines, content),
                      ).toBe(true);
                      return;
                    }
                    case 'index':
                      await s.indexStep(o.blocks);
                      return;
                    case 'compact':
                      await s.compact();
                      return;
                    case 'gc':
                      await s.gc({ graceMs: 60_000 });
                      return;
                    case 'maintain':
                      await s.maintain({ graceMs: 60_000 });
                      return;
                    case 'eraseUser':
                    case 'eraseRow': {
                      const where =
                        o.op === 'eraseUser'
                          ? `user = ${quote(o.u)}`
                          : `id = ${quote(picked(o.pick)?.id ?? 'none')}`;
                      const got = await s.erase(where);
                      if (ops.length === 1) {
                        const want = before.filter((r) =>
                          o.op === 'eraseUser' ? r.user === o.u : r === picked(o.pick),
                        );
                        // a "maybe" row may have gone already
                        expect(got.rows, where).toBeGreaterThanOrEqual(
                          want.filter((r) => r.state === 'present').length,
                        );
                        expect(got.rows, where).toBeLessThanOrEqual(want.length);
                      }
                      return;
                    }
                    case 'search': {
                      const rowToken = rowTokenOf(o.q);
                      const where = whereOf(o.q, rowToken);
                      const viaIndex = ids((await s.search(s.parse(where))).rows);
                      const scan = ids((await s.search(s.parse(where), { useIndex: false })).rows);
                      tally.searches++;
                      const must = before
                        .filter((r) => r.state === 'present' && !mayGo(r) && matches(o.q, r, rowToken))
                        .map((r) => r.id);
                      const may = new Set(
                        [...before, ...ingested.flat()]
                          .filter((r) => matches(o.q, r, rowToken))
                          .map((r) => r.id),
                      );
                      for (const [how, got] of [
                        ['index', viaIndex],
                        ['scan', scan],
                      ] as const) {
                        expect(new Set(got).size, `${where} (${how}): a row twice`).toBe(got.length);
                        expect(
                          must.filter((id) => !got.includes(id)),
                          `${where} (${how}): rows missing`,
                        ).toEqual([]);
                        expect(
                          got.filter((id) => !may.has(id)),
                          `${where} (${how}): rows that should not be`,
                        ).toEqual([]);
                      }
                      // with nothing changing the rows meanwhile, both ways see the same rows
                      if (!mutates) expect(viaIndex, where).toEqual(scan);
                      return;
                    }
                  }
                };
                await Promise.all(ops.map((o, k) => run(o, streams[(round.first + k) % streamCount]!, k)));
                // the model after the round
                for (const r of ingested.flat()) model.set(r.id, r);
                const goes = (r: MRow | undefined, why: 'erased' | 'expired') => {
                  if (r === undefined || r.state === 'gone') return;
                  r.state = 'gone';
                  tally[why]++;
                };
                for (const o of ops) {
                  if (o.op === 'maintain') for (const r of before) if (expires(r)) goes(r, 'expired');
                  if (o.op === 'eraseRow') goes(picked(o.pick), 'erased');
                  if (o.op === 'eraseUser') {
                    for (const r of before) if (r.user === o.u) goes(r, 'erased');
                    // rows of that user ingested at the same time: taken or not
                    for (const r of ingested.flat()) {
                      if (r.user !== o.u || r.state !== 'present') continue;
                      r.state = 'maybe';
                      tally.maybe++;
                    }
                  }
                }
              }
              for (const s of streams.splice(0)) await s.close();
              if (process.env.MODEL_TRACE)
                console.log(`rounds ${rounds.length} rows ${model.size}: ${Date.now() - t} ms`);
              // the end: nothing else runs
              fresh = await Stream.open(dir, 'ev', opts);
              const f = fresh;
              await f.indexAll();
              // (no maintain here: an indexer that read expired blocks' leaves before the `expire` record
              // and recorded a level-0 node over the prefix's end after the maintain's drop left their keys
              // there until the next maintain, the first thing this test found; such a node now loses)
              await f.gc({ graceMs: 0 });
              const all = await f.search(f.parse(''), { useIndex: false });
              const got = ids(all.rows);
              expect(new Set(got).size, 'a row twice in the scan').toBe(got.length);
              const gotSet = new Set(got);
              const rows = [...model.values()];
              expect(
                rows.filter((r) => r.state === 'present' && !gotSet.has(r.id)).map((r) => r.id),
                'rows lost',
              ).toEqual([]);
              expect(
                got.filter((id) => model.get(id) === undefined || model.get(id)!.state === 'gone'),
                'rows that should be gone',
              ).toEqual([]);
              // every search through the index is the scan
              const wheres = [
                ...users.map((u) => `user = ${quote(u)}`),
                ...toks.map((t) => `msg CONTAINS ${quote(t)}`),
                // each row's own token: the rows gone, and every 7th of the others
                ...rows
                  .filter((r) => r.state !== 'present' || r.n % 7 === 0)
                  .map((r) => `msg CONTAINS ${quote(`t${r.n}`)}`),
                `user = 'u1' AND msg CONTAINS 'beta'`,
                `user = 'u3' OR msg CONTAINS 'gamma'`,
              ];
              for (const where of wheres) {
                const a = await f.search(f.parse(where));
                const b = await f.search(f.parse(where), { useIndex: false });
                expect(a.rows, where).toEqual(b.rows);
              }
              await checkIndex(f);
              // no stored node or leaf keeps a key only erased or expired rows had
              const remaining = new Set(keysOf(f.def, all.rows as Row[]));
              const { keys: stored } = await storedKeys(f);
              const gone = rows.filter((r) => r.state !== 'present' && !gotSet.has(r.id));
              const leaked = [
                ...gone.flatMap((r) => keyOf(f, 2, `t${r.n}`).map((k) => [`t${r.n}`, k] as const)),
                ...[...new Set(gone.map((r) => r.user))].flatMap((u) =>
                  keyOf(f, 1, u).map((k) => [u, k] as const),
                ),
              ].filter(([, k]) => stored.has(k) && !remaining.has(k));
              expect(
                leaked.map(([v]) => v),
                'stored keys of erased or expired rows',
              ).toEqual([]);
            } finally {
              for (const s of streams) await s.close();
              await fresh?.close();
              rmSync(dir, { recursive: true, force: true });
            }
          },
        ),
        // a run that hangs (a livelock between the Streams) fails as such instead of timing the test out;
        // and the whole check stops (a failure, with its seed and path) before vitest's own timeout would
        // cut it short without them: CI timed this test out once on 2026-12-07 (1,920 runs here since, some
        // under a CPU hog, did not), and its shrinking of a hung run could outlast the test's time
        {
          numRuns: modelRuns,
          timeout: 30_000,
          interruptAfterTimeLimit: testMs - 15_000,
          markInterruptAsFailure: true,
        },
      );
      console.log(`concurrent model test: ${JSON.stringify(tally)}`);
    },
    testMs,
  );
});
