// `--exit-with-parent`: a server whose parent dies, even by SIGKILL, stops by itself (as nbdkit's flag of
// the same name does), so a crashed benchmark or supervisor leaves no server behind; without the flag it
// keeps serving.
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { serveMemArgs } from './helpers/serve-args.js';

const orphans: number[] = [];
const procs: ChildProcess[] = [];
afterAll(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const pid of orphans)
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** A parent process that starts `strata nbd serve` and reports the server's pid once it serves. */
async function parentOfServer(flags: string[]): Promise<{ parent: ChildProcess; server: number }> {
  const args = JSON.stringify(serveMemArgs(flags));
  const script = `const c = require('node:child_process').spawn(process.execPath, ${args}, { stdio: ['ignore', 'pipe', 'inherit'] });
c.stdout.once('data', () => process.stdout.write(String(c.pid) + '\\n'));
setInterval(() => {}, 1000);`;
  const parent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  procs.push(parent);
  const server = await new Promise<number>((resolve, reject) => {
    parent.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
    parent.once('exit', (code) => reject(new Error(`the parent exited with ${code}`)));
  });
  orphans.push(server);
  return { parent, server };
}

describe('--exit-with-parent', () => {
  it('stops strata nbd serve once its parent is killed with SIGKILL; without it the server stays', async () => {
    const withFlag = await parentOfServer(['--exit-with-parent']);
    const without = await parentOfServer([]);
    expect(alive(withFlag.server)).toBe(true);
    withFlag.parent.kill('SIGKILL');
    without.parent.kill('SIGKILL');
    const t0 = Date.now();
    while (alive(withFlag.server) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
    expect(alive(withFlag.server)).toBe(false);
    // the same server without the flag outlives its parent: the flag is what stopped the first
    expect(alive(without.server)).toBe(true);
  }, 30_000);
});
