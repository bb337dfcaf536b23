import { Readable } from 'node:stream';
import {
  type DeleteOptions,
  type GetOptions,
  type ListOptions,
  type ListPage,
  NotFoundError,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
} from '../contract.js';
import { validateDelete, validateKey, validateList, validatePut } from '../keys.js';
import { checkPrecondition, collectBody, etagOf, sliceRange } from '../util.js';

interface Entry {
  data: Uint8Array;
  info: ObjectInfo;
}

/** A store's objects, and their keys in list order while no key has been added or removed since. */
interface Namespace {
  objects: Map<string, Entry>;
  sorted: string[] | undefined;
}

/** Shared namespaces for `mem:NAME` URLs, so several handles in one process see the same objects. */
const named = new Map<string, Namespace>();

/** An in-memory store: durable for the life of the process. Conditional puts are atomic (single-threaded). */
export class MemStore implements ObjectStore {
  private readonly ns: Namespace;
  private readonly objects: Map<string, Entry>;

  constructor(
    readonly url = 'mem:',
    name?: string,
  ) {
    let ns = name ? named.get(name) : undefined;
    if (!ns) {
      ns = { objects: new Map(), sorted: undefined };
      if (name) named.set(name, ns);
    }
    this.ns = ns;
    this.objects = ns.objects;
  }

  async put(key: string, body: Uint8Array | Readable, opts: PutOptions = {}): Promise<string> {
    validatePut(key, body, opts);
    // a copy of its own: the caller may reuse its array once put returns (a streamed body is ours already)
    const data = body instanceof Uint8Array ? Uint8Array.from(body) : await collectBody(body);
    // No await between the check and the write: atomic in one event loop.
    checkPrecondition(key, this.objects.get(key)?.info.etag, opts);
    const etag = etagOf(data);
    if (!this.objects.has(key)) this.ns.sorted = undefined;
    this.objects.set(key, { data, info: { key, size: data.length, etag, modifiedMs: Date.now() } });
    return etag;
  }

  async get(key: string, opts: GetOptions = {}): Promise<Uint8Array> {
    validateKey(key);
    const e = this.objects.get(key);
    if (!e) throw new NotFoundError(key);
    return Uint8Array.from(sliceRange(e.data, opts.range));
  }

  async getStream(key: string, opts: GetOptions = {}): Promise<Readable> {
    return Readable.from([await this.get(key, opts)]);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    validateKey(key);
    const e = this.objects.get(key);
    return e ? { ...e.info } : undefined;
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    validateList(prefix, opts);
    const sorted = (this.ns.sorted ??= [...this.objects.keys()].sort(compareKeys));
    const after = opts.startAfter;
    // the keys with the prefix are a run of the sorted keys, from the first one at or after the prefix
    // (or after startAfter, when that comes later): a page costs a search and its own keys
    const from = after !== undefined && compareKeys(after, prefix) > 0 ? after : prefix;
    let i = lowerBound(sorted, from);
    if (i < sorted.length && sorted[i] === after) i++;
    const limit = opts.limit ?? 1000;
    const objects: ObjectInfo[] = [];
    for (; i < sorted.length && sorted[i]!.startsWith(prefix); i++) {
      if (objects.length === limit) return { objects, nextStartAfter: objects[limit - 1]!.key };
      objects.push({ ...this.objects.get(sorted[i]!)!.info });
    }
    return { objects };
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<void> {
    validateDelete(key, opts);
    if (opts.ifMatch !== undefined) checkPrecondition(key, this.objects.get(key)?.info.etag, opts);
    if (this.objects.delete(key)) this.ns.sorted = undefined;
  }

  async close(): Promise<void> {}
}

/**
 * Ascending order of UTF-8 bytes (what S3 uses), which is code point order. Not JS's `<`, which compares
 * UTF-16 code units: a code point above U+FFFF (a surrogate pair, D800-DFFF) sorts there before U+E000-FFFF,
 * and in UTF-8 after them. So where two code units differ and both are D800 or above, surrogates are moved
 * above the rest; no bytes are encoded.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x < 0xd800 || y < 0xd800) return x - y;
    return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** A code unit of D800 or above, ranked in code point order: E000-FFFF first, then the surrogates. */
function codePointRank(unit: number): number {
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

/** The index of the first key not before `key` in keys sorted by `compareKeys`. */
export function lowerBound(sorted: readonly string[], key: string): number {
  return lowerBoundOf(sorted.length, (i) => sorted[i]!, key);
}

/** The first of `n` positions whose key (`keyAt`, ascending by `compareKeys`) is not before `key`. */
export function lowerBoundOf(n: number, keyAt: (i: number) => string, key: string): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keyAt(mid), key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
