import { type FileHandle, link, open, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

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

/**
 * Takes an exclusive lock on `path` by creating it with O_EXCL (works across processes on one machine);
 * resolves with the release function. The lock file holds the holder's pid: a lock whose holder has died
 * (kill -9 mid-operation) is broken at once. Otherwise waits with jittered backoff up to `lockWaitMsMax`,
 * breaking locks older than `lockStaleMs` (a holder on another machine sharing the directory, say).
 */
export async function lockFile(path: string, what = path): Promise<() => Promise<void>> {
  const t0 = Date.now();
  // the lock appears with its holder's pid already in it: written to a private file, then hard-linked into
  // place (link fails with EEXIST if the lock exists), so a kill at any point never leaves an empty lock
  const mine = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await writeFile(mine, String(process.pid));
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(mine, path);
        return () => unlink(path).catch(() => undefined);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const st = await stat(path).catch(() => undefined);
        if (st && Date.now() - st.mtimeMs > lockStaleMs) await unlink(path).catch(() => undefined);
        else if (st && (await holderDead(path))) await breakDeadLock(path);
        if (Date.now() - t0 > lockWaitMsMax)
          throw new Error(`timed out after ${lockWaitMsMax} ms waiting for the lock on ${what}`);
        await new Promise((r) => setTimeout(r, Math.min(50, 1 + attempt) * Math.random()));
      }
    }
  } finally {
    await unlink(mine).catch(() => undefined);
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
