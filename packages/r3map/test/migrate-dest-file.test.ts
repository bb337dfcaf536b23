// `strata migrate dest --file F`: F is made at the size the source declares before anything else can fail;
// a migration that fails before the handover removes an F the command made, never one that was there.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { type BlockDevice, commands, controlVersion, encodeMessage, NbdServer } from '../src/index.js';
import { stuckDevice } from './helpers/stuck.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/**
 * A source that answers any hello with `info` for an export of `device`, and otherwise says nothing;
 * `onConn` gets its control connections.
 */
async function fakeSource(device: BlockDevice, onConn: (s: Socket) => void = () => undefined) {
  const nbd = new NbdServer([{ name: '', device }]);
  const nbdPort = await nbd.listen(0, '127.0.0.1');
  const server = createServer((s) => {
    s.on('error', () => undefined);
    s.resume();
    onConn(s);
    const info = { t: 'info', v: controlVersion, chunkBytes: 65536, trackBytes: 4096 } as const;
    s.write(encodeMessage({ ...info, size: device.size, nbdPort, exportName: '' }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await nbd.close();
  });
  return (server.address() as { port: number }).port;
}

/** Runs `strata migrate dest` from the source at `port` into `dir/out.img`; its exit code and stderr. */
async function dest(dir: string, port: number): Promise<{ code: number; stderr: string }> {
  const c = captureIo('', {}, dir);
  const cmd = commands.find((x) => x.name === 'migrate')!;
  const argv = [
    'dest',
    '--from',
    `127.0.0.1:${port}`,
    '--file',
    'out.img',
    '--serve',
    '127.0.0.1:0',
    '--quiet',
  ];
  const code = await runCommand(cmd, argv, c.io);
  return { code, stderr: c.stderr() };
}

describe('strata migrate dest --file, a migration that fails', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r3map-destfile-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'out.img');

  it('removes the file it made when the declared size cannot be made (2 PiB: EFBIG here)', async () => {
    const port = await fakeSource(stuckDevice(2 ** 51));
    const r = await dest(dir, port);
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(r.stderr).toMatch(/abandoned before the handover .*; out\.img was removed/);
  });

  it('removes the file it made when the source goes away during the pre-copy', async () => {
    let control: Socket | undefined;
    // the first read of the copy: the file is made and the mount pulls; the source then goes
    const device: BlockDevice = {
      ...stuckDevice(1 << 20),
      readAt: () => {
        control?.destroy();
        return new Promise<Uint8Array>(() => undefined);
      },
    };
    const port = await fakeSource(device, (s) => {
      control = s;
    });
    const r = await dest(dir, port);
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(r.stderr).toMatch(/closed the control connection.*; out\.img was removed/);
  });

  it('leaves a file that was there before', async () => {
    writeFileSync(out, 'precious');
    const port = await fakeSource(stuckDevice(2 ** 51));
    const r = await dest(dir, port);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/; out\.img is incomplete/);
    expect(readFileSync(out, 'utf8')).toBe('precious');
  });
});
