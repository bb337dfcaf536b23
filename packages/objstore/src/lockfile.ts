import { unlinkSync } from 'node:fs';
import { type FileHandle, link, open, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** How long `lockFile` waits for another holder. */
export const lockWaitMsMax = 10_000;
/** A lock file older than this was left by a crashed process and is broken. */
export const lockStaleMs = 30_000;

/** Whether process `pid` exists on this machine. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the lock at `path` names a holder process that no longer exists. */
async function holderDead(path: string): Promise<boolean> {
  // the lock is linked into place with its pid in it; an empty one (left by an older version) goes stale
  const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
  return pid > 0 && pid !== process.pid && !alive(pid);
}

/**
 * Removes a lock whose holder died, under a second lock (`path.break`) so that two waiters cannot both
 * break it and one remove the fresh lock the other has just taken: the check is repeated under it.
 */
async function breakDeadLock(path: string): Promise<void> {
  const guard = `${path}.break`;
  let fh: FileHandle | undefined;
  try {
    fh = await open(guard, 'wx');
  } catch {
    // another waiter is breaking it; one left by a crash is stale after lockStaleMs
    const st = await stat(guard).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > lockStaleMs) await unlink(guard).catch(() => undefined);
    return;
  }
  try {
    if (await holderDead(path)) await unlink(path).catch(() => undefined);
  } finally {
    await fh.close();
    await unlink(guard).catch(() => undefined);
  }
}

/** This process's lock source in each directory where it took a lock (see `lockSource`). */
const sources = new Map<string, Promise<string>>();
const sourceName = /^\.lock-src\.(\d+)$/;
let exitHook = false;

/**
 * This process's lock file in `dir`: its pid, written once, then hard-linked into place for every lock the
 * process takes there (and unlinked to release it). A lock file written and removed per lock cost an inode
 * each, 0.4-0.5 ms to create on a journal-less ext4 (such as this project's test host), which also skips,
 * one by one, every inode freed in the last few minutes when it looks for a free one: helios' progress log
 * takes a lock per conditional put. Sources of processes that are gone are removed when a process makes
 * its own; its own is removed when it exits.
 */
function lockSource(dir: string): Promise<string> {
  let p = sources.get(dir);
  if (!p) {
    if (!exitHook) {
      exitHook = true;
      process.once('exit', removeSources);
    }
    p = (async () => {
      const path = join(dir, `.lock-src.${process.pid}`);
      await writeFile(path, String(process.pid));
      for (const name of await readdir(dir).catch(() => [])) {
        const pid = Number(sourceName.exec(name)?.[1] ?? 0);
        if (pid > 0 && pid !== process.pid && !alive(pid))
          await unlink(join(dir, name)).catch(() => undefined);
      }
      return path;
    })();
    sources.set(dir, p);
    p.catch(() => sources.delete(dir));
  }
  return p;
}

function removeSources(): void {
  for (const dir of sources.keys())
    try {
      unlinkSync(join(dir, `.lock-src.${process.pid}`));
    } catch {}
}

/**
 * Takes an exclusive lock on `path` by hard-linking this process's lock source to it, which fails when the
 * lock exists (works across processes on one machine);
 * resolves with the release function. The lock file holds the holder's pid: a lock whose holder has died
 * (kill -9 mid-operation) is broken at once. Otherwise waits with jittered backoff up to `lockWaitMsMax`,
 * breaking locks older than `lockStaleMs` (a holder on another machine sharing the directory, say).
 */
export async function lockFile(path: string, what = path): Promise<() => Promise<void>> {
  const t0 = Date.now();
  // the lock appears with its holder's pid already in it: this process's source file, hard-linked into
  // place (link fails with EEXIST if the lock exists), so a kill at any point never leaves an empty lock
  const dir = dirname(path);
  let remade = 0;
  for (let attempt = 0; ; attempt++) {
    const mine = await lockSource(dir);
    try {
      await link(mine, path);
      return () => unlink(path).catch(() => undefined);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && sources.get(dir) !== undefined) {
        // the source is gone (the directory was emptied, or another thread of the process removed it at
        // its exit): made again
        sources.delete(dir);
        if (remade++ < 3) continue;
      }
      if (code !== 'EEXIST') throw e;
      // the lock's age is its inode's change time: a link or an unlink of the holder's source sets it
      const st = await stat(path).catch(() => undefined);
      if (st && Date.now() - st.ctimeMs > lockStaleMs) await unlink(path).catch(() => undefined);
      else if (st && (await holderDead(path))) await breakDeadLock(path);
      if (Date.now() - t0 > lockWaitMsMax)
        throw new Error(`timed out after ${lockWaitMsMax} ms waiting for the lock on ${what}`);
      await new Promise((r) => setTimeout(r, Math.min(50, 1 + attempt) * Math.random()));
    }
  }
}

/** Raised by {@link lockDirectory} when a live process holds the directory. */
export class DirectoryLockedError extends Error {
  override name = 'DirectoryLockedError';
  constructor(
    readonly what: string,
    readonly pid: number,
  ) {
    super(`${what} is in use by process ${pid}`);
  }
}

/**
 * Locks directory `dir` for this process until the release is called: a `LOCK` file naming the pid,
 * created with the pid already in it (private file, then hard link). A lock whose holder has died, or an
 * empty one (left by an older version's clean close), is taken over; a live holder's lock (this process's
 * too: one opener per directory) throws {@link DirectoryLockedError}.
 */
export async function lockDirectory(dir: string, what = dir): Promise<() => Promise<void>> {
  const path = join(dir, 'LOCK');
  const mine = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await writeFile(mine, String(process.pid));
  try {
    for (;;) {
      try {
        await link(mine, path);
        return () => unlink(path).catch(() => undefined);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (pid > 0 && (pid === process.pid || alive(pid))) throw new DirectoryLockedError(what, pid);
      if (pid > 0) await breakDeadLock(path);
      else await unlink(path).catch(() => undefined);
    }
  } finally {
    await unlink(mine).catch(() => undefined);
  }
}
