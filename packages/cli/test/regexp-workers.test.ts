import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';

describe('boundedRegExp in worker threads', () => {
  it("every one of several threads starting at once gets the bound (V8 flags are the process's)", async () => {
    const url = new URL('../src/regexp.ts', import.meta.url).href;
    const code = `
      const { parentPort } = require('node:worker_threads');
      import('tsx/esm/api')
        .then(({ register }) => { register(); return import(${JSON.stringify(url)}); })
        .then((m) => {
          const re = m.boundedRegExp('^(?:a|a)*c|^a*b', '', 1000);
          parentPort.postMessage({ works: m.regExpBacktrackLimitWorks(), bounded: re.exec('a'.repeat(20) + 'b') === null });
        }, (e) => parentPort.postMessage({ error: String(e) }));`;
    const workers = Array.from({ length: 6 }, () => new Worker(code, { eval: true }));
    try {
      const got = await Promise.all(workers.map((w) => new Promise((res) => w.once('message', res))));
      expect(got).toEqual(Array.from({ length: 6 }, () => ({ works: true, bounded: true })));
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  }, 60_000);
});
