/**
 * The contracts of virtual consensus (Balakrishnan et al., "Virtual consensus in Delos", OSDI'20).
 *
 * A log is a sequence of records at dense positions 0, 1, 2, ... A Loglet owns a range of that address
 * space; a VirtualLog chains loglets, each covering [start, end) of the log, the last one open-ended:
 *
 *     position:  0 ........ 1200 ............. 5000 ............>
 *     chain:     [loglet A  )[loglet B (sealed) )[loglet C (active) ...
 *
 * Positions are absolute log positions everywhere (a loglet created to start at 1200 hands out 1200 first).
 */

import { kindOf, shown } from '@strata/cli';

/** One record's bytes. */
export type Payload = Uint8Array;

export interface TailInfo {
  /** The first position that has not been written (every position below it is committed). */
  tail: number;
  /** Whether the loglet is sealed: no append will ever be acknowledged again. */
  sealed: boolean;
}

export interface LogRecord {
  position: number;
  payload: Payload;
}

/**
 * A Loglet: a shared log segment with a sequencer and a durable store.
 *
 * - `append(batch)` resolves with each record's position only once the records are durably committed
 *   (they survive the failures the loglet is built to tolerate); the positions are consecutive.
 *   It rejects with {@link SealedError} if the loglet is sealed; a rejected append may or may not have
 *   been written, but it was not acknowledged. An empty batch takes no position: it resolves with none
 *   (or rejects as a sealed loglet's append does) and leaves the loglet as it was.
 * - `checkTail()` returns the first unwritten position and the sealed bit; every position below the tail
 *   is committed and readable (unless trimmed).
 * - `read(from, to)` returns the committed records in [from, min(to, tail)), in order, with no gaps;
 *   reading below the trim point throws {@link TrimmedError}.
 * - `prefixTrim(pos)` discards records below `pos` (a hint: storage may be reclaimed later). A
 *   `VirtualLog` trims no further than its tail; a loglet need not clamp (a LogServer's replica may be
 *   asked to trim ahead of records still in flight to it).
 * - `seal()` is idempotent; once it has returned, no append can be acknowledged, and the tail is fixed.
 */
export interface Loglet {
  /** The first position this loglet hands out. */
  readonly start: number;
  append(batch: Payload[]): Promise<number[]>;
  checkTail(): Promise<TailInfo>;
  read(from: number, to: number): Promise<LogRecord[]>;
  prefixTrim(pos: number): Promise<void>;
  seal(): Promise<TailInfo>;
  close(): Promise<void>;
}

/** A versioned register value. Version 0 means "never written". */
export interface Versioned<T> {
  version: number;
  value: T | undefined;
}

/**
 * A MetaStore: one versioned register. `put(value, expectedVersion)` succeeds only if the current version
 * is `expectedVersion`, and then the version becomes expectedVersion + 1; of any racing writers with the
 * same expected version exactly one succeeds and the others get {@link VersionConflictError}. A resolved
 * put is durable.
 */
export interface MetaStore<T = unknown> {
  get(): Promise<Versioned<T>>;
  put(value: T, expectedVersion: number): Promise<number>;
  close(): Promise<void>;
}

/** A segment of a VirtualLog's chain: a loglet spec (URL) covering [start, end). */
export interface Segment {
  start: number;
  /** Undefined for the active (last) segment. */
  end?: number;
  spec: string;
}

/** The chain kept in the MetaStore. */
export interface Chain {
  segments: Segment[];
}

export class SealedError extends Error {
  override name = 'SealedError';
  constructor(readonly tail: number) {
    super(`the loglet is sealed at position ${tail}`);
  }
}

/**
 * Why `batch` is not an array of records (Uint8Arrays), or undefined when it is. Checked by every append: a
 * DataView or an ArrayBuffer has no `length`, and a loglet that framed records by it acknowledged them
 * stored empty.
 */
export function badBatch(batch: unknown): TypeError | undefined {
  if (!Array.isArray(batch))
    return new TypeError(`append: the batch must be an array of Uint8Arrays, got ${kindOf(batch)}`);
  for (let i = 0; i < batch.length; i++)
    if (!(batch[i] instanceof Uint8Array))
      return new TypeError(`append: record ${i} of the batch must be a Uint8Array, got ${kindOf(batch[i])}`);
  return undefined;
}

/** Throws a RangeError unless `pos` is a log position: a whole number of at least 0. */
export function checkPosition(what: string, pos: number): void {
  if (!(Number.isSafeInteger(pos) && pos >= 0))
    throw new RangeError(`${what} must be a log position (a whole number of at least 0), got ${shown(pos)}`);
}

/** A read's bounds: `from` a position, `to` a whole number or +Infinity (past the tail reads to the tail). */
export function checkReadRange(from: number, to: number): void {
  checkPosition('read: from', from);
  if (!(to === Number.POSITIVE_INFINITY || Number.isInteger(to)))
    throw new RangeError(`read: to must be a whole number or Infinity, got ${shown(to)}`);
}

export class TrimmedError extends Error {
  override name = 'TrimmedError';
  constructor(
    readonly position: number,
    readonly trimPoint: number,
  ) {
    super(`position ${position} was trimmed (the log starts at ${trimPoint})`);
  }
}

export class VersionConflictError extends Error {
  override name = 'VersionConflictError';
  constructor(
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`version conflict: expected ${expected}, the register is at ${actual}`);
  }
}

/** An operating error of a loglet (a peer gone, a timeout): the operation may be retried elsewhere. */
export class LogletUnavailableError extends Error {
  override name = 'LogletUnavailableError';
}
