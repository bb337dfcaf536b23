import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe } from 'vitest';
import { FileLoglet, FileMetaStore, MemoryLoglet, MemoryMetaStore, VirtualLog } from '../src/index.js';
import { logletConformance, metaStoreConformance } from './conformance.js';

const root = mkdtempSync(join(tmpdir(), 'vlog-conf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, String(n++));

describe('MemoryLoglet', () => logletConformance(async (start) => new MemoryLoglet(start)));
describe('FileLoglet', () => logletConformance(async (start) => FileLoglet.open(fresh(), start)));
describe('VirtualLog over MemoryLoglets (one segment)', () =>
  logletConformance(async (start) => {
    const v = await VirtualLog.create(
      new MemoryMetaStore(),
      async (_spec, s) => new MemoryLoglet(s),
      'mem://x',
    );
    // a virtual log always starts at 0: fill the prefix so the suite's start holds
    if (start > 0) await v.append(Array.from({ length: start }, () => new Uint8Array(1)));
    return start > 0 ? offsetView(v, start) : v;
  }));
describe('VirtualLog over FileLoglets, reconfigured mid-way', () =>
  logletConformance(async (start) => {
    const dir = fresh();
    const v = await VirtualLog.create(
      new FileMetaStore(join(dir, 'meta.json')),
      (spec, s) => FileLoglet.open(join(dir, spec, String(s)), s),
      'a',
    );
    if (start > 0) {
      await v.append(Array.from({ length: start }, () => new Uint8Array(1)));
      await v.reconfigure('b');
      return offsetView(v, start);
    }
    return v;
  }));

describe('MemoryMetaStore', () => metaStoreConformance(async () => new MemoryMetaStore()));
describe('FileMetaStore', () =>
  metaStoreConformance(async () => new FileMetaStore(join(fresh(), 'reg.json'))));

/** A VirtualLog whose first `start` positions are filler: the suite sees a log that starts at `start`. */
function offsetView(v: VirtualLog, start: number) {
  return Object.assign(Object.create(v) as VirtualLog, {
    start,
    read: async (from: number, to: number) => v.read(Math.max(from, start), to),
    prefixTrim: (p: number) => v.prefixTrim(Math.max(p, start)),
  });
}
