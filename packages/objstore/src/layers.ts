/**
 * Layers that wrap any ObjectStore with the same contract: a bounded read cache, injected latency (to
 * model S3 Standard and S3 Express on one machine), and tiers (express / standard / auto).
 */
import { rmSync } from 'node:fs';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { checkAtLeastZero, makeDirsSync, shown } from '@strata/cli';
import { hash64Words } from '@strata/highwayhash';
import { compareKeys } from './backends/mem.js';
import type {
  DeleteOptions,
  GetOptions,
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  PutOptions,
} from './contract.js';
import { NotFoundError, PreconditionFailedError } from './contract.js';
import { validateKey } from './keys.js';
import { collectBody, KeyLocks, sliceRange } from './util.js';

/** Base for wrappers: forwards everything to `inner`. */
export abstract class StoreWrapper implements ObjectStore {
  constructor(protected readonly inner: ObjectStore) {}
  get url(): string {
    return this.inner.url;
  }
  put(key: string, body: Uint8Array | Readable, opts?: PutOptions): Promise<string> {
    return this.inner.put(key, body, opts);
  }
  get(key: string, opts?: GetOptions): Promise<Uint8Array> {
    return this.inner.get(key, opts);
  }
  getStream(key: string, opts?: GetOptions): Promise<Readable> {
    return this.inner.getStream(key, opts);
  }
  head(key: string): Promise<ObjectInfo | undefined> {
    return this.inner.head(key);
  }
  list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    return this.inner.list(prefix, opts);
  }
  delete(key: string, opts?: DeleteOptions): Promise<void> {
    return this.inner.delete(key, opts);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface CacheStats {
  /** Gets served from memory, and from the disk tier (which then moves the object back to memory). */
  hits: number;
  diskHits: number;
  misses: number;
  bytes: number;
  entries: number;
  diskBytes: number;
  diskEntries: number;
}

/** A second cache tier on a local disk, under the memory one: what memory evicts goes there. */
export interface DiskCacheOptions {
  /** A directory of the cache's own: emptied when the cache is made and when it is closed. */
  dir: string;
  /** Bound on the bytes of cached objects on the disk. */
  bytesMax: number;
}

const diskMagic = 0x31444353; // "SCD1", little-endian
const diskKey = new Uint8Array(32).map((_, i) => 0x3c ^ (i * 11));
const diskWords = new Uint32Array(4);

/** A disk tier file: magic, key length, key, etag length, etag, the data's HighwayHash-64, then the data. */
function encodeDiskEntry(key: string, etag: string, data: Uint8Array): Buffer {
  const k = Buffer.from(key, 'utf8');
  const e = Buffer.from(etag, 'utf8');
  const head = Buffer.alloc(4 + 2 + k.length + 2 + e.length + 8);
  let p = head.writeUInt32LE(diskMagic, 0);
  p = head.writeUInt16LE(k.length, p);
  p += k.copy(head, p);
  p = head.writeUInt16LE(e.length, p);
  p += e.copy(head, p);
  const h = hash64Words(diskKey, data, diskWords);
  head.writeUInt32LE(h[0]!, p);
  head.writeUInt32LE(h[1]!, p + 4);
  return Buffer.concat([head, data]);
}

/** The data of a disk tier file if it is whole and holds `key` at `etag`; otherwise undefined. */
function decodeDiskEntry(b: Buffer, key: string, etag: string): Uint8Array | undefined {
  if (b.length < 16 || b.readUInt32LE(0) !== diskMagic) return undefined;
  let p = 4;
  const kl = b.readUInt16LE(p);
  p += 2;
  if (p + kl + 2 > b.length || b.toString('utf8', p, p + kl) !== key) return undefined;
  p += kl;
  const el = b.readUInt16LE(p);
  p += 2;
  if (p + el + 8 > b.length || b.toString('utf8', p, p + el) !== etag) return undefined;
  p += el;
  const want0 = b.readUInt32LE(p);
  const want1 = b.readUInt32LE(p + 4);
  const data = new Uint8Array(b.buffer, b.byteOffset + p + 8, b.length - p - 8);
  const h = hash64Words(diskKey, data, diskWords);
  return h[0] === want0 && h[1] === want1 ? data : undefined;
}

/**
 * A read cache bounded in bytes (LRU). Whole objects are cached on get; range gets are served from a
 * cached whole object. Writes and deletes through this store invalidate; writes by other clients are
 * seen once the entry is evicted (the cache is for immutable or single-writer data, as in Strata).
 */
export class CachedStore extends StoreWrapper {
  private readonly entries = new Map<string, { data: Uint8Array; etag: string }>();
  private bytes = 0;
  /** Disk tier entries (LRU order), each with its file's write in progress or done. */
  private readonly onDisk = new Map<
    string,
    { size: number; etag: string; file: string; written: Promise<void> }
  >();
  private diskBytes = 0;
  /**
   * Disk tier files are numbered, a new name for each write: a file being unlinked or written for a dropped
   * entry never has the name of a live one (the file holds its key and etag, checked on read).
   */
  private diskFiles = 0;
  /**
   * The gets fetching each key from the store: a write or delete through this store marks them stale (one
   * that starts while a write runs is stale from the start, see `writes`), and a stale one does not cache
   * what it fetched (it may be the version the write replaced).
   */
  private readonly fetching = new Map<string, { stale: boolean }[]>();
  readonly stats: CacheStats = {
    hits: 0,
    diskHits: 0,
    misses: 0,
    bytes: 0,
    entries: 0,
    diskBytes: 0,
    diskEntries: 0,
  };

  constructor(
    inner: ObjectStore,
    /** Bound on cached bytes in memory. */
    readonly cacheBytesMax = 256 * 2 ** 20,
    /** Objects larger than this are never cached. */
    readonly objectBytesMax = Math.max(1, Math.floor(cacheBytesMax / 8)),
    /** An optional second tier on a local disk (see `DiskCacheOptions`). */
    readonly disk?: DiskCacheOptions,
  ) {
    super(inner);
    // NaN compared false everywhere: a cache of NaN bytes never evicted, so it grew without bound
    for (const [name, v] of [
      ['cacheBytesMax', cacheBytesMax],
      ['objectBytesMax', objectBytesMax],
    ] as const)
      checkAtLeastZero(`CachedStore: ${name}`, v, 'bytes');
    if (disk) {
      if (!(disk.bytesMax > 0))
        throw new RangeError(`disk cache bytesMax must be positive, got ${disk.bytesMax}`);
      // a cache starts empty: files left by an earlier process may hold versions written since
      rmSync(disk.dir, { recursive: true, force: true });
      makeDirsSync(disk.dir);
    }
  }

  private drop(key: string): void {
    const e = this.entries.get(key);
    if (e) {
      this.bytes -= e.data.length;
      this.entries.delete(key);
    }
    this.dropFromDisk(key);
    this.count();
  }

  /** Marks `key` changed by this store: nothing fetched before it is cached. */
  private invalidate(key: string): void {
    for (const f of this.fetching.get(key) ?? []) f.stale = true;
    this.drop(key);
  }

  private dropFromDisk(key: string): void {
    const d = this.onDisk.get(key);
    if (!d) return;
    this.onDisk.delete(key);
    this.diskBytes -= d.size;
    void d.written.then(() => unlink(d.file)).catch(() => undefined);
  }

  private count(): void {
    this.stats.bytes = this.bytes;
    this.stats.entries = this.entries.size;
    this.stats.diskBytes = this.diskBytes;
    this.stats.diskEntries = this.onDisk.size;
  }

  /** Evicts from memory down to the bound; evicted objects go to the disk tier when there is one. */
  private evict(): void {
    while (this.bytes > this.cacheBytesMax) {
      const oldest = this.entries.keys().next().value as string;
      const e = this.entries.get(oldest)!;
      this.bytes -= e.data.length;
      this.entries.delete(oldest);
      if (this.disk && e.data.length <= this.disk.bytesMax) this.toDisk(oldest, e.etag, e.data);
    }
    this.count();
  }

  private toDisk(key: string, etag: string, data: Uint8Array): void {
    const disk = this.disk!;
    this.dropFromDisk(key);
    while (this.diskBytes + data.length > disk.bytesMax) {
      const oldest = this.onDisk.keys().next().value as string;
      this.dropFromDisk(oldest);
    }
    const file = join(disk.dir, `${this.diskFiles++}.obj`);
    // a write that fails leaves no entry: the next get fetches from the store
    const written = writeFile(file, encodeDiskEntry(key, etag, data)).catch(() => {
      if (this.onDisk.get(key)?.written === written) {
        this.onDisk.delete(key);
        this.diskBytes -= data.length;
        this.count();
      }
    });
    this.onDisk.set(key, { size: data.length, etag, file, written });
    this.diskBytes += data.length;
  }

  /** The object from the disk tier, moved back to memory; undefined when it is not there (or is damaged). */
  private async fromDisk(key: string): Promise<Uint8Array | undefined> {
    const d = this.onDisk.get(key);
    if (!d) return undefined;
    await d.written;
    let data: Uint8Array | undefined;
    try {
      data = decodeDiskEntry(await readFile(d.file), key, d.etag);
    } catch {
      data = undefined;
    }
    if (this.onDisk.get(key) !== d) return undefined; // invalidated or replaced meanwhile
    this.dropFromDisk(key);
    if (!data) {
      this.count();
      return undefined;
    }
    this.keep(key, data, d.etag);
    return data;
  }

  /** Caches `data` in memory as the most recent entry (evicting down to the bound). */
  private keep(key: string, data: Uint8Array, etag: string): void {
    if (this.closed) return; // a get that was fetching when the cache closed
    this.entries.set(key, { data, etag });
    this.bytes += data.length;
    this.evict();
  }

  /**
   * Forgets what is cached (memory and disk) and closes the store under it: a closed cache serves nothing of
   * its own, and reads go to that store, which answers as a closed store does (a closed WAL fails them; a
   * cache kept after its WAL was opened again served the versions it held at its close).
   */
  override async close(): Promise<void> {
    this.closed = true;
    this.entries.clear();
    this.bytes = 0;
    await Promise.all([...this.onDisk.values()].map((d) => d.written));
    this.onDisk.clear();
    this.diskBytes = 0;
    this.count();
    if (this.disk) rmSync(this.disk.dir, { recursive: true, force: true });
    await super.close();
  }

  private closed = false;

  override async put(key: string, body: Uint8Array | Readable, opts?: PutOptions): Promise<string> {
    return this.writing(key, () => this.inner.put(key, body, opts));
  }

  override async delete(key: string, opts?: DeleteOptions): Promise<void> {
    return this.writing(key, () => this.inner.delete(key, opts));
  }

  /**
   * A put or delete through this cache: what is cached of the key is dropped before and after it, and gets
   * fetching meanwhile, or starting to while it runs (`writes`), cache nothing.
   */
  private async writing<T>(key: string, write: () => Promise<T>): Promise<T> {
    this.invalidate(key);
    this.writes.set(key, (this.writes.get(key) ?? 0) + 1);
    try {
      return await write();
    } finally {
      const n = this.writes.get(key)! - 1;
      if (n === 0) this.writes.delete(key);
      else this.writes.set(key, n);
      this.invalidate(key);
    }
  }

  /**
   * Puts and deletes through this cache in flight, per key: a fetch that starts while one runs is stale from
   * the start. It may read the old version while the store under it already shows the new one to a head:
   * cached, a later get returned the old version after a head had the new one.
   */
  private readonly writes = new Map<string, number>();

  override async get(key: string, opts: GetOptions = {}): Promise<Uint8Array> {
    const e = this.entries.get(key);
    if (e) {
      this.stats.hits++;
      this.entries.delete(key); // move to the most-recent end
      this.entries.set(key, e);
      return Uint8Array.from(sliceRange(e.data, opts.range));
    }
    const fromDisk = await this.fromDisk(key);
    if (fromDisk) {
      this.stats.diskHits++;
      return Uint8Array.from(sliceRange(fromDisk, opts.range));
    }
    this.stats.misses++;
    const fetch = { stale: this.writes.has(key) };
    const fetches = this.fetching.get(key) ?? [];
    fetches.push(fetch);
    this.fetching.set(key, fetches);
    let info: ObjectInfo | undefined;
    let data: Uint8Array;
    try {
      info = await this.inner.head(key);
      if (!info) throw new NotFoundError(key);
      if (info.size > this.objectBytesMax) return await this.inner.get(key, opts);
      data = await this.inner.get(key);
    } finally {
      fetches.splice(fetches.indexOf(fetch), 1);
      if (fetches.length === 0 && this.fetching.get(key) === fetches) this.fetching.delete(key);
    }
    // a write or delete through this store since the fetch began, or running then: what came back may be
    // the old version
    if (!fetch.stale && !this.entries.has(key)) {
      this.dropFromDisk(key);
      this.keep(key, data, info.etag);
    }
    return Uint8Array.from(sliceRange(data, opts.range));
  }
}

/** Latency of one operation: a log-normal distribution given by its median and 99th percentile, in ms. */
export interface LatencyDist {
  p50Ms: number;
  p99Ms: number;
}

export type LatencyProfile = Record<'put' | 'get' | 'head' | 'list' | 'delete', LatencyDist>;

/**
 * Published-figure defaults. S3 Express One Zone is sold on "consistent single-digit millisecond" access;
 * AWS's S3 performance guidance puts Standard's first-byte latency for small objects around 100-200 ms at
 * the tail and tens of ms typically. These are models for benchmarks and simulations, not measurements.
 */
export const latencyProfiles: Record<'standard' | 'express', LatencyProfile> = {
  standard: {
    put: { p50Ms: 30, p99Ms: 150 },
    get: { p50Ms: 20, p99Ms: 120 },
    head: { p50Ms: 15, p99Ms: 80 },
    list: { p50Ms: 40, p99Ms: 200 },
    delete: { p50Ms: 20, p99Ms: 100 },
  },
  express: {
    put: { p50Ms: 5, p99Ms: 12 },
    get: { p50Ms: 3, p99Ms: 8 },
    head: { p50Ms: 2, p99Ms: 6 },
    list: { p50Ms: 5, p99Ms: 15 },
    delete: { p50Ms: 3, p99Ms: 8 },
  },
};

/** Seeded PRNG (mulberry32), so latency schedules replay. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Adds a delay drawn from a log-normal distribution per operation before passing it on. */
export class LatencyStore extends StoreWrapper {
  private readonly rand: () => number;
  constructor(
    inner: ObjectStore,
    readonly profile: LatencyProfile,
    seed = 1,
  ) {
    super(inner);
    this.rand = mulberry32(seed);
  }

  /** A delay in ms: exp(mu + sigma z), with mu = ln p50 and sigma from p99 (z99 = 2.326). */
  sample(d: LatencyDist): number {
    const u1 = Math.max(1e-12, this.rand());
    const u2 = this.rand();
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    const sigma = Math.log(d.p99Ms / d.p50Ms) / 2.326;
    return Math.exp(Math.log(d.p50Ms) + sigma * z);
  }

  private wait(op: keyof LatencyProfile): Promise<void> {
    return new Promise((r) => setTimeout(r, this.sample(this.profile[op])));
  }

  override async put(key: string, body: Uint8Array | Readable, opts?: PutOptions): Promise<string> {
    await this.wait('put');
    return this.inner.put(key, body, opts);
  }
  override async get(key: string, opts?: GetOptions): Promise<Uint8Array> {
    await this.wait('get');
    return this.inner.get(key, opts);
  }
  override async getStream(key: string, opts?: GetOptions): Promise<Readable> {
    await this.wait('get');
    return this.inner.getStream(key, opts);
  }
  override async head(key: string): Promise<ObjectInfo | undefined> {
    await this.wait('head');
    return this.inner.head(key);
  }
  override async list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    await this.wait('list');
    return this.inner.list(prefix, opts);
  }
  override async delete(key: string, opts?: DeleteOptions): Promise<void> {
    await this.wait('delete');
    return this.inner.delete(key, opts);
  }
}

