// Helpers of the real-process tests (procs*.test.ts): children, ports, and the exactly-once check.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stream } from '@strata/helios';
import { afterAll, expect } from 'vitest';

export const root = mkdtempSync(join(tmpdir(), 'helios-procs-'));
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

export const ddl = `CREATE STREAM ev SOURCES ('x') FORMAT json COLUMNS (n INT, user STRING, msg TEXT) INDEX (user, TOKENS(msg))`;
export const lineOf = (n: number) =>
  JSON.stringify({ n, user: `u${n % 13}`, msg: `event id_${n} from u${n % 13}` });

/** A file of lines n in [from, from + count). */
export function writeLines(path: string, from: number, count: number): void {
  writeFileSync(path, `${Array.from({ length: count }, (_, i) => lineOf(from + i)).join('\n')}\n`);
}

let seed = Number(process.env.HELIOS_SEED ?? 4242);
export const rand = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
};

export interface Child {
  proc: ChildProcess;
  /** Resolves with the first stdout line matching. */
  line(re: RegExp): Promise<string>;
  exit: Promise<'killed' | 'done'>;
}

export function child(...args: string[]): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'proc-child.ts'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of [...waiters]) {
      const m = out.split('\n').find((l) => w.re.test(l));
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exit = new Promise<'killed' | 'done'>((resolve, reject) =>
    proc.on('exit', (code, signal) => {
      children.delete(proc);
      if (signal === 'SIGKILL') resolve('killed');
      else if (code === 0) resolve('done');
      else reject(new Error(`child ${args[0]} exited ${code}: ${err.slice(0, 800)}`));
    }),
  );
  return {
    proc,
    exit,
    line: (re) =>
      new Promise((resolve, reject) => {
        const m = out.split('\n').find((l) => re.test(l));
        if (m) return resolve(m);
        waiters.push({ re, resolve });
        exit.then(
          () => reject(new Error(`child ${args[0]} ended before printing ${re}: ${err.slice(0, 800)}`)),
          reject,
        );
      }),
  };
}

/**
 * The lock files a killed child left in a data directory (counted, not removed: @strata/objstore's
 * lockFile publishes a lock with its holder's pid in it and breaks a dead holder's lock, so a restarted
 * child must get through them on its own; the kill tests log how many it met).
 */
export function locksLeft(dir: string): number {
  let n = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.lock')) n++;
    }
  };
  walk(dir);
  return n;
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function startServer(dir: string, port: number, index: boolean): Promise<Child> {
  const c = child('server', dir, String(port), index ? '1' : '0');
  await c.line(/^port \d+/);
  return c;
}

/** Every line once by a full scan; with the index complete, needles and a value query agree with it. */
export async function verify(dir: string, total: number, indexed: boolean): Promise<void> {
  const s = await Stream.open(dir, 'ev');
  try {
    const seen = new Uint16Array(total);
    for await (const b of s.scan()) for (const r of b.rows) seen[r[0] as number]!++;
    const wrong = [...seen].map((x, n) => [n, x]).filter(([, x]) => x !== 1);
    expect(wrong.slice(0, 5)).toEqual([]);
    if (indexed) expect(s.indexedBlocks).toBe(s.blockCount);
    for (const n of [0, Math.floor(total / 3), total - 1]) {
      const r = await s.search(s.parse(`msg CONTAINS 'id_${n}'`));
      expect(r.rows.map((x) => x[0])).toEqual([n]);
      if (indexed) expect(r.stats.tailBlocks).toBe(0);
    }
    const viaIndex = await s.search(s.parse("user = 'u5'"));
    expect(viaIndex.rows.length).toBe(
      Array.from({ length: total }, (_, n) => n).filter((n) => n % 13 === 5).length,
    );
  } finally {
    await s.close();
  }
}
