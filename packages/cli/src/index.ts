/**
 * The conventions every `strata` subcommand follows:
 * - exit 0 on success, 1 on failure ({@link CliError} or any operating error), 2 on a usage error ({@link UsageError});
 * - errors go to stderr as one line that says what was wrong and where;
 * - `--json` for machine-readable output wherever the output is data, `--quiet` to silence progress and chatter;
 * - a progress bar on stderr only when stderr is a TTY, for work longer than about a second.
 */
import { accessSync, constants } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { PassThrough } from 'node:stream';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { makeDirsSync } from './fs.js';

export { checkAtLeastZero, checkWhole } from './checks.js';
export { makeDirs, makeDirsSync, type Output, openInput, openOutput, writeFileDurableSync } from './fs.js';
export { listenOn } from './net.js';
export { boundedRegExp, regExpBacktrackLimitWorks } from './regexp.js';
export { kindOf, loneSurrogateAt, shown, wellFormed } from './text.js';
export { checkTimerMs, timerMsMax } from './timers.js';

/** The streams and environment a command runs with; tests pass their own. */
export interface Io {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** A `strata` subcommand. A package registers its commands by exporting them from its `src/index.ts`. */
export interface Command {
  /** The word after `strata`, e.g. `hash`. */
  name: string;
  /** One line for `strata --help`. */
  summary: string;
  /** The full help text: synopsis, flags, and at least one copy-pasteable example. */
  help: string;
  /** Runs with the arguments after the command name; resolves with the exit code. */
  run(argv: string[], io: Io): Promise<number>;
}

/** A bad flag, a missing argument, a malformed value: exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** An expected failure the user must see as one line (bad input, a failed precondition): exit code 1. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/**
 * A server's data directory, before it says it is up: made (with its parents) and tried for writing; a
 * `CliError` naming `flag` and the directory otherwise (a server over one it could not write came up and
 * failed each request).
 */
export function writableDir(dir: string, flag: string): void {
  try {
    makeDirsSync(dir);
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new CliError(`${flag} ${dir}: ${(e as Error).message}`);
  }
}

export type FlagSpec = Record<
  string,
  { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean | string[] }
>;

export interface ParsedFlags<T extends FlagSpec> {
  values: {
    [K in keyof T]?: T[K]['type'] extends 'boolean'
      ? boolean
      : T[K]['multiple'] extends true
        ? string[]
        : string;
  };
  positionals: string[];
  /** Every option and positional in argv order (node:util's parseArgs tokens). */
  tokens: ArgToken[];
}

/** One parsed argument: an option (its name and value) or a positional, with its index in argv. */
export type ArgToken =
  | { kind: 'option'; name: string; value: string | undefined; index: number }
  | { kind: 'positional'; value: string; index: number }
  | { kind: 'option-terminator'; index: number };

/** The flags every command accepts. */
export const commonFlags = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
} as const satisfies FlagSpec;

/**
 * Strict flag parsing: an unknown flag or a missing value is a {@link UsageError} naming the flag, and so
 * is an argument beyond the `maxPositionals` the command takes (a command that takes no file must not
 * quietly read stdin when given one).
 */
export function parseFlags<T extends FlagSpec>(
  argv: string[],
  spec: T,
  maxPositionals = Number.POSITIVE_INFINITY,
): ParsedFlags<T & typeof commonFlags> {
  let r: ParsedFlags<T & typeof commonFlags>;
  try {
    r = parseArgs({
      args: argv,
      options: { ...commonFlags, ...spec } as ParseArgsConfig['options'],
      allowPositionals: true,
      strict: true,
      tokens: true,
    }) as unknown as ParsedFlags<T & typeof commonFlags>;
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
  if (r.positionals.length > maxPositionals) {
    const extra = r.positionals[maxPositionals]!;
    throw new UsageError(
      maxPositionals === 0
        ? `unexpected argument '${extra}': this command takes flags only`
        : `unexpected argument '${extra}': this command takes at most ${maxPositionals}`,
    );
  }
  return r;
}

/** Parses an integer flag value, with a usage error that names the flag. */
export function intFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (!/^-?\d+$/.test(value)) throw new UsageError(`--${name}: expected an integer, got '${value}'`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name}: ${n} is out of range [${min}, ${max}]`);
  return n;
}

/** Parses a byte size such as `4096`, `64K`, `4MiB`, `1G`. */
export function parseBytes(text: string, what = 'size'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${what}: expected a byte size like 4096, 64K or 4MiB, got '${text}'`);
  const unit = (m[2] ?? '').toLowerCase();
  const mult = unit === '' ? 1 : 1024 ** ('kmgt'.indexOf(unit) + 1);
  return Math.round(Number(m[1]) * mult);
}

