// The other forms against highwayhasher's WASM SIMD build, side by side in one process: hash128 and hash256
// one-shot, and the streaming hasher (many small updates, a short stream with a 128-bit digest, 1 MiB in
// 64 KiB updates). Usage: npm run bench -- highwayhash forms
import { runBench } from '@strata/bench';
import { WasmHighwayHash } from 'highwayhasher';
import { createHasher, hash128, hash256, implementation } from '../src/index.js';

const key = Uint8Array.from({ length: 32 }, (_, i) => i);
const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131) & 0xff);
const d16 = bytes(16);
const d1k = bytes(1024);
const d1m = bytes(1 << 20);
const pieces64 = Array.from({ length: 1024 }, (_, i) => d1m.subarray(64 * i, 64 * i + 64));
const hh = await WasmHighwayHash.loadModule({ simd: true });

interface FormCase {
  name: string;
  x: number;
  bytes: number;
  strata: () => unknown;
  anchor: () => unknown;
}
const cases: FormCase[] = [
  {
    name: 'hash128 16 B',
    x: 1,
    bytes: 16,
    strata: () => hash128(key, d16),
    anchor: () => hh.hash128(key, d16),
  },
  {
    name: 'hash256 16 B',
    x: 2,
    bytes: 16,
    strata: () => hash256(key, d16),
    anchor: () => hh.hash256(key, d16),
  },
  {
    name: 'hash128 1 KiB',
    x: 3,
    bytes: 1024,
    strata: () => hash128(key, d1k),
    anchor: () => hh.hash128(key, d1k),
  },
  {
    name: 'hash256 1 KiB',
    x: 4,
    bytes: 1024,
    strata: () => hash256(key, d1k),
    anchor: () => hh.hash256(key, d1k),
  },
  {
    name: 'stream 16 B, digest128',
    x: 5,
    bytes: 16,
    strata: () => createHasher(key).update(d16).digest128(),
    anchor: () => {
      const h = hh.create(key);
      h.append(d16);
      return h.finalize128();
    },
  },
  {
    name: 'stream 1024 x 64 B',
    x: 6,
    bytes: 1 << 16,
    strata: () => {
      const h = createHasher(key);
      for (const p of pieces64) h.update(p);
      return h.digest64();
    },
    anchor: () => {
      const h = hh.create(key);
      for (const p of pieces64) h.append(p);
      return h.finalize64();
    },
  },
  {
    name: 'stream 1 MiB in 64 KiB',
    x: 7,
    bytes: 1 << 20,
    strata: () => {
      const h = createHasher(key);
      for (let o = 0; o < d1m.length; o += 1 << 16) h.update(d1m.subarray(o, o + (1 << 16)));
      return h.digest64();
    },
    anchor: () => {
      const h = hh.create(key);
      for (let o = 0; o < d1m.length; o += 1 << 16) h.append(d1m.subarray(o, o + (1 << 16)));
      return h.finalize64();
    },
  },
];

await runBench({
  name: 'forms',
  title: 'hash128, hash256 and the streaming hasher',
  cases,
  subject: { name: `strata (${implementation()})`, setup: (c) => c.strata },
  anchors: [{ name: 'highwayhasher WASM SIMD', setup: (c) => c.anchor }],
  repetitions: 5,
  minTimeMs: 100,
  warmupMs: 50,
  xLabel: 'case',
  chart: 'latency',
});
