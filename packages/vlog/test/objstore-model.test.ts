/**
 * The ObjectStoreLoglet against a reference log, with two clients (two loglet objects, as two processes
 * would hold) on one store: random appends (alone and racing), reads, tail checks, trims, seals and
 * reopened clients, over a MemStore whose listing pages are tiny (so every walk and read crosses pages)
 * and over a FileStore.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore, MemStore } from '@strata/objstore';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Loglet,
  type LogRecord,
  MemoryLoglet,
  ObjectStoreLoglet,
  SealedError,
  StripedLoglet,
  TrimmedError,
} from '../src/index.js';

/** A MemStore listing at most `pageMax` keys a page (objstore's own default is 1,000). */
class SmallPages extends MemStore {
  constructor(private readonly pageMax: number) {
    super();
  }
  override list(...[prefix, opts]: Parameters<MemStore['list']>) {
    return super.list(prefix, { ...opts, limit: Math.min(opts?.limit ?? this.pageMax, this.pageMax) });
  }
}

type Cmd =
  | { op: 'append'; c: number; n: number }
  | { op: 'race'; n: number; m: number }
  | { op: 'read'; c: number; from: number; len: number }
  | { op: 'tail'; c: number }
  | { op: 'trim'; c: number; at: number }
  | { op: 'raceTrim'; at: number; bt: number }
  | { op: 'seal'; c: number }
  | { op: 'reopen'; c: number };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('append' as const),
      c: fc.nat(1),
      n: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('race' as const),
      n: fc.integer({ min: 1, max: 3 }),
      m: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('read' as const),
      c: fc.nat(1),
      from: fc.nat(50),
      len: fc.integer({ min: 0, max: 50 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('tail' as const), c: fc.nat(1) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('trim' as const), c: fc.nat(1), at: fc.nat(50) }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('raceTrim' as const), at: fc.nat(50), bt: fc.nat(50) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('seal' as const), c: fc.nat(1) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('reopen' as const), c: fc.nat(1) }) },
);

const text = (p: Uint8Array) => Buffer.from(p).toString();

/**
 * Runs `cmds` against two clients from `open`. With `trimExact` a read below the highest trim asked for
 * must be refused; otherwise (a loglet that trims no further than its tail, or a sealed striped one no
 * further than a landmark: trimming is a hint) it may instead return what is stored, exactly.
 */
async function runModel(open: () => Loglet, start: number, cmds: Cmd[], trimExact = true): Promise<void> {
  const clients = [open(), open()];
  const model: string[] = []; // model[i] is at position start + i
  let trim = start;
  let sealed = false;
  let seq = 0;
  const tail = () => start + model.length;
  const checkRead = async (c: number, from: number, to: number) => {
    if (from < trim && trimExact) {
      await expect(clients[c]!.read(from, to)).rejects.toBeInstanceOf(TrimmedError);
      return;
    }
    let recs: LogRecord[];
    try {
      recs = await clients[c]!.read(from, to);
    } catch (e) {
      if (from < trim && e instanceof TrimmedError) return;
      throw e;
    }
    const want: { position: number; payload: string }[] = [];
    for (let p = Math.max(from, start); p < Math.min(to, tail()); p++)
      want.push({ position: p, payload: model[p - start]! });
    expect(
      recs.map((r) => ({ position: r.position, payload: text(r.payload) })),
      `read(${from}, ${to})`,
    ).toEqual(want);
  };
  const batchOf = (n: number) => Array.from({ length: n }, () => Buffer.from(`r${seq++}`));
  for (const cmd of cmds) {
    switch (cmd.op) {
      case 'append': {
        const batch = batchOf(cmd.n);
        if (sealed) {
          await expect(clients[cmd.c]!.append(batch)).rejects.toBeInstanceOf(SealedError);
          break;
        }
        expect(await clients[cmd.c]!.append(batch)).toEqual(batch.map((_, i) => tail() + i));
        for (const b of batch) model.push(text(b));
        break;
      }
      case 'race': {
        const a = batchOf(cmd.n);
        const b = batchOf(cmd.m);
        const [pa, pb] = await Promise.allSettled([clients[0]!.append(a), clients[1]!.append(b)]);
        if (sealed) {
          expect([pa.status, pb.status]).toEqual(['rejected', 'rejected']);
          break;
        }
        if (pa.status !== 'fulfilled' || pb.status !== 'fulfilled') throw new Error('a racing append failed');
        const aFirst = pa.value[0]! < pb.value[0]!;
        const [x, px, y, py] = aFirst ? [a, pa.value, b, pb.value] : [b, pb.value, a, pa.value];
        expect(px).toEqual(x.map((_, i) => tail() + i));
        expect(py).toEqual(y.map((_, i) => tail() + x.length + i));
        for (const r of [...x, ...y]) model.push(text(r));
        break;
      }
      case 'read':
        await checkRead(cmd.c, start + cmd.from, start + cmd.from + cmd.len);
        await checkRead(cmd.c, Math.max(trim, start + cmd.from), Number.POSITIVE_INFINITY);
        break;
      case 'tail':
        expect(await clients[cmd.c]!.checkTail()).toEqual({ tail: tail(), sealed });
        break;
      case 'trim':
        await clients[cmd.c]!.prefixTrim(start + cmd.at);
        trim = Math.max(trim, start + cmd.at);
        break;
      case 'raceTrim':
        // two clients trim at once: the trim point is the higher, whichever lands last
        await Promise.all([clients[0]!.prefixTrim(start + cmd.at), clients[1]!.prefixTrim(start + cmd.bt)]);
        trim = Math.max(trim, start + cmd.at, start + cmd.bt);
        break;
      case 'seal':
        expect(await clients[cmd.c]!.seal()).toEqual({ tail: tail(), sealed: true });
        sealed = true;
        break;
      case 'reopen':
        clients[cmd.c] = open();
        break;
    }
  }
  for (const c of [0, 1]) {
    expect(await clients[c]!.checkTail()).toEqual({ tail: tail(), sealed });
    await checkRead(c, trim, Number.POSITIVE_INFINITY);
  }
}

