// A writer that replicates to a replica that is down, for the crash test: argv PRIMARY_DIR JOURNAL_DIR N.
// Prints each acknowledged key, then "done", then waits to be killed.
import { FileStore, MemStore, ReplicatedStore, StoreWrapper } from '../../src/index.js';

class Down extends StoreWrapper {
  override put(): Promise<string> {
    return Promise.reject(new Error('replica down'));
  }
  override delete(): Promise<void> {
    return Promise.reject(new Error('replica down'));
  }
}

const [primaryDir, journalDir, n] = process.argv.slice(2) as [string, string, string];
const r = await ReplicatedStore.open(new FileStore(primaryDir), new Down(new MemStore()), {
  journalDir,
  prefixes: ['rep/'],
  retryMsMax: 50,
});
for (let i = 0; i < Number(n); i++) {
  await r.put(`rep/k${i}`, Buffer.from(`v${i}`));
  if (i % 10 === 9) await r.delete(`rep/k${i - 5}`);
}
await r.put('local/x', Buffer.from('not replicated'));
process.stdout.write('done\n');
setInterval(() => undefined, 1000);
