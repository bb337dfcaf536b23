// Runs one `strata` command of this package in its own process, from the sources (tsx), so the tests of
// real processes never depend on a stale build: node --import tsx cli.ts migrate source --file F ...
import { processIo, runCommand } from '@strata/cli';
import { commands } from '../../src/index.js';

const [name, ...argv] = process.argv.slice(2);
const cmd = commands.find((c) => c.name === name);
if (!cmd) {
  process.stderr.write(`no r3map command '${name}'\n`);
  process.exit(2);
}
process.exit(await runCommand(cmd, argv, processIo(), name));
