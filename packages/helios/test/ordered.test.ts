import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OrderedAppends } from '../src/ordered.js';

/** A log whose appends the test controls: positions count up from 0, one append in flight at a time. */
class TestLog {
  calls: number[][] = [];
  inFlight = 0;
  inFlightMax = 0;
  private next = 0;

  constructor(
    private readonly settle: <T>(p: Promise<T>) => Promise<T>,
    /** Which append calls (0-based) fail. */
    private readonly failing: Set<number>,
  ) {}

  append = async (recs: number[]): Promise<number[]> => {
    const call = this.calls.push([...recs]) - 1;
    this.inFlight++;
    this.inFlightMax = Math.max(this.inFlightMax, this.inFlight);
    try {
      await this.settle(Promise.resolve());
      if (this.failing.has(call)) throw new Error(`append ${call} failed`);
      return recs.map(() => this.next++);
    } finally {
      this.inFlight--;
    }
  };
}

describe('OrderedAppends', () => {
  it('appends a prefix of the records in order, each once, one append at a time; every record after it fails (property over ready orders and failures)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        // a record fails with an Error or, as a bare Promise.reject() does, with undefined
        fc
          .array(fc.constantFrom('ok', 'ok', 'error', 'undefined'), { minLength: 1, maxLength: 12 })
          .map((ok) => ok.map((x, i) => ({ i, ok: x === 'ok', bare: x === 'undefined' }))),
        fc.uniqueArray(fc.integer({ min: 0, max: 11 }), { maxLength: 3 }),
        async (s, records, failingCalls) => {
          const log = new TestLog((p) => s.schedule(p), new Set(failingCalls));
          const appends = new OrderedAppends<number>(log.append);
          const results: ({ pos: number } | { error: unknown } | undefined)[] = records.map(() => undefined);
          const all = records.map((r) =>
            appends
              .add(
                s.schedule(Promise.resolve()).then(() => {
                  if (r.bare) return Promise.reject();
                  if (!r.ok) throw new Error(`record ${r.i} failed`);
                  return r.i;
                }),
              )
              .then(
                (pos) => {
                  results[r.i] = { pos };
                },
                (error) => {
                  results[r.i] = { error };
                },
              ),
          );
          await s.waitFor(Promise.all(all));

          expect(log.inFlightMax).toBeLessThanOrEqual(1);
          // what was appended, in call order: the records from 0, each once
          const appended = log.calls.flat();
          expect(appended).toEqual(appended.map((_, k) => k));
          // those of successful calls are the records that resolved, at the positions their calls returned
          const ok = log.calls.filter((_, c) => !failingCalls.includes(c)).flat();
          const resolved = results.flatMap((r, i) => (r && 'pos' in r ? [i] : []));
          expect(resolved).toEqual(ok);
          expect(resolved).toEqual(resolved.map((_, k) => k)); // a prefix: nothing acknowledged after a gap
          for (const [k, i] of resolved.entries()) expect(results[i]).toEqual({ pos: k });
          // every other record failed, none is left pending
          expect(results.every((r) => r !== undefined)).toBe(true);
          const firstBad = records.find((r) => !r.ok)?.i;
          if (firstBad !== undefined) expect(resolved.length).toBeLessThanOrEqual(firstBad);
          if (firstBad === undefined && failingCalls.every((c) => c >= log.calls.length))
            expect(resolved.length).toBe(records.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('sends the records that became ready during an append together, in the next one', async () => {
    let release: () => void = () => undefined;
    const calls: number[][] = [];
    let next = 0;
    const appends = new OrderedAppends<number>(async (recs) => {
      calls.push(recs);
      if (calls.length === 1) await new Promise<void>((r) => (release = r));
      return recs.map(() => next++);
    });
    const first = appends.add(Promise.resolve(0));
    await new Promise((r) => setImmediate(r)); // record 0 is in its append
    const rest = [1, 2, 3, 4].map((i) => appends.add(Promise.resolve(i)));
    await new Promise((r) => setImmediate(r));
    release();
    expect(await Promise.all([first, ...rest])).toEqual([0, 1, 2, 3, 4]);
    expect(calls).toEqual([[0], [1, 2, 3, 4]]);
  });

  it('fails a record added after a failure at once, and appends nothing more', async () => {
    const calls: number[][] = [];
    const appends = new OrderedAppends<number>(async (recs) => {
      calls.push(recs);
      return recs.map((_, k) => k);
    });
    await expect(appends.add(Promise.reject(new Error('put refused')))).rejects.toThrow('put refused');
    await expect(appends.add(Promise.resolve(1))).rejects.toThrow('put refused');
    expect(calls).toEqual([]);
  });
});
