// The acceptance scenario of issue 6, with real processes: 3 LogServers and a sequencer; 10,000 appends
// with confirmations; kill -9 one LogServer mid-stream; kill -9 the sequencer; reconfigure to a new
// NativeLoglet on the two survivors plus a fresh LogServer; finish; two fresh clients read everything.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogletUnavailableError, openLog } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'vlog-accept-'));
const procs: ChildProcess[] = [];
afterAll(() => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});
const helper = new URL('./helpers/proc.ts', import.meta.url).pathname;

function start(kind: 'server' | 'sequencer', arg: string): Promise<{ proc: ChildProcess; addr: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', helper, kind, arg], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  procs.push(proc);
  return new Promise((resolve, reject) => {
    proc.stdout!.once('data', (c: Buffer) => resolve({ proc, addr: `127.0.0.1:${c.toString().trim()}` }));
    proc.once('exit', (code) => reject(new Error(`${kind} exited with ${code}`)));
  });
}

const kill9 = (p: ChildProcess) => new Promise<void>((r) => p.once('exit', () => r()).kill('SIGKILL'));

describe('acceptance: NativeLoglet failover with real processes', () => {
  it('every acknowledged record is read exactly once, at the same position, by two fresh clients', async () => {
    const ls = await Promise.all([1, 2, 3, 4].map((i) => start('server', join(root, `ls${i}`))));
    const seqA = await start(
      'sequencer',
      ls
        .slice(0, 3)
        .map((x) => x.addr)
        .join(','),
    );
    const spec = (seq: string, servers: string[]) => `native://${seq}?servers=${servers.join(',')}&id=events`;
    const meta = `file:${join(root, 'meta')}`;
    const log = await openLog('events', {
      meta,
      loglet: spec(
        seqA.addr,
        ls.slice(0, 3).map((x) => x.addr),
      ),
      create: true,
      appendTimeoutMs: 3000,
    });
    const acked = new Map<number, string>();
    let failedOver = false;
    let inFlightAtFailover = '';
    for (let i = 0; i < 10_000; i++) {
      if (i === 3000) await kill9(ls[0]!.proc); // a LogServer dies: the majority keeps committing
      if (i === 6000) await kill9(seqA.proc); // the sequencer dies: appends fail over
      const payload = `record ${i}`;
      for (;;) {
        try {
          const [p] = await log.append([Buffer.from(payload)]);
          acked.set(p!, payload);
          break;
        } catch (e) {
          if (!(e instanceof LogletUnavailableError) || failedOver) throw e;
          // this record may or may not be in the log (not acknowledged either way); it is sent again
          inFlightAtFailover = payload;
          // the client reconfigures to a new NativeLoglet: two survivors plus a fresh LogServer
          const seqB = await start('sequencer', [ls[1]!.addr, ls[2]!.addr, ls[3]!.addr].join(','));
          await log.reconfigure(spec(seqB.addr, [ls[1]!.addr, ls[2]!.addr, ls[3]!.addr]));
          failedOver = true;
        }
      }
    }
    expect(failedOver).toBe(true);
    expect(acked.size).toBe(10_000);
    await log.close();
    for (let reader = 0; reader < 2; reader++) {
      const r = await openLog('events', { meta });
      const { tail } = await r.checkTail();
      const recs = await r.read(0, tail);
      expect(recs.map((x) => x.position)).toEqual(Array.from({ length: tail }, (_, i) => i));
      const byPos = new Map(recs.map((x) => [x.position, Buffer.from(x.payload).toString()]));
      for (const [p, s] of acked) expect(byPos.get(p)).toBe(s);
      // nothing appears twice, except possibly the unacknowledged copy of the record in flight at failover
      const counts = new Map<string, number>();
      for (const s of byPos.values()) counts.set(s, (counts.get(s) ?? 0) + 1);
      for (const [s, c] of counts) if (c > 1) expect(s).toBe(inFlightAtFailover);
      await r.close();
    }
  }, 120_000);
});
