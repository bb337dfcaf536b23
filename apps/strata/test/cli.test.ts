import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo } from '@strata/cli';
import { describe, expect, it } from 'vitest';
import { commands, main } from '../src/index.js';

describe('strata CLI', () => {
  it('lists every subcommand in --help', async () => {
    const c = captureIo();
    expect(await main(['--help'], c.io)).toBe(0);
    for (const cmd of commands) expect(c.stdout()).toContain(cmd.name);
  });

  it('exits 2 with one line for an unknown command or a bad flag', async () => {
    const c = captureIo();
    expect(await main(['nope'], c.io)).toBe(2);
    expect(c.stderr().trim().split('\n')).toHaveLength(1);
    const d = captureIo();
    expect(await main(['demo', '--bogus'], d.io)).toBe(2);
    expect(d.stderr()).toMatch(/^strata demo: .*bogus/);
  });

  it('exits 2 on an argument a command does not take, before doing anything', async () => {
    const cases = [
      ['demo', 'extra'],
      ['sort', 'a.bin', 'b.bin'],
      ['store', 'get', 'k1', 'k2', '--store', 'mem:'],
      ['store', 'cost', 'workload.json'],
      ['log', 'read', 'events', 'more', '--meta', 'mem://cli-extra'],
      ['log', 'server', 'dir', '--listen', '127.0.0.1:0'],
      ['nbd', 'serve', 'disk.img', '--listen', '127.0.0.1:0'],
      ['sync', 'a', 'b', 'c'],
      ['search', 'hdfs', 'level', '=', 'INFO'],
      ['stream', 'info', 'hdfs', 'extra'],
      ['stream', 'serve', 'extra'],
    ];
    for (const argv of cases) {
      const c = captureIo();
      expect(await main(argv, c.io), argv.join(' ')).toBe(2);
      expect(c.stderr()).toMatch(/^strata [a-z ]+: unexpected argument '[a-z.0-9]+'/);
    }
  });

  it('demo: --dir is relative to the working directory it is given; an empty --dir or --only is a usage error', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'strata-cli-'));
    try {
      const c = captureIo('', {}, cwd);
      expect(await main(['demo', '--only', 'highwayhash', '--dir', 'scratch'], c.io)).toBe(0);
      expect(c.stdout()).toContain(`strata demo: 1 steps in ${join(cwd, 'scratch')}`);
      const only = captureIo('', {}, cwd);
      expect(await main(['demo', '--only', ''], only.io)).toBe(2);
      expect(only.stderr()).toMatch(/^strata demo: --only: no demo step named '' \(the steps: highwayhash, /);
      const dir = captureIo('', {}, cwd);
      expect(await main(['demo', '--dir', ''], dir.io)).toBe(2);
      expect(dir.stderr()).toBe('strata demo: --dir: expected a directory, got an empty string\n');
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('every command has help with an example', () => {
    for (const cmd of commands) expect(cmd.help, cmd.name).toMatch(/Example/);
  });
});
