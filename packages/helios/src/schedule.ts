/**
 * Periodic work of long-running processes (an ingestion server, a following indexer): `Stream.maintain`
 * every `--maintain-every DURATION`, one run at a time.
 *
 *   period:   |---------|---------|---------|
 *   runs:     [run 1]   [run 2 ..........]   [run 3]     a run that overruns its period delays the next
 *                                        ^ starts as soon as run 2 ends; the missed period is not made up
 */

import { timerMsMax } from '@strata/cli';

/** Bound on a period, in ms (30 days). */
export const periodMsMax = 30 * 86_400_000;

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration: a number and a unit, ms, s, m, h or d (`500ms`, `30s`, `10m`, `1.5h`, `1d`). */
export function parseDurationMs(text: string, what = 'duration'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m)
    throw new Error(`${what}: '${text}' is not a duration (a number and a unit: 500ms, 30s, 10m, 1h, 1d)`);
  const ms = Math.round(Number(m[1]) * unitMs[m[2]!]!);
  if (ms < 1 || ms > periodMsMax)
    throw new Error(`${what}: '${text}' is out of range (1ms to ${periodMsMax / 86_400_000}d)`);
  return ms;
}

/** The timer functions a Periodic uses (tests inject a clock they advance themselves). */
export interface Timers {
  setTimeout(f: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  nowMs(): number;
}

const realTimers: Timers = {
  setTimeout: (f, ms) => {
    const t = setTimeout(f, ms);
    t.unref(); // a schedule alone does not keep a process alive: the server or the loop that owns it does
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  nowMs: () => performance.now(),
};

export interface PeriodicOptions<T> {
  /** Called with each completed run's result. */
  onRun?: (result: T) => void;
  /** Called with each failed run's error; the next period runs the task again. */
  onError?: (error: unknown) => void;
  timers?: Timers;
}

/** A task run every period, never two runs at once. */
export interface Periodic {
  /** Runs completed and runs failed so far. */
  readonly runs: number;
  readonly failures: number;
  /** No run starts after this; resolves once a run in progress has finished. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs `task` every `periodMs`, the first one period from now. The next run starts one period after the
 * previous one started, or as soon as it ends when it took longer; a failure goes to `onError` (the
 * schedule goes on).
 */
export function runEvery<T>(
  periodMs: number,
  task: () => Promise<T>,
  opts: PeriodicOptions<T> = {},
): Periodic {
  if (!Number.isFinite(periodMs) || periodMs < 1 || periodMs > periodMsMax)
    throw new Error(`runEvery: period ${periodMs} ms is not in [1, ${periodMsMax}]`);
  const timers = opts.timers ?? realTimers;
  let stopped = false;
  let handle: unknown;
  let running: Promise<void> | undefined;
  let runs = 0;
  let failures = 0;
  const schedule = (delayMs: number) => {
    if (stopped) return;
    // a timer takes at most 2^31 - 1 ms (Node fires a longer one after 1 ms): a longer delay in turns
    if (delayMs > timerMsMax) handle = timers.setTimeout(() => schedule(delayMs - timerMsMax), timerMsMax);
    else handle = timers.setTimeout(tick, delayMs);
  };
  const tick = () => {
    handle = undefined;
    if (stopped) return;
    const startMs = timers.nowMs();
    running = (async () => {
      try {
        const r = await task();
        runs++;
        opts.onRun?.(r);
      } catch (e) {
        failures++;
        opts.onError?.(e);
      } finally {
        // also after a callback that threw: the schedule goes on
        running = undefined;
        schedule(Math.max(0, periodMs - (timers.nowMs() - startMs)));
      }
    })().catch(() => undefined);
  };
  schedule(periodMs);
  return {
    get runs() {
      return runs;
    },
    get failures() {
      return failures;
    },
    async stop() {
      stopped = true;
      if (handle !== undefined) timers.clearTimeout(handle);
      handle = undefined;
      await running;
    },
  };
}

/** Runs functions one after another (a failure does not stop the ones queued after it). */
export function serialQueue(): <T>(f: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(f: () => Promise<T>) => {
    const next = tail.then(f, f);
    tail = next.catch(() => undefined);
    return next;
  };
}