/** Formats a byte count for people: `1.5 MiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export interface ProgressOptions {
  /** Total units of work (bytes, records); 0 when unknown. */
  total: number;
  label: string;
  quiet?: boolean;
  /** Draw only after this long, so quick work prints nothing. */
  delayMs?: number;
}

/** A progress bar on stderr; draws nothing unless stderr is a TTY, and nothing for work under `delayMs`. */
export class Progress {
  private done = 0;
  private readonly start = Date.now();
  private lastDrawMs = 0;
  private drawn = false;
  private readonly enabled: boolean;

  constructor(
    private readonly stderr: Io['stderr'],
    private readonly opts: ProgressOptions,
  ) {
    this.enabled = !opts.quiet && stderr.isTTY === true;
  }

  tick(units: number): void {
    this.done += units;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.start < (this.opts.delayMs ?? 1000) || now - this.lastDrawMs < 100) return;
    this.lastDrawMs = now;
    this.draw(now);
  }

  private draw(now: number): void {
    const width = 30;
    const { total, label } = this.opts;
    const frac = total > 0 ? Math.min(1, this.done / total) : 0;
    const bar =
      total > 0
        ? `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '.')}] ${(frac * 100).toFixed(0)}%`
        : '';
    const rate = this.done / Math.max(0.001, (now - this.start) / 1000);
    this.stderr.write(`\r${label} ${bar} ${formatBytes(this.done)} ${formatBytes(rate)}/s   `);
    this.drawn = true;
  }

  finish(): void {
    if (this.drawn) this.stderr.write('\n');
  }
}

/** Writes a line to stdout as JSON or as text, per `--json`. */
export function output(io: Io, json: boolean | undefined, value: unknown, text: () => string): void {
  io.stdout.write(json ? `${JSON.stringify(value, bigintReplacer)}\n` : `${text()}\n`);
}

