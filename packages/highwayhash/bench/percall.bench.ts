// Where the time of one short hash64 call goes: the whole call against its parts (the key check, the input
// copy, the call into WebAssembly with the hashing, the BigInt read) and against highwayhasher's WASM build.
// The parts are internal (src/wasm.ts); their sum is about the whole call. Usage:
// npm run bench -- highwayhash percall
import { type Impl, runBench } from '@strata/bench';
import { WasmHighwayHash } from 'highwayhasher';
import { hash64 } from '../src/index.js';
import { loadWasm } from '../src/wasm.js';

const engine = loadWasm() as unknown as {
  setKey(k: Uint32Array): number;
  copyIn(d: Uint8Array, from: number, to: number, at: number): void;
  out64: BigUint64Array;
  input: number;
  ex: { hash64Out(init: number, ptr: number, len: number): void };
};
if (!engine) throw new Error('percall bench: the WebAssembly core is not available');
const key = Uint8Array.from({ length: 32 }, (_, i) => i);
const keyWords = new Uint32Array(key.buffer);
const sizes = [16, 64];
const cases = sizes.map((n) => ({ name: `${n} B`, x: n, bytes: n }));
const data = new Map(sizes.map((n) => [n, Uint8Array.from({ length: n }, (_, i) => (i * 131) & 0xff)]));
type C = (typeof cases)[number];
const hh = await WasmHighwayHash.loadModule({ simd: true });
// the key's initial state, where the core derived it (the whole call looks it up with the key check)
const init = engine.setKey(keyWords);

const anchors: Impl<C>[] = [
  {
    name: 'highwayhasher WASM SIMD hash64',
    setup: (c) => {
      const d = data.get(c.x)!;
      return () => hh.hash64(key, d);
    },
  },
  { name: 'part: key check (8 words)', setup: () => () => engine.setKey(keyWords) },
  {
    name: 'part: input copy',
    setup: (c) => {
      const d = data.get(c.x)!;
      return () => engine.copyIn(d, 0, d.length, engine.input);
    },
  },
  {
    name: 'part: WebAssembly call and hashing',
    setup: (c) => () => engine.ex.hash64Out(init, engine.input, c.x),
  },
  { name: 'part: BigInt read of the result', setup: () => () => engine.out64[0] },
  { name: 'part: an empty op (harness cost)', setup: () => () => 0 },
];

await runBench({
  name: 'percall',
  title: 'hash64 per call and its parts',
  cases,
  subject: {
    name: 'strata hash64 (wasm), whole call',
    setup: (c) => {
      const d = data.get(c.x)!;
      return () => hash64(key, d);
    },
  },
  anchors,
  repetitions: 7,
  minTimeMs: 100,
  warmupMs: 50,
  xLabel: 'input bytes',
  chart: 'latency',
});