// positions of 10^15 and above have a slot key of no leading zero; 2^53 - 1000 is near the last position
const startArb = fc.constantFrom(0, 7, 1_000_000, 1e15, 2 ** 53 - 1000);

describe('ObjectStoreLoglet against a reference log, two clients on one store', () => {
  it('a loglet starting at 10^15 or above finds its slots (it listed none: a wrong tail, then an append retried forever)', async () => {
    /** Each put a turn of the event loop later, so an append that loops forever lets the test time out. */
    class Yielding extends MemStore {
      override async put(...a: Parameters<MemStore['put']>) {
        await new Promise((r) => setImmediate(r));
        return super.put(...a);
      }
    }
    for (const start of [1e15, 2 ** 53 - 10]) {
      const store = new Yielding();
      const a = new ObjectStoreLoglet(store, 'h', start);
      expect(await a.append([Buffer.from('x'), Buffer.from('y')])).toEqual([start, start + 1]);
      const b = new ObjectStoreLoglet(store, 'h', start);
      expect(await b.checkTail()).toEqual({ tail: start + 2, sealed: false });
      expect(await new ObjectStoreLoglet(store, 'h', start).append([Buffer.from('z')])).toEqual([start + 2]);
      const recs = await new ObjectStoreLoglet(store, 'h', start).read(start, Number.POSITIVE_INFINITY);
      expect(recs.map((r) => text(r.payload))).toEqual(['x', 'y', 'z']);
    }
  }, 10_000);

  it('a tail check and a read of a sealed loglet list it once (the read listed it again from the seal)', async () => {
    class Counting extends MemStore {
      lists = 0;
      override list(...a: Parameters<MemStore['list']>) {
        this.lists++;
        return super.list(...a);
      }
    }
    const store = new Counting();
    const w = new ObjectStoreLoglet(store, 's', 0);
    for (let i = 0; i < 20; i++) await w.append([Buffer.from(`r${i}`)]);
    await w.seal();
    const r = new ObjectStoreLoglet(store, 's', 0);
    store.lists = 0;
    expect(await r.checkTail()).toEqual({ tail: 20, sealed: true });
    expect((await r.read(0, 20)).length).toBe(20);
    expect(await r.checkTail()).toEqual({ tail: 20, sealed: true });
    expect(store.lists).toBe(1);
  });

  it('of two clients trimming at once the higher trim stands (the lower could land last and move it back)', async () => {
    const store = new MemStore();
    const a = new ObjectStoreLoglet(store, 't', 0);
    const b = new ObjectStoreLoglet(store, 't', 0);
    for (let i = 0; i < 20; i++) await a.append([Buffer.from(`r${i}`)]);
    await Promise.all([a.prefixTrim(10), b.prefixTrim(7)]);
    await expect(a.read(8, 12)).rejects.toBeInstanceOf(TrimmedError);
    await Promise.all([b.prefixTrim(12), a.prefixTrim(15), b.prefixTrim(13)]);
    await expect(b.read(14, 16)).rejects.toBeInstanceOf(TrimmedError);
    expect((await b.read(15, 17)).map((r) => r.position)).toEqual([15, 16]);
  });

  it('over a MemStore listing 3 keys a page', async () => {
    await fc.assert(
      fc.asyncProperty(startArb, fc.array(cmdArb, { minLength: 1, maxLength: 50 }), (start, cmds) => {
        const store = new SmallPages(3);
        return runModel(() => new ObjectStoreLoglet(store, 'm', start), start, cmds);
      }),
      { numRuns: 300, timeout: 10_000 },
    );
  }, 120_000);

  it('over a FileStore', async () => {
    const root = mkdtempSync(join(tmpdir(), 'vlog-objmodel-'));
    let n = 0;
    await fc.assert(
      fc.asyncProperty(startArb, fc.array(cmdArb, { minLength: 1, maxLength: 30 }), (start, cmds) => {
        const store = new FileStore(join(root, String(n++)));
        return runModel(() => new ObjectStoreLoglet(store, 'm', start), start, cmds);
      }),
      { numRuns: 40, timeout: 20_000 },
    );
  }, 120_000);
});

