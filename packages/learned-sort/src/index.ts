/**
 * @strata/learned-sort: Learned Sort (SIGMOD'20) with the duplicate handling of LearnedSort 2.0 and a
 * radix-sort guard, for typed arrays and strings.
 */

export { commands, demos } from './cli.js';
export {
  fanout,
  type LearnedStats,
  leafBucketKeys,
  leafCount,
  learnedSortF64,
  predict,
  type Rmi,
  train,
} from './learned.js';
export { radixSortF64 } from './radix.js';
export { learnedArgsort, learnedSort, learnedSortStrings, type SortableArray } from './sort.js';
