// The WAL's segment files: records of many group commits, recovery of a torn record, packing while writes go
// on, a failed pack, a failed sync and a segment whose creation failed.
import {
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { hash64Words } from '@strata/highwayhash';
import fc from 'fast-check';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  decodeRecords,
  etagOf,
  FileStore,
  MemStore,
  openStore,
  type PutOptions,
  WalStore,
} from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'objstore-walseg-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `d${n++}`);
const opts = (dir: string) => ({ dir, packIntervalMs: 3_600_000, packBytes: 1 << 30 });

/**
 * A WAL record of `body` whose checksum covers the whole body (as records of ops other than 4 have it):
 * u32 length, the HighwayHash-64 (lo, hi) under the WAL's checksum key, the body.
 */
function wholeBodyRecord(body: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt32LE(body.length, 0);
  const h = hash64Words(
    new Uint8Array(32).map((_, i) => 0xa5 ^ (i * 7)),
    body,
    new Uint32Array(2),
  );
  head.writeUInt32LE(h[0]!, 4);
  head.writeUInt32LE(h[1]!, 8);
  return Buffer.concat([head, body]);
}

function segments(dir: string): { name: string; buf: Buffer }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.wal'))
    .sort()
    .map((name) => ({ name, buf: readFileSync(join(dir, name)) }));
}

/** A memory store whose pack puts wait at a gate and can be made to fail. */
class GatedStore extends MemStore {
  gate: Promise<void> | undefined;
  fail = false;
  override async put(key: string, body: Uint8Array | Readable, opts?: PutOptions): Promise<string> {
    if (key.startsWith('.wal-packs/')) {
      await this.gate;
      if (this.fail) throw new Error('the standard tier is down');
    }
    return super.put(key, body, opts);
  }
}

