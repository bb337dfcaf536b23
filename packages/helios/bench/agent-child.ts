// Child process for agent.bench.ts: the agent alone in its process, reading stdin, so its CPU and RSS are its own.
import { runAgentStream } from '../src/index.js';

const [url, stream, local, compress] = process.argv.slice(2);
const st = await runAgentStream(process.stdin, {
  url: url!,
  stream: stream!,
  localIndex: local === '1',
  compress: compress === '1',
});
process.stdout.write(`${JSON.stringify(st)}\n`);
