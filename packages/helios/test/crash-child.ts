// Child process for crash.test.ts: ingests a file and indexes it, until killed.
import { Stream } from '../src/index.js';

const [dir, file, chunk] = process.argv.slice(2);
const s = await Stream.open(dir!, 'ev', { mergeKeysMax: 40, addKeysMax: 200, fanoutMax: 4 });
process.stdout.write('ready\n');
await s.ingestFile(file!, { chunkBytes: Number(chunk) });
await s.indexAll();
await s.close();
process.stdout.write('done\n');
