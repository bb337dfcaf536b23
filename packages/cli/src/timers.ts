import { shown } from './text.js';

/**
 * The longest delay a Node timer takes, in ms (2^31 - 1, 24.8 days): `setTimeout` and `setInterval` fire a
 * longer one after 1 ms, with a TimeoutOverflowWarning, so a longer wait is cut in turns or refused.
 */
export const timerMsMax = 2 ** 31 - 1;

/**
 * Throws a RangeError naming `what` unless `ms` is a delay a timer keeps: a number from `min` to
 * `timerMsMax`. NaN and longer delays fire after 1 ms, and a deadline of NaN is never passed.
 */
export function checkTimerMs(what: string, ms: unknown, min = 0): void {
  if (!(typeof ms === 'number' && ms >= min && ms <= timerMsMax))
    throw new RangeError(
      `${what} must be a number of milliseconds from ${min} to ${timerMsMax}, got ${shown(ms)}`,
    );
}
