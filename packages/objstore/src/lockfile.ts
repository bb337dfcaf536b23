import { type FileHandle, open, stat, unlink } from 'node:fs/promises';

/** How long `lockFile` waits for another holder. */
export const lockWaitMsMax = 10_000;
/** A lock file older than this was left by a crashed process and is broken. */
export const lockStaleMs = 30_000;

/**
 * Takes an exclusive lock on `path` by creating it with O_EXCL (works across processes on one machine);
 * resolves with the release function. Waits with jittered backoff up to `lockWaitMsMax`, breaking locks
 * older than `lockStaleMs`.
 */
export async function lockFile(path: string, what = path): Promise<() => Promise<void>> {
  const t0 = Date.now();
  for (let attempt = 0; ; attempt++) {
    let fh: FileHandle | undefined;
    try {
      fh = await open(path, 'wx');
      await fh.close();
      return () => unlink(path).catch(() => undefined);
    } catch (e) {
      await fh?.close();
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const st = await stat(path).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > lockStaleMs) await unlink(path).catch(() => undefined);
      if (Date.now() - t0 > lockWaitMsMax)
        throw new Error(`timed out after ${lockWaitMsMax} ms waiting for the lock on ${what}`);
      await new Promise((r) => setTimeout(r, Math.min(50, 1 + attempt) * Math.random()));
    }
  }
}
