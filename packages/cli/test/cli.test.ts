import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  CliError,
  type Command,
  captureIo,
  group,
  parseBytes,
  parseFlags,
  parseHostPort,
  runCommand,
  UsageError,
} from '../src/index.js';

const echo: Command = {
  name: 'echo',
  summary: 'prints its words',
  help: 'Usage: strata echo WORDS\n\nExample:\n  strata echo hi',
  async run(argv, io) {
    const { values, positionals } = parseFlags(argv, { upper: { type: 'boolean' } });
    if (positionals.length === 0) throw new UsageError('expected at least one word');
    if (positionals[0] === 'fail') throw new CliError('precondition failed');
    const s = positionals.join(' ');
    io.stdout.write(`${values.upper ? s.toUpperCase() : s}\n`);
    return 0;
  },
};

describe('command conventions', () => {
  it('runs, and exits 2 on a bad flag with one line on stderr', async () => {
    const ok = captureIo();
    expect(await runCommand(echo, ['--upper', 'hi'], ok.io)).toBe(0);
    expect(ok.stdout()).toBe('HI\n');
    const bad = captureIo();
    expect(await runCommand(echo, ['--nope', 'x'], bad.io)).toBe(2);
    expect(bad.stderr()).toMatch(/^strata echo: .*--nope.*\n$/);
    expect(bad.stderr().split('\n').length).toBe(2);
  });

  it('exits 1 on a CliError and 0 with help', async () => {
    const f = captureIo();
    expect(await runCommand(echo, ['fail'], f.io)).toBe(1);
    expect(f.stderr()).toBe('strata echo: precondition failed\n');
    const h = captureIo();
    expect(await runCommand(echo, ['--help'], h.io)).toBe(0);
    expect(h.stdout()).toContain('Example:');
  });

  it('dispatches subcommands of a group', async () => {
    const g = group('tool', 'a tool', [echo]);
    const c = captureIo();
    expect(await runCommand(g, ['echo', 'a', 'b'], c.io)).toBe(0);
    expect(c.stdout()).toBe('a b\n');
    const u = captureIo();
    expect(await runCommand(g, ['nope'], u.io)).toBe(2);
    // the command named once ("strata tool: strata tool: unknown ..." before)
    expect(u.stderr()).toBe("strata tool: unknown subcommand 'nope' (try: echo)\n");
  });

  it("lists each subcommand's example in the group's help, on the line after 'Example:' or on it", async () => {
    const inline: Command = {
      ...echo,
      name: 'say',
      help: 'Usage: strata say WORDS\n\nExample: strata say hi',
    };
    const h = captureIo();
    expect(await runCommand(group('tool', 'a tool', [echo, inline]), ['--help'], h.io)).toBe(0);
    // `strata stream --help` printed "Example:" over two empty lines
    expect(h.stdout()).toContain('Example:\n  strata echo hi\n  strata say hi\n\n');
  });

  it('refuses arguments beyond what a command takes, naming the first extra one', () => {
    expect(parseFlags(['a', 'b'], {}, 2).positionals).toEqual(['a', 'b']);
    expect(() => parseFlags(['a', 'b', 'c'], {}, 2)).toThrow(
      new UsageError("unexpected argument 'c': this command takes at most 2"),
    );
    expect(() => parseFlags(['--json', 'in.bin'], {}, 0)).toThrow(
      new UsageError("unexpected argument 'in.bin': this command takes flags only"),
    );
    expect(parseFlags(['x', 'y', 'z'], {}).positionals).toHaveLength(3);
  });

  it('parses byte sizes', () => {
    expect(parseBytes('4096')).toBe(4096);
    expect(parseBytes('64K')).toBe(65536);
    expect(parseBytes('4MiB')).toBe(4 << 20);
    expect(() => parseBytes('lots')).toThrow(UsageError);
  });

  it('parses HOST:PORT; a flag not given says it is required (it read "expected HOST:PORT, got \'\'")', () => {
    expect(parseHostPort('127.0.0.1:80', '--listen')).toEqual({ host: '127.0.0.1', port: 80 });
    expect(parseHostPort('[::1]:0', '--listen')).toEqual({ host: '[::1]', port: 0 });
    expect(() => parseHostPort(undefined, '--serve')).toThrow(
      new UsageError('--serve HOST:PORT is required'),
    );
    expect(() => parseHostPort('', '--serve')).toThrow(new UsageError("--serve: expected HOST:PORT, got ''"));
    expect(() => parseHostPort('h:70000', '--serve')).toThrow(/expected HOST:PORT, got 'h:70000'/);
  });

  it('a reader closing stdout early ends the process quietly, status 0 (EPIPE crashed every command)', async () => {
    const url = new URL('../src/index.ts', import.meta.url).href;
    const code = `
      import(${JSON.stringify(url)}).then(async ({ processIo }) => {
        const io = processIo();
        const line = 'x'.repeat(1023) + '\\n';
        for (let i = 0; i < 100000; i++)
          if (!io.stdout.write(line)) await new Promise((r) => io.stdout.once('drain', r));
        process.exitCode = 3; // all written: the reader was not closed in time
      });`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = once(child, 'exit');
    await once(child.stdout, 'data');
    child.stdout.destroy();
    const [status] = await exited;
    expect(err).toBe('');
    expect(status).toBe(0);
  }, 30_000);
});