export type StorageClass = 'express' | 'standard' | 'auto';

export interface TierOptions {
  /** Storage class per key prefix (longest prefix wins); keys matching none use `defaultClass`. */
  classes?: Record<string, StorageClass>;
  defaultClass?: StorageClass;
  /** With `auto`: objects not written for this long move from express to standard. */
  idleMsBeforeStandard?: number;
  /**
   * A standard copy of an `auto` object still in express that is older than this (by the clock) is taken to
   * be left by a mover that stopped between its two steps, and replaced by the next move; a younger one
   * is another mover's in flight, and the object waits for the next round. Default 10 minutes.
   */
  moveStaleMs?: number;
}

const tierLocks = new WeakMap<ObjectStore, KeyLocks>();

/**
 * Objects `moveIdle` moves at once: each move is a read, a durable put and a durable delete, and one at a
 * time a file: store's syncs set the pace. Four bound the bytes held (four objects' bodies).
 */
const movesInFlight = 4;

/** For a conditional delete whose version may be gone already: a failed precondition is no error. */
function unlessPreconditionFailed(e: unknown): void {
  if (!(e instanceof PreconditionFailedError)) throw e;
}

/**
 * Two stores behind one contract: `express` (low latency) and `standard` (low cost). The class of a
 * namespace is configuration: `express` and `standard` pin it; `auto` writes to express and moves objects
 * to standard after an idle age (`moveIdle()`), serving reads from either.
 */
