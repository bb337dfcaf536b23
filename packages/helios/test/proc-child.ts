// Child process for procs.test.ts: one role per process, so a test can kill -9 it.
//   server DIR PORT INDEX(0|1)   an ingestion server; prints "port N"
//   indexer DIR [POLICY]         indexes until everything is indexed, 2 blocks a step (prints "step N")
//   agent URL STREAM FILE CHUNK  ships a file from its checkpoint (prints "sent N" after each request)
//   index-cli ARG...             \`strata stream index ARG...\` (its stderr on stdout), until SIGINT
import { processIo, runCommand } from '@strata/cli';
import { commands, runAgentOnce, Stream, startIngestServer } from '../src/index.js';

const [role, ...a] = process.argv.slice(2);
if (role === 'server') {
  const srv = await startIngestServer(a[0]!, { port: Number(a[1]), index: a[2] === '1' });
  process.stdout.write(`port ${srv.port}\n`);
} else if (role === 'indexer') {
  // a[1]: the index policy as JSON (default: small nodes, no compaction)
  const policy = a[1]
    ? JSON.parse(a[1])
    : { mergeKeysMax: 40, addKeysMax: 200, fanoutMax: 4, compactEveryBlocks: 0 };
  const s = await Stream.open(a[0]!, 'ev', policy);
  process.stdout.write('ready\n');
  for (let step = 1; (await s.indexStep(2)) > 0; step++) process.stdout.write(`step ${step}\n`);
  await s.close();
  process.stdout.write('done\n');
} else if (role === 'agent') {
  process.stdout.write('ready\n');
  // "sent N" after each request's reply, so a test can kill it at a point of its progress
  let sent = 0;
  const counted: typeof fetch = async (input, init) => {
    const r = await fetch(input, init);
    process.stdout.write(`sent ${++sent}\n`);
    return r;
  };
  const st = await runAgentOnce(
    { url: a[0]!, stream: a[1]!, file: a[2]!, chunkBytes: Number(a[3]) },
    counted,
  );
  process.stdout.write(`done ${st.lines}\n`);
} else if (role === 'index-cli') {
  const stream = commands.find((c) => c.name === 'stream')!;
  const code = await runCommand(stream, ['index', ...a], { ...processIo(), stderr: process.stdout });
  process.exit(code);
} else throw new Error(`proc-child: unknown role ${role}`);
