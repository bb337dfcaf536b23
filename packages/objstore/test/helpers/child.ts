// Child process for the crash and multi-process tests. argv: mode dir [args...]
import { mkdirSync, openSync, writeSync } from 'node:fs';
import { FileStore, lockFile, WalStore } from '../../src/index.js';

const [mode, dir, arg] = process.argv.slice(2);
const say = (s: string) => process.stdout.write(`${s}\n`);

if (mode === 'lock-hold') {
  // takes a lock and keeps it until killed
  await lockFile(`${dir}/k.lock`);
  say('locked');
  setInterval(() => undefined, 1000);
} else if (mode === 'lock-exit') {
  // takes and releases a lock, then exits normally
  const release = await lockFile(`${dir}/e.lock`);
  await release();
  say('done');
} else if (mode === 'file-overwrite') {
  // alternately write 1 MiB of 'a' and of 'b' to one key, forever
  const s = new FileStore(dir!);
  const a = new Uint8Array(1 << 20).fill(0x61);
  const b = new Uint8Array(1 << 20).fill(0x62);
  say('ready');
  for (let i = 0; ; i++) await s.put('k', i % 2 ? b : a);
} else if (mode === 'wal-writer') {
  const store = new FileStore(`${dir}/standard`);
  const w = await WalStore.open(store, {
    dir: `${dir}/wal`,
    flushIntervalMs: 2,
    packBytes: 64 << 10,
    packIntervalMs: 50,
  });
  // tries and acks go to a file with synchronous writes, so each is recorded before the step after it: a
  // pipe to the parent is written asynchronously, and lines queued in this process when it is killed are lost
  // (under load a 'try' line could be lost while its put had reached the WAL)
  mkdirSync(dir!, { recursive: true });
  const log = openSync(`${dir}/log`, 'a');
  const note = (s: string) => writeSync(log, `${s}\n`);
  say('ready');
  let i = 0;
  for (;;) {
    const batch = Array.from({ length: 8 }, () => i++);
    for (const j of batch) note(`try ${j}`);
    await Promise.all(
      batch.map(async (j) => {
        await w.put(`k/${String(j).padStart(8, '0')}`, Buffer.from(`value ${j}`.repeat(20)));
        note(`ack ${j}`);
      }),
    );
  }
} else if (mode === 'race') {
  const s = new FileStore(dir!);
  try {
    await s.put('race', Buffer.from(`writer ${arg}`), { ifNoneMatch: '*' });
    say('won');
  } catch (e) {
    say((e as Error).name === 'PreconditionFailedError' ? 'lost' : `error ${(e as Error).message}`);
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}
