import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { commands, serveSync, syncFiles, syncToRemote } from '../src/index.js';
import { image } from './helpers/image.js';

const root = mkdtempSync(join(tmpdir(), 'r3map-sync-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const p = (n: string) => join(root, n);

describe('delta sync', () => {
  it('sends only changed chunks; --dry-run sends nothing; the result is identical', async () => {
    const a = image(4 << 20, 1);
    writeFileSync(p('a'), a);
    writeFileSync(p('b'), a);
    for (const off of [100, 1_000_000, 3_000_000]) a.write('x', off);
    writeFileSync(p('a'), a);
    const dry = await syncFiles(p('a'), p('b'), { dryRun: true });
    expect(dry.changedChunks).toBe(3);
    // a changed 64 KiB chunk is compared again in 4 KiB pieces: one piece each travels
    expect(dry.bytesSent).toBe(3 * 4096);
    expect(Buffer.compare(readFileSync(p('b')), a)).not.toBe(0);
    const r = await syncFiles(p('a'), p('b'));
    expect(r.bytesSent).toBe(3 * 4096);
    expect(Buffer.compare(readFileSync(p('b')), a)).toBe(0);
    expect((await syncFiles(p('a'), p('b'))).bytesSent).toBe(0);
  });

  it('handles growing, shrinking and new destinations', async () => {
    writeFileSync(p('s1'), image(100_000, 2));
    writeFileSync(p('d1'), image(300_000, 2));
    await syncFiles(p('s1'), p('d1'));
    expect(Buffer.compare(readFileSync(p('d1')), readFileSync(p('s1')))).toBe(0);
    await syncFiles(p('s1'), p('new'), { chunkBytes: 4096 });
    expect(Buffer.compare(readFileSync(p('new')), readFileSync(p('s1')))).toBe(0);
    await expect(syncFiles(p('s1'), p('x'), { chunkBytes: 10 })).rejects.toThrow(/chunk size/);
  });

  it('syncs to another process over TCP, resumably, and refuses paths outside its root', async () => {
    const server = serveSync(p('remote'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const { mkdirSync } = await import('node:fs');
    mkdirSync(p('remote'), { recursive: true });
    const a = image(2 << 20, 3);
    writeFileSync(p('src'), a);
    // "interrupted" first run: the destination holds only the first half
    writeFileSync(p('remote/img'), a.subarray(0, 1 << 20));
    const r = await syncToRemote(p('src'), '127.0.0.1', port, 'img');
    expect(r.bytesSent).toBe(1 << 20);
    expect(Buffer.compare(readFileSync(p('remote/img')), a)).toBe(0);
    // small edits, one of them across a piece boundary: only the touched 4 KiB pieces travel
    a.write('edit', 70_000);
    a.write('across', 4096 * 40 - 3);
    writeFileSync(p('src'), a);
    const r2 = await syncToRemote(p('src'), '127.0.0.1', port, 'img');
    expect(r2.changedChunks).toBe(2);
    expect(r2.bytesSent).toBe(3 * 4096);
    expect(Buffer.compare(readFileSync(p('remote/img')), a)).toBe(0);
    await expect(syncToRemote(p('src'), '127.0.0.1', port, '../escape')).rejects.toThrow(/outside/);
    await new Promise((res) => server.close(res));
  });

  it('strata sync prints what it sent and exits 2 on a usage error', async () => {
    writeFileSync(p('c1'), image(200_000, 4));
    const cmd = commands.find((c) => c.name === 'sync')!;
    const c = captureIo('', {}, root);
    expect(await runCommand(cmd, ['c1', 'c2', '--dry-run'], c.io)).toBe(0);
    expect(c.stdout()).toMatch(/would send 200000 bytes: 4 of 4 chunks differ/);
    expect(await runCommand(cmd, ['c1'], captureIo('', {}, root).io)).toBe(2);
    // --chunk 0 was taken as "the default"; every size the sync cannot use is refused alike
    for (const size of ['0', '1K', '1T']) {
      const z = captureIo('', {}, root);
      expect(await runCommand(cmd, ['c1', 'c2', '--chunk', size], z.io), size).toBe(2);
      expect(z.stderr()).toMatch(/--chunk: chunk size must be an integer in \[4096, /);
    }
    // a tcp:// DST that does not parse was taken for a local path: ENOENT on 'tcp:/127.0.0.1/x'
    for (const dst of ['tcp://127.0.0.1/x', 'tcp://127.0.0.1:7/', 'TCP://h:1/x']) {
      const z = captureIo('', {}, root);
      expect(await runCommand(cmd, ['c1', dst], z.io), dst).toBe(2);
      expect(z.stderr()).toBe(`strata sync: DST: expected tcp://HOST:PORT/PATH, got '${dst}'\n`);
    }
    // a directory failed with a bare "EISDIR: illegal operation on a directory, read"
    mkdirSync(p('a-dir'), { recursive: true });
    for (const [args, what] of [
      [['a-dir', 'c2'], 'SRC'],
      [['c1', 'a-dir'], 'DST'],
    ] as const) {
      const z = captureIo('', {}, root);
      expect(await runCommand(cmd, [...args], z.io)).toBe(1);
      expect(z.stderr()).toBe(`strata sync: ${what} a-dir: is a directory\n`);
    }
  });

  it('strata sync serve refuses a root that is not a directory (every request failed with ENOENT)', async () => {
    const cmd = commands.find((c) => c.name === 'sync')!;
    writeFileSync(p('a-file'), 'x');
    for (const dir of ['no-such-root', 'a-file']) {
      const c = captureIo('', {}, root);
      expect(await runCommand(cmd, ['serve', '--listen', '127.0.0.1:0', '--root', dir], c.io)).toBe(1);
      expect(c.stderr()).toBe(`strata sync: --root ${dir}: not a directory\n`);
    }
  });

  it('the sync server closes a connection that sends no HELLO within its limit (it was held forever); a sync still works', async () => {
    mkdirSync(p('hello-root'), { recursive: true });
    const server = serveSync(p('hello-root'), { helloTimeoutMs: 300 });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as { port: number }).port;
    const silent = connect({ host: '127.0.0.1', port });
    // a frame's length, then a byte of it now and then (the frame never complete), does not hold it either
    const trickle = connect({ host: '127.0.0.1', port });
    trickle.on('error', () => undefined).resume();
    trickle.write(Buffer.from([0, 0, 1, 0]));
    const drip = setInterval(() => trickle.writable && trickle.write(Buffer.from([1])), 50);
    const closed = [silent, trickle].map((c) => new Promise((r) => c.once('close', r)));
    try {
      const t0 = performance.now();
      await Promise.all(closed);
      expect(performance.now() - t0).toBeLessThan(5_000);
      writeFileSync(p('hello-src'), image(100_000, 9));
      const r = await syncToRemote(p('hello-src'), '127.0.0.1', port, 'img');
      expect(r.bytesSent).toBe(100_000);
    } finally {
      clearInterval(drip);
      silent.destroy();
      trickle.destroy();
      await new Promise((res) => server.close(res));
    }
  });

  it('the sync server answers a malformed HELLO with an ERROR frame that says what is wrong', async () => {
    mkdirSync(p('bad-hello'), { recursive: true });
    const server = serveSync(p('bad-hello'));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as { port: number }).port;
    const answer = (payload: string) =>
      new Promise<string>((res) => {
        const c = connect({ host: '127.0.0.1', port }, () => {
          const h = Buffer.alloc(5);
          h.writeUInt32BE(Buffer.byteLength(payload) + 1, 0);
          h[4] = 1; // HELLO
          c.write(Buffer.concat([h, Buffer.from(payload)]));
        });
        let got = Buffer.alloc(0);
        c.on('data', (d) => {
          got = Buffer.concat([got, d]);
        });
        c.on('error', () => undefined);
        c.on('close', () => res(got.length > 5 ? `${got[4]} ${got.subarray(5).toString()}` : 'closed'));
      });
    try {
      // type 5 is ERROR; these were bare TypeErrors and JSON.parse's message
      expect(await answer('not json')).toBe('5 HELLO is not JSON (8 bytes)');
      expect(await answer('null')).toBe('5 HELLO is not a JSON object {path, chunkBytes, size}');
      expect(await answer('[1]')).toBe('5 HELLO is not a JSON object {path, chunkBytes, size}');
      expect(await answer('{"path":{"x":1},"chunkBytes":65536,"size":0}')).toBe(
        "5 HELLO's path must be a string of 1 to 4096 characters",
      );
      expect(await answer('{"path":"a","chunkBytes":65536,"size":1e400}')).toBe('5 bad size Infinity');
    } finally {
      await new Promise((res) => server.close(res));
    }
  });

  it('strata sync serve on a port in use says so, exit 1 (an unhandled error event ended it)', async () => {
    const busy = serveSync(p('remote'));
    await new Promise<void>((res) => busy.listen(0, '127.0.0.1', res));
    const port = (busy.address() as { port: number }).port;
    try {
      const cmd = commands.find((c) => c.name === 'sync')!;
      const c = captureIo('', {}, root);
      const args = ['serve', '--listen', `127.0.0.1:${port}`, '--root', 'remote'];
      expect(await runCommand(cmd, args, c.io)).toBe(1);
      expect(c.stderr()).toBe(`strata sync: listen EADDRINUSE: address already in use 127.0.0.1:${port}\n`);
    } finally {
      await new Promise((res) => busy.close(res));
    }
  });
});
