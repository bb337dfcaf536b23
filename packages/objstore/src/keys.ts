import { checkWhole, kindOf, loneSurrogateAt } from '@strata/cli';
import { type DeleteOptions, InvalidKeyError, type ListOptions, type PutOptions } from './contract.js';

/** Longest key in UTF-8 bytes (S3's limit). */
export const keyBytesMax = 1024;

/** Throws {@link InvalidKeyError} unless `key` is a valid object key (see the contract). */
export function validateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidKeyError(String(key), `expected a string, got ${typeof key}`);
  if (key.length === 0) throw new InvalidKeyError(key, 'the key is empty');
  if (key.includes('\0')) throw new InvalidKeyError(key, 'the key contains a NUL byte');
  if (key.startsWith('/')) throw new InvalidKeyError(key, "the key starts with '/'");
  // keys are UTF-8 (S3's, the file backend's names): a lone surrogate has no UTF-8 form and became U+FFFD,
  // so two keys were one object (the file backend then found the other key's header: "corrupt")
  const lone = loneSurrogateAt(key);
  if (lone >= 0)
    throw new InvalidKeyError(
      key,
      `the key is not Unicode text: a lone surrogate at index ${lone} (keys are UTF-8)`,
    );
  // a UTF-16 code unit is at most 3 UTF-8 bytes: short keys need no count (this runs on every write)
  if (key.length * 3 > keyBytesMax) {
    const bytes = Buffer.byteLength(key, 'utf8');
    if (bytes > keyBytesMax)
      throw new InvalidKeyError(key, `the key is ${bytes} bytes, at most ${keyBytesMax} allowed`);
  }
  const dots = key.includes('.') ? dotSegment.exec(key) : null;
  if (dots) throw new InvalidKeyError(key, `the key has a '${dots[1]}' segment`);
}

/** A '.' or '..' path segment. */
const dotSegment = /(?:^|\/)(\.\.?)(?:\/|$)/;

/**
 * Validates a list's prefix (may be empty) and options: `startAfter` any string, `limit` a whole number of
 * at least 1 (a page of 0 could say neither "the last page" nor where the next one starts).
 */
export function validateList(prefix: string, opts: ListOptions): void {
  if (prefix !== '') validateKey(prefix.endsWith('/') ? `${prefix}x` : prefix);
  if (opts.startAfter !== undefined && typeof opts.startAfter !== 'string')
    throw new TypeError(`list: startAfter must be a string, got ${typeof opts.startAfter}`);
  const { limit } = opts;
  if (limit !== undefined) checkWhole('list: limit', limit, 1);
}

/**
 * Validates a put: its key, a body that is bytes or a stream of them (an async iterable such as a
 * `Readable`), and its preconditions (`ifNoneMatch` only '*', `ifMatch` an etag string).
 */
export function validatePut(key: unknown, body: unknown, opts: PutOptions): asserts key is string {
  validateKey(key);
  const stream = typeof body === 'object' && body !== null && Symbol.asyncIterator in body;
  if (!(body instanceof Uint8Array) && !stream)
    throw new TypeError(
      `put '${key}': the body must be a Uint8Array or a Readable stream, got ${kindOf(body)}`,
    );
  if (opts.ifNoneMatch !== undefined && opts.ifNoneMatch !== '*')
    throw new TypeError(`put '${key}': ifNoneMatch must be '*', got ${String(opts.ifNoneMatch)}`);
  validateIfMatch('put', key, opts);
}

/** Validates a delete: its key and an `ifMatch` that is an etag string. */
export function validateDelete(key: unknown, opts: DeleteOptions): asserts key is string {
  validateKey(key);
  validateIfMatch('delete', key, opts);
}

function validateIfMatch(op: string, key: string, opts: { ifMatch?: string }): void {
  if (opts.ifMatch !== undefined && typeof opts.ifMatch !== 'string')
    throw new TypeError(`${op} '${key}': ifMatch must be an etag string, got ${kindOf(opts.ifMatch)}`);
}