describe('StripedLoglet against the same reference log, two clients on shared stripes', () => {
  it('a client catching up while another trims twice neither fails with TrimmedError nor loses its place', async () => {
    const store = new MemStore();
    const open = () =>
      new StripedLoglet(
        0,
        [0, 1].map((i) => new ObjectStoreLoglet(store, `s${i}`, 0)),
      );
    const a = open();
    let b = open();
    await Promise.all([a.append([Buffer.from('a')]), b.append([Buffer.from('b')])]);
    await Promise.all([a.prefixTrim(1), b.prefixTrim(0)]);
    await a.append([Buffer.from('c')]);
    // a fresh client's first fetch meets trim point 1 on a stripe, reads from there and meets the next
    // trim (TrimmedError escaped); then its tail check predated the trimmer's landmark, so none was found
    // above the trimmed slots ("positions unknown")
    b = open();
    await Promise.all([a.prefixTrim(2), b.prefixTrim(0)]);
    expect(await b.checkTail()).toEqual({ tail: 3, sealed: false });
    expect(await b.append([Buffer.from('d')])).toEqual([3]);
    expect((await b.read(2, 10)).map((r) => text(r.payload))).toEqual(['c', 'd']);
    expect((await a.read(2, 10)).map((r) => text(r.payload))).toEqual(['c', 'd']);
  });

  it("a fresh client trimming beside another's trim anchors at the trimmer's landmark: the kept records stay readable", async () => {
    // (fast-check's counterexample of 2026-12-08: the fresh client anchored at the next batch's landmark,
    // having checked the tails before the trimmer wrote its own, and read position 2 as trimmed)
    const stripes = [0, 1, 2].map(() => new MemoryLoglet(0));
    const cmds: Cmd[] = [
      { op: 'race', n: 1, m: 1 },
      { op: 'trim', c: 0, at: 1 },
      { op: 'append', c: 0, n: 1 },
      { op: 'append', c: 0, n: 1 },
      { op: 'reopen', c: 1 },
      { op: 'raceTrim', at: 2, bt: 0 },
      { op: 'append', c: 0, n: 1 },
    ];
    await runModel(() => new StripedLoglet(0, stripes), 0, cmds, false);
  });

  it('over 3 memory stripes', async () => {
    await fc.assert(
      fc.asyncProperty(startArb, fc.array(cmdArb, { minLength: 1, maxLength: 50 }), (start, cmds) => {
        const stripes = [0, 1, 2].map(() => new MemoryLoglet(0));
        return runModel(() => new StripedLoglet(start, stripes), start, cmds, false);
      }),
      { numRuns: 300, timeout: 10_000 },
    );
  }, 120_000);

  it('over 2 object-store stripes (each client its own loglet objects, one store of 3-key pages)', async () => {
    await fc.assert(
      fc.asyncProperty(startArb, fc.array(cmdArb, { minLength: 1, maxLength: 50 }), (start, cmds) => {
        const store = new SmallPages(3);
        const open = () =>
          new StripedLoglet(
            start,
            [0, 1].map((i) => new ObjectStoreLoglet(store, `s${i}`, 0)),
          );
        return runModel(open, start, cmds, false);
      }),
      { numRuns: Number(process.env.MODEL_RUNS ?? 200), timeout: 10_000 },
    );
  }, 120_000);
});

/** A MemStore of 3-key pages whose calls fail at random while `on`: half before the call, half after it. */
class FaultyStore extends SmallPages {
  on = true;
  faults = 0;
  constructor(private readonly rand: () => number) {
    super(3);
  }
  private async fault<T>(run: () => Promise<T>): Promise<T> {
    if (!this.on || this.rand() >= 0.15) return run();
    this.faults++;
    const after = this.rand() < 0.5;
    if (after) await run();
    throw new Error(`injected fault (${after ? 'after' : 'before'} the call)`);
  }
  override get(...a: Parameters<MemStore['get']>) {
    return this.fault(() => super.get(...a));
  }
  override put(...a: Parameters<MemStore['put']>) {
    return this.fault(() => super.put(...a));
  }
  override list(...a: Parameters<MemStore['list']>) {
    return this.fault(() => super.list(...a));
  }
  override head(...a: Parameters<MemStore['head']>) {
    return this.fault(() => super.head(...a));
  }
}