export class TieredStore implements ObjectStore {
  readonly url: string;
  /** Per key: moves and deletes, of every TieredStore on this express store object. */
  private readonly locks: KeyLocks;
  constructor(
    readonly express: ObjectStore,
    readonly standard: ObjectStore,
    readonly opts: TierOptions = {},
  ) {
    // NaN compared false: an idle age of NaN moved nothing, a stale age of NaN never took a copy over
    for (const [name, v] of [
      ['idleMsBeforeStandard', opts.idleMsBeforeStandard],
      ['moveStaleMs', opts.moveStaleMs],
    ] as const)
      if (v !== undefined) checkAtLeastZero(`TieredStore: ${name}`, v, 'milliseconds');
    const checkClass = (what: string, c: unknown) => {
      if (c !== 'express' && c !== 'standard' && c !== 'auto')
        throw new TypeError(`TieredStore: ${what} must be express, standard or auto, got ${shown(c)}`);
    };
    for (const [prefix, c] of Object.entries(opts.classes ?? {})) checkClass(`the class of '${prefix}'`, c);
    if (opts.defaultClass !== undefined) checkClass('defaultClass', opts.defaultClass);
    this.url = `tiered(${express.url}, ${standard.url})`;
    let locks = tierLocks.get(express);
    if (!locks) tierLocks.set(express, (locks = new KeyLocks()));
    this.locks = locks;
  }

