// Asynchronous replication of namespaces to a second store: convergence, coalescing, retries, a journal
// that survives kill -9, and resync after divergence.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  FileStore,
  MemStore,
  type ObjectStore,
  openStore,
  ReplicatedStore,
  StoreWrapper,
} from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'objstore-repl-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `d${n++}`);

/** Fails every other write (and counts them), like a replica that throttles. */
class Flaky extends StoreWrapper {
  calls = 0;
  puts = 0;
  override put(...a: Parameters<ObjectStore['put']>): Promise<string> {
    if (this.calls++ % 2 === 0) return Promise.reject(new Error('503 slow down'));
    this.puts++;
    return super.put(...a);
  }
  override delete(key: string): Promise<void> {
    if (this.calls++ % 2 === 0) return Promise.reject(new Error('503 slow down'));
    return super.delete(key);
  }
}

async function contents(s: ObjectStore, prefix: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let after: string | undefined;
  for (;;) {
    const page = await s.list(prefix, after === undefined ? {} : { startAfter: after });
    for (const o of page.objects) out[o.key] = Buffer.from(await s.get(o.key)).toString();
    if (!page.nextStartAfter) return out;
    after = page.nextStartAfter;
  }
}

describe('ReplicatedStore', () => {
  it('refuses a concurrency under 1 and a retry bound a timer cannot keep (a concurrency of 0 or NaN copied nothing, ever)', async () => {
    for (const concurrency of [0, Number.NaN, 1.5])
      await expect(ReplicatedStore.open(new MemStore(), new MemStore(), { concurrency })).rejects.toThrow(
        /replication concurrency must be a whole number of at least 1, got/,
      );
    await expect(ReplicatedStore.open(new MemStore(), new MemStore(), { retryMsMax: 0 })).rejects.toThrow(
      'replication retryMsMax must be a number of milliseconds from 1 to 2147483647, got 0',
    );
  });

  it('replicates puts and deletes under its prefixes, and nothing else', async () => {
    const primary = new MemStore();
    const replica = new MemStore();
    const r = await ReplicatedStore.open(primary, replica, { prefixes: ['a/', 'b/'] });
    await r.put('a/1', Buffer.from('one'));
    await r.put('b/2', Buffer.from('two'));
    await r.put('c/3', Buffer.from('three'));
    await r.put('a/4', Buffer.from('four'));
    await r.delete('a/4');
    await r.flush();
    expect(await contents(replica, '')).toEqual({ 'a/1': 'one', 'b/2': 'two' });
    expect(r.stats).toMatchObject({ pending: 0, lagMs: 0 });
    // reads come from the primary
    expect(Buffer.from(await r.get('c/3')).toString()).toBe('three');
  });

  it('retries a failing replica until it converges; overwrites coalesce', async () => {
    const primary = new MemStore();
    const flaky = new Flaky(new MemStore());
    const r = await ReplicatedStore.open(primary, flaky, { retryMsMax: 5 });
    for (let i = 0; i < 200; i++) await r.put('hot', Buffer.from(`v${i}`));
    for (let i = 0; i < 20; i++) await r.put(`k${i}`, Buffer.from(`x${i}`));
    await r.flush();
    expect(await contents(flaky, '')).toEqual(await contents(primary, ''));
    expect(r.stats.failures).toBeGreaterThan(0);
    expect(flaky.puts).toBeLessThan(200); // 200 writes of one key did not become 200 copies
  });

  it('a close does not wait out the backoff of a failed copy (it slept up to retryMsMax first)', async () => {
    class Down extends MemStore {
      override put(): Promise<string> {
        return Promise.reject(new Error('503 slow down'));
      }
    }
    // the clock of the backoff's timers is a fake one; setImmediate (the bound below) is real
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const r = await ReplicatedStore.open(new MemStore(), new Down(), { retryMsMax: 3_600_000 });
      await r.put('k', Buffer.from('v'));
      // failures until the backoff is long: 10 ms doubled per attempt, half to all of it
      await vi.advanceTimersByTimeAsync(200_000);
      expect(r.stats.failures).toBeGreaterThanOrEqual(12);
      const closed = r.close().then(() => 'closed');
      const turns = async () => {
        for (let i = 0; i < 50; i++) await new Promise((res) => setImmediate(res));
        return 'still waiting';
      };
      // the fake clock stands still: the backoff (tens of seconds) never ends by itself here
      expect(await Promise.race([closed, turns()])).toBe('closed');
    } finally {
      vi.useRealTimers();
    }
  });

  it('the replica equals the primary after any sequence of writes (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.tuple(fc.constantFrom('p/a', 'p/b', 'p/c', 'q/d'), fc.option(fc.string({ maxLength: 3 }))),
          {
            maxLength: 40,
          },
        ),
        async (ops) => {
          const primary = new MemStore();
          const replica = new Flaky(new MemStore());
          const r = await ReplicatedStore.open(primary, replica, {
            prefixes: ['p/'],
            retryMsMax: 2,
            concurrency: 3,
          });
          await Promise.all(
            ops.map(([k, v]) => (v === null ? r.delete(k) : r.put(k, Buffer.from(v)).then(() => undefined))),
          );
          await r.flush();
          expect(await contents(replica, '')).toEqual(await contents(primary, 'p/'));
        },
      ),
      { numRuns: 30 },
    );
  });

  it('after kill -9 with the replica down, a reopened store replays the journal and converges', async () => {
    const primaryDir = fresh();
    const journalDir = fresh();
    const child = new URL('./helpers/replicate-child.ts', import.meta.url).pathname;
    const proc = spawn(process.execPath, ['--import', 'tsx', child, primaryDir, journalDir, '100'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      proc.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('done\n')) resolve();
      });
      proc.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
    });
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
    const replicaDir = fresh();
    const r = await ReplicatedStore.open(new FileStore(primaryDir), new FileStore(replicaDir), {
      journalDir,
      prefixes: ['rep/'],
    });
    expect(r.stats.pending).toBe(100); // every replicated key the child wrote (deleted ones too)
    await r.flush();
    const want = await contents(new FileStore(primaryDir), 'rep/');
    expect(Object.keys(want)).toHaveLength(90);
    expect(await contents(new FileStore(replicaDir), '')).toEqual(want);
    await r.close();
    // and the journal is empty now: a second open has nothing pending
    const again = await ReplicatedStore.open(new FileStore(primaryDir), new FileStore(replicaDir), {
      journalDir,
      prefixes: ['rep/'],
    });
    expect(again.stats.pending).toBe(0);
    await again.close();
  }, 60_000);

  it('resync repairs a replica that diverged behind its back', async () => {
    const primary = new MemStore();
    const replica = new MemStore();
    const r = await ReplicatedStore.open(primary, replica, { journalDir: fresh() });
    for (let i = 0; i < 10; i++) await r.put(`k${i}`, Buffer.from(`v${i}`));
    await r.flush();
    await replica.delete('k1');
    await replica.put('k2', Buffer.from('vX')); // same size, other bytes
    await replica.put('stray', Buffer.from('?'));
    expect(await r.resync()).toBe(3);
    await r.flush();
    expect(await contents(replica, '')).toEqual(await contents(primary, ''));
    await r.close();
  });

  it('openStore wires it: replicate: { url, prefixes }', async () => {
    const dir = fresh();
    const s = await openStore(`file:${dir}/primary`, {
      replicate: { url: `file:${dir}/replica`, prefixes: ['logs/'], journalDir: `${dir}/journal` },
    });
    await s.put('logs/a', Buffer.from('A'));
    await (s as ReplicatedStore).flush();
    expect(await contents(new FileStore(`${dir}/replica`), '')).toEqual({ 'logs/a': 'A' });
    await s.close();
  });
});
