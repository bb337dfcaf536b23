import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe } from 'vitest';
import { CachedStore, FileStore, LatencyStore, MemStore, TieredStore, WalStore } from '../src/index.js';
import { objectStoreConformance } from './conformance.js';

const root = mkdtempSync(join(tmpdir(), 'objstore-conf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, String(n++));

describe('mem: backend', () => objectStoreConformance(async () => new MemStore()));
describe('file: backend', () => objectStoreConformance(async () => new FileStore(fresh())));
describe('WAL in front of file:', () =>
  objectStoreConformance(async () =>
    WalStore.open(new FileStore(fresh()), {
      dir: fresh(),
      flushIntervalMs: 2,
      walObjectBytesMax: 64 << 10,
      packBytes: 4 << 10,
    }),
  ));
describe('cache in front of file:', () =>
  objectStoreConformance(async () => new CachedStore(new FileStore(fresh()), 1 << 20)));
describe('tiers (auto: express + standard)', () =>
  objectStoreConformance(
    async () =>
      new TieredStore(new FileStore(fresh()), new MemStore(), {
        defaultClass: 'auto',
        classes: { 'p/': 'standard', 'd/': 'express' },
      }),
  ));
describe('injected latency', () =>
  objectStoreConformance(
    async () =>
      new LatencyStore(new MemStore(), {
        put: { p50Ms: 0.2, p99Ms: 1 },
        get: { p50Ms: 0.2, p99Ms: 1 },
        head: { p50Ms: 0.1, p99Ms: 1 },
        list: { p50Ms: 0.2, p99Ms: 1 },
        delete: { p50Ms: 0.1, p99Ms: 1 },
      }),
    { largeBytes: 2 << 20 },
  ));
