// HighwayHash-64 against every JavaScript peer, side by side in one process.
// Usage: npm run bench -- highwayhash [hash]
import { createHash } from 'node:crypto';
import { type Impl, runBench } from '@strata/bench';
import { createBLAKE3, createXXHash64 } from 'hash-wasm';
import { HighwayHash as NativeHighway, WasmHighwayHash } from 'highwayhasher';
import { hash64, hash64Batch, implementation, useImplementation } from '../src/index.js';

const key = Uint8Array.from({ length: 32 }, (_, i) => i);
const sizes = [16, 64, 1024, 64 << 10, 1 << 20, 16 << 20];
const cases = sizes.map((n) => ({
  name: n >= 1 << 20 ? `${n >> 20} MiB` : n >= 1024 ? `${n >> 10} KiB` : `${n} B`,
  x: n,
  bytes: n,
}));
const data = new Map(sizes.map((n) => [n, Uint8Array.from({ length: n }, (_, i) => (i * 131) & 0xff)]));
type C = (typeof cases)[number];

const hhWasm = await WasmHighwayHash.loadModule({ simd: true });
const hhNative = await NativeHighway.loadModule();
const xx = await createXXHash64();
const b3 = await createBLAKE3();
const wasmName = `strata hash64 (${implementation()})`;

const anchors: Impl<C>[] = [
  {
    name: 'strata hash64 (TypeScript fallback)',
    setup: (c) => {
      const d = data.get(c.x)!;
      return () => {
        useImplementation('ts');
        hash64(key, d);
        useImplementation('wasm');
      };
    },
  },
  {
    name: 'highwayhasher WASM SIMD',
    setup: (c) => {
      const d = data.get(c.x)!;
      return () => hhWasm.hash64(key, d);
    },
  },
  {
    name: 'highwayhasher native',
    setup: (c) => {
      const d = data.get(c.x)!;
      return () => hhNative.hash64(key, d);
    },
  },
  {
    name: 'node:crypto sha256',
    setup: (c) => {
      const d = data.get(c.x)!;
      return () => createHash('sha256').update(d).digest();
    },
  },
  {
    name: 'hash-wasm xxhash64',
    setup: (c) => {
      const d = data.get(c.x)!;
      return () => {
        xx.init();
        xx.update(d);
        return xx.digest('binary');
      };
    },
  },
  {
    name: 'hash-wasm blake3',
    setup: (c) => {
      const d = data.get(c.x)!;
      return () => {
        b3.init();
        b3.update(d);
        return b3.digest('binary');
      };
    },
  },
];

await runBench({
  name: 'hash64',
  title: 'HighwayHash-64 and peers: throughput by input size',
  cases,
  subject: {
    name: wasmName,
    setup: (c) => {
      const d = data.get(c.x)!;
      return () => hash64(key, d);
    },
  },
  anchors,
  repetitions: 5,
  minTimeMs: 100,
  warmupMs: 50,
  xLabel: 'input bytes',
});

// The batch form: 10 million 16-byte keys per op, against one call per key.
const n = 10_000_000;
const buf = Uint8Array.from({ length: 16 * n }, (_, i) => (i * 2654435761) >>> 24);
const offs = Uint32Array.from({ length: n }, (_, i) => 16 * i);
const lens = new Uint32Array(n).fill(16);
const out = new BigUint64Array(n);
await runBench({
  name: 'hash64-batch',
  title: 'hash64Batch: 10 million 16-byte keys',
  cases: [{ name: '10M x 16 B', x: n, items: n }],
  subject: { name: 'strata hash64Batch (wasm)', setup: () => () => hash64Batch(key, buf, offs, lens, out) },
  anchors: [
    {
      name: 'strata hash64 per key (wasm)',
      setup: () => () => {
        for (let i = 0; i < n; i++) hash64(key, buf.subarray(16 * i, 16 * i + 16));
      },
    },
    {
      name: 'highwayhasher WASM SIMD per key',
      setup: () => () => {
        for (let i = 0; i < n; i++) hhWasm.hash64(key, buf.subarray(16 * i, 16 * i + 16));
      },
    },
  ],
  repetitions: 5,
  minTimeMs: 1,
  warmupMs: 1,
  chart: 'throughput',
});
