import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStore, WalStore } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'objstore-crash-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});
const child = new URL('./helpers/child.ts', import.meta.url).pathname;

function start(args: string[]): {
  proc: ChildProcess;
  lines: string[];
  waitFor: (s: string) => Promise<void>;
  exited: Promise<void>;
} {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(proc);
  const lines: string[] = [];
  let buf = '';
  const waiters: { s: string; r: () => void }[] = [];
  proc.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      for (const w of waiters.filter((w) => w.s === l)) w.r();
    }
  });
  // 'close', not 'exit': at 'exit' the last lines of its output may not have been read yet
  const exited = new Promise<void>((r) => proc.on('close', () => r()));
  return {
    proc,
    lines,
    exited,
    waitFor: (s) => (lines.includes(s) ? Promise.resolve() : new Promise((r) => waiters.push({ s, r }))),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('crashes', () => {
  it('kill -9 during put leaves the old or the new object, never a torn one', async () => {
    for (let round = 0; round < 4; round++) {
      const dir = join(root, `file-${round}`);
      const c = start(['file-overwrite', dir]);
      await c.waitFor('ready');
      await sleep(150 + round * 97);
      c.proc.kill('SIGKILL');
      await c.exited;
      const s = new FileStore(dir);
      const h = await s.head('k');
      if (h) {
        const data = await s.get('k');
        expect(data.length).toBe(1 << 20);
        expect(data.every((b) => b === data[0])).toBe(true);
      }
    }
  });

  it('after kill -9 the WAL replays every acknowledged write and nothing else', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = join(root, `wal-${round}`);
      const c = start(['wal-writer', dir]);
      await c.waitFor('ready');
      await sleep(200 + round * 131);
      c.proc.kill('SIGKILL');
      await c.exited;
      const log = readFileSync(join(dir, 'log'), 'utf8').split('\n');
      const acked = log.filter((l) => l.startsWith('ack ')).map((l) => Number(l.slice(4)));
      const tried = new Set(log.filter((l) => l.startsWith('try ')).map((l) => Number(l.slice(4))));
      expect(acked.length).toBeGreaterThan(10);
      const w = await WalStore.open(new FileStore(join(dir, 'standard')), { dir: join(dir, 'wal') });
      for (const j of acked)
        expect(Buffer.from(await w.get(`k/${String(j).padStart(8, '0')}`)).toString()).toBe(
          `value ${j}`.repeat(20),
        );
      let after: string | undefined;
      for (;;) {
        const page = await w.list('k/', after === undefined ? {} : { startAfter: after });
        for (const o of page.objects) expect(tried.has(Number(o.key.slice(2)))).toBe(true);
        if (page.nextStartAfter === undefined) break;
        after = page.nextStartAfter;
      }
      await w.close();
    }
  });
});

describe('several processes', () => {
  it('concurrent conditional puts from several processes yield exactly one winner', async () => {
    for (let round = 0; round < 2; round++) {
      const dir = join(root, `race-${round}`);
      new FileStore(dir);
      const cs = Array.from({ length: 6 }, (_, i) => start(['race', dir, String(i)]));
      await Promise.all(cs.map((c) => c.exited));
      const outcomes = cs.map((c) => c.lines[0]);
      expect(outcomes.filter((o) => o === 'won')).toHaveLength(1);
      expect(outcomes.filter((o) => o === 'lost')).toHaveLength(5);
      const winner = outcomes.indexOf('won');
      expect(Buffer.from(await new FileStore(dir).get('race')).toString()).toBe(`writer ${winner}`);
    }
  });
});
