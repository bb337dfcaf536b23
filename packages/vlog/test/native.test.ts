import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FailureDetector,
  LogletUnavailableError,
  LogServer,
  MemoryMetaStore,
  NativeLoglet,
  nativeFailover,
  nativeSpec,
  openLog,
  openLoglet,
  parseNativeSpec,
  Sequencer,
  VirtualLog,
} from '../src/index.js';
import { logletConformance } from './conformance.js';
import { startLogServers, startSequencer } from './helpers/native-cluster.js';

const root = mkdtempSync(join(tmpdir(), 'vlog-native-'));
const servers: LogServer[] = [];
const addrs: string[] = [];
let seq: Sequencer;
let seqAddr = '';
/** A second sequencer over the same LogServers: the striped loglet rotates between the two. */
let seq2: Sequencer;
let seq2Addr = '';
let n = 0;

beforeAll(async () => {
  const started = await startLogServers(root);
  servers.push(...started.servers);
  addrs.push(...started.addrs);
  ({ seq, addr: seqAddr } = await startSequencer(addrs));
  ({ seq: seq2, addr: seq2Addr } = await startSequencer(addrs));
});
afterAll(async () => {
  await seq.close();
  await seq2.close();
  for (const s of servers) await s.close();
  rmSync(root, { recursive: true, force: true });
});

describe('NativeLoglet (sequencer + 3 LogServers over TCP, majority commit)', () =>
  logletConformance(async (start) => new NativeLoglet(`c${n++}`, start, seqAddr, addrs)));

describe('StripedLoglet over NativeLoglets with rotating sequencers on the same 3 LogServers', () =>
  logletConformance(async (start) =>
    openLoglet(
      `striped:${nativeSpec(seqAddr, addrs, 'rot')}|${nativeSpec(seq2Addr, addrs, 'rot')}`,
      start,
      n++,
      root,
      'striped',
    ),
  ));

