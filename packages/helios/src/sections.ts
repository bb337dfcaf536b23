/**
 * Section compression off the main thread: one worker thread compresses a block's sections (each its own
 * stream) while the main thread parses and keys the next chunk. One message each way per block: the
 * sections go in as one buffer whose memory is transferred (not copied) with their offsets, and come back
 * as one buffer and their lengths. (zlib's async functions use the thread pool too, but each call costs
 * the main thread a stream, callbacks and a handle to close, which profiled as more main-thread time than
 * a synchronous call.)
 *
 * Two codecs: `brotli` (quality 0, a 256 KiB window: what version 5 blocks hold) and `deflate` (raw,
 * level 1: version 4 and older). On a 1M-line HDFS ingest's JSON sections brotli quality 1 took 243 ms
 * against deflate level 1's 404 and came out 5% smaller; it inflates about as fast. Quality 0 (one pass,
 * no second pass that recodes the commands) took 23% less CPU than quality 1 on the bench's 4 MiB blocks
 * (6.95 against 9.00 ms a block, the medians of 9 rounds over 6 blocks' 150 sections each, 2026-12-03
 * 16:30) and came out 13% larger (503.5 against 444.5 KB a block); version 5 blocks were written with
 * quality 1 until 2026-12-03 17:10. A brotli decoder reads any quality, so the change needs no new block
 * version, and a reader of either age reads the blocks of the other.
 */
import { Worker } from 'node:worker_threads';
import { brotliCompressSync, constants, deflateRawSync } from 'node:zlib';

export type SectionCodec = 'brotli' | 'deflate';

/** Brotli's window for sections, log2 bytes: larger than a page's section (a reader's decoder holds one). */
const sectionBrotliWindowBits = 18;
const brotliParams = {
  [constants.BROTLI_PARAM_QUALITY]: 0,
  [constants.BROTLI_PARAM_LGWIN]: sectionBrotliWindowBits,
};
const deflateLevel = 1;

// Plain CommonJS, evaluated: the same code runs from dist/ and from the TypeScript sources under test.
const workerSource = `
const { parentPort } = require('node:worker_threads');
const { brotliCompressSync, deflateRawSync } = require('node:zlib');
parentPort.on('message', ({ id, text, offs, codec, brotliParams, deflateLevel }) => {
  try {
    const zs = [];
    for (let i = 0; i + 1 < offs.length; i++) {
      const t = text.subarray(offs[i], offs[i + 1]);
      zs.push(codec === 'deflate' ? deflateRawSync(t, { level: deflateLevel }) : brotliCompressSync(t, { params: brotliParams }));
    }
    let n = 0;
    for (const z of zs) n += z.length;
    const out = new Uint8Array(n);
    const lens = new Uint32Array(zs.length);
    let o = 0;
    zs.forEach((z, i) => { out.set(z, o); o += z.length; lens[i] = z.length; });
    const back = text.buffer;
    parentPort.postMessage({ id, out, lens, back }, [out.buffer, lens.buffer, back]);
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

/**
 * Section buffers the worker gave back, for `sectionBuffer` to reuse: at most `sectionBuffersMax`, each at
 * most `sectionBufferPooledBytesMax` (the pool is the process's and outlives an ingest: chunks of the
 * default 4 MB keep about 10 MiB; the buffers of larger chunks are not kept, their page faults being a
 * smaller part of their work).
 */
const sectionBuffers: ArrayBuffer[] = [];
const sectionBuffersMax = 2;
const sectionBufferPooledBytesMax = 16 << 20;
const sectionBufferBytesStep = 1 << 20;

/**
 * A buffer of at least `bytes` for a block's sections (its contents are garbage): one the worker gave back
 * when one is large enough, else a new one. A new 5 MiB buffer a block was zeroed and then faulted in
 * page by page as the sections were written (about 1,300 page faults a block).
 */
export function sectionBuffer(bytes: number): Uint8Array {
  for (let i = 0; i < sectionBuffers.length; i++)
    if (sectionBuffers[i]!.byteLength >= bytes) return new Uint8Array(sectionBuffers.splice(i, 1)[0]!);
  // rounded up, so that the next block's buffer (a chunk a few bytes longer) fits in this one
  return new Uint8Array(Math.ceil(bytes / sectionBufferBytesStep) * sectionBufferBytesStep);
}

function failAll(e: Error): void {
  worker = undefined;
  for (const w of waiting.values()) w.reject(e);
  waiting.clear();
}

function start(): Worker {
  const w = new Worker(workerSource, { eval: true });
  w.unref(); // referenced only while a request waits, so an idle worker never holds the process open
  w.on(
    'message',
    (m: { id: number; out?: Uint8Array; lens?: Uint32Array; back?: ArrayBuffer; error?: string }) => {
      if (
        m.back &&
        sectionBuffers.length < sectionBuffersMax &&
        m.back.byteLength <= sectionBufferPooledBytesMax
      )
        sectionBuffers.push(m.back);
      const waiter = waiting.get(m.id);
      if (!waiter) return;
      waiting.delete(m.id);
      if (waiting.size === 0) w.unref();
      if (m.error !== undefined || !m.out || !m.lens) {
        waiter.reject(new Error(`section compression worker: ${m.error ?? 'no output'}`));
        return;
      }
      const parts: Uint8Array[] = [];
      let o = 0;
      for (const n of m.lens) {
        parts.push(m.out.subarray(o, o + n));
        o += n;
      }
      waiter.resolve(parts);
    },
  );
  w.on('error', (e) => failAll(new Error(`section compression worker failed: ${e.message}`)));
  w.on('exit', (code) => {
    if (worker === w) failAll(new Error(`section compression worker exited (code ${code})`));
  });
  return w;
}

/** One section compressed with `codec`. */
function compressSection(t: Uint8Array, codec: SectionCodec): Uint8Array {
  return codec === 'deflate'
    ? deflateRawSync(t, { level: deflateLevel })
    : brotliCompressSync(t, { params: brotliParams });
}

/** Each section text[offs[i], offs[i + 1]) compressed with `codec`, in order, on this thread. */
export function compressEach(text: Uint8Array, offs: Uint32Array, codec: SectionCodec): Uint8Array[] {
  const zs: Uint8Array[] = [];
  for (let i = 0; i + 1 < offs.length; i++)
    zs.push(compressSection(text.subarray(offs[i]!, offs[i + 1]!), codec));
  return zs;
}

/**
 * `compressEach` computed on a worker. `text` must own its whole ArrayBuffer, which is transferred: the
 * caller must not use it (nor views of it) afterwards.
 */
export function compressSections(
  text: Uint8Array,
  offs: Uint32Array,
  codec: SectionCodec,
): Promise<Uint8Array[]> {
  if (!worker) {
    try {
      worker = start();
    } catch {
      // no worker threads here: compress on this thread
      return Promise.resolve(compressEach(text, offs, codec));
    }
  }
  const w = worker;
  const id = nextId++;
  return new Promise<Uint8Array[]>((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    w.ref();
    w.postMessage({ id, text, offs, codec, brotliParams, deflateLevel }, [text.buffer as ArrayBuffer]);
  });
}
