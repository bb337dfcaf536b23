// lockFile: a lock left by a process that was killed is broken at once; a live holder's lock is not.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DirectoryLockedError, lockDirectory, lockFile, lockWaitMsMax } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'objstore-lock-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('lockFile', () => {
  it('breaks at once a lock whose holder process is gone (kill -9 mid-operation)', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const pid = Number(dead.stdout.toString());
    const path = join(root, 'a.lock');
    writeFileSync(path, String(pid));
    const t0 = Date.now();
    const release = await lockFile(path);
    expect(Date.now() - t0).toBeLessThan(lockWaitMsMax / 2);
    await release();
  });

  it('waits for a live holder', async () => {
    const path = join(root, 'b.lock');
    writeFileSync(path, String(process.ppid)); // our parent: alive
    let got = false;
    const p = lockFile(path).then((r) => {
      got = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toBe(false);
    rmSync(path); // the holder releases
    const release = await p;
    expect(got).toBe(true);
    await release();
  });

  it("of many waiters on a dead holder's lock, exactly one holds it at a time", async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const path = join(root, 'c.lock');
    writeFileSync(path, dead.stdout.toString());
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        const release = await lockFile(path);
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 5));
        inside--;
        await release();
      }),
    );
    expect(most).toBe(1);
  });
});

describe('lockFile: one lock source per process and directory', () => {
  const child = new URL('./helpers/child.ts', import.meta.url).pathname;
  /** A child process in `mode` (see helpers/child.ts) on `dir`: its pid once it printed `line`. */
  const run = (mode: string, dir: string, line: string) =>
    new Promise<{ pid: number; exited: Promise<void>; kill: () => void }>((resolve, reject) => {
      const p = spawn(process.execPath, ['--import', 'tsx', child, mode, dir], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = new Promise<void>((r) => p.on('exit', () => r()));
      let out = '';
      p.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes(line)) resolve({ pid: p.pid!, exited, kill: () => p.kill('SIGKILL') });
      });
      p.on('error', reject);
      void exited.then(() => reject(new Error(`${mode} exited before '${line}'`)));
    });

  it("takes every lock as a hard link of the process's source: no inode made per lock", async () => {
    const dir = mkdtempSync(join(root, 'src-'));
    const path = join(dir, 'k.lock');
    const inodes = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const release = await lockFile(path);
      inodes.add(statSync(path).ino);
      await release();
    }
    expect(readdirSync(dir)).toEqual([`.lock-src.${process.pid}`]);
    expect([...inodes]).toEqual([statSync(join(dir, `.lock-src.${process.pid}`)).ino]);
    // the directory emptied behind the process's back: the source is made again
    rmSync(join(dir, `.lock-src.${process.pid}`));
    const release = await lockFile(path);
    expect(readdirSync(dir).sort()).toEqual([`.lock-src.${process.pid}`, 'k.lock']);
    await release();
  });

  it("a process that exits removes its source; a killed one's is removed by the next process to lock there, its lock broken at once", async () => {
    const a = mkdtempSync(join(root, 'exit-'));
    const done = await run('lock-exit', a, 'done');
    await done.exited;
    expect(readdirSync(a)).toEqual([]);
    const b = mkdtempSync(join(root, 'kill-'));
    const held = await run('lock-hold', b, 'locked');
    held.kill();
    await held.exited;
    expect(readdirSync(b).sort()).toEqual([`.lock-src.${held.pid}`, 'k.lock']);
    const t0 = Date.now();
    const release = await lockFile(join(b, 'k.lock'));
    expect(Date.now() - t0).toBeLessThan(lockWaitMsMax / 2);
    expect(readdirSync(b).sort()).toEqual([`.lock-src.${process.pid}`, 'k.lock']);
    await release();
  }, 60_000);
});

describe('lockDirectory', () => {
  it("one holder at a time; a dead holder's or an empty lock is taken over", async () => {
    const dir = mkdtempSync(join(root, 'dir-'));
    const release = await lockDirectory(dir, 'the test directory');
    await expect(lockDirectory(dir, 'the test directory')).rejects.toBeInstanceOf(DirectoryLockedError);
    await release();
    (await lockDirectory(dir))();
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    writeFileSync(join(dir, 'LOCK'), dead.stdout.toString());
    await (await lockDirectory(dir))();
    writeFileSync(join(dir, 'LOCK'), '');
    await (await lockDirectory(dir))();
  });
});
