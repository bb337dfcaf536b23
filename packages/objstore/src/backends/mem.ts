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
import { validateKey, validatePrefix } from '../keys.js';
import { checkPrecondition, collectBody, etagOf, sliceRange } from '../util.js';

interface Entry {
  data: Uint8Array;
  info: ObjectInfo;
}

/** Shared namespaces for `mem:NAME` URLs, so several handles in one process see the same objects. */
const named = new Map<string, Map<string, Entry>>();

/** An in-memory store: durable for the life of the process. Conditional puts are atomic (single-threaded). */
export class MemStore implements ObjectStore {
  private readonly objects: Map<string, Entry>;

  constructor(
    readonly url = 'mem:',
    name?: string,
  ) {
    if (name) {
      let m = named.get(name);
      if (!m) named.set(name, (m = new Map()));
      this.objects = m;
    } else this.objects = new Map();
  }

  async put(key: string, body: Uint8Array | Readable, opts: PutOptions = {}): Promise<string> {
    validateKey(key);
    // a copy of its own: the caller may reuse its array once put returns (a streamed body is ours already)
    const data = body instanceof Uint8Array ? Uint8Array.from(body) : await collectBody(body);
    // No await between the check and the write: atomic in one event loop.
    checkPrecondition(key, this.objects.get(key)?.info.etag, opts);
    const etag = etagOf(data);
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
    validatePrefix(prefix);
    const keys = [...this.objects.keys()].filter(
      (k) => k.startsWith(prefix) && (opts.startAfter === undefined || k > opts.startAfter),
    );
    keys.sort(compareKeys);
    const limit = opts.limit ?? 1000;
    const page = keys.slice(0, limit);
    const objects = page.map((k) => ({ ...this.objects.get(k)!.info }));
    return keys.length > limit ? { objects, nextStartAfter: page[page.length - 1]! } : { objects };
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<void> {
    validateKey(key);
    if (opts.ifMatch !== undefined) checkPrecondition(key, this.objects.get(key)?.info.etag, opts);
    this.objects.delete(key);
  }

  async close(): Promise<void> {}
}

/** Ascending order of UTF-8 bytes (what S3 uses), which for JS strings equals code point order. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
