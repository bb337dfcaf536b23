import { randomBytes } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { makeDirs } from '@strata/cli';
import { lockFile } from '@strata/objstore';
import { type MetaStore, VersionConflictError, type Versioned } from '../contract.js';

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
      // a version counts puts from 0: JSON's 1e400 (Infinity), 1.5 or -1 is no version a put can follow
      if (typeof j !== 'object' || j === null) throw new Error('not a {"version", "value"} object');
      if (!Number.isSafeInteger(j.version) || j.version < 0)
        throw new Error(
          `version ${typeof j.version === 'number' ? String(j.version) : (JSON.stringify(j.version) ?? 'missing')} is not a whole number >= 0`,
        );
      return { version: j.version, value: j.value };
    } catch (e) {
      throw new Error(`MetaStore file ${this.path} is corrupt: ${(e as Error).message}`);
    }
  }

  async put(value: T, expectedVersion: number): Promise<number> {
    await makeDirs(dirname(this.path));
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

  private lock(): Promise<() => Promise<void>> {
    return lockFile(`${this.path}.lock`);
  }

  async close(): Promise<void> {}
}

export function metaPathFor(dir: string, name: string): string {
  return join(dir, `${name}.chain.json`);
}