describe('ObjectStoreLoglet with a store that fails calls at random', () => {
  it('a failed call leaves the clients able to go on: a failed append is in the log whole or not at all, positions stay dense', async () => {
    const ops = fc.array(
      fc.record({
        op: fc.constantFrom('append', 'append', 'append', 'read', 'tail', 'trim', 'reopen', 'seal'),
        c: fc.nat(1),
        n: fc.integer({ min: 1, max: 3 }),
        at: fc.nat(30),
      }),
      { minLength: 1, maxLength: 60 },
    );
    await fc.assert(
      fc.asyncProperty(fc.integer(), ops, async (seed, cmds) => {
        let s = seed >>> 0;
        const rand = () => {
          s = (s + 0x6d2b79f5) >>> 0;
          let t = Math.imul(s ^ (s >>> 15), 1 | s);
          t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
          return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
        };
        const store = new FaultyStore(rand);
        const open = () => new ObjectStoreLoglet(store, 'f', 0);
        const clients = [open(), open()];
        const model: string[] = [];
        let trim = 0;
        let sealed = false;
        let seq = 0;
        /** What the log holds from the trim point, read with the faults off by a fresh client. */
        const truth = async () => {
          store.on = false;
          try {
            const l = open();
            const t = await l.checkTail();
            const recs = await l.read(trim, Number.POSITIVE_INFINITY);
            return { ...t, recs: recs.map((r) => ({ position: r.position, payload: text(r.payload) })) };
          } finally {
            store.on = true;
          }
        };
        for (const cmd of cmds) {
          const l = clients[cmd.c]!;
          try {
            switch (cmd.op) {
              case 'append': {
                const batch = Array.from({ length: cmd.n }, () => Buffer.from(`r${seq++}`));
                const ps = await l.append(batch);
                expect(sealed).toBe(false);
                expect(ps).toEqual(batch.map((_, i) => model.length + i));
                for (const b of batch) model.push(text(b));
                break;
              }
              case 'read': {
                const from = Math.max(trim, Math.min(cmd.at, model.length));
                const recs = await l.read(from, Number.POSITIVE_INFINITY);
                expect(recs.map((r) => text(r.payload))).toEqual(model.slice(from));
                break;
              }
              case 'tail':
                expect(await l.checkTail()).toEqual({ tail: model.length, sealed });
                break;
              case 'trim':
                await l.prefixTrim(Math.min(cmd.at, model.length));
                trim = Math.max(trim, Math.min(cmd.at, model.length));
                break;
              case 'seal':
                expect(await l.seal()).toEqual({ tail: model.length, sealed: true });
                sealed = true;
                break;
              case 'reopen':
                clients[cmd.c] = open();
                break;
            }
          } catch (e) {
            if (
              !(e instanceof Error) ||
              !(e.message.startsWith('injected fault') || e instanceof SealedError)
            )
              throw e;
            if (e instanceof SealedError) expect(sealed || cmd.op === 'append').toBe(true);
            if (cmd.op === 'trim') {
              // a trim that failed may have landed: do it again with the faults off (it is idempotent)
              store.on = false;
              await l.prefixTrim(Math.min(cmd.at, model.length)).finally(() => {
                store.on = true;
              });
              trim = Math.max(trim, Math.min(cmd.at, model.length));
            }
            // learn what the failed call did: an append whole or not at all, at the next positions
            const t = await truth();
            const landed = t.recs.filter((r) => r.position >= model.length);
            if (cmd.op === 'append') {
              expect(
                landed.length === 0 || landed.length === cmd.n,
                `a failed append of ${cmd.n} left ${landed.length}`,
              ).toBe(true);
              for (const r of landed) {
                expect(r.position).toBe(model.length);
                model.push(r.payload);
              }
            } else expect(landed).toEqual([]);
            if (t.sealed) sealed = true;
            expect(t.tail).toBe(model.length);
          }
        }
        const t = await truth();
        expect(t.recs.map((r) => r.payload)).toEqual(model.slice(trim));
        expect(t.recs.map((r) => r.position)).toEqual(model.slice(trim).map((_, i) => trim + i));
        // and each client, with the faults off, agrees
        store.on = false;
        for (const l of clients) {
          expect(await l.checkTail()).toEqual({ tail: model.length, sealed: t.sealed });
          expect((await l.read(trim, Number.POSITIVE_INFINITY)).map((r) => text(r.payload))).toEqual(
            model.slice(trim),
          );
        }
      }),
      { numRuns: Number(process.env.MODEL_RUNS ?? 300), timeout: 10_000 },
    );
  }, 120_000);
});
