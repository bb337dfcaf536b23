/**
 * Model-based tests of the VirtualLog over shared stores: random sequences of append / read / checkTail /
 * reconfigure / prefixTrim / seal / close-and-reopen from several clients (each its own VirtualLog and its
 * own loglet objects over one shared object store, as separate processes would be), checked against a
 * reference shared log: positions dense and increasing, every acknowledged record readable at its position
 * until trimmed, nothing unacknowledged or twice, a sealed log takes no append, a reopened client goes on
 * where the log is.
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemStore } from '@strata/objstore';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Chain,
  type Loglet,
  MemoryLoglet,
  MemoryMetaStore,
  ObjectStoreLoglet,
  openLog,
  SealedError,
  StripedLoglet,
  TrimmedError,
  VirtualLog,
} from '../src/index.js';

type Kind = 'mem' | 'obj' | 'striped';

/** One shared world: a MetaStore, an object store, memory loglets shared by segment index. */
function world() {
  const meta = new MemoryMetaStore<Chain & { trim?: number }>();
  const store = new MemStore();
  const mems = new Map<number, MemoryLoglet>();
  // a client's loglets are its own objects over the shared state (a process of its own would open them)
  const factory = async (spec: string, start: number, index: number): Promise<Loglet> => {
    const kind = spec as Kind;
    if (kind === 'mem') {
      let m = mems.get(index);
      if (!m) mems.set(index, (m = new MemoryLoglet(start)));
      return m;
    }
    if (kind === 'obj') return new ObjectStoreLoglet(store, `seg-${index}`, start);
    return new StripedLoglet(
      start,
      [0, 1].map((i) => new ObjectStoreLoglet(store, `seg-${index}-s${i}`, 0)),
    );
  };
  return { meta, store, factory };
}

type Cmd =
  | { op: 'append'; c: number; n: number }
  | { op: 'read'; c: number; from: number; len: number }
  | { op: 'tail'; c: number }
  | { op: 'reconfigure'; c: number; kind: Kind }
  | { op: 'trim'; c: number; at: number }
  | { op: 'reopen'; c: number }
  | { op: 'appendDuringReconfigure'; c: number; d: number; kind: Kind }
  | {
      op: 'burst';
      appends: { c: number; n: number }[];
      reconf: { c: number; kind: Kind } | null;
      read: { c: number; from: number } | null;
      trim: { c: number; at: number } | null;
    };

const clientsN = 3;
const kindArb = fc.constantFrom<Kind>('mem', 'obj', 'striped');
const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    // several clients at once: appends racing each other, a reconfiguration, a read and a trim
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('burst' as const),
      appends: fc.array(fc.record({ c: fc.nat(clientsN - 1), n: fc.integer({ min: 1, max: 3 }) }), {
        minLength: 1,
        maxLength: 4,
      }),
      reconf: fc.option(fc.record({ c: fc.nat(clientsN - 1), kind: kindArb })),
      read: fc.option(fc.record({ c: fc.nat(clientsN - 1), from: fc.nat(40) })),
      trim: fc.option(fc.record({ c: fc.nat(clientsN - 1), at: fc.nat(40) })),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('append' as const),
      c: fc.nat(clientsN - 1),
      n: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('read' as const),
      c: fc.nat(clientsN - 1),
      from: fc.nat(40),
      len: fc.integer({ min: 0, max: 40 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('tail' as const), c: fc.nat(clientsN - 1) }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('reconfigure' as const), c: fc.nat(clientsN - 1), kind: kindArb }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('trim' as const), c: fc.nat(clientsN - 1), at: fc.nat(40) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reopen' as const), c: fc.nat(clientsN - 1) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('appendDuringReconfigure' as const),
      c: fc.nat(clientsN - 1),
      d: fc.nat(clientsN - 1),
      kind: kindArb,
    }),
  },
);

const text = (p: Uint8Array) => Buffer.from(p).toString();

/** How a run opens its clients and names its loglets. */
interface Env {
  create(spec: string): Promise<VirtualLog>;
  connect(o?: { appendTimeoutMs?: number }): Promise<VirtualLog>;
  spec(kind: Kind): string;
}

