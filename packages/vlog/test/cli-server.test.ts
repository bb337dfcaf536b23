// `strata log server` and `strata log sequencer` as their own processes: they start on 127.0.0.1, serve a
// client's appends and reads, and stop cleanly (exit 0) on SIGTERM or when their parent goes away.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { commands } from '../src/cli.js';
import { NativeLoglet } from '../src/index.js';
import { type LogProcess, startLogProcess } from './helpers/cli-procs.js';

const root = mkdtempSync(join(tmpdir(), 'vlog-cli-server-'));
const procs: LogProcess[] = [];
afterAll(async () => {
  for (const p of procs) await p.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('strata log server / sequencer as processes', () => {
  it('serve a NativeLoglet client and exit 0 on SIGTERM', async () => {
    const servers = await Promise.all(
      [0, 1, 2].map((i) => startLogProcess(['server', '--dir', join(root, `ls${i}`)])),
    );
    procs.push(...servers);
    const seq = await startLogProcess(['sequencer']);
    procs.push(seq);
    const addrs = servers.map((s) => s.address);
    const loglet = new NativeLoglet('cli', 0, seq.address, addrs);
    expect(await loglet.append([Buffer.from('one'), Buffer.from('two')])).toEqual([0, 1]);
    expect(await loglet.append([Buffer.from('three')])).toEqual([2]);
    expect(await loglet.checkTail()).toEqual({ tail: 3, sealed: false });
    const recs = await loglet.read(0, 3);
    expect(recs.map((r) => Buffer.from(r.payload).toString())).toEqual(['one', 'two', 'three']);
    await loglet.close();
    expect(await seq.stop()).toBe(0);
    for (const s of servers) expect(await s.stop()).toBe(0);
    // the records are durable: LogServers restarted on the same directories serve them; a new sequencer
    // cannot take over the loglet, so the reader seals it (as a reconfiguration would) and reads
    const again = await Promise.all(
      [0, 1, 2].map((i) => startLogProcess(['server', '--dir', join(root, `ls${i}`)])),
    );
    procs.push(...again);
    const seq2 = await startLogProcess(['sequencer']);
    procs.push(seq2);
    const reader = new NativeLoglet(
      'cli',
      0,
      seq2.address,
      again.map((s) => s.address),
    );
    expect(await reader.seal()).toEqual({ tail: 3, sealed: true });
    const back = await reader.read(0, 3);
    expect(back.map((r) => Buffer.from(r.payload).toString())).toEqual(['one', 'two', 'three']);
    await reader.close();
  });

  it('a server stops cleanly when its stdin closes (its parent died)', async () => {
    const s = await startLogProcess(['server', '--dir', join(root, 'orphan')]);
    procs.push(s);
    const exit = new Promise<number | null>((r) => s.proc.once('exit', (code) => r(code)));
    s.proc.stdin!.end();
    expect(await exit).toBe(0);
  });

  it('exits 2 on a bad --listen and 1 on a --dir it cannot make or write, each with a clear message; --help has an example', async () => {
    const log = commands[0]!;
    const bad = captureIo();
    expect(await runCommand(log, ['server', '--dir', join(root, 'x'), '--listen', 'nowhere'], bad.io)).toBe(
      2,
    );
    expect(bad.stderr()).toMatch(/--listen: expected HOST:PORT, got 'nowhere'/);
    // a data directory that cannot be made or written: exit 1 before serving (it served, and failed each
    // request); a file where the directory should be, and one under /proc
    writeFileSync(join(root, 'plain'), 'x');
    for (const dir of [join(root, 'plain', 'sub'), '/proc/strata-no-such/ls']) {
      const nodir = captureIo();
      expect(await runCommand(log, ['server', '--dir', dir, '--listen', '127.0.0.1:0'], nodir.io)).toBe(1);
      expect(nodir.stderr()).toMatch(new RegExp(`^strata log server: --dir ${dir}: `));
      expect(nodir.stdout()).toBe('');
    }
    // a sequencer's --servers were taken as they came ('bad' too), and failed each request that used them
    const seq = captureIo();
    const args = ['sequencer', '--listen', '127.0.0.1:0', '--servers', '127.0.0.1:7001,bad'];
    expect(await runCommand(log, args, seq.io)).toBe(2);
    expect(seq.stderr()).toMatch(/--servers: expected HOST:PORT, got 'bad'/);
    const help = captureIo();
    expect(await runCommand(log, ['server', '--help'], help.io)).toBe(0);
    expect(help.stdout()).toMatch(/Example:\n\s+strata log server --dir \S+ --listen 127\.0\.0\.1:\d+/);
    // every kind a spec may name (striped: was missing, though `log create` takes it)
    const create = captureIo();
    expect(await runCommand(log, ['create', '--help'], create.io)).toBe(0);
    for (const kind of ['file:', 'mem://', 'objstore:', 'zk://', 'native://', 'striped:'])
      expect(create.stdout()).toContain(` ${kind}`);
  });
});
