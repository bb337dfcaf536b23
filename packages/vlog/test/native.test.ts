import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LogletUnavailableError,
  LogServer,
  MemoryMetaStore,
  NativeLoglet,
  openLoglet,
  Sequencer,
  VirtualLog,
} from '../src/index.js';
import { logletConformance } from './conformance.js';

const root = mkdtempSync(join(tmpdir(), 'vlog-native-'));
const servers: LogServer[] = [];
const addrs: string[] = [];
let seq: Sequencer;
let seqAddr = '';
let n = 0;

beforeAll(async () => {
  for (let i = 0; i < 3; i++) {
    const s = new LogServer(join(root, `ls${i}`));
    addrs.push(`127.0.0.1:${await s.listen(0)}`);
    servers.push(s);
  }
  seq = new Sequencer(addrs);
  seqAddr = `127.0.0.1:${await seq.listen(0)}`;
});
afterAll(async () => {
  await seq.close();
  for (const s of servers) await s.close();
  rmSync(root, { recursive: true, force: true });
});

describe('NativeLoglet (sequencer + 3 LogServers over TCP, majority commit)', () =>
  logletConformance(async (start) => new NativeLoglet(`c${n++}`, start, seqAddr, addrs)));

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
      (sp, st) => openLoglet(sp, st),
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
});