function bigintReplacer(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

/** A command made of subcommands (`strata store put ...`): dispatches on the first positional word. */
export function group(name: string, summary: string, subs: Command[], intro = ''): Command {
  // the group's examples are its subcommands' first examples, on the line after "Example:" or on the same
  // line (helios' subcommands write `Example: strata stream ...`: `strata stream --help` listed none)
  const examples = () =>
    subs
      .map((s) => /Example:[ \t]*\n?\s*(\S.*)/.exec(s.help)?.[1])
      .filter((e): e is string => e !== undefined)
      .map((e) => `  ${e}`)
      .join('\n');
  const help = () =>
    `${intro || summary}\n\nUsage: strata ${name} <subcommand> [flags]\n\nSubcommands:\n${subs
      .map((s) => `  ${s.name.padEnd(14)} ${s.summary}`)
      .join('\n')}\n\nExample:\n${examples()}\n\nRun 'strata ${name} <subcommand> --help' for flags.`;
  return {
    name,
    summary,
    get help() {
      return help();
    },
    async run(argv, io) {
      const [word, ...rest] = argv;
      if (word === undefined || word === '--help' || word === '-h' || word === 'help') {
        io.stdout.write(`${help()}\n`);
        return word === undefined ? 2 : 0;
      }
      const sub = subs.find((s) => s.name === word);
      if (!sub)
        // runCommand puts `strata NAME: ` before the message (it was there twice)
        throw new UsageError(`unknown subcommand '${word}' (try: ${subs.map((s) => s.name).join(', ')})`);
      return runCommand(sub, rest, io, `${name} ${sub.name}`);
    },
  };
}

/** Runs a command with the conventions: `--help`, exit codes, one-line errors on stderr. */
export async function runCommand(cmd: Command, argv: string[], io: Io, path = cmd.name): Promise<number> {
  if (argv[0] === '--help' || argv[0] === '-h' || (argv.includes('--help') && !isGroupLike(cmd))) {
    io.stdout.write(`${cmd.help}\n`);
    return 0;
  }
  try {
    return await cmd.run(argv, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`strata ${path}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CliError) {
      io.stderr.write(`strata ${path}: ${err.message}\n`);
      return err.exitCode;
    }
    const e = err as NodeJS.ErrnoException;
    const msg = e?.message ?? String(err);
    io.stderr.write(`strata ${path}: ${msg.split('\n')[0]}\n`);
    if (io.env.STRATA_DEBUG) io.stderr.write(`${e?.stack ?? ''}\n`);
    return 1;
  }
}

function isGroupLike(cmd: Command): boolean {
  return cmd.help.includes('<subcommand>');
}

/** Reads all of a stream (stdin) into one buffer, bounded by `maxBytes`. */
export async function readAll(stream: Readable, maxBytes = 1 << 30): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    const b = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
    n += b.length;
    if (n > maxBytes) throw new CliError(`input is larger than ${formatBytes(maxBytes)}`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

let quietOnClosedStdout = false;

/**
 * The process's own streams, for the real CLI. A reader that closes stdout early (`strata search ... |
 * head -1`) ends the process quietly with status 0, as a Unix tool stopped by SIGPIPE would stop (Node
 * ignores the signal, and the EPIPE write error, with no listener, crashed every command with a trace).
 */
export function processIo(): Io {
  if (!quietOnClosedStdout) {
    quietOnClosedStdout = true;
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
  }
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
  };
}

/** An {@link Io} that captures stdout and stderr, for tests of commands. */
export function captureIo(stdin: string | Buffer = '', env: NodeJS.ProcessEnv = {}, cwd = process.cwd()) {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const input = new PassThrough();
  input.end(stdin);
  const io: Io = { stdin: input, stdout, stderr, env, cwd };
  return {
    io,
    stdout: () => Buffer.concat(out).toString('utf8'),
    stdoutBytes: () => Buffer.concat(out),
    stderr: () => Buffer.concat(err).toString('utf8'),
  };
}

/**
 * One step of `strata demo`: a package shows what it does end to end, on data it generates or ships, under
 * a scratch directory, printing what it did (never canned results). Packages export `demos: DemoStep[]`.
 */
export interface DemoStep {
  name: string;
  run(io: Io, dir: string): Promise<void>;
}

/**
 * Resolves on SIGINT or SIGTERM: how long-running servers (`strata log server`, `strata nbd serve`) wait.
 * With `withParent`, also once the process that started this one is gone (see `exitWithParentFlag`).
 */
export function untilStopped(o: { withParent?: boolean } = {}): Promise<void> {
  return new Promise((resolve) => {
    // the parent's death re-parents this process, which changes its parent id
    const parent = process.ppid;
    const watch = o.withParent
      ? setInterval(() => {
          if (process.ppid !== parent) stop();
        }, parentPollMs)
      : undefined;
    watch?.unref();
    const stop = () => {
      clearInterval(watch);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

/** How often `untilStopped({ withParent: true })` looks for its parent. */
const parentPollMs = 250;

/**
 * The `--exit-with-parent` flag of long-running commands: stop as on SIGTERM once the process that started
 * this one is gone, even if it died by SIGKILL (as nbdkit's flag of the same name does), so that a
 * crashed benchmark or supervisor leaves no server behind.
 */
export const exitWithParentFlag = { 'exit-with-parent': { type: 'boolean' } } as const;

/** Parses `HOST:PORT` for a flag, with a usage error that names the flag. */
export function parseHostPort(value: string | undefined, flag: string): { host: string; port: number } {
  // not given at all: said so (it read "expected HOST:PORT, got ''")
  if (value === undefined) throw new UsageError(`${flag} HOST:PORT is required`);
  const m = /^(.+):(\d+)$/.exec(value);
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw new UsageError(`${flag}: expected HOST:PORT, got '${value}'`);
  return { host: m[1]!, port };
}
