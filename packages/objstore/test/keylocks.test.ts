import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyLocks } from '../src/util.js';

describe('KeyLocks', () => {
  it('runs the functions of one key one at a time, in the order they came, whatever order they finish in, a failure not stopping the next; idle keys are dropped (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.record({ key: fc.constantFrom('a', 'b', 'c'), fails: fc.boolean() }), {
          minLength: 1,
          maxLength: 20,
        }),
        async (s, calls) => {
          const locks = new KeyLocks();
          const running = new Map<string, number>();
          const started: number[] = [];
          const results = calls.map((c, i) =>
            locks
              .run(c.key, async () => {
                expect(running.get(c.key) ?? 0).toBe(0); // one at a time per key
                running.set(c.key, 1);
                started.push(i);
                try {
                  await s.schedule(Promise.resolve(), `call ${i} (${c.key})`);
                  if (c.fails) throw new Error(`call ${i} failed`);
                  return i;
                } finally {
                  running.set(c.key, 0);
                }
              })
              .then(
                (v) => ({ ok: v }),
                (e: Error) => ({ error: e.message }),
              ),
          );
          const out = await s.waitFor(Promise.all(results));
          // each call's own result or error, whatever failed before it on its key
          expect(out).toEqual(calls.map((c, i) => (c.fails ? { error: `call ${i} failed` } : { ok: i })));
          // per key, started in the order of the calls
          for (const key of ['a', 'b', 'c']) {
            const mine = started.filter((i) => calls[i]!.key === key);
            expect(mine).toEqual([...mine].sort((x, y) => x - y));
          }
          expect(started.length).toBe(calls.length);
          await new Promise((r) => setImmediate(r));
          expect((locks as unknown as { tails: Map<string, unknown> }).tails.size).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('lets a second key run while the first waits', async () => {
    const locks = new KeyLocks();
    let release: () => void = () => undefined;
    const a = locks.run('a', () => new Promise<string>((r) => (release = () => r('a'))));
    const b = await locks.run('b', async () => 'b');
    expect(b).toBe('b');
    release();
    expect(await a).toBe('a');
  });
});
