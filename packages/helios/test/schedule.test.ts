// runEvery under an injected clock: one run at a time, an overrun delays the next, failures retried, stop.
import { parseDurationMs, runEvery, type Timers } from '@strata/helios';
import { describe, expect, it } from 'vitest';

const settle = () => new Promise((r) => setImmediate(r));

/** A clock the test moves: due timers fire in time order, and the microtasks they start settle. */
function fakeClock() {
  let now = 0;
  let seq = 0;
  const due = new Map<number, { at: number; f: () => void }>();
  const timers: Timers = {
    setTimeout: (f, ms) => {
      due.set(++seq, { at: now + ms, f });
      return seq;
    },
    clearTimeout: (h) => {
      due.delete(h as number);
    },
    nowMs: () => now,
  };
  return {
    timers,
    pending: () => due.size,
    now: () => now,
    async advance(ms: number) {
      const end = now + ms;
      await settle();
      for (;;) {
        const next = [...due].sort((a, b) => a[1].at - b[1].at)[0];
        if (!next || next[1].at > end) break;
        due.delete(next[0]);
        now = next[1].at;
        next[1].f();
        await settle();
      }
      now = end;
      await settle();
    },
  };
}

function deferred() {
  let resolve!: () => void;
  const p = new Promise<void>((r) => {
    resolve = r;
  });
  return { p, resolve };
}

describe('runEvery', () => {
  it('waits a period past the longest timer (2^31 - 1 ms) in turns, never asking a timer for more', async () => {
    const c = fakeClock();
    const asked: number[] = [];
    const setTimeout = c.timers.setTimeout;
    c.timers.setTimeout = (f, ms) => {
      asked.push(ms);
      return setTimeout(f, ms);
    };
    const day = 86_400_000;
    const starts: number[] = [];
    // 30 days: Node fires a timer of more than 2^31 - 1 ms after 1 ms, so the task ran every millisecond
    const p = runEvery(30 * day, async () => starts.push(c.now()), { timers: c.timers });
    await c.advance(29 * day);
    expect(starts).toEqual([]);
    await c.advance(32 * day);
    expect(starts).toEqual([30 * day, 60 * day]);
    expect(Math.max(...asked)).toBe(2 ** 31 - 1);
    await p.stop();
    expect(c.pending()).toBe(0);
  });

  it('runs every period, the first one period from now', async () => {
    const c = fakeClock();
    const starts: number[] = [];
    const p = runEvery(100, async () => starts.push(c.now()), { timers: c.timers });
    await c.advance(99);
    expect(starts).toEqual([]);
    await c.advance(251);
    expect(starts).toEqual([100, 200, 300]);
    expect(p.runs).toBe(3);
    await p.stop();
    expect(c.pending()).toBe(0);
  });

  it('never runs twice at once: a run that overruns delays the next, which starts when it ends', async () => {
    const c = fakeClock();
    const starts: number[] = [];
    let running = 0;
    let runningMax = 0;
    let gate = deferred();
    const p = runEvery(
      100,
      async () => {
        starts.push(c.now());
        runningMax = Math.max(runningMax, ++running);
        await gate.p;
        running--;
      },
      { timers: c.timers },
    );
    await c.advance(350); // the first run started at 100 and is still running
    expect(starts).toEqual([100]);
    gate.resolve();
    gate = deferred();
    await c.advance(0); // it ended at 350, two periods late: the next starts now, missed periods skipped
    expect(starts).toEqual([100, 350]);
    gate.resolve();
    await c.advance(100);
    expect(starts).toEqual([100, 350, 450]);
    expect(runningMax).toBe(1);
    gate.resolve();
    await p.stop();
  });

  it('a failed run is reported and the next period runs again', async () => {
    const c = fakeClock();
    const errors: string[] = [];
    const results: number[] = [];
    let n = 0;
    const p = runEvery(
      50,
      async () => {
        if (++n <= 2) throw new Error(`disk gone ${n}`);
        return n;
      },
      { timers: c.timers, onError: (e) => errors.push((e as Error).message), onRun: (r) => results.push(r) },
    );
    await c.advance(200);
    expect(errors).toEqual(['disk gone 1', 'disk gone 2']);
    expect(results).toEqual([3, 4]);
    expect([p.runs, p.failures]).toEqual([2, 2]);
    await p.stop();
  });

  it('a callback that throws does not stop the schedule', async () => {
    const c = fakeClock();
    let n = 0;
    const p = runEvery(10, async () => ++n, {
      timers: c.timers,
      onRun: () => {
        throw new Error('bad logger');
      },
    });
    await c.advance(30);
    expect(n).toBe(3);
    await p.stop();
  });

  it('stop waits for the run in progress and no run starts after it', async () => {
    const c = fakeClock();
    const gate = deferred();
    let n = 0;
    let done = false;
    const p = runEvery(
      100,
      async () => {
        n++;
        await gate.p;
        done = true;
      },
      { timers: c.timers },
    );
    await c.advance(100);
    let stopped = false;
    const s = p.stop().then(() => {
      stopped = true;
    });
    await c.advance(0);
    expect(stopped).toBe(false); // the run is still going
    gate.resolve();
    await s;
    expect(done).toBe(true);
    await c.advance(1000);
    expect(n).toBe(1);
    expect(c.pending()).toBe(0);
    await p.stop(); // idempotent
  });

  it('with real timers and a short period, stops cleanly', async () => {
    let n = 0;
    const p = runEvery(5, async () => {
      n++;
    });
    for (let i = 0; i < 200 && n < 3; i++) await new Promise((r) => setTimeout(r, 5));
    await p.stop();
    const at = n;
    expect(at).toBeGreaterThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 30));
    expect(n).toBe(at);
  });

  it('parses durations and refuses what is not one', () => {
    expect(parseDurationMs('500ms')).toBe(500);
    expect(parseDurationMs('30s')).toBe(30_000);
    expect(parseDurationMs('10m')).toBe(600_000);
    expect(parseDurationMs('1.5h')).toBe(5_400_000);
    expect(parseDurationMs('1d')).toBe(86_400_000);
    for (const bad of ['10', '-1s', '0ms', '31d', 'abc', '1 m', ''])
      expect(() => parseDurationMs(bad, '--maintain-every'), bad).toThrow(/--maintain-every: '.*' is/);
    expect(() => runEvery(0, async () => 0)).toThrow(/period 0 ms/);
  });
});