function worldEnv(): Env {
  const w = world();
  return {
    create: (spec) => VirtualLog.create(w.meta, w.factory, spec),
    connect: (o) => VirtualLog.connect(w.meta, w.factory, o),
    spec: (kind) => kind,
  };
}

async function runModel(first: Kind, cmds: Cmd[], env: Env = worldEnv()): Promise<void> {
  const open = () => env.connect();
  await (await env.create(env.spec(first))).close();
  const clients: VirtualLog[] = [];
  for (let c = 0; c < clientsN; c++) clients.push(await open());
  // the reference log: payload at each position, and the trim point
  const model: string[] = [];
  let trim = 0;
  let seq = 0;
  const checkRead = async (c: number, from: number, to: number) => {
    let recs: { position: number; payload: Uint8Array }[];
    try {
      recs = await clients[c]!.read(from, to);
    } catch (e) {
      // a client that has not seen a trim may still read what is stored; one that has must refuse
      if (e instanceof TrimmedError && from < trim) return;
      throw e;
    }
    if (from < trim && recs.length === 0) return;
    const want = model.slice(from, Math.min(to, model.length));
    expect(
      recs.map((r) => r.position),
      `read(${from}, ${to}) by client ${c}`,
    ).toEqual(want.map((_, i) => from + i));
    expect(recs.map((r) => text(r.payload))).toEqual(want);
  };
  for (const cmd of cmds) {
    // (a burst names a client for each of its operations)
    const v = clients[cmd.op === 'burst' ? 0 : cmd.c]!;
    switch (cmd.op) {
      case 'append': {
        const batch = Array.from({ length: cmd.n }, () => Buffer.from(`r${seq++}`));
        const ps = await v.append(batch);
        expect(ps).toEqual(batch.map((_, i) => model.length + i));
        for (const b of batch) model.push(text(b));
        break;
      }
      case 'read':
        await checkRead(cmd.c, cmd.from, cmd.from + cmd.len);
        await checkRead(cmd.c, cmd.from, Number.POSITIVE_INFINITY);
        break;
      case 'tail':
        expect(await v.checkTail()).toEqual({ tail: model.length, sealed: false });
        break;
      case 'reconfigure':
        expect(await v.reconfigure(env.spec(cmd.kind))).toBe(model.length);
        break;
      case 'trim':
        await v.prefixTrim(cmd.at);
        trim = Math.max(trim, Math.min(cmd.at, model.length));
        expect(v.firstPosition).toBe(trim);
        break;
      case 'reopen':
        await v.close().catch(() => undefined);
        clients[cmd.c] = await open();
        break;
      case 'burst': {
        const before = model.length;
        const batches = cmd.appends.map(({ n }) => Array.from({ length: n }, () => `r${seq++}`));
        const work: Promise<unknown>[] = cmd.appends.map(({ c }, k) =>
          clients[c]!.append(batches[k]!.map((t) => Buffer.from(t))),
        );
        const r = cmd.read;
        if (r) work.push(clients[r.c]!.read(r.from, Number.POSITIVE_INFINITY));
        if (cmd.reconf) work.push(clients[cmd.reconf.c]!.reconfigure(env.spec(cmd.reconf.kind)));
        if (cmd.trim) work.push(clients[cmd.trim.c]!.prefixTrim(cmd.trim.at));
        const got = await Promise.allSettled(work);
        // the appends: each batch at consecutive positions, together exactly [before, before + all)
        const placed = new Map<number, string>();
        for (const [k, b] of batches.entries()) {
          const g = got[k]!;
          if (g.status === 'rejected') throw g.reason;
          const ps = g.value as number[];
          expect(ps).toEqual(b.map((_, i) => ps[0]! + i));
          for (const [i, t] of b.entries()) {
            expect(placed.has(ps[i]!), `position ${ps[i]} handed out twice`).toBe(false);
            placed.set(ps[i]!, t);
          }
        }
        const total = batches.reduce((a, b) => a + b.length, 0);
        for (let p = before; p < before + total; p++) {
          expect(placed.has(p), `position ${p} not handed out`).toBe(true);
          model.push(placed.get(p)!);
        }
        let k = batches.length;
        if (r) {
          const g = got[k++]!;
          if (g.status === 'rejected') {
            if (!(g.reason instanceof TrimmedError && cmd.trim && r.from < cmd.trim.at) && !(r.from < trim))
              throw g.reason;
          } else {
            // a run from `from` of what the log holds, holding at least what was there before the burst
            const recs = g.value as { position: number; payload: Uint8Array }[];
            expect(recs.length).toBeGreaterThanOrEqual(Math.max(0, before - r.from));
            for (const [i, rec] of recs.entries()) {
              expect(rec.position).toBe(r.from + i);
              expect(text(rec.payload)).toBe(model[rec.position]);
            }
          }
        }
        if (cmd.reconf) {
          const g = got[k++]!;
          if (g.status === 'rejected') throw g.reason;
        }
        if (cmd.trim) {
          const g = got[k++]!;
          if (g.status === 'rejected') throw g.reason;
          // clamped to the tail the trim saw: at least the tail before the burst
          const low = Math.min(cmd.trim.at, before);
          const high = Math.min(cmd.trim.at, model.length);
          const now = clients[cmd.trim.c]!.firstPosition;
          expect(now).toBeGreaterThanOrEqual(Math.max(trim, low));
          expect(now).toBeLessThanOrEqual(Math.max(trim, high));
          trim = now;
        }
        break;
      }
      case 'appendDuringReconfigure': {
        // an append races a reconfiguration by another client: it lands in one segment or the other
        const batch = [Buffer.from(`r${seq++}`)];
        const [ps] = await Promise.all([
          clients[cmd.c]!.append(batch),
          clients[cmd.d]!.reconfigure(env.spec(cmd.kind)),
        ]);
        expect(ps).toEqual([model.length]);
        model.push(text(batch[0]!));
        break;
      }
    }
  }
  // every client, and a fresh one, reads the whole untrimmed log
  clients.push(await open());
  for (let c = 0; c < clients.length; c++) {
    expect(await clients[c]!.checkTail()).toEqual({ tail: model.length, sealed: false });
    await checkRead(c, trim, Number.POSITIVE_INFINITY);
  }
  // a sealed log takes no append
  await clients[0]!.seal();
  const late = await env.connect({ appendTimeoutMs: 0 });
  await expect(late.append([Buffer.from('late')])).rejects.toBeInstanceOf(SealedError);
  for (const v of [...clients, late]) await v.close();
}