  classOf(key: string): StorageClass {
    let best = '';
    let cls: StorageClass = this.opts.defaultClass ?? 'standard';
    for (const [p, c] of Object.entries(this.opts.classes ?? {})) {
      if (key.startsWith(p) && p.length >= best.length) {
        best = p;
        cls = c;
      }
    }
    return cls;
  }

  private home(key: string): ObjectStore {
    return this.classOf(key) === 'standard' ? this.standard : this.express;
  }

  private other(key: string): ObjectStore {
    return this.home(key) === this.express ? this.standard : this.express;
  }

  /**
   * A pinned class's put removes a copy in the other tier (from before the class changed). An `auto` put
   * goes to express and leaves a standard copy of an older version (a move's) where it is: reads take
   * express first, a delete removes both, and the next move replaces it; removing it here could remove
   * the copy of a move in flight of this very version (`moveIdle`).
   */
  async put(key: string, body: Uint8Array | Readable, opts: PutOptions = {}): Promise<string> {
    validateKey(key); // before its class is looked up: a key that is not a string failed there, unclearly
    if (this.classOf(key) !== 'auto') {
      const etag = await this.home(key).put(key, body, opts);
      await this.other(key).delete(key);
      return etag;
    }
    // under the key's lock too: a delete in this process between its removal of a moved object from
    // standard (the object gone for readers) and its express delete removed a put acknowledged meanwhile
    if (opts.ifMatch === undefined && opts.ifNoneMatch === undefined)
      return this.locks.run(key, () => this.express.put(key, body, opts));
    // the condition must see the object where a get finds it: express, else standard; under the key's lock,
    // so that no move in this process takes it from express between the look and the put (a create-only
    // put then made a second object over one just moved to standard)
    const data = await collectBody(body);
    return this.locks.run(key, () => this.putWhereFound(key, data, opts));
  }

