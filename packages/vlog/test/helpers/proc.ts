// A LogServer or sequencer as its own process, for the acceptance test. argv: server DIR | sequencer SERVERS
import { LogServer, Sequencer } from '../../src/index.js';

const [kind, arg] = process.argv.slice(2);
const s = kind === 'server' ? new LogServer(arg!) : new Sequencer((arg ?? '').split(',').filter(Boolean));
const port = await s.listen(0);
process.stdout.write(`${port}\n`);
