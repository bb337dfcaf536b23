/** Checks of option values that throw a RangeError naming the option and quoting what it got. */
import { shown } from './text.js';

/** Unless `v` is a whole number (a safe integer) of at least `min`: NaN, 1.5 and '2' are not. */
export function checkWhole(what: string, v: unknown, min: number): void {
  if (!(Number.isSafeInteger(v) && (v as number) >= min))
    throw new RangeError(`${what} must be a whole number of at least ${min}, got ${shown(v)}`);
}

/**
 * Unless `v` is a number >= 0 (Infinity too) of `unit` (milliseconds, bytes): NaN is not, and as a bound it
 * compares false everywhere, so it bounded nothing (or meant never).
 */
export function checkAtLeastZero(what: string, v: unknown, unit: string): void {
  if (!(typeof v === 'number' && v >= 0))
    throw new RangeError(`${what} must be a number of ${unit} >= 0, got ${shown(v)}`);
}
