// As helpers/cli.ts, but ends as the `strata` binary does (apps/strata/src/main.ts): it sets the exit code
// and lets the process end by itself, so a handle left open after an error shows as a process that never exits.
import { processIo, runCommand } from '@strata/cli';
import { commands } from '../../src/index.js';

const [name, ...argv] = process.argv.slice(2);
const cmd = commands.find((c) => c.name === name);
if (!cmd) {
  process.stderr.write(`no r3map command '${name}'\n`);
  process.exitCode = 2;
} else process.exitCode = await runCommand(cmd, argv, processIo(), name);