describe('NativeLoglet failures', () => {
  it('keeps acknowledging with one LogServer down; a dead sequencer makes the VirtualLog reconfigure', async () => {
    const dir = join(root, 'fail');
    const ls = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const s = new LogServer(join(dir, `s${i}`));
        return { s, addr: `127.0.0.1:${await s.listen(0)}` };
      }),
    );
    const seqA = new Sequencer(ls.slice(0, 3).map((x) => x.addr));
    const a = `127.0.0.1:${await seqA.listen(0)}`;
    const spec = (sq: string, srv: string[]) => `native://${sq}?servers=${srv.join(',')}&id=f`;
    const v = await VirtualLog.create(
      new MemoryMetaStore() as never,
      (sp, st, i) => openLoglet(sp, st, i),
      spec(
        a,
        ls.slice(0, 3).map((x) => x.addr),
      ),
      { appendTimeoutMs: 2000 },
    );
    const acked: [number, string][] = [];
    const put = async (s: string) => {
      const [p] = await v.append([Buffer.from(s)]);
      acked.push([p!, s]);
    };
    for (let i = 0; i < 50; i++) await put(`a${i}`);
    await ls[0]!.s.close(); // a LogServer dies: the majority (2 of 3) still commits
    for (let i = 0; i < 50; i++) await put(`b${i}`);
    await seqA.close(); // the sequencer dies: appends fail...
    await expect(v.append([Buffer.from('lost?')])).rejects.toBeInstanceOf(LogletUnavailableError);
    // ...and any client reconfigures to a new loglet on the two survivors plus a fresh LogServer
    const seqB = new Sequencer([ls[1]!.addr, ls[2]!.addr, ls[3]!.addr]);
    const b = `127.0.0.1:${await seqB.listen(0)}`;
    await v.reconfigure(spec(b, [ls[1]!.addr, ls[2]!.addr, ls[3]!.addr]));
    for (let i = 0; i < 50; i++) await put(`c${i}`);
    const { tail } = await v.checkTail();
    const recs = await v.read(0, tail);
    const byPos = new Map(recs.map((r) => [r.position, Buffer.from(r.payload).toString()]));
    expect(recs.map((r) => r.position)).toEqual(Array.from({ length: recs.length }, (_, i) => i));
    for (const [p, s] of acked) expect(byPos.get(p)).toBe(s);
    expect(acked).toHaveLength(150);
    await v.close();
    await seqB.close();
    for (const x of ls.slice(1)) await x.s.close();
  }, 60_000);

  it('a restarted sequencer (a new incarnation) cannot take over a loglet its predecessor wrote', async () => {
    const id = `restart${n++}`;
    const l1 = new NativeLoglet(id, 0, seqAddr, addrs);
    expect(await l1.append([Buffer.from('x'), Buffer.from('y')])).toEqual([0, 1]);
    // another sequencer process (same LogServers) asked to sequence the same loglet
    const other = new Sequencer(addrs);
    const otherAddr = `127.0.0.1:${await other.listen(0)}`;
    const l2 = new NativeLoglet(id, 0, otherAddr, addrs);
    await expect(l2.append([Buffer.from('z')])).rejects.toThrow(/could not claim/);
    expect((await l2.health(1000)).sequencer).toBe('lost');
    // the first one still owns it, and nothing of the second reached the LogServers
    expect(await l1.append([Buffer.from('w')])).toEqual([2]);
    expect((await l1.read(0, 3)).map((r) => Buffer.from(r.payload).toString())).toEqual(['x', 'y', 'w']);
    await l1.close();
    await l2.close();
    await other.close();
  });

  it('a failure detector replaces a LogServer that stopped answering, then a dead sequencer', async () => {
    const dir = join(root, 'detect');
    const ls = await Promise.all(
      [0, 1, 2, 3, 4].map(async (i) => {
        const s = new LogServer(join(dir, `s${i}`));
        return { s, addr: `127.0.0.1:${await s.listen(0)}` };
      }),
    );
    const seqs = await Promise.all(
      [0, 1].map(async () => {
        const s = new Sequencer();
        return { s, addr: `127.0.0.1:${await s.listen(0)}` };
      }),
    );
    const pool = { sequencers: seqs.map((x) => x.addr), servers: ls.map((x) => x.addr), timeoutMs: 300 };
    const meta = new MemoryMetaStore();
    const factory = (sp: string, st: number, i: number) => openLoglet(sp, st, i);
    const first = nativeSpec(
      seqs[0]!.addr,
      ls.slice(0, 3).map((x) => x.addr),
      'd',
    );
    const writer = await VirtualLog.create(meta as never, factory, first, { appendTimeoutMs: 5000 });
    const watcher = await VirtualLog.connect(meta as never, factory);
    const detector = new FailureDetector(watcher, nativeFailover(pool), { intervalMs: 50 });
    for (let i = 0; i < 20; i++) await writer.append([Buffer.from(`a${i}`)]);
    expect(await detector.check()).toBe(false); // all healthy: nothing to do
    await ls[1]!.s.close();
    expect(await detector.check()).toBe(true);
    let now = parseNativeSpec(watcher.segments.at(-1)!.spec);
    expect(now.servers).not.toContain(ls[1]!.addr);
    expect(now.servers).toHaveLength(3);
    expect(now.sequencer).toBe(seqs[0]!.addr);
    for (let i = 0; i < 20; i++) await writer.append([Buffer.from(`b${i}`)]); // the writer follows the seal
    // the detector running in the background replaces a dead sequencer
    detector.start();
    await seqs[0]!.s.close();
    const deadline = Date.now() + 10_000;
    while (
      parseNativeSpec(watcher.segments.at(-1)!.spec).sequencer !== seqs[1]!.addr &&
      Date.now() < deadline
    )
      await new Promise((r) => setTimeout(r, 20));
    await detector.stop();
    now = parseNativeSpec(watcher.segments.at(-1)!.spec);
    expect(now.sequencer).toBe(seqs[1]!.addr);
    expect(detector.failovers).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < 20; i++) await writer.append([Buffer.from(`c${i}`)]);
    const { tail } = await writer.checkTail();
    const got = (await writer.read(0, tail)).map((r) => Buffer.from(r.payload).toString());
    expect(got).toEqual(['a', 'b', 'c'].flatMap((k) => Array.from({ length: 20 }, (_, i) => `${k}${i}`)));
    await writer.close();
    await watcher.close();
    await seqs[1]!.s.close();
    for (const x of ls) await x.s.close();
  }, 60_000);

  it('two logs whose specs use the same id on the same LogServers never share a loglet', async () => {
    const spec = nativeSpec(seqAddr, addrs, 'shared');
    const a = await openLog('alpha', { meta: 'mem://shared-test', loglet: spec, create: true });
    const b = await openLog('beta', { meta: 'mem://shared-test', loglet: spec, create: true });
    expect(await a.append([Buffer.from('a0'), Buffer.from('a1')])).toEqual([0, 1]);
    expect(await b.append([Buffer.from('b0')])).toEqual([0]);
    await a.reconfigure(spec); // sealing alpha's loglet must not touch beta's
    expect(await b.append([Buffer.from('b1')])).toEqual([1]);
    expect((await b.read(0, 2)).map((r) => Buffer.from(r.payload).toString())).toEqual(['b0', 'b1']);
    expect((await a.read(0, 2)).map((r) => Buffer.from(r.payload).toString())).toEqual(['a0', 'a1']);
  });
});
