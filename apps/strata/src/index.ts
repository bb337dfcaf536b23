/** The `strata` CLI: every package's subcommands and demo steps, composed. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Command, type DemoStep, type Io, parseFlags, runCommand, UsageError } from '@strata/cli';
import * as helios from '@strata/helios';
import * as highwayhash from '@strata/highwayhash';
import * as ids from '@strata/ids';
import * as learnedSort from '@strata/learned-sort';
import * as objstore from '@strata/objstore';
import * as r3map from '@strata/r3map';
import * as vlog from '@strata/vlog';
import { runPlatform } from './platform.js';

const packages = [highwayhash, learnedSort, objstore, vlog, helios, ids, r3map];

/**
 * Each package's demo steps, then the platform's: a capture through the IDS into a Helios stream, searched
 * (src/platform.ts).
 */
export const demoSteps: DemoStep[] = [
  ...packages.flatMap((p) => p.demos),
  {
    name: 'platform',
    async run(io, dir) {
      await runPlatform(io, dir);
    },
  },
];

const demo: Command = {
  name: 'demo',
  summary: 'run what every package can do, end to end, on embedded defaults',
  help: `Runs each package end to end on embedded defaults (no external service) on data it generates or
ships, and prints what it did.

Usage: strata demo [--keep] [--dir DIR] [--only NAME]

  --dir DIR     scratch directory (default: a new temporary directory, removed afterwards)
  --keep        keep the scratch directory
  --only NAME   run one step (${demoSteps.map((d) => d.name).join(', ') || 'none yet'})

Example:
  npx strata demo`,
  async run(argv, io) {
    const { values } = parseFlags(
      argv,
      {
        keep: { type: 'boolean' },
        dir: { type: 'string' },
        only: { type: 'string' },
      },
      0,
    );
    const steps = values.only !== undefined ? demoSteps.filter((d) => d.name === values.only) : demoSteps;
    if (steps.length === 0)
      throw new UsageError(
        `--only: no demo step named '${values.only}' (the steps: ${demoSteps.map((d) => d.name).join(', ')})`,
      );
    if (values.dir === '') throw new UsageError('--dir: expected a directory, got an empty string');
    // relative to the command's working directory (a test's, or the shell's)
    const dir =
      values.dir !== undefined ? resolve(io.cwd, values.dir) : mkdtempSync(join(tmpdir(), 'strata-demo-'));
    io.stdout.write(`strata demo: ${steps.length} steps in ${dir}\n`);
    try {
      for (const step of steps) {
        io.stdout.write(`\n== ${step.name}\n`);
        const t0 = performance.now();
        await step.run(io, join(dir, step.name));
        io.stdout.write(`-- ${step.name} done in ${((performance.now() - t0) / 1000).toFixed(2)} s\n`);
      }
    } finally {
      if (!values.keep && !values.dir) rmSync(dir, { recursive: true, force: true });
    }
    return 0;
  },
};

export const commands: Command[] = [...packages.flatMap((p) => p.commands), demo];

export function usage(): string {
  return `strata: an edge-to-cloud event platform

Usage: strata <command> [flags]      strata <command> --help

Commands:
${commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join('\n')}

Conventions: exit 0 ok, 1 failure, 2 usage error; --json for data; --quiet for no progress.`;
}

/** Runs the CLI with `argv` (the words after `strata`); resolves with the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    io.stdout.write('strata 0.1.0\n');
    return 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    io.stderr.write(`strata: unknown command '${name}' (run 'strata --help' for the list)\n`);
    return 2;
  }
  return runCommand(cmd, rest, io);
}
