import { loneSurrogateAt } from '@strata/cli';
import { InvalidKeyError } from './contract.js';

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

/** Validates a list prefix (may be empty). */
export function validatePrefix(prefix: string): void {
  if (prefix !== '') validateKey(prefix.endsWith('/') ? `${prefix}x` : prefix);
}
