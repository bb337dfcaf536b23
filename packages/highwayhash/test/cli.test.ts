import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { commands, hash64, hash128 } from '../src/index.js';

const cmd = commands[0]!;
const dir = mkdtempSync(join(tmpdir(), 'hh-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const key = Uint8Array.from({ length: 32 }, (_, i) => i);

describe('strata hash', () => {
  it('prints sha256sum-style lines and verifies them with --check', async () => {
    const data = Buffer.from('hello highwayhash\n'.repeat(1000));
    writeFileSync(join(dir, 'a.txt'), data);
    const c = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--bits', '128', 'a.txt'], c.io)).toBe(0);
    const words = [...hash128(key, data)].map((w) => w.toString(16).padStart(16, '0')).join('');
    expect(c.stdout()).toBe(`${words}  a.txt\n`);
    writeFileSync(join(dir, 'list'), c.stdout());
    const ok = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--bits', '128', '--check', 'list'], ok.io)).toBe(0);
    expect(ok.stdout()).toBe('a.txt: OK\n');
    writeFileSync(join(dir, 'a.txt'), 'changed');
    const bad = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--bits', '128', '--check', 'list'], bad.io)).toBe(1);
    expect(bad.stdout()).toContain('FAILED');
  });

  it('hashes stdin with a custom key and rejects bad flags with exit 2', async () => {
    const c = captureIo('abc');
    const k = 'ff'.repeat(32);
    expect(await runCommand(cmd, ['--key', k], c.io)).toBe(0);
    expect(c.stdout()).toBe(
      `${hash64(new Uint8Array(32).fill(255), Buffer.from('abc')).toString(16).padStart(16, '0')}  -\n`,
    );
    const b = captureIo();
    expect(await runCommand(cmd, ['--bits', '32'], b.io)).toBe(2);
    expect(b.stderr()).toMatch(/--bits/);
    const k2 = captureIo();
    expect(await runCommand(cmd, ['--key', 'abc'], k2.io)).toBe(2);
    const m = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['missing.bin'], m.io)).toBe(1);
    expect(m.stderr()).toMatch(/missing\.bin/);
  });
});