describe('WAL segments', () => {
  it('refuses options that cannot work, naming them (an interval past 24.8 days fired every millisecond)', async () => {
    const store = new MemStore();
    for (const [bad, msg] of [
      [
        { packIntervalMs: 30 * 86_400_000 },
        /packIntervalMs must be a number from 1 to 2147483647, got 2592000000/,
      ],
      [{ flushIntervalMs: -1 }, /flushIntervalMs must be a number from 0/],
      [{ flushIntervalMs: Number.NaN }, /flushIntervalMs .* got NaN/],
      [{ packBytes: 0 }, /packBytes must be a number from 1/],
      [{ memBytesMax: '1' }, /memBytesMax .* got 1/],
      [{ compactLiveRatio: 2 }, /compactLiveRatio must be a number from 0 to 1, got 2/],
      [{ closeStore: 'yes' }, /closeStore must be a boolean, got yes/],
    ] as const) {
      const dir = fresh();
      await expect(WalStore.open(store, { dir, ...(bad as object) })).rejects.toThrow(msg);
      expect(existsSync(dir)).toBe(false); // refused before the directory is made or locked
    }
    const w = await WalStore.open(store, { dir: fresh(), packIntervalMs: 2 ** 31 - 1, flushIntervalMs: 0 });
    await w.close();
  });
  it('closes the store beneath only with closeStore, which openStore sets (its stack left the backend open)', async () => {
    class Closing extends MemStore {
      closes = 0;
      override async close(): Promise<void> {
        this.closes++;
      }
    }
    const kept = new Closing();
    await (await WalStore.open(kept, opts(fresh()))).close();
    expect(kept.closes).toBe(0); // a WAL may be opened again over the same store
    const owned = new Closing();
    const w = await WalStore.open(owned, { ...opts(fresh()), closeStore: true });
    await w.put('k', new Uint8Array(3));
    await w.close();
    expect(owned.closes).toBe(1);
    // openStore's WAL closes what is under it, as its other layers do
    const closeSpy = vi.spyOn(FileStore.prototype, 'close');
    try {
      const s = await openStore(`file:${fresh()}`, { wal: { dir: fresh() } });
      await s.put('k', new Uint8Array(3));
      await s.close();
      expect(closeSpy).toHaveBeenCalledTimes(1);
    } finally {
      closeSpy.mockRestore();
    }
  });
  it('hold the records of many group commits back to back, and they survive a restart', async () => {
    const store = new MemStore();
    const dir = fresh();
    const w = await WalStore.open(store, opts(dir));
    const value = (i: number) => Buffer.alloc(200 << 10, i); // under walObjectBytesMax: goes to the WAL
    // 40 x 200 KiB = 8 MB in ten group commits, written at their offsets
    for (let i = 0; i < 40; i += 4)
      await Promise.all([0, 1, 2, 3].map((j) => w.put(`k/${i + j}`, value(i + j))));
    await w.close();
    const segs = segments(dir);
    const written = segs.filter((s) => decodeRecords(s.buf).records.length > 0);
    expect(written).toHaveLength(1);
    const { records, validBytes } = decodeRecords(written[0]!.buf);
    expect(records).toHaveLength(40);
    // whole records only, nothing after them
    expect(validBytes).toBe(written[0]!.buf.length);
    const r = await WalStore.open(store, opts(dir));
    for (let i = 0; i < 40; i++) expect(Buffer.from(await r.get(`k/${i}`)).equals(value(i))).toBe(true);
    await r.close();
  });

  it('refuses a record whose checksum holds but whose op it does not know, naming the segment (it was replayed as a delete)', async () => {
    const store = new MemStore();
    const dir = fresh();
    let w = await WalStore.open(store, opts(dir));
    await w.put('u/kept', Buffer.from('acknowledged'));
    await w.close();
    const seg = segments(dir).find((s) => decodeRecords(s.buf).records.length > 0)!;
    // a record of an op a newer version might write (9), its checksum right: over the whole body
    const withNewer = Buffer.concat([
      seg.buf,
      wholeBodyRecord(Buffer.concat([Buffer.from([9, 6, 0]), Buffer.from('u/kept')])),
    ]);
    expect(() => decodeRecords(withNewer)).toThrow(
      `WAL record at byte ${seg.buf.length}: op 9 is not one this version reads`,
    );
    writeFileSync(join(dir, seg.name), withNewer);
    await expect(WalStore.open(store, opts(dir))).rejects.toThrow(
      `${join(dir, seg.name)}: WAL record at byte`,
    );
    // the segment is left as it was (not cut), and the put is still there for the version that reads it
    expect(readFileSync(join(dir, seg.name)).equals(withNewer)).toBe(true);
    writeFileSync(join(dir, seg.name), seg.buf);
    w = await WalStore.open(store, opts(dir));
    expect(Buffer.from(await w.get('u/kept')).toString()).toBe('acknowledged');
    await w.close();
  });

  it('reads damaged segment bytes to their last whole record, never throwing anything else (fuzzed)', async () => {
    const store = new MemStore();
    const dir = fresh();
    const w = await WalStore.open(store, opts(dir));
    for (let i = 0; i < 6; i++) await w.put(`z/${i}`, Buffer.alloc(40 + i * 30, i));
    await w.delete('z/0');
    await w.close();
    const seg = segments(dir).find((s) => decodeRecords(s.buf).records.length > 0)!;
    const whole = decodeRecords(seg.buf).records.length;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(seg.buf.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.nat(seg.buf.length),
        (flips, cut) => {
          const b = Buffer.from(seg.buf.subarray(0, cut));
          for (const [at, v] of flips) if (at < b.length) b[at] = v;
          try {
            const { records, validBytes } = decodeRecords(b);
            expect(validBytes).toBeLessThanOrEqual(b.length);
            expect(records.length).toBeLessThanOrEqual(whole);
          } catch (e) {
            expect((e as Error).message).toMatch(
              /^WAL record at byte \d+: op \d+ is not one this version reads/,
            );
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('cuts a torn record at restart and keeps every acknowledged one', async () => {
    const store = new MemStore();
    const dir = fresh();
    let w = await WalStore.open(store, opts(dir));
    for (let i = 0; i < 3; i++) await w.put(`a/${i}`, Buffer.from(`value ${i}`));
    await w.close();
    // a crash in the middle of the next group commit: a header that promises more bytes than arrived
    const seg = segments(dir).find((s) => decodeRecords(s.buf).records.length > 0)!;
    const { validBytes } = decodeRecords(seg.buf);
    const partial = Buffer.alloc(200, 0x5a);
    partial.writeUInt32LE(500, 0);
    const torn = Buffer.concat([seg.buf.subarray(0, validBytes), partial]);
    writeFileSync(join(dir, seg.name), torn);
    w = await WalStore.open(store, opts(dir));
    expect((await w.list('a/')).objects.map((o) => o.key)).toEqual(['a/0', 'a/1', 'a/2']);
    await w.put('a/3', Buffer.from('value 3'));
    await w.close();
    w = await WalStore.open(store, opts(dir));
    for (let i = 0; i < 4; i++) expect(Buffer.from(await w.get(`a/${i}`)).toString()).toBe(`value ${i}`);
    await w.close();
  });

  it('replays puts written in the older record format, and stops at a put whose data does not match its etag', async () => {
    const store = new MemStore();
    const dir = fresh();
    let w = await WalStore.open(store, opts(dir));
    await w.put('f/new', Buffer.from('checked by its etag'));
    await w.close();
    const seg = segments(dir).find((s) => decodeRecords(s.buf).records.length > 0)!;
    expect(decodeRecords(seg.buf).records[0]).toMatchObject({
      op: 4,
      key: 'f/new',
      etag: etagOf(Buffer.from('checked by its etag')),
    });
    // a record as the WAL wrote puts before: op 1, the checksum over the whole body (key and data)
    const old = (key: string, data: Buffer) =>
      wholeBodyRecord(Buffer.concat([Buffer.from([1, key.length, 0]), Buffer.from(key), data]));
    writeFileSync(join(dir, seg.name), Buffer.concat([seg.buf, old('f/old', Buffer.from('older format'))]));
    w = await WalStore.open(store, opts(dir));
    expect(Buffer.from(await w.get('f/old')).toString()).toBe('older format');
    expect(Buffer.from(await w.get('f/new')).toString()).toBe('checked by its etag');
    await w.close();
    // a flipped data byte (the checksum covers the key and the etag, the etag the data): that record and
    // everything after it are cut at the next open
    const [first, ...rest] = segments(dir).filter((s) => decodeRecords(s.buf).records.length > 0);
    expect(rest).toEqual([]);
    const flipped = Buffer.from(first!.buf);
    flipped[flipped.indexOf('checked by its etag') + 3]! ^= 1;
    expect(decodeRecords(flipped).records).toEqual([]);
    writeFileSync(join(dir, first!.name), flipped);
    w = await WalStore.open(store, opts(dir));
    await expect(w.get('f/new')).rejects.toThrow();
    expect(await w.head('f/old')).toBeUndefined();
    await w.close();
  });

  it("keeps a write's modification time across a reopen before it is packed (it was the reopen's)", async () => {
    const store = new MemStore();
    const dir = fresh();
    let w = await WalStore.open(store, opts(dir));
    await w.put('t/k', Buffer.from('v'));
    await w.put('t/gone', Buffer.from('v'));
    await w.delete('t/gone');
    const written = (await w.head('t/k'))!.modifiedMs;
    await w.close();
    await new Promise((r) => setTimeout(r, 20)); // the reopen's clock is past the write's
    for (const packed of [false, true]) {
      w = await WalStore.open(store, opts(dir));
      expect((await w.head('t/k'))?.modifiedMs).toBe(written);
      expect((await w.list('t/')).objects.map((o) => [o.key, o.modifiedMs])).toEqual([['t/k', written]]);
      if (packed) await w.packNow();
      await w.close();
    }
    w = await WalStore.open(store, opts(dir));
    expect((await w.head('t/k'))?.modifiedMs).toBe(written);
    await w.close();
  });

  it('opens a WAL whose records carry no time (written before 2026-12-07; a byte fixture): the open stands in', async () => {
    // written by the WAL of 2026-12-07 04:20 UTC (walObjectBytesMax 16): put a 'old format', put c 'small c',
    // put c of 25 bytes (to the store, with a marker), delete d
    const fixture =
      '1e0000009f8a134688bbbde504010061eb14701d8d1eb4736ee65a416b8effd16f6c6420666f726d61741b0000008f1779e1cd' +
      '2e29dd04010063df09f9117dd29cebe17f4fb02c152fef736d616c6c206304000000b7dc383ea6f986f903010063040000001c' +
      '2a09e99717c6ba02010064';
    const store = new MemStore();
    await store.put('c', Buffer.from('a large body of c, direct'));
    await store.put('d', Buffer.from('deleted through the WAL'));
    const dir = fresh();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '000000000000.wal'), Buffer.from(fixture, 'hex'));
    const records = decodeRecords(Buffer.from(fixture, 'hex')).records;
    expect(records.map((r) => [r.op, r.key, r.modifiedMs])).toEqual([
      [4, 'a', undefined],
      [4, 'c', undefined],
      [3, 'c', undefined],
      [2, 'd', undefined],
    ]);
    const opened = Date.now();
    let w = await WalStore.open(store, { ...opts(dir), walObjectBytesMax: 16 });
    expect(Buffer.from(await w.get('a')).toString()).toBe('old format');
    expect((await w.head('a'))!.modifiedMs).toBeGreaterThanOrEqual(opened);
    expect(Buffer.from(await w.get('c')).toString()).toBe('a large body of c, direct');
    expect(await w.head('d')).toBeUndefined();
    // new records after the old ones, in the next segment
    await w.put('b', Buffer.from('new format'));
    const written = (await w.head('b'))!.modifiedMs;
    await w.close();
    w = await WalStore.open(store, opts(dir));
    expect(Buffer.from(await w.get('a')).toString()).toBe('old format');
    expect(Buffer.from(await w.get('b')).toString()).toBe('new format');
    expect((await w.head('b'))?.modifiedMs).toBe(written);
    expect((await store.list('')).objects.map((o) => o.key)).toEqual(['c']); // d purged at the first open
    await w.close();
  });

  it('packs in steps between group commits while writes go on, and closes mid-pack without losing a write', async () => {
    // several rounds: the close has to land while a pack step waits for a commit, which it does in some
    for (let round = 0; round < 10; round++) {
      const store = new MemStore();
      const dir = fresh();
      const w = await WalStore.open(store, { dir, flushIntervalMs: 2, packIntervalMs: 3_600_000 });
      const acked: number[] = [];
      const value = (i: number) => Buffer.alloc(64 << 10, i & 0xff); // 64 KiB: a pack of many steps
      const writers = Array.from({ length: 8 }, async (_, k) => {
        for (let i = k; ; i += 8) {
          try {
            await w.put(`p/${i}`, value(i));
          } catch {
            return; // closed
          }
          acked.push(i);
        }
      });
      // enough acknowledged writes for a pack of many steps, however slow the machine
      for (let t = 0; acked.length <= 20 && t < 2000; t++) await new Promise((r) => setTimeout(r, 5));
      const packing = w.packNow(); // its steps wait for the commits the writers keep due
      await new Promise((r) => setTimeout(r, 5));
      // closed while writes are waiting for a commit that close cancels: a pack step waiting for that
      // commit must go on, and every acknowledged write must be kept
      await w.close();
      await packing;
      await Promise.all(writers);
      expect(acked.length).toBeGreaterThan(20);
      const r = await WalStore.open(store, opts(dir));
      for (const i of acked) expect(Buffer.from(await r.get(`p/${i}`)).equals(value(i))).toBe(true);
      await r.close();
    }
  }, 30_000);

  it('keeps the writes a pack is storing readable, under newer ones, and packs them later if the pack fails', async () => {
    const store = new GatedStore();
    const dir = fresh();
    const w = await WalStore.open(store, opts(dir));
    const big = Buffer.alloc(300 << 10, 7); // over walObjectBytesMax: written to the store directly
    for (let i = 0; i < 6; i++) await w.put(`f/${i}`, Buffer.from(`v${i}`));
    const expectState = async (s: WalStore, model: Map<string, Buffer>) => {
      expect((await s.list('f/')).objects.map((o) => o.key)).toEqual([...model.keys()].sort());
      for (const [k, v] of model) {
        expect(Buffer.from(await s.get(k)).equals(v)).toBe(true);
        expect((await s.head(k))?.size).toBe(v.length);
      }
    };
    const model = new Map([0, 1, 2, 3, 4, 5].map((i) => [`f/${i}`, Buffer.from(`v${i}`)]));
    for (const round of ['fails', 'succeeds']) {
      let open!: () => void;
      store.gate = new Promise<void>((r) => (open = r));
      store.fail = round === 'fails';
      const packing = w.packNow();
      await new Promise((r) => setTimeout(r, 20)); // the pack is waiting at the gate with its keys frozen
      await expectState(w, model);
      // writes while the pack is in progress: a new version, a delete, a direct write, a new key
      const k = round === 'fails' ? 0 : 3;
      await w.put(`f/${k}`, Buffer.from(`new ${round}`));
      model.set(`f/${k}`, Buffer.from(`new ${round}`));
      await w.delete(`f/${k + 1}`);
      model.delete(`f/${k + 1}`);
      await w.put(`f/${k + 2}`, big);
      model.set(`f/${k + 2}`, big);
      await w.put(`f/n${round}`, Buffer.from(round));
      model.set(`f/n${round}`, Buffer.from(round));
      await expectState(w, model);
      open();
      if (round === 'fails') await expect(packing).rejects.toThrow('the standard tier is down');
      else await packing;
      await expectState(w, model);
    }
    store.gate = undefined;
    store.fail = false;
    await w.packNow();
    await expectState(w, model);
    await w.close();
    const r = await WalStore.open(store, opts(dir));
    await expectState(r, model);
    await r.close();
  });

  it('reads every write right while its record memory is reused across packs, a failed one among them', async () => {
    const store = new GatedStore();
    const dir = fresh();
    const w = await WalStore.open(store, { ...opts(dir), packBytes: 1 << 20 });
    // distinct bytes per write and round, so that a read of reused memory would not match
    const value = (round: number, i: number) => Buffer.alloc(700 + (i % 300), (round * 31 + i) & 0xff);
    const check = async (upTo: number) => {
      for (let round = 0; round < upTo; round++)
        for (let i = 0; i < 400; i += 7) {
          const got = Buffer.from(await w.get(`r/${round}/${i}`));
          expect(got.equals(value(round, i)), `r/${round}/${i}`).toBe(true);
        }
    };
    // each round is about 400 KB of records (several slabs): after a pack retires a layer's slabs, the next
    // rotation frees them and the following round writes into them
    for (let round = 0; round < 8; round++) {
      store.fail = round === 3; // this round's pack fails: its writes stay in memory, in their slabs
      await Promise.all(Array.from({ length: 400 }, (_, i) => w.put(`r/${round}/${i}`, value(round, i))));
      if (round === 3) await expect(w.packNow()).rejects.toThrow('the standard tier is down');
      else await w.packNow();
      await check(round + 1);
    }
    store.fail = false;
    await w.close();
    const r = await WalStore.open(store, opts(dir));
    for (let round = 0; round < 8; round++)
      for (let i = 0; i < 400; i++)
        expect(Buffer.from(await r.get(`r/${round}/${i}`)).equals(value(round, i))).toBe(true);
    await r.close();
  });

  it('keeps retired slabs for reuse up to memBytesMax, and drops those beyond', async () => {
    type Slabs = { newSlab: (n: number) => Buffer; slabCount: number; freeSlabs: Buffer[] };
    const run = async (memBytesMax: number) => {
      const w = await WalStore.open(new MemStore(), { ...opts(fresh()), packBytes: 128 << 10, memBytesMax });
      const inside = w as unknown as Slabs;
      const allocations: number[] = [];
      const newSlab = inside.newSlab.bind(w);
      inside.newSlab = (n) => {
        allocations[allocations.length - 1]!++;
        return newSlab(n);
      };
      // rounds of ~1.5 MB (24 slabs), each packed: a round's slabs are free two rounds later (records of
      // 1,040 bytes: 992 of data since records carry their time, so that a round does not spill into a 25th)
      for (let round = 0; round < 6; round++) {
        allocations.push(0);
        await Promise.all(
          Array.from({ length: 1500 }, (_, i) => w.put(`r/${round}/${i}`, Buffer.alloc(992, i))),
        );
        await w.packNow();
      }
      await w.put('last', Buffer.from('x'));
      await w.packNow();
      const counts = { allocations, slabCount: inside.slabCount, free: inside.freeSlabs.length };
      await w.close();
      return counts;
    };
    // the default bound (256 MiB): from the third round on, every slab is a reused one
    const roomy = await run(256 << 20);
    expect(roomy.allocations.slice(3)).toEqual([0, 0, 0]);
    // a bound of 1 MiB (16 slabs; writers wait for packs beyond it): slabs beyond it are dropped
    const tight = await run(1 << 20);
    expect(tight.free).toBeLessThanOrEqual(16);
    expect(tight.slabCount).toBeLessThanOrEqual(17);
    expect(tight.allocations.slice(3).reduce((a, b) => a + b)).toBeGreaterThan(0);
  });

  it.skipIf(!existsSync('/proc/self/fdinfo'))(
    'writes segments through O_DSYNC handles, the current one and the one prepared next (a commit has no other sync)',
    async () => {
      const w = await WalStore.open(new MemStore(), opts(fresh()));
      await w.put('d/0', Buffer.from('x'));
      const flagsOf = (fd: number) => {
        const line = readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1').match(/^flags:\s+([0-7]+)$/m);
        return Number.parseInt(line![1]!, 8);
      };
      const wal = w as unknown as { fh: { fd: number }; next: Promise<{ fh: { fd: number } }> };
      expect(flagsOf(wal.fh.fd) & constants.O_DSYNC).toBe(constants.O_DSYNC);
      expect(flagsOf((await wal.next).fh.fd) & constants.O_DSYNC).toBe(constants.O_DSYNC);
      await w.close();
    },
  );

  it('a failed pack and then a failed commit leave the acknowledged version readable', async () => {
    const store = new GatedStore();
    const w = await WalStore.open(store, opts(fresh()));
    await w.put('k', Buffer.from('v1')); // acknowledged
    let openPack!: () => void;
    store.gate = new Promise<void>((r) => {
      openPack = r;
    });
    store.fail = true;
    const packing = w.packNow(); // the rotation freezes v1; the pack then waits at the gate
    const inner = w as unknown as { frozenMem?: unknown; fh: { writev: () => Promise<unknown> } };
    while (inner.frozenMem === undefined) await new Promise((r) => setTimeout(r, 1));
    let openWrite!: () => void;
    const writeGate = new Promise<void>((r) => {
      openWrite = r;
    });
    inner.fh.writev = async () => {
      await writeGate;
      throw new Error('EIO: i/o error, write');
    };
    const second = w.put('k', Buffer.from('v2')); // the first write of k since the rotation
    expect(Buffer.from(await w.get('k')).toString()).toBe('v2');
    openPack();
    await expect(packing).rejects.toThrow('the standard tier is down');
    openWrite();
    await expect(second).rejects.toThrow('EIO');
    // v2 was never durable: undone to v1, which was (it stays in the WAL for the next pack)
    expect(Buffer.from(await w.get('k')).toString()).toBe('v1');
    await w.close();
  });

  it('a failed commit undoes the writes of its batch and of the one waiting behind it, newest first', async () => {
    const w = await WalStore.open(new MemStore(), opts(fresh()));
    await w.put('a', Buffer.from('kept'));
    let entered!: () => void;
    const inWrite = new Promise<void>((r) => {
      entered = r;
    });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const fh = (w as unknown as { fh: { writev: () => Promise<void> } }).fh;
    fh.writev = async () => {
      entered();
      await gate;
      throw new Error('EIO: i/o error, write');
    };
    const first = w.put('a', Buffer.from('x1'));
    await inWrite; // the first batch is being written; these two wait in the next one
    const second = [w.put('a', Buffer.from('x2')), w.put('b', Buffer.from('y'))];
    expect(Buffer.from(await w.get('a')).toString()).toBe('x2');
    release();
    for (const p of [first, ...second]) await expect(p).rejects.toThrow('EIO');
    expect(Buffer.from(await w.get('a')).toString()).toBe('kept');
    await expect(w.get('b')).rejects.toThrow();
    await w.close();
  });

  it('a write waiting for its commit when a rotation freezes the memory layer is undone if that commit fails, and not packed', async () => {
    const store = new MemStore();
    const w = await WalStore.open(store, opts(fresh()));
    await w.put('a', Buffer.from('kept'));
    // the rotation waits for the prepared segment; a write arrives meanwhile, for the commit after it
    type Seg = { fh: { writev: (...a: unknown[]) => Promise<unknown> } };
    const wal = w as unknown as { next: Promise<Seg> };
    const prepared = await wal.next;
    let ready!: () => void;
    wal.next = new Promise<Seg>((r) => {
      ready = () => r(prepared);
    });
    prepared.fh.writev = () => Promise.reject(new Error('EIO: i/o error, write'));
    const packed = w.packNow();
    await new Promise((r) => setTimeout(r, 10)); // the rotation is waiting for the segment
    const lost = w.put('a', Buffer.from('x'));
    const lostToo = w.put('b', Buffer.from('y'));
    ready();
    await expect(lost).rejects.toThrow('EIO');
    await expect(lostToo).rejects.toThrow('EIO');
    await packed;
    expect(Buffer.from(await w.get('a')).toString()).toBe('kept');
    await expect(w.get('b')).rejects.toThrow();
    await w.close();
    // nor in the pack: a reopened WAL has 'kept'
    const r = await WalStore.open(store, opts(fresh()));
    expect(Buffer.from(await r.get('a')).toString()).toBe('kept');
    await expect(r.get('b')).rejects.toThrow();
    await r.close();
  });

  it('a write waiting for its commit when a rotation freezes the memory layer is read at once, kept after the pack and on reopen', async () => {
    const store = new MemStore();
    const dir = fresh();
    const w = await WalStore.open(store, opts(dir));
    await w.put('a', Buffer.from('old'));
    const wal = w as unknown as { next: Promise<unknown> };
    const prepared = await wal.next;
    let ready!: () => void;
    wal.next = new Promise((r) => {
      ready = () => r(prepared);
    });
    const packed = w.packNow();
    await new Promise((r) => setTimeout(r, 10)); // the rotation is waiting for the segment
    const writes = [
      w.put('a', Buffer.from('x1')),
      w.put('a', Buffer.from('x2')),
      w.put('c', Buffer.from('z')),
    ];
    expect(Buffer.from(await w.get('a')).toString()).toBe('x2');
    ready();
    await Promise.all(writes);
    await packed;
    expect(Buffer.from(await w.get('a')).toString()).toBe('x2');
    expect(Buffer.from(await w.get('c')).toString()).toBe('z');
    await w.packNow(); // the moved writes go in the next pack, their slabs still intact
    expect(Buffer.from(await w.get('a')).toString()).toBe('x2');
    expect(Buffer.from(await w.get('c')).toString()).toBe('z');
    await w.close();
    const r = await WalStore.open(store, opts(dir));
    expect(Buffer.from(await r.get('a')).toString()).toBe('x2');
    expect(Buffer.from(await r.get('c')).toString()).toBe('z');
    await r.close();
  });

  it('a pack asked for while the WAL closes does nothing once the close has returned (the directory is released)', async () => {
    const store = new MemStore();
    const dir = fresh();
    const w = await WalStore.open(store, opts(dir));
    await w.put('a', Buffer.from('kept'));
    // a slow store: a pack would still be writing when the close returns
    const put = store.put.bind(store);
    store.put = async (...a: Parameters<typeof put>) => {
      await new Promise((r) => setTimeout(r, 50));
      return put(...a);
    };
    const closing = w.close();
    const packing = w.packNow();
    await closing;
    const files = readdirSync(dir).sort();
    const objects = (await store.list('')).objects.map((o) => o.key);
    await packing;
    expect(readdirSync(dir).sort()).toEqual(files);
    expect((await store.list('')).objects.map((o) => o.key)).toEqual(objects);
    const r = await WalStore.open(store, opts(dir));
    expect(Buffer.from(await r.get('a')).toString()).toBe('kept');
    await r.close();
  });

  it('a close while a pack fails still commits the waiting writes and releases the directory', async () => {
    const store = new MemStore();
    const dir = fresh();
    const w = await WalStore.open(store, opts(dir));
    await w.put('a', Buffer.from('kept'));
    const put = store.put.bind(store);
    let fail = true;
    store.put = async (...a: Parameters<typeof put>) => {
      await new Promise((r) => setTimeout(r, 20));
      if (fail) throw new Error('the store is down');
      return put(...a);
    };
    const packing = w.packNow();
    packing.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 5)); // the pack is writing; this write waits for its commit's timer
    const waiting = w.put('b', Buffer.from('waits'));
    await w.close();
    await expect(packing).rejects.toThrow('the store is down');
    await expect(waiting).resolves.toBeTypeOf('string');
    fail = false;
    const r = await WalStore.open(store, opts(dir)); // the directory is not left locked
    expect(Buffer.from(await r.get('a')).toString()).toBe('kept');
    expect(Buffer.from(await r.get('b')).toString()).toBe('waits');
    await r.close();
  });

  it('takes no more writes after a failed durable write, keeps what was acknowledged, and recovers on reopen', async () => {
    const store = new MemStore();
    const dir = fresh();
    const w = await WalStore.open(store, opts(dir));
    await w.put('a/0', Buffer.from('kept'));
    // the next group commit's write (O_DSYNC: the write is the data sync) fails with an I/O error: a later
    // one must not be trusted either
    const fh = (w as unknown as { fh: { writev: () => Promise<void> } }).fh;
    fh.writev = () => Promise.reject(new Error('EIO: i/o error, write'));
    await expect(w.put('a/1', Buffer.from('lost?'))).rejects.toThrow('EIO');
    await expect(w.put('a/2', Buffer.from('refused'))).rejects.toThrow(/stopped taking writes.*EIO/);
    expect(Buffer.from(await w.get('a/0')).toString()).toBe('kept');
    await expect(w.get('a/2')).rejects.toThrow();
    await w.close();
    const r = await WalStore.open(store, opts(dir));
    expect(Buffer.from(await r.get('a/0')).toString()).toBe('kept');
    await expect(r.get('a/2')).rejects.toThrow();
    await r.put('a/3', Buffer.from('after'));
    expect(Buffer.from(await r.get('a/3')).toString()).toBe('after');
    await r.close();
  });

  it('creates a segment again after preparing it failed (a failed creation leaves no file behind)', async () => {
    const store = new MemStore();
    const dir = fresh();
    const w = await WalStore.open(store, opts(dir));
    await w.put('s/0', Buffer.from('zero'));
    // the next fsync anywhere fails once: commits sync by writing through O_DSYNC, so that is the directory
    // sync of the segment prepared after this rotation
    const fh = (w as unknown as { fh: object }).fh;
    const proto = Object.getPrototypeOf(fh) as { sync: () => Promise<void> };
    const sync = proto.sync;
    proto.sync = function (this: unknown) {
      proto.sync = sync;
      return Promise.reject(new Error('EIO: i/o error, fsync'));
    };
    try {
      await w.packNow();
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      proto.sync = sync;
    }
    // the next rotation creates that segment itself
    await w.put('s/1', Buffer.from('one'));
    await w.packNow();
    await w.put('s/2', Buffer.from('two'));
    await w.close();
    const r = await WalStore.open(store, opts(dir));
    for (const [k, v] of [
      ['s/0', 'zero'],
      ['s/1', 'one'],
      ['s/2', 'two'],
    ])
      expect(Buffer.from(await r.get(k!)).toString()).toBe(v);
    await r.close();
  });

  it('starts the next group commit before acknowledging the writers of the one that finished', async () => {
    const w = await WalStore.open(new MemStore(), { ...opts(fresh()), flushBytes: 1 });
    const fh = (w as unknown as { fh: { writev: (...a: unknown[]) => Promise<unknown> } }).fh;
    const writev = fh.writev.bind(fh);
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    let writes = 0;
    fh.writev = async (...a: unknown[]) => {
      writes++;
      if (writes === 1) await gate;
      return writev(...a);
    };
    const first = w.put('o/a', Buffer.from('a')); // past flushBytes: its commit starts now and waits
    const behind = [w.put('o/b', Buffer.from('b')), w.put('o/c', Buffer.from('c'))]; // the next batch
    let writesWhenAcknowledged = 0;
    const acknowledged = first.then(() => {
      writesWhenAcknowledged = writes;
    });
    open();
    await acknowledged;
    await Promise.all(behind);
    // the second commit was writing when the first one's writer went on (chained on a promise, it started
    // after every acknowledged writer's continuation, which then could not overlap a commit's write)
    expect(writesWhenAcknowledged).toBe(2);
    expect(w.stats.groupCommits).toBe(2);
    await w.close();
  });

  it('queues one group commit for a burst of writes past flushBytes, not one per write', async () => {
    const dir = fresh();
    const w = await WalStore.open(new MemStore(), { ...opts(dir), flushBytes: 1024 });
    const internals = w as unknown as { flush: (release: () => void) => Promise<void> };
    const flush = internals.flush.bind(w);
    let flushes = 0;
    internals.flush = (release) => {
      flushes++;
      return flush(release);
    };
    // each of these crosses flushBytes: one queued flush each would be 2,000 in a chain, and a pack's
    // rotation, queued behind them, would wait for all of them
    const value = Buffer.alloc(2048, 1);
    await Promise.all(Array.from({ length: 2000 }, (_, i) => w.put(`b/${i}`, value)));
    expect(w.stats.walAppends).toBe(2000);
    await w.close(); // its flush runs after every one queued before it
    expect(flushes).toBeLessThanOrEqual(4);
    const r = await WalStore.open(new MemStore(), opts(dir));
    expect((await r.list('b/', { limit: 5000 })).objects).toHaveLength(2000);
    await r.close();
  });

  it('makes writers wait for a pack past memBytesMax, and fails them with the cause if the pack fails', async () => {
    const store = new GatedStore();
    const dir = fresh();
    const w = await WalStore.open(store, { ...opts(dir), memBytesMax: 64 << 10 });
    const value = Buffer.alloc(1024, 2);
    for (let i = 0; i < 64; i++) await w.put(`m/${i}`, value); // 64 KiB: at the bound, not past it
    let open!: () => void;
    store.gate = new Promise<void>((r) => (open = r));
    await w.put('m/64', value); // past it now: the next writer waits for a pack
    let done = false;
    const waiting = w.put('m/65', value).then(() => void (done = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false);
    expect(w.stats.walAppends).toBe(65);
    open();
    await waiting;
    expect(w.stats.packsWritten).toBe(1);
    // a pack that fails: the waiting writer gets an error that says why, nothing acknowledged is lost
    store.fail = true;
    store.gate = undefined;
    for (let i = 66; i < 130; i++) await w.put(`m/${i}`, value); // 65 KiB since the pack
    await expect(w.put('m/130', value)).rejects.toThrow(
      /holds \d+ bytes not yet packed \(memBytesMax 65536\) and packing them to .* failed: the standard tier is down/,
    );
    store.fail = false;
    await w.put('m/130', value); // the store is back: the pack goes through and the write with it
    for (let i = 131; i < 195; i++) await w.put(`m/${i}`, value); // 65 KiB: past the bound again
    await w.close();
    // a write after the close is refused, not left waiting for a pack that will not come
    await expect(w.put('m/195', value)).rejects.toThrow('the WAL store is closed');
    const r = await WalStore.open(store, opts(dir));
    expect((await r.list('m/', { limit: 500 })).objects).toHaveLength(195);
    await r.close();
  });

  it('starts no pack from the commit of its close (it would open a segment after the close)', async () => {
    const store = new MemStore();
    const dir = fresh();
    const w = await WalStore.open(store, { ...opts(dir), packBytes: 4096, flushIntervalMs: 60_000 });
    // waiting for a group commit (due in a minute): the close commits them, past packBytes
    const puts = Array.from({ length: 8 }, (_, i) => w.put(`c/${i}`, Buffer.alloc(1024, i)));
    await new Promise((r) => setImmediate(r)); // appended, waiting
    await w.close();
    await Promise.all(puts);
    await new Promise((r) => setTimeout(r, 100)); // a pack started by that commit would have run by now
    expect(w.stats.packsWritten).toBe(0);
    // one segment with the eight records, no empty one prepared after the close
    const segs = segments(dir);
    expect(segs.map((s) => decodeRecords(s.buf).records.length)).toEqual([8]);
    const r = await WalStore.open(store, opts(dir));
    expect((await r.list('c/')).objects).toHaveLength(8);
    await r.close();
  });
});
