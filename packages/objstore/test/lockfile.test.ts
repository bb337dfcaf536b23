// lockFile: a lock left by a process that was killed is broken at once; a live holder's lock is not.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
