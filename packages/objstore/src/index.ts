/**
 * @strata/objstore: the ObjectStore contract, its backends (file:, mem:, s3:) and the layers that go in
 * front of them with the same contract: tiers (express / standard / auto), a WAL with group commit, a
 * bounded read cache and injected latency.
 */
import type { ObjectStore } from './contract.js';
import {
  CachedStore,
  type DiskCacheOptions,
  type LatencyProfile,
  LatencyStore,
  latencyProfiles,
  type StorageClass,
  TieredStore,
} from './layers.js';
import { ReplicatedStore, type ReplicationOptions } from './replicate.js';
import { openBackend } from './url.js';
import { type WalOptions, WalStore } from './wal.js';

export { FileStore, type FileStoreOptions } from './backends/file.js';
export { compareKeys, MemStore } from './backends/mem.js';
// S3Store is `@strata/objstore/s3`, and `openStore('s3://...')` loads it when a store needs it: the AWS
// SDK it imports made every import of this package (CLI, agent, search) take 228 ms instead of 46 and
// 10 MiB more memory (2026-12-04).
export type { S3Location } from './backends/s3.js';
export { commands, demos } from './cli.js';
export * from './contract.js';
export { costReport, loadPrices, type PriceTable, type Workload } from './cost.js';
export { keyBytesMax, validateKey } from './keys.js';
export {
  CachedStore,
  type CacheStats,
  type DiskCacheOptions,
  type LatencyDist,
  type LatencyProfile,
  LatencyStore,
  latencyProfiles,
  mulberry32,
  type StorageClass,
  StoreWrapper,
  TieredStore,
  type TierOptions,
} from './layers.js';
export { DirectoryLockedError, lockDirectory, lockFile, lockStaleMs, lockWaitMsMax } from './lockfile.js';
export { ReplicatedStore, type ReplicationOptions, type ReplicationStats } from './replicate.js';
export { parseStoreUrl, type StoreLocation, StoreUrlError } from './url.js';
export { etagOf } from './util.js';
export { decodeRecords, type WalOptions, type WalRecord, type WalStats, WalStore } from './wal.js';

export interface OpenStoreOptions {
  /** Resolve relative file: paths against this directory. */
  cwd?: string;
  /**
   * `file:` stores read gets of at most this many bytes with synchronous calls on the calling thread
   * (`FileStoreOptions.syncReadBytesMax`; default 0, every get through the thread pool).
   */
  fileSyncReadBytesMax?: number;
  /** Inject latency: a published-figure profile or your own. */
  latency?: 'standard' | 'express' | LatencyProfile;
  /** Tiers: `url` is the standard tier; this is the express tier and the class per key prefix. */
  tiers?: {
    expressUrl: string;
    classes?: Record<string, StorageClass>;
    defaultClass?: StorageClass;
    idleMsBeforeStandard?: number;
    expressLatency?: 'express' | LatencyProfile;
  };
  /** A WAL in front (on a local directory, the express tier). */
  wal?: WalOptions;
  /** A read cache in front, bounded in bytes. */
  cacheBytes?: number;
  /** A second cache tier on a local disk under the memory one (with `cacheBytes`). */
  cacheDisk?: DiskCacheOptions;
  /** Asynchronous replication of some (or all) key prefixes to a second store. */
  replicate?: ReplicationOptions & { url: string };
}

/**
 * Opens an `ObjectStore` for any storage URL (`file:`, `mem:`, `s3://`), with tiers, a WAL and a cache as
 * options. Layers stack as: cache -> replication -> WAL -> tiers -> latency -> backend.
 */
export async function openStore(url: string, opts: OpenStoreOptions = {}): Promise<ObjectStore> {
  const withLatency = (s: ObjectStore, l?: 'standard' | 'express' | LatencyProfile) =>
    l === undefined ? s : new LatencyStore(s, typeof l === 'string' ? latencyProfiles[l] : l);
  let store: ObjectStore = withLatency(await openBackend(url, opts), opts.latency);
  if (opts.tiers) {
    const express = withLatency(await openBackend(opts.tiers.expressUrl, opts), opts.tiers.expressLatency);
    store = new TieredStore(express, store, {
      ...(opts.tiers.classes ? { classes: opts.tiers.classes } : {}),
      ...(opts.tiers.defaultClass ? { defaultClass: opts.tiers.defaultClass } : {}),
      ...(opts.tiers.idleMsBeforeStandard !== undefined
        ? { idleMsBeforeStandard: opts.tiers.idleMsBeforeStandard }
        : {}),
    });
  }
  if (opts.wal) store = await WalStore.open(store, { closeStore: true, ...opts.wal });
  if (opts.replicate) {
    const { url: to, ...ro } = opts.replicate;
    store = await ReplicatedStore.open(store, await openBackend(to, opts), ro);
  }
  if (opts.cacheBytes !== undefined)
    store = new CachedStore(store, opts.cacheBytes, undefined, opts.cacheDisk);
  else if (opts.cacheDisk) throw new TypeError('cacheDisk needs cacheBytes (the memory tier above it)');
  return store;
}
