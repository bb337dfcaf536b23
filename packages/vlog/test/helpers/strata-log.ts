// `strata log ...` run from this package's sources: the CLI's own `log` command group, dispatched the way
// the strata binary dispatches it, so tests and benches start LogServers and sequencers as deployed
// without depending on a build. argv: the words after `strata log`.
// The process also stops as on SIGTERM when its stdin closes, so a parent that dies, even by SIGKILL,
// leaves no server behind.
import { processIo, runCommand } from '@strata/cli';
import { commands } from '../../src/cli.js';

process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM'));
process.stdin.resume();
const code = await runCommand(commands[0]!, process.argv.slice(2), processIo());
process.stdin.destroy();
process.exitCode = code;
