import {
  closeSync,
  createReadStream,
  createWriteStream,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  type ReadStream,
  renameSync,
  rmSync,
  statSync,
  type WriteStream,
  writeFileSync,
} from 'node:fs';
import { dirname, resolve } from 'node:path';
import { finished } from 'node:stream/promises';

// Node 20's recursive mkdir never settles when a parent exists but cannot hold the child: every mkdir
// under /proc answers ENOENT, so Node "creates" the missing parent, finds that it exists and tries the
// child again, forever (the sync form spins the event loop, the promise stays pending). `strata store put
// --store file:/proc/x` hung that way. These walk up once to the first directory that exists and create
// the rest in order, so a child that still cannot be made is an error.

function notDirectory(path: string): Error {
  return Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${path}'`), { code: 'ENOTDIR', path });
}

const code = (e: unknown) => (e as NodeJS.ErrnoException).code;

/**
 * `mkdir -p` that always settles: creates `dir` and its missing parents and returns the first directory it
 * created (undefined if `dir` existed), as `mkdir(dir, { recursive: true })` does. The walk is a few stat
 * and mkdir calls when a store or log opens, made synchronously ({@link makeDirsSync}): one walk, not two.
 */
export async function makeDirs(dir: string): Promise<string | undefined> {
  return makeDirsSync(dir);
}

/**
 * Replaces `path` with `data` so that after a crash it holds the old bytes or the new ones, whole: written
 * to a file of its own beside it, synced, renamed over `path`, and the directory synced (the rename is
 * durable when this returns). For small files with one writer at a time: a stream's DDL, an agent's
 * checkpoint.
 */
export function writeFileDurableSync(path: string, data: string | Uint8Array): void {
  // one name, not one per process: a crash's leftover is replaced by the next write, not kept forever
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeFileSync(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  const dir = openSync(dirname(resolve(path)), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** {@link makeDirs}: the walk itself. */
export function makeDirsSync(dir: string): string | undefined {
  const missing: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    const st = statSync(d, { throwIfNoEntry: false });
    if (st && !st.isDirectory()) throw notDirectory(d);
    if (st || dirname(d) === d) break;
    missing.push(d);
  }
  let first: string | undefined;
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
      first ??= d;
    } catch (e) {
      if (code(e) !== 'EEXIST') throw e;
      if (!statSync(d).isDirectory()) throw notDirectory(d);
    }
  }
  return first;
}

/** A file a command writes, from {@link openOutput}. */
export interface Output {
  /** Where to write; its errors are held for `close`, never an unhandled 'error' event. */
  stream: WriteStream;
  /** Ends the file and waits until it is written; rejects with the first error, naming the flag. */
  close(): Promise<void>;
}

/**
 * A command's output file (`--out FILE`, `--alerts FILE`), opened now, before the command's work: a path
 * that cannot be written is an error naming `flag` at once, not after the work (or, from a stream opened
 * lazily with no 'error' listener, a crash).
 */
export function openOutput(flag: string, path: string): Output {
  const named = (e: unknown) => new Error(`${flag} ${path}: ${(e as Error).message}`);
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (e) {
    throw named(e);
  }
  const stream = createWriteStream('', { fd });
  let failed: unknown;
  stream.on('error', (e) => {
    failed ??= e;
  });
  return {
    stream,
    async close() {
      if (failed === undefined) {
        stream.end();
        await finished(stream).catch((e: unknown) => {
          failed ??= e;
        });
      }
      if (failed !== undefined) throw named(failed);
    },
  };
}

/**
 * A command's input file, opened now: one that cannot be opened (missing, unreadable) or is a directory is
 * an error naming it (`cannot read NAME: ...`) before the command's work. A stream opened lazily by path
 * reports a missing file as an 'error' event, which ended the process when the command failed before
 * reading it (`strata store put` with a store that would not open). Read errors reach the reader.
 */
export function openInput(path: string, name = path): { stream: ReadStream; size: number } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new Error(`cannot read ${name}: ${(e as Error).message}`);
  }
  const st = fstatSync(fd);
  if (st.isDirectory()) {
    closeSync(fd);
    throw new Error(`cannot read ${name}: it is a directory`);
  }
  return { stream: createReadStream('', { fd }), size: st.size };
}