let logs = 0;
/** Clients opened as `strata log` opens them (`openLog`): file:, objstore:file: and striped segments. */
function openLogEnv(root: string): Env {
  const name = `m${logs++}`;
  // a location of its own per log (a segment is its log's: another log's is refused)
  const cwd = join(root, name);
  mkdirSync(cwd);
  const base = { meta: 'file:meta', cwd };
  return {
    create: (spec) => openLog(name, { ...base, create: true, loglet: spec }),
    connect: (o) => openLog(name, { ...base, ...o }),
    spec: (kind) =>
      kind === 'mem'
        ? 'file:segs'
        : kind === 'obj'
          ? 'objstore:file:objs'
          : 'striped:objstore:file:objs|objstore:file:objs',
  };
}

describe('VirtualLog against a reference log (model-based)', () => {
  it('random operations from three clients opened by openLog over file:, objstore:file: and striped segments', async () => {
    const root = mkdtempSync(join(tmpdir(), 'vlog-model-'));
    await fc.assert(
      fc.asyncProperty(kindArb, fc.array(cmdArb, { minLength: 1, maxLength: 30 }), (first, cmds) =>
        runModel(first, cmds, openLogEnv(root)),
      ),
      {
        numRuns: Number(process.env.MODEL_RUNS ?? 40),
        timeout: 30_000,
        endOnFailure: process.env.MODEL_END === '1',
      },
    );
  }, 300_000);

  it('a reader that neither appends nor checks the tail reads past a reconfiguration made by another client', async () => {
    const w = world();
    const writer = await VirtualLog.create(w.meta, w.factory, 'mem');
    const reader = await VirtualLog.connect(w.meta, w.factory);
    await writer.append([Buffer.from('a'), Buffer.from('b')]);
    expect((await reader.read(0, Number.POSITIVE_INFINITY)).length).toBe(2);
    await writer.reconfigure('obj');
    await writer.append([Buffer.from('c')]);
    await writer.reconfigure('mem');
    await writer.append([Buffer.from('d')]);
    // its chain still ends in the first segment, sealed at 2 by the writer: it read [] from 2, forever
    expect((await reader.read(2, Number.POSITIVE_INFINITY)).map((r) => text(r.payload))).toEqual(['c', 'd']);
    expect((await reader.read(0, 4)).map((r) => r.position)).toEqual([0, 1, 2, 3]);
  });

  it("a tail check or a read beside an append of the same client that met another client's seal sees the new segment", async () => {
    const w = world();
    /** The first segment's loglet answers a tail check late, after the append beside it. */
    class SlowTail extends MemoryLoglet {
      override async checkTail() {
        await new Promise((r) => setTimeout(r, 20));
        return super.checkTail();
      }
    }
    const first = new SlowTail(0);
    const factory = (spec: string, start: number, index: number) =>
      index === 0 ? Promise.resolve(first) : w.factory(spec, start, index);
    const writer = await VirtualLog.create(w.meta, factory, 'mem');
    const c = await VirtualLog.connect(w.meta, factory);
    await writer.append([Buffer.from('a')]);
    await writer.reconfigure('obj');
    await writer.append([Buffer.from('b')]);
    // the append meets the seal and fetches the chain first: the tail check saw the same version before
    // and after its own fetch and reported the old segment's tail, 1, as the sealed log's
    const tailCheck = c.checkTail();
    expect(await c.append([Buffer.from('c')])).toEqual([2]);
    const t = await tailCheck;
    expect(t.sealed).toBe(false);
    expect(t.tail).toBeGreaterThanOrEqual(2);
    await writer.reconfigure('mem');
    await writer.append([Buffer.from('d')]);
    const [, recs] = await Promise.all([c.append([Buffer.from('e')]), c.read(0, Number.POSITIVE_INFINITY)]);
    expect(recs.slice(0, 4).map((r) => text(r.payload))).toEqual(['a', 'b', 'c', 'd']);
  });

  it('reconfigure and create refuse a spec that is not a non-empty string, and an ifActive that is no index, before sealing anything', async () => {
    const w = world();
    const v = await VirtualLog.create(w.meta, w.factory, 'mem');
    await v.append([Buffer.from('a')]);
    for (const bad of [undefined, 5, '', null, { spec: 'mem' }])
      await expect(v.reconfigure(bad as never)).rejects.toThrow(/the loglet spec must be a non-empty string/);
    for (const bad of [-1, 0.5, Number.NaN, '0'])
      await expect(v.reconfigure('mem', { ifActive: bad as never })).rejects.toThrow(
        /ifActive must be a segment index/,
      );
    await expect(VirtualLog.create(new MemoryMetaStore(), w.factory, 7 as never)).rejects.toThrow(
      /non-empty string/,
    );
    // nothing was sealed: the log goes on in its one segment
    expect(v.segments.length).toBe(1);
    expect(await v.append([Buffer.from('b')])).toEqual([1]);
  });

  it('random operations from three clients over memory, object-store and striped segments', async () => {
    await fc.assert(
      fc.asyncProperty(kindArb, fc.array(cmdArb, { minLength: 1, maxLength: 60 }), (first, cmds) =>
        runModel(first, cmds),
      ),
      {
        numRuns: Number(process.env.MODEL_RUNS ?? 500),
        timeout: 10_000,
        endOnFailure: process.env.MODEL_END === '1',
        seed: process.env.MODEL_SEED ? Number(process.env.MODEL_SEED) : undefined,
      },
    );
  }, 300_000);
});
