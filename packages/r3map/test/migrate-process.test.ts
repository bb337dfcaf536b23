// `strata migrate source|dest` as two real processes, with a workload writing random 4 KiB blocks through
// the source's NBD export: the destination ends equal to the model of acknowledged writes; kill -9 of the
// source before finalize makes the destination give up and leaves the source's file intact; kill -9 of
// the destination before finalize leaves the source serving, untouched, and able to migrate again.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NbdClientDevice } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'r3map-migrate-proc-'));
const helper = new URL('./helpers/cli.ts', import.meta.url).pathname;
const size = 16 << 20;
const procs: ChildProcess[] = [];
afterAll(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

type Event = Record<string, unknown> & { event: string };

/** A `strata migrate ...` process with --json: its stdout events, its stderr, its exit. */
function start(args: string[]) {
  const proc = spawn(process.execPath, ['--import', 'tsx', helper, 'migrate', ...args, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  procs.push(proc);
  const events: Event[] = [];
  const listeners: (() => void)[] = [];
  let stderr = '';
  let buf = '';
  proc.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      events.push(JSON.parse(buf.slice(0, i)) as Event);
      buf = buf.slice(i + 1);
    }
    for (const l of listeners) l();
  });
  proc.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | string>((r) => proc.once('exit', (code, sig) => r(code ?? sig ?? -1)));
  /** The first event named `name`; fails if the process exits first or after `ms`. */
  const waitFor = (name: string, ms = 30_000) =>
    new Promise<Event>((resolve, reject) => {
      const check = () => {
        const e = events.find((x) => x.event === name);
        if (e) {
          clearTimeout(t);
          resolve(e);
        }
      };
      const t = setTimeout(() => reject(new Error(`no '${name}' event in ${ms} ms; stderr: ${stderr}`)), ms);
      listeners.push(check);
      void exited.then(() => {
        check();
        clearTimeout(t);
        reject(new Error(`exited before '${name}': ${stderr.slice(0, 400)}`));
      });
      check();
    });
  return { proc, events, waitFor, exited, stderr: () => stderr };
}

/** `strata migrate dest` from the source at `controlPort` into `out`, serving on a free port. */
function startDest(controlPort: unknown, out: string, maxRate?: string) {
  const args = [
    'dest',
    '--from',
    `127.0.0.1:${String(controlPort)}`,
    '--file',
    out,
    '--serve',
    '127.0.0.1:0',
  ];
  return start(maxRate ? [...args, '--max-rate', maxRate] : args);
}

const kill9 = (p: ChildProcess) =>
  new Promise<void>((r) => {
    if (p.exitCode !== null || p.signalCode !== null) return r();
    p.once('exit', () => r()).kill('SIGKILL');
  });

/** Random 4 KiB writes (one in flight) through an NBD connection; the model holds the acknowledged ones. */
function writer(dev: NbdClientDevice, model: Uint8Array, seed: number) {
  const r = rng(seed);
  let stop = false;
  let n = 0;
  let failed: Error | undefined;
  let pending: { off: number; b: Uint8Array } | undefined;
  const done = (async () => {
    while (!stop) {
      const off = Math.floor(r() * (size / 4096)) * 4096;
      const b = new Uint8Array(4096).fill((n % 251) + 1);
      pending = { off, b };
      try {
        await dev.writeAt(off, b);
      } catch (e) {
        failed = e as Error;
        return;
      }
      model.set(b, off);
      pending = undefined;
      n++;
      if (n % 4 === 0) await new Promise((res) => setTimeout(res, 1));
    }
  })();
  return {
    stop: async () => {
      stop = true;
      await done;
    },
    count: () => n,
    failed: () => failed,
    pending: () => pending,
  };
}

/** Waits until the writer has `more` acknowledged writes beyond now (or 10 s), however loaded the machine. */
async function progress(w: { count: () => number }, more: number): Promise<void> {
  const target = w.count() + more;
  for (let k = 0; w.count() < target && k < 2000; k++) await new Promise((r) => setTimeout(r, 5));
}

const digest = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function image(seed: number): Uint8Array {
  const r = rng(seed);
  const a = new Uint8Array(size);
  for (let i = 0; i < size; i += 4) a[i] = (r() * 256) | 0;
  return a;
}

async function sourceWithLoad(name: string, seed: number) {
  const img = image(seed);
  const file = join(root, `${name}.img`);
  writeFileSync(file, img);
  const src = start(['source', '--file', file, '--listen', '127.0.0.1:0', '--serve', '127.0.0.1:0']);
  const ready = await src.waitFor('listening');
  const workload = await NbdClientDevice.connect('127.0.0.1', ready.servePort as number, '');
  const model = Uint8Array.from(img);
  const w = writer(workload, model, seed);
  return { file, src, ready, workload, model, w };
}

