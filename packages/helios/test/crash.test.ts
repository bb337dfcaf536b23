import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStream, Stream } from '@strata/helios';
import { afterAll, describe, expect, it } from 'vitest';
import { locksLeft } from './procs-lib.js';

const ddl = `CREATE STREAM ev SOURCES ('file:ev.jsonl') FORMAT json
  COLUMNS (n INT, user STRING, msg TEXT) INDEX (user, TOKENS(msg))`;
const dir = mkdtempSync(join(tmpdir(), 'helios-crash-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function runChild(file: string, killAfterMs: number): Promise<'killed' | 'done'> {
  return new Promise((resolve, reject) => {
    const c = spawn(
      process.execPath,
      ['--import', 'tsx', join(__dirname, 'crash-child.ts'), dir, file, '6000'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.push(c);
    let out = '';
    let err = '';
    c.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready') && killAfterMs >= 0) setTimeout(() => c.kill('SIGKILL'), killAfterMs).unref();
    });
    c.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    c.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve('killed');
      else if (code === 0) resolve('done');
      else reject(new Error(`child exited ${code}: ${err.slice(0, 500)}`));
    });
  });
}

describe('crash: kill -9 during ingestion and indexing', () => {
  it('after restarts every line is found exactly once, through the index and by a full scan', async () => {
    createStream(dir, ddl);
    const file = join(dir, 'ev.jsonl');
    const total = 6000;
    const lines = Array.from({ length: total }, (_, i) =>
      JSON.stringify({ n: i, user: `u${i % 13}`, msg: `event id_${i} from u${i % 13}` }),
    );
    writeFileSync(file, `${lines.join('\n')}\n`);
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    let kills = 0;
    let locks = 0;
    for (let round = 0; round < 4; round++) {
      if ((await runChild(file, Math.floor(50 + rand() * 600))) === 'killed') kills++;
      locks += locksLeft(dir); // the next child must get through them on its own
    }
    expect(await runChild(file, -1)).toBe('done');
    expect(kills).toBeGreaterThan(0);
    console.log(`crash: ${kills} kills, ${locks} lock files left by killed children`);
    const s = await Stream.open(dir, 'ev');
    try {
      const seen = new Uint8Array(total);
      for await (const b of s.scan()) for (const r of b.rows) seen[r[0] as number]!++;
      expect([...seen].every((x) => x === 1)).toBe(true);
      expect(s.indexedBlocks).toBe(s.blockCount);
      for (const i of [0, 1234, 5999]) {
        const r = await s.search(s.parse(`msg CONTAINS 'id_${i}'`));
        expect(r.rows.map((x) => x[0])).toEqual([i]);
        expect(r.stats.tailBlocks).toBe(0);
      }
      expect((await s.search(s.parse("user = 'u5'"))).rows.length).toBe(
        lines.filter((_, i) => i % 13 === 5).length,
      );
    } finally {
      await s.close();
    }
  });
});
