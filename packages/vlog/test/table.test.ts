// The key-value table on the log (DelosTable): replicas agree, reads are linearizable, conditional puts are
// decided at their log position, snapshots plus the log suffix rebuild a replica, and the log is trimmed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemStore } from '@strata/objstore';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FileLoglet,
  FileMetaStore,
  LogTable,
  MemoryLoglet,
  MemoryMetaStore,
  TableRecordError,
  TrimmedError,
  VirtualLog,
} from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'vlog-table-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** One log in memory, and a client per replica (each its own VirtualLog over the shared loglets). */
async function memLog() {
  const meta = new MemoryMetaStore();
  const loglets = new Map<number, MemoryLoglet>();
  const factory = async (_s: string, start: number, i: number) => {
    let l = loglets.get(i);
    if (!l) loglets.set(i, (l = new MemoryLoglet(start)));
    return l;
  };
  await VirtualLog.create(meta as never, factory, 'a');
  return () => VirtualLog.connect(meta as never, factory);
}

describe('LogTable', () => {
  it('replicas agree; a write on one is seen by a linearizable read on another', async () => {
    const client = await memLog();
    const a = await LogTable.open(await client());
    const b = await LogTable.open(await client());
    await a.put('x', '1');
    expect(b.getLocal('x')).toBeUndefined(); // not applied there yet
    expect(await b.get('x')).toBe('1'); // get syncs to the tail first
    await b.put('y', '2');
    await b.delete('x');
    expect(await a.scan()).toEqual([['y', '2']]);
    expect(await b.scan()).toEqual(await a.scan());
  });

  it('of racing conditional puts on one key, exactly one takes effect, the same on every replica', async () => {
    const client = await memLog();
    const rs = await Promise.all([0, 1, 2, 3].map(async () => LogTable.open(await client())));
    const won = await Promise.all(rs.map((t, i) => t.compareAndSet('leader', null, `r${i}`)));
    expect(won.filter(Boolean)).toHaveLength(1);
    const winner = `r${won.indexOf(true)}`;
    for (const t of rs) expect(await t.get('leader')).toBe(winner);
    // a CAS on the current value succeeds, on a stale one fails
    expect(await rs[0]!.compareAndSet('leader', winner, 'next')).toBe(true);
    expect(await rs[1]!.compareAndSet('leader', winner, 'stale')).toBe(false);
    expect(await rs[2]!.compareAndSet('leader', 'next', null)).toBe(true);
    expect(await rs[3]!.get('leader')).toBeUndefined();
  });

  it('any sequence of operations from any replicas equals a model applied in order (property)', async () => {
    const op = fc.oneof(
      fc.record({
        t: fc.constant('put' as const),
        k: fc.constantFrom('a', 'b', 'c'),
        v: fc.string({ maxLength: 4 }),
      }),
      fc.record({ t: fc.constant('del' as const), k: fc.constantFrom('a', 'b', 'c') }),
      fc.record({
        t: fc.constant('cas' as const),
        k: fc.constantFrom('a', 'b', 'c'),
        e: fc.option(fc.string({ maxLength: 4 }), { nil: null }),
        v: fc.option(fc.string({ maxLength: 4 }), { nil: null }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(2), op), { maxLength: 30 }), async (ops) => {
        const client = await memLog();
        const rs = await Promise.all([0, 1, 2].map(async () => LogTable.open(await client())));
        const model = new Map<string, string>();
        for (const [r, o] of ops) {
          const t = rs[r]!;
          if (o.t === 'put') {
            await t.put(o.k, o.v);
            model.set(o.k, o.v);
          } else if (o.t === 'del') {
            await t.delete(o.k);
            model.delete(o.k);
          } else {
            const ok = (model.get(o.k) ?? null) === o.e;
            expect(await t.compareAndSet(o.k, o.e, o.v)).toBe(ok);
            if (ok) o.v === null ? model.delete(o.k) : model.set(o.k, o.v);
          }
        }
        const want = [...model].sort(([x], [y]) => (x < y ? -1 : 1));
        for (const t of rs) expect(await t.scan()).toEqual(want);
      }),
      { numRuns: 40 },
    );
  });

  it('a new replica starts from the newest snapshot plus the log suffix; the log is trimmed below it', async () => {
    const dir = join(root, 'snap');
    // one FileLoglet per segment in this process, shared by the replicas' clients (a directory is locked)
    const open = new Map<number, Promise<FileLoglet>>();
    const factory = (spec: string, s: number, i: number) => {
      let l = open.get(i);
      if (!l) open.set(i, (l = FileLoglet.open(join(dir, `${spec}-${i}`), s)));
      return l;
    };
    const meta = () => new FileMetaStore(join(dir, 'meta.json'));
    await VirtualLog.create(meta() as never, factory, 'seg');
    const store = new MemStore();
    const a = await LogTable.open(await VirtualLog.connect(meta() as never, factory), { snapshots: store });
    for (let i = 0; i < 200; i++) await a.put(`k${i % 50}`, `v${i}`);
    const at = await a.snapshotAndTrim();
    expect(at).toBe(200);
    for (let i = 0; i < 20; i++) await a.delete(`k${i}`);
    // a replica with the snapshot store: snapshot at 200, then 20 records
    const b = await LogTable.open(await VirtualLog.connect(meta() as never, factory), { snapshots: store });
    expect(b.position).toBe(220);
    expect(await b.scan()).toEqual(await a.scan());
    expect(b.size).toBe(30);
    // a newer snapshot object that is malformed (not ours, or damaged) is named with what is wrong
    const key = (await store.list('table/snapshot-')).objects.at(-1)!.key;
    const replica = async () =>
      LogTable.open(await VirtualLog.connect(meta() as never, factory), { snapshots: store });
    for (const [body, why] of [
      ['{"position": 200, "entries": [["k1", "v"], 7]}', 'entry 1 is not a [key, value] pair of strings'],
      ['{"position": -1, "entries": []}', 'its position is not a whole number >= 0'],
      ['{"position": 200, "entries": {}}', 'its entries are not an array'],
      ['null', 'not a JSON object'],
    ]) {
      await store.put(`${key}~`, Buffer.from(body!));
      await expect(replica()).rejects.toThrow(`snapshot ${key}~ is malformed: ${why}`);
    }
    await store.delete(`${key}~`);
    expect((await replica()).position).toBe(220);
    // without the snapshots the trimmed prefix is gone, and the error says so
    await expect(LogTable.open(await VirtualLog.connect(meta() as never, factory))).rejects.toBeInstanceOf(
      TrimmedError,
    );
  });

  it('keeps working across a reconfiguration of the log under it', async () => {
    const client = await memLog();
    const v = await client();
    const t = await LogTable.open(v);
    await t.put('before', '1');
    await v.reconfigure('b');
    await t.put('after', '2');
    const fresh = await LogTable.open(await client());
    expect(await fresh.scan()).toEqual([
      ['after', '2'],
      ['before', '1'],
    ]);
  });

  it('a record that is not a table command is an error naming its position', async () => {
    const client = await memLog();
    const v = await client();
    await v.append([Buffer.from('{"op":"put","k":"a","v":"1"}'), Buffer.from('not json')]);
    await expect(LogTable.open(await client())).rejects.toThrow(/log position 1: not a table command/);
    await v.append([Buffer.from('{"op":"put","k":7}')]);
    await expect(LogTable.open(await client())).rejects.toBeInstanceOf(TableRecordError);
  });

  it('refuses a read batch of less than one record (0 read nothing and synced forever without yielding)', async () => {
    const log = new MemoryLoglet(0);
    await (await LogTable.open(log)).put('a', '1');
    for (const readBatch of [0, -1, 1.5, Number.NaN])
      await expect(LogTable.open(log, { readBatch })).rejects.toThrow(
        /LogTable: readBatch must be a whole number of at least 1, got/,
      );
    await expect(LogTable.open(log, { prefix: '' })).rejects.toThrow(
      "LogTable: prefix must be a non-empty string, got ''",
    );
    expect((await LogTable.open(log, { readBatch: 1 })).getLocal('a')).toBe('1');
  });

  it('a log that reads nothing below the tail it reports is an error, not a sync that never ends', async () => {
    class Forgetful extends MemoryLoglet {
      override async read() {
        return [];
      }
    }
    const log = new Forgetful(0);
    await log.append([Buffer.from('{"op":"put","k":"a","v":"1"}')]);
    await expect(LogTable.open(log)).rejects.toThrow(
      'the log read from position 0 returned nothing, though its tail is past it',
    );
  });
});
