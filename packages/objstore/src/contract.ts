/**
 * The `ObjectStore` contract: every backend (file:, mem:, s3:) and every layer (tiers, WAL, cache,
 * latency injection) implements it, and one conformance suite checks them all.
 *
 * - Keys are UTF-8 strings of 1..1024 bytes with `/` as the separator; no empty key, no `.` or `..`
 *   segment, no NUL, no leading `/`. A bad key is rejected with {@link InvalidKeyError} before any I/O.
 * - `put` resolves only when the object is durable (fsync'd or acknowledged by the remote store) and
 *   returns its new etag; readers see either the old or the new object, never a torn one.
 * - Conditional puts are atomic: `ifNoneMatch: '*'` creates only if absent; `ifMatch: etag` replaces only
 *   that version. Of racing conditional writers exactly one wins; the others get
 *   {@link PreconditionFailedError}.
 * - A conditional delete (`ifMatch: etag`) removes only that version, atomically against conditional
 *   puts, and leaves a version written meanwhile by any put; an absent key or another etag gets
 *   {@link PreconditionFailedError}.
 * - `list` returns keys in ascending byte order, starting after `startAfter`, at most `limit` per page,
 *   with `nextStartAfter` set when more remain.
 */
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  key: string;
  size: number;
  etag: string;
  /** Milliseconds since the epoch of the last write. */
  modifiedMs: number;
}

export interface PutOptions {
  /** `'*'`: create only if no object has this key. */
  ifNoneMatch?: '*';
  /** Replace only if the current object's etag is this. */
  ifMatch?: string;
}

export interface DeleteOptions {
  /** Delete only if the current object's etag is this. */
  ifMatch?: string;
}

export interface GetOptions {
  /** Inclusive byte range [start, end]; `end` past the object's end is clamped. */
  range?: { start: number; end: number };
}

export interface ListOptions {
  startAfter?: string;
  limit?: number;
}

export interface ListPage {
  objects: ObjectInfo[];
  /** Pass as `startAfter` to get the next page; undefined when this is the last page. */
  nextStartAfter?: string;
}

export interface ObjectStore {
  /** A URL-like description, e.g. `file:./data` or `s3://bucket/prefix`. */
  readonly url: string;
  put(key: string, body: Uint8Array | Readable, opts?: PutOptions): Promise<string>;
  /** The object's bytes, or a {@link NotFoundError}. */
  get(key: string, opts?: GetOptions): Promise<Uint8Array>;
  /** A stream of the object's bytes, for large objects. */
  getStream(key: string, opts?: GetOptions): Promise<Readable>;
  /** Metadata, or undefined when absent. */
  head(key: string): Promise<ObjectInfo | undefined>;
  list(prefix: string, opts?: ListOptions): Promise<ListPage>;
  /** Deletes; deleting an absent key is not an error (but is one under `ifMatch`). */
  delete(key: string, opts?: DeleteOptions): Promise<void>;
  /** Releases resources (timers, sockets, background flushers). */
  close(): Promise<void>;
}

export class ObjectStoreError extends Error {
  override name = 'ObjectStoreError';
}
export class NotFoundError extends ObjectStoreError {
  override name = 'NotFoundError';
  constructor(readonly key: string) {
    super(`no object with key '${key}'`);
  }
}
export class PreconditionFailedError extends ObjectStoreError {
  override name = 'PreconditionFailedError';
  constructor(
    readonly key: string,
    detail: string,
  ) {
    super(`precondition failed for '${key}': ${detail}`);
  }
}
export class InvalidKeyError extends ObjectStoreError {
  override name = 'InvalidKeyError';
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`invalid object key ${JSON.stringify(key.slice(0, 80))}: ${reason}`);
  }
}
