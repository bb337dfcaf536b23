// Replication racing writes: resync while keys are deleted, a journal rewritten while a write is on its
// way to the primary, and bad keys refused before they are journaled. Each case failed before its fix.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidKeyError, MemStore, ReplicatedStore } from '../src/index.js';
import { Gated } from './helpers/gated.js';

const root = mkdtempSync(join(tmpdir(), 'objstore-replr-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const fresh = () => {
  const d = join(root, `d${dirs++}`);
  mkdirSync(d, { recursive: true });
  return d;
};
const bytes = (t: string) => Buffer.from(t);

describe('replication racing writes', () => {
  it('resync while keys are deleted queues them instead of failing on a missing object', async () => {
    const primary = new MemStore();
    const replica = new MemStore();
    const r = await ReplicatedStore.open(primary, replica);
    for (let i = 0; i < 20; i++) await r.put(`k${i}`, bytes('x'));
    await r.flush();
    const resync = r.resync();
    for (let i = 0; i < 20; i++) await r.delete(`k${i}`);
    await expect(resync).resolves.toBeGreaterThanOrEqual(0);
    await r.flush();
    expect((await replica.list('')).objects).toEqual([]);
    await r.close();
  });

  it('a rewrite of the journal keeps the intent of a write still on its way to the primary', async () => {
    const journalDir = fresh();
    const journal = join(journalDir, 'replication.journal');
    const primary = new Gated();
    const r = await ReplicatedStore.open(primary, new MemStore(), { journalDir });
    primary.hold('put', 'slow'); // journaled, then on its way to the primary
    const slow = r.put('slow', bytes('v'));
    for (let i = 0; i < 500 && !readFileSync(journal, 'utf8').includes('"k":"slow"'); i++)
      await new Promise((res) => setTimeout(res, 10));
    expect(readFileSync(journal, 'utf8')).toContain('"k":"slow"');
    // 10,001 other writes, copied, and the journal is rewritten with only what is pending
    await Promise.all(Array.from({ length: 10_001 }, (_, i) => r.put(`k${i % 50}`, bytes(String(i)))));
    await r.flush();
    for (let i = 0; i < 500 && readFileSync(journal, 'utf8').split('\n').length > 100; i++)
      await new Promise((res) => setTimeout(res, 10));
    expect(readFileSync(journal, 'utf8').split('\n').length).toBeLessThan(100);
    // a crash once the slow write lands would have lost its copy: the rewrite dropped the intent
    expect(readFileSync(journal, 'utf8')).toContain('"k":"slow"');
    primary.release('put');
    await slow;
    await r.flush();
    await r.close();
  }, 60_000);

  it('a bad key is refused before its intent is journaled (its copy was retried for ever, and flush never returned)', async () => {
    const journalDir = fresh();
    const r = await ReplicatedStore.open(new MemStore(), new MemStore(), { journalDir, retryMsMax: 10 });
    await expect(r.put('a/../b', bytes('x'))).rejects.toThrow(InvalidKeyError);
    await expect(r.delete('')).rejects.toThrow(InvalidKeyError);
    await expect(r.put(undefined as unknown as string, bytes('x'))).rejects.toThrow(InvalidKeyError);
    await expect(r.put('k', 42 as unknown as Uint8Array)).rejects.toThrow(/the body must be a Uint8Array/);
    expect(r.stats.pending).toBe(0);
    await r.flush();
    await r.close();
    expect(readFileSync(join(journalDir, 'replication.journal'), 'utf8')).toBe('');
  });

  it('a journal holding a bad key (from before keys were checked) is opened without it', async () => {
    const journalDir = fresh();
    writeFileSync(join(journalDir, 'replication.journal'), '{"i":1,"k":"a/../b"}\n{"i":2,"k":"good"}\n');
    const r = await ReplicatedStore.open(new MemStore(), new MemStore(), { journalDir, retryMsMax: 10 });
    await r.flush();
    expect(r.stats).toMatchObject({ pending: 0, failures: 0 });
    await r.close();
  });
});
