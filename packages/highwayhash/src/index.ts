/**
 * @strata/highwayhash: HighwayHash-64/128/256 (256-bit key) and SipHash-2-4/1-3, bit-exact with
 * google/highwayhash, on a WebAssembly SIMD core with a portable TypeScript fallback.
 */

export { commands, demos } from './cli.js';
export {
  createHasher,
  type Hasher,
  hash64,
  hash64Batch,
  hash64Words,
  hash128,
  hash128Words,
  hash256,
  type Implementation,
  implementation,
  useImplementation,
} from './hash.js';
export type { HighwayKey } from './hasher.js';
export { sipHash13, sipHash24 } from './siphash.js';
