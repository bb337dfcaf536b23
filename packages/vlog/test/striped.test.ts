// StripedLoglet: the Loglet conformance suite over memory, file and object-store stripes, several clients
// racing on shared stripes, trimming seen by a client that opens later, the spec URL, and bad batches.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemStore } from '@strata/objstore';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Chain,
  decodeStripeBatch,
  encodeStripeBatch,
  FileLoglet,
  type Loglet,
  MemoryLoglet,
  MemoryMetaStore,
  ObjectStoreLoglet,
  openLoglet,
  SealedError,
  SpecError,
  StripedLoglet,
  TrimmedError,
  VirtualLog,
} from '../src/index.js';
import { logletConformance } from './conformance.js';

const root = mkdtempSync(join(tmpdir(), 'vlog-striped-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, String(n++));
const b = (s: string) => new Uint8Array(Buffer.from(s));
const str = (p: Uint8Array) => Buffer.from(p).toString();

/** A client's handle on a shared stripe: closing it leaves the stripe to the others. */
class Handle implements Loglet {
  constructor(private readonly l: Loglet) {}
  get start() {
    return this.l.start;
  }
  append(x: Uint8Array[]) {
    return this.l.append(x);
  }
  checkTail() {
    return this.l.checkTail();
  }
  read(f: number, t: number) {
    return this.l.read(f, t);
  }
  prefixTrim(p: number) {
    return this.l.prefixTrim(p);
  }
  seal() {
    return this.l.seal();
  }
  async close() {}
}

describe('StripedLoglet over 3 MemoryLoglets', () =>
  logletConformance(
    async (start) =>
      new StripedLoglet(
        start,
        [0, 1, 2].map(() => new MemoryLoglet()),
      ),
  ));
describe('StripedLoglet over 1 MemoryLoglet', () =>
  logletConformance(async (start) => new StripedLoglet(start, [new MemoryLoglet(7)])));
describe('StripedLoglet over 2 FileLoglets', () =>
  logletConformance(
    async (start) =>
      new StripedLoglet(start, await Promise.all([0, 1].map(() => FileLoglet.open(fresh(), 0)))),
  ));
describe('StripedLoglet over 4 ObjectStoreLoglets', () =>
  logletConformance(async (start) => {
    const store = new MemStore();
    return new StripedLoglet(
      start,
      [0, 1, 2, 3].map((i) => new ObjectStoreLoglet(store, `s${i}`, 0)),
    );
  }));

describe('StripedLoglet with several clients on shared stripes', () => {
  it('racing clients: dense positions, consecutive per batch, every client reads the same log', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 2, max: 4 }),
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 40 }),
        async (k, clientsN, sizes) => {
          const stripes = Array.from({ length: k }, () => new MemoryLoglet());
          const clients = Array.from(
            { length: clientsN },
            () =>
              new StripedLoglet(
                100,
                stripes.map((s) => new Handle(s)),
              ),
          );
          const acked = new Map<string, number>();
          await Promise.all(
            sizes.map(async (size, j) => {
              const c = clients[j % clientsN]!;
              const batch = Array.from({ length: size }, (_, x) => b(`${j}.${x}`));
              const ps = await c.append(batch);
              expect(ps).toEqual(Array.from({ length: size }, (_, x) => ps[0]! + x));
              for (const [x, p] of ps.entries()) acked.set(`${j}.${x}`, p);
            }),
          );
          const total = sizes.reduce((a, x) => a + x, 0);
          expect([...acked.values()].sort((x, y) => x - y)).toEqual(
            Array.from({ length: total }, (_, i) => 100 + i),
          );
          for (const c of clients) {
            expect((await c.checkTail()).tail).toBe(100 + total);
            const recs = await c.read(100, 100 + total);
            expect(recs.map((r) => r.position)).toEqual(Array.from({ length: total }, (_, i) => 100 + i));
            for (const r of recs) expect(acked.get(str(r.payload))).toBe(r.position);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('a sealed striped loglet acknowledges nothing past its tail, whichever client sealed it', async () => {
    const stripes = [0, 1, 2].map(() => new MemoryLoglet());
    const [a, c] = [0, 1].map(
      () =>
        new StripedLoglet(
          0,
          stripes.map((s) => new Handle(s)),
        ),
    );
    const inflight = Array.from({ length: 60 }, (_, i) =>
      (i % 2 ? a! : c!).append([b(`x${i}`), b(`y${i}`)]).then(
        (p) => p,
        (e: unknown) => e,
      ),
    );
    const sealed = await c!.seal();
    const outcomes = await Promise.all(inflight);
    for (const o of outcomes) {
      if (Array.isArray(o)) for (const p of o) expect(p).toBeLessThan(sealed.tail);
      else expect(o).toBeInstanceOf(SealedError);
    }
    expect(await a!.checkTail()).toEqual(sealed);
    expect(await a!.append([b('late')]).catch((e: unknown) => e)).toBeInstanceOf(SealedError);
    expect((await a!.read(0, 1e9)).length).toBe(sealed.tail);
  });

  it('a client that opens after a trim anchors on the landmark and reads the same positions', async () => {
    const stripes = [0, 1, 2].map(() => new MemoryLoglet());
    const w = new StripedLoglet(
      0,
      stripes.map((s) => new Handle(s)),
    );
    const other = new StripedLoglet(
      0,
      stripes.map((s) => new Handle(s)),
    );
    for (let i = 0; i < 40; i++) await (i % 3 ? w : other).append([b(`r${i}a`), b(`r${i}b`)]);
    await w.prefixTrim(31);
    for (let i = 40; i < 50; i++) await w.append([b(`r${i}a`), b(`r${i}b`)]);
    const late = new StripedLoglet(
      0,
      stripes.map((s) => new Handle(s)),
    );
    expect((await late.checkTail()).tail).toBe(100);
    await expect(late.read(0, 10)).rejects.toBeInstanceOf(TrimmedError);
    const recs = await late.read(31, 100);
    expect(recs[0]!.position).toBe(31);
    expect(recs.map((r) => str(r.payload))).toEqual(
      Array.from({ length: 100 }, (_, p) => `r${p >> 1}${p % 2 ? 'b' : 'a'}`).slice(31),
    );
    // the other early client had read nothing since: it re-anchors and agrees
    expect(await other.read(60, 62)).toEqual(await late.read(60, 62));
    // the stripes really were trimmed (storage reclaimed), not only hidden
    await expect(stripes[0]!.read(0, 1)).rejects.toBeInstanceOf(TrimmedError);
  });

  it('a sealed loglet trims only as far as a stored landmark, and stays readable above it', async () => {
    const stripes = [0, 1].map(() => new MemoryLoglet());
    const w = new StripedLoglet(
      0,
      stripes.map((s) => new Handle(s)),
    );
    for (let i = 0; i < 20; i++) await w.append([b(`${i}`)]);
    const { tail } = await w.seal();
    await w.prefixTrim(15);
    await expect(w.read(14, 16)).rejects.toBeInstanceOf(TrimmedError);
    const late = new StripedLoglet(
      0,
      stripes.map((s) => new Handle(s)),
    );
    expect(await late.checkTail()).toEqual({ tail, sealed: true });
    expect((await late.read(15, 20)).map((r) => str(r.payload))).toEqual(['15', '16', '17', '18', '19']);
  });
});

describe('striped: spec URLs', () => {
  it('opens one nested loglet per part, apart from each other, shared by clients in one process', async () => {
    const dir = fresh();
    const a = await openLoglet(`striped:file:${dir}/x|file:${dir}/y|mem://z`, 50, 3);
    const c = await openLoglet(`striped:file:${dir}/x|file:${dir}/y|mem://z`, 50, 3);
    expect(await a.append([b('1'), b('2')])).toEqual([50, 51]);
    expect(await c.append([b('3')])).toEqual([52]);
    expect((await a.read(50, 60)).map((r) => str(r.payload))).toEqual(['1', '2', '3']);
    await a.close();
    await c.close();
    // two stripes on one directory do not collide
    const d = await openLoglet(`striped:file:${dir}/same|file:${dir}/same`, 0, 1);
    for (let i = 0; i < 6; i++) await d.append([b(`${i}`)]);
    expect((await d.read(0, 6)).map((r) => str(r.payload))).toEqual(['0', '1', '2', '3', '4', '5']);
    await d.close();
  });

  it('rejects an empty or nested stripe with the spec in the message', async () => {
    await expect(openLoglet('striped:mem://a||mem://b', 0, 0)).rejects.toThrow(/stripe 2 is empty/);
    await expect(openLoglet('striped:mem://a|striped:mem://b', 0, 0)).rejects.toThrow(SpecError);
    await expect(openLoglet('striped:bogus://x', 0, 0)).rejects.toThrow(/unknown kind/);
  });

  it('a VirtualLog reconfigures from a striped segment to a plain one and back under writers', async () => {
    const meta = new MemoryMetaStore<Chain>();
    const dir = fresh();
    const factory = (spec: string, start: number, index: number) => openLoglet(spec, start, index, dir, 'v');
    const v = await VirtualLog.create(meta, factory, 'striped:mem://v1|mem://v2|mem://v3');
    const w2 = await VirtualLog.connect(meta, factory);
    const acked = new Map<number, string>();
    let stop = false;
    const writers = [v, w2].map(async (log, k) => {
      for (let i = 0; !stop; i++) {
        // memory loglets answer in microtasks: let the timers of the reconfiguring loop run
        if (i % 8 === 0) await new Promise((r) => setImmediate(r));
        const [p] = await log.append([b(`${k}-${i}`)]);
        acked.set(p!, `${k}-${i}`);
      }
    });
    for (const spec of [`file:${dir}/plain`, 'striped:mem://v4|mem://v5', 'mem://v6']) {
      await new Promise((r) => setTimeout(r, 30));
      await v.reconfigure(spec);
    }
    await new Promise((r) => setTimeout(r, 30));
    stop = true;
    await Promise.all(writers);
    const { tail } = await v.checkTail();
    const recs = await v.read(0, tail);
    expect(recs.map((r) => r.position)).toEqual(Array.from({ length: tail }, (_, i) => i));
    for (const [p, s] of acked) expect(str(recs[p]!.payload)).toBe(s);
    expect(new Set(recs.map((r) => str(r.payload))).size).toBe(tail); // none twice
    await v.close();
    await w2.close();
  });
});

describe('striped batches', () => {
  it('round-trip, and a damaged batch gets an error naming where, never a crash', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 6 }),
        fc.integer({ min: -1, max: 1e9 }),
        fc.nat(),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 0, max: 255 }),
        (recs, slot, pos, at, byte) => {
          const enc = encodeStripeBatch(recs, slot, pos);
          const dec = decodeStripeBatch(enc, 'here');
          expect(dec.records.map((r) => [...r])).toEqual(recs.map((r) => [...r]));
          expect([dec.markSlot, dec.markPos]).toEqual([slot, pos]);
          const bad = enc.slice(0, Math.min(at, enc.length));
          if (bad.length < enc.length)
            expect(() => decodeStripeBatch(bad, 'stripe 1 round 2')).toThrow(/stripe 1 round 2/);
          const flipped = enc.slice();
          if (flipped.length > 0) flipped[at % flipped.length] = byte;
          try {
            decodeStripeBatch(flipped, 'x');
          } catch (e) {
            expect((e as Error).message).toMatch(/^striped loglet: x: /);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