  /** A conditional put of an `auto` object to the tier a get finds it in. */
  private async putWhereFound(key: string, data: Uint8Array, opts: PutOptions): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      const inExpress = (await this.express.head(key)) !== undefined;
      const tier = !inExpress && (await this.standard.head(key)) ? this.standard : this.express;
      try {
        return await tier.put(key, data, opts);
      } catch (e) {
        // a move took it from express between the head and the put: look again
        const moved = tier === this.express && inExpress && !(await this.express.head(key));
        if (!(e instanceof PreconditionFailedError) || !moved || attempt === 3) throw e;
      }
    }
  }

  async get(key: string, opts?: GetOptions): Promise<Uint8Array> {
    validateKey(key);
    return this.eitherTier(key, (t) => t.get(key, opts));
  }

  async getStream(key: string, opts?: GetOptions): Promise<Readable> {
    validateKey(key);
    return this.eitherTier(key, (t) => t.getStream(key, opts));
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    validateKey(key);
    for (const t of this.readOrder(key)) {
      const info = await t.head(key);
      if (info) return info;
    }
    return undefined;
  }

  /**
   * A read from the key's home tier, else the other, else the home tier again: an object can leave the
   * home tier before the first ask and the other before the second while it stood all along (a move
   * copies an object to standard and deletes it from express, and removes that copy again once the object
   * is written anew in express), and the two asks then found nothing (the race test's seed 763847502). The
   * third ask finds the new version. A key of a pinned class never moves: two asks.
   */
  private readOrder(key: string): ObjectStore[] {
    const home = this.home(key);
    return [home, this.other(key), ...(this.classOf(key) === 'auto' ? [home] : [])];
  }

  /** `read` from the tiers in `readOrder`, the first that has the object (NotFoundError from the last). */
  private async eitherTier<T>(key: string, read: (t: ObjectStore) => Promise<T>): Promise<T> {
    const tiers = this.readOrder(key);
    for (let i = 0; ; i++)
      try {
        return await read(tiers[i]!);
      } catch (e) {
        if (!(e instanceof NotFoundError) || i === tiers.length - 1) throw e;
      }
  }

  /**
   * Express's page, then standard's: a move puts its copy to standard before it deletes the express one,
   * so an object moving meanwhile is in one page or both. (Read at once, standard's page could come from
   * before a move and express's from after it, and the object was in neither.)
   */
  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    const limit = opts.limit ?? 1000;
    const a = await this.express.list(prefix, { ...opts, limit });
    const b = await this.standard.list(prefix, { ...opts, limit });
    const merged = new Map<string, ObjectInfo>();
    for (const o of [...b.objects, ...a.objects]) merged.set(o.key, o);
    // a page may end early in either tier: only keys up to the smaller of the two page ends are complete
    let bound: string | undefined;
    for (const p of [a, b])
      if (p.nextStartAfter !== undefined && (bound === undefined || compareKeys(p.nextStartAfter, bound) < 0))
        bound = p.nextStartAfter;
    const all = [...merged.values()]
      .filter((o) => bound === undefined || compareKeys(o.key, bound) <= 0)
      .sort((x, y) => compareKeys(x.key, y.key));
    const objects = all.slice(0, limit);
    const more = bound !== undefined || all.length > limit;
    return more && objects.length
      ? { objects, nextStartAfter: objects[objects.length - 1]!.key }
      : { objects };
  }

  /**
   * Express first, then standard: a move that copied the object to standard before the first step removed
   * it from express then and has its copy removed by the second; one that comes later finds it gone from
   * express and removes its own copy (`moveIdle`). An `auto` object's older version shadowed in standard
   * (moved, then written again) is removed before express (see `deleteBoth`).
   */
  async delete(key: string, opts: DeleteOptions = {}): Promise<void> {
    validateKey(key);
    return this.locks.run(key, () => this.deleteBoth(key, opts));
  }

  private async deleteBoth(key: string, opts: DeleteOptions): Promise<void> {
    const auto = this.classOf(key) === 'auto';
    if (opts.ifMatch === undefined) {
      // an `auto` object written again after a move has its older version in standard, shadowed: removed
      // first, while express still shadows it (removed after express, it was read in between)
      if (auto) await this.standard.delete(key);
      await this.express.delete(key);
      await this.standard.delete(key);
      return;
    }
    // the version asked for is where a get finds it: express first, standard when express has none; what
    // standard holds under it (an older version a move left there before the object was written again, or
    // a copy of this one by a move that stopped halfway) is looked at first: once the express version is
    // gone, a get would find that copy (an older version came back after the delete)
    const shadowed = await this.standard.head(key);
    if (auto && shadowed) {
      // an older version under the express one is removed while express still shadows it (not a copy of
      // that same version: a mover in another process may be about to delete the express one)
      const current = await this.express.head(key);
      if (current && current.etag !== shadowed.etag)
        await this.standard.delete(key, { ifMatch: shadowed.etag }).catch(unlessPreconditionFailed);
    }
    try {
      await this.express.delete(key, opts);
    } catch (e) {
      if (!(e instanceof PreconditionFailedError) || (await this.express.head(key))) throw e;
      await this.standard.delete(key, opts);
      return;
    }
    // removed only if it is still that version: a copy made since is its mover's to remove (`moveIdle`)
    if (shadowed) await this.standard.delete(key, { ifMatch: shadowed.etag }).catch(unlessPreconditionFailed);
  }

  /**
   * Moves `auto` objects idle longer than the configured age from express to standard; returns how many
   * moved. Movers in several processes may run at once, and writers and deleters meanwhile:
   *
   * 1. the object's bytes are read from express (gone: nothing to move);
   * 2. they are put to standard only if standard has no copy (`ifNoneMatch`): the mover whose put creates
   *    the copy owns it, and a mover that finds one leaves the object to it (unless the copy is older than
   *    `moveStaleMs`, left by a mover that stopped: then replaced, under `ifMatch`, by this one);
   * 3. the express copy is deleted only if it is still the version read (`ifMatch`);
   * 4. when it is not (rewritten, or deleted by a user, whose delete removes express before standard),
   *    the owner removes its standard copy again, under `ifMatch` of its own etag: no deleted object comes
   *    back and no newer version is lost.
   *
   * A mover that took longer than half of `moveStaleMs` between steps 2 and 4 leaves its copy: another
   * mover may have taken it over.
   */
  async moveIdle(nowMs = Date.now()): Promise<number> {
    const idle = this.opts.idleMsBeforeStandard ?? 24 * 3600_000;
    let moved = 0;
    let after: string | undefined;
    for (;;) {
      const page = await this.express.list('', after === undefined ? {} : { startAfter: after });
      const due = page.objects.filter((o) => this.classOf(o.key) === 'auto' && nowMs - o.modifiedMs >= idle);
      for (let i = 0; i < due.length; i += movesInFlight) {
        // each key's move is safe against the others (its own conditional puts and deletes); a failure is
        // reported once every move started with it has settled
        const done = await Promise.allSettled(
          due.slice(i, i + movesInFlight).map((o) => this.locks.run(o.key, () => this.moveOne(o))),
        );
        for (const d of done) if (d.status === 'fulfilled' && d.value) moved++;
        const failed = done.find((d) => d.status === 'rejected');
        if (failed) throw (failed as PromiseRejectedResult).reason;
      }
      if (page.nextStartAfter === undefined) return moved;
      after = page.nextStartAfter;
    }
  }

  /** One object's move (see `moveIdle`): true when it moved. */
  private async moveOne(o: ObjectInfo): Promise<boolean> {
    let data: Uint8Array;
    try {
      data = await this.express.get(o.key);
    } catch (e) {
      if (e instanceof NotFoundError) return false; // deleted since the listing
      throw e;
    }
    const staleMs = this.opts.moveStaleMs ?? 10 * 60_000;
    const claimedAt = Date.now();
    let ours: string;
    try {
      ours = await this.standard.put(o.key, data, { ifNoneMatch: '*' });
    } catch (e) {
      if (!(e instanceof PreconditionFailedError)) throw e;
      const copy = await this.standard.head(o.key);
      if (!copy || claimedAt - copy.modifiedMs < staleMs) return false; // another mover's, in flight
      try {
        ours = await this.standard.put(o.key, data, { ifMatch: copy.etag });
      } catch (e2) {
        if (e2 instanceof PreconditionFailedError) return false;
        throw e2;
      }
    }
    try {
      await this.express.delete(o.key, { ifMatch: o.etag });
      return true;
    } catch (e) {
      if (!(e instanceof PreconditionFailedError)) throw e;
    }
    // rewritten or deleted meanwhile: the copy must not shadow the one or bring back the other
    if (Date.now() - claimedAt < staleMs / 2)
      await this.standard.delete(o.key, { ifMatch: ours }).catch(unlessPreconditionFailed);
    return false;
  }

  async close(): Promise<void> {
    await Promise.all([this.express.close(), this.standard.close()]);
  }
}
