import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type MetaStore, VersionConflictError, type Versioned } from '../contract.js';

/** How long a put waits for another writer's lock. */
const lockWaitMsMax = 10_000;
/** A lock older than this was left by a crashed process and is broken. */
const lockStaleMs = 30_000;

/**
 * A register in a local file: `{"version": N, "value": ...}` replaced atomically (temp file, fsync,
 * rename, directory fsync). Conditional puts hold a lock file created with O_EXCL, so racing processes
 * on one machine see exactly one winner.
 */
export class FileMetaStore<T = unknown> implements MetaStore<T> {
  constructor(readonly path: string) {}

  async get(): Promise<Versioned<T>> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 0, value: undefined };
      throw e;
    }
    try {
      const j = JSON.parse(text) as { version: number; value: T };
      if (typeof j.version !== 'number') throw new Error('no version');
      return { version: j.version, value: j.value };
    } catch (e) {
      throw new Error(`MetaStore file ${this.path} is corrupt: ${(e as Error).message}`);
    }
  }

  async put(value: T, expectedVersion: number): Promise<number> {
    await mkdir(dirname(this.path), { recursive: true });
    const unlock = await this.lock();
    try {
      const cur = await this.get();
      if (cur.version !== expectedVersion) throw new VersionConflictError(expectedVersion, cur.version);
      const next = expectedVersion + 1;
      const tmp = `${this.path}.${randomBytes(6).toString('hex')}.tmp`;
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(JSON.stringify({ version: next, value }));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
      const d = await open(dirname(this.path), 'r');
      await d.sync();
      await d.close();
      return next;
    } finally {
      await unlock();
    }
  }

  private async lock(): Promise<() => Promise<void>> {
    const p = `${this.path}.lock`;
    const t0 = Date.now();
    for (let attempt = 0; ; attempt++) {
      let fh: FileHandle | undefined;
      try {
        fh = await open(p, 'wx');
        await fh.close();
        return () => unlink(p).catch(() => undefined);
      } catch (e) {
        await fh?.close();
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const st = await stat(p).catch(() => undefined);
        if (st && Date.now() - st.mtimeMs > lockStaleMs) await unlink(p).catch(() => undefined);
        if (Date.now() - t0 > lockWaitMsMax) throw new Error(`timed out waiting for the lock ${p}`);
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 1 + attempt)));
      }
    }
  }

  async close(): Promise<void> {}
}

export function metaPathFor(dir: string, name: string): string {
  return join(dir, `${name}.chain.json`);
}
