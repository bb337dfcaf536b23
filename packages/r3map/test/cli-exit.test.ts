// A command that fails must also end: a connection or a server left open after the error was printed kept
// the `strata` process alive (it sets the exit code and waits for the event loop to empty).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDevice, NbdServer } from '../src/index.js';

const helper = new URL('./helpers/cli-exit-code.ts', import.meta.url).pathname;

/** Runs `strata ARGS` to its end, or kills it after `limitMs`; resolves with its exit code (null: killed) and stderr. */
function run(args: string[], limitMs = 20_000): Promise<{ code: number | null; stderr: string }> {
  const p = spawn(process.execPath, ['--import', 'tsx', helper, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  p.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const kill = setTimeout(() => p.kill('SIGKILL'), limitMs);
  return new Promise((resolve) =>
    p.once('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, stderr });
    }),
  );
}

let dir: string;
let nbd: NbdServer;
let nbdPort: number;
let busy: Server;
let busyPort: number;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'r3map-cli-exit-'));
  nbd = new NbdServer([{ name: 'd', device: new MemoryDevice(1 << 20) }]);
  nbdPort = await nbd.listen(0);
  busy = createServer();
  busyPort = await new Promise<number>((r) =>
    busy.listen(0, '127.0.0.1', () => r((busy.address() as { port: number }).port)),
  );
});
afterAll(async () => {
  await nbd.close();
  busy.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('failing commands end', () => {
  it('strata nbd mount: a bad --chunk is a usage error (exit 2), a bad --cache or a --listen in use exit 1', async () => {
    const base = ['nbd', 'mount', '--remote', `127.0.0.1:${nbdPort}/d`];
    const results = await Promise.all([
      run([...base, '--cache', join(dir, 'c1'), '--listen', '127.0.0.1:0', '--chunk', '1K']),
      run([...base, '--cache', dir, '--listen', '127.0.0.1:0']),
      run([...base, '--cache', join(dir, 'c3'), '--listen', `127.0.0.1:${busyPort}`]),
    ]);
    expect(results[0]).toMatchObject({ code: 2 });
    expect(results[0]!.stderr).toMatch(/--chunk: expected 64K to 4M/);
    expect(results[1]).toMatchObject({ code: 1 });
    expect(results[1]!.stderr).toMatch(/--cache .*EISDIR/);
    expect(results[2]).toMatchObject({ code: 1 });
    expect(results[2]!.stderr).toMatch(/EADDRINUSE/);
  });

  it('strata migrate source: a --listen or --serve port in use exits 1', async () => {
    const file = join(dir, 'src.img');
    await (await import('node:fs/promises')).writeFile(file, Buffer.alloc(64 << 10));
    const results = await Promise.all([
      run(['migrate', 'source', '--file', file, '--listen', `127.0.0.1:${busyPort}`]),
      run([
        'migrate',
        'source',
        '--file',
        file,
        '--listen',
        '127.0.0.1:0',
        '--serve',
        `127.0.0.1:${busyPort}`,
      ]),
    ]);
    for (const r of results) {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/EADDRINUSE/);
    }
  });
});