describe('strata migrate source|dest, two real processes', () => {
  it('under a random-write load, the destination equals every acknowledged write', async () => {
    const { file, src, ready, workload, model, w } = await sourceWithLoad('load', 1);
    await new Promise((r) => setTimeout(r, 50));
    const out = join(root, 'load-dest.img');
    // a bandwidth cap stretches the pre-copy so the workload dirties chunks during it
    const dst = startDest(ready.controlPort, out, '48M');
    const done = await dst.waitFor('done');
    const srcDone = await src.waitFor('done');
    const before = w.count();
    await progress(w, 5); // the workload keeps writing, forwarded to the destination
    await w.stop();
    expect(w.failed()).toBeUndefined();
    expect(w.count()).toBeGreaterThan(before);
    expect(done.rounds as number).toBeGreaterThanOrEqual(1);
    expect(done.bytesFetched as number).toBeGreaterThanOrEqual(size);
    expect(srcDone.bytesSent).toBe(done.bytesFetched);
    expect(done.downtimeMs as number).toBeLessThan(5_000);
    // through the destination's own export, then its file once stopped
    const d = await NbdClientDevice.connect('127.0.0.1', done.port as number, '');
    expect(digest(await d.readAt(0, size))).toBe(digest(model));
    await d.close();
    await workload.close();
    dst.proc.kill('SIGTERM');
    src.proc.kill('SIGTERM');
    expect(await dst.exited).toBe(0);
    expect(await src.exited).toBe(0);
    expect(digest(readFileSync(out))).toBe(digest(model));
    // the source's own file was released as it was at the seal: it no longer takes writes
    expect(readFileSync(file).length).toBe(size);
  });

  it('kill -9 of the source before finalize: the destination gives up, the source file is intact', async () => {
    const { file, src, ready, workload, model, w } = await sourceWithLoad('ksrc', 2);
    // 16 MiB take about 2 s to pre-copy: the kill lands before finalize
    const dst = startDest(ready.controlPort, join(root, 'ksrc-dest.img'), '8M');
    await dst.waitFor('connected');
    await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 800)));
    expect(dst.events.some((e) => e.event === 'serving')).toBe(false);
    await kill9(src.proc);
    expect(await dst.exited).toBe(1);
    expect(dst.stderr()).toMatch(/abandoned before the handover .*the source stays authoritative/);
    expect(dst.events.some((e) => e.event === 'serving' || e.event === 'done')).toBe(false);
    await w.stop();
    expect(w.failed()).toBeDefined(); // the workload saw its source die
    await workload.close();
    // every acknowledged write is in the source's file; the one in flight at the kill may be too
    const got = readFileSync(file);
    const p = w.pending();
    const withPending = Uint8Array.from(model);
    if (p) withPending.set(p.b, p.off);
    expect([digest(model), digest(withPending)]).toContain(digest(got));
  });

  it('a source stopped (SIGSTOP) before finalize: the destination gives up after 10 s of silence, not never', async () => {
    const { src, ready, workload, w } = await sourceWithLoad('stop', 2);
    // 16 MiB take about 2 s to pre-copy: the stop lands before finalize
    const dst = startDest(ready.controlPort, join(root, 'stop-dest.img'), '8M');
    await dst.waitFor('connected');
    await new Promise((r) => setTimeout(r, 300));
    src.proc.kill('SIGSTOP'); // its sockets stay open: reads are taken and never answered
    try {
      const t0 = performance.now();
      expect(await dst.exited).toBe(1);
      expect(performance.now() - t0).toBeLessThan(20_000);
      expect(dst.stderr()).toMatch(/abandoned before the handover .*sent nothing for \d+ ms/);
      expect(dst.events.some((e) => e.event === 'serving' || e.event === 'done')).toBe(false);
    } finally {
      src.proc.kill('SIGCONT');
    }
    await kill9(src.proc);
    await w.stop();
    await workload.close();
  }, 60_000);

  it('kill -9 of the destination before finalize: the source continues untouched and can migrate again', async () => {
    const { src, ready, workload, model, w } = await sourceWithLoad('kdst', 3);
    const dst = startDest(ready.controlPort, join(root, 'kdst-dest.img'), '8M');
    await dst.waitFor('connected');
    await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 800)));
    await kill9(dst.proc);
    const aborted = await src.waitFor('aborted');
    expect(aborted.reason).toMatch(/closed|reset|ECONNRESET/);
    const atAbort = w.count();
    await progress(w, 5);
    expect(w.failed()).toBeUndefined();
    expect(w.count()).toBeGreaterThan(atAbort); // the source keeps accepting writes
    await w.stop();
    expect(digest(await workload.readAt(0, size))).toBe(digest(model));
    // and a new destination can still take the device over
    const out = join(root, 'kdst-dest2.img');
    const dst2 = startDest(ready.controlPort, out);
    await dst2.waitFor('done');
    await workload.close();
    dst2.proc.kill('SIGTERM');
    expect(await dst2.exited).toBe(0);
    expect(digest(readFileSync(out))).toBe(digest(model));
    src.proc.kill('SIGTERM');
    expect(await src.exited).toBe(0);
  });
});
