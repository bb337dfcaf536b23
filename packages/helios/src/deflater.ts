/**
 * Deflate off the main thread: one worker thread deflates a block's sections (raw deflate, each its own
 * stream) while the main thread parses and keys the next chunk. One message each way per block: the
 * sections go in as a list, come back as one buffer and their lengths. (zlib's async functions use the
 * thread pool too, but each call costs the main thread a stream, callbacks and a handle to close, which
 * profiled as more main-thread time than a synchronous deflate.) The sections go in as one buffer whose
 * memory is transferred, not copied.
 */
import { Worker } from 'node:worker_threads';
import { deflateRawSync } from 'node:zlib';

// Plain CommonJS, evaluated: the same code runs from dist/ and from the TypeScript sources under test.
const workerSource = `
const { parentPort } = require('node:worker_threads');
const { deflateRawSync } = require('node:zlib');
parentPort.on('message', ({ id, text, offs, level }) => {
  try {
    const zs = [];
    for (let i = 0; i + 1 < offs.length; i++) zs.push(deflateRawSync(text.subarray(offs[i], offs[i + 1]), { level }));
    let n = 0;
    for (const z of zs) n += z.length;
    const out = new Uint8Array(n);
    const lens = new Uint32Array(zs.length);
    let o = 0;
    zs.forEach((z, i) => { out.set(z, o); o += z.length; lens[i] = z.length; });
    parentPort.postMessage({ id, out, lens }, [out.buffer, lens.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message || e) });
  }
});
`;

interface Waiter {
  resolve: (z: Uint8Array[]) => void;
  reject: (e: Error) => void;
}

let worker: Worker | undefined;
let nextId = 0;
const waiting = new Map<number, Waiter>();

function failAll(e: Error): void {
  worker = undefined;
  for (const w of waiting.values()) w.reject(e);
  waiting.clear();
}

function start(): Worker {
  const w = new Worker(workerSource, { eval: true });
  w.unref(); // referenced only while a request waits, so an idle worker never holds the process open
  w.on('message', (m: { id: number; out?: Uint8Array; lens?: Uint32Array; error?: string }) => {
    const waiter = waiting.get(m.id);
    if (!waiter) return;
    waiting.delete(m.id);
    if (waiting.size === 0) w.unref();
    if (m.error !== undefined || !m.out || !m.lens) {
      waiter.reject(new Error(`deflate worker: ${m.error ?? 'no output'}`));
      return;
    }
    const parts: Uint8Array[] = [];
    let o = 0;
    for (const n of m.lens) {
      parts.push(m.out.subarray(o, o + n));
      o += n;
    }
    waiter.resolve(parts);
  });
  w.on('error', (e) => failAll(new Error(`deflate worker failed: ${e.message}`)));
  w.on('exit', (code) => {
    if (worker === w) failAll(new Error(`deflate worker exited (code ${code})`));
  });
  return w;
}

/** Each section text[offs[i], offs[i + 1]) raw-deflated at `level`, in order, on this thread. */
export function deflateEach(text: Uint8Array, offs: Uint32Array, level: number): Uint8Array[] {
  const zs: Uint8Array[] = [];
  for (let i = 0; i + 1 < offs.length; i++)
    zs.push(deflateRawSync(text.subarray(offs[i]!, offs[i + 1]!), { level }));
  return zs;
}

/**
 * `deflateEach` computed on a worker. `text` must own its whole ArrayBuffer, which is transferred: the caller
 * must not use it (nor views of it) afterwards.
 */
export function deflateSections(text: Uint8Array, offs: Uint32Array, level: number): Promise<Uint8Array[]> {
  if (!worker) {
    try {
      worker = start();
    } catch {
      // no worker threads here: deflate on this thread
      return Promise.resolve(deflateEach(text, offs, level));
    }
  }
  const w = worker;
  const id = nextId++;
  return new Promise<Uint8Array[]>((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    w.ref();
    w.postMessage({ id, text, offs, level }, [text.buffer as ArrayBuffer]);
  });
}
