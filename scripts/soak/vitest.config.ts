// The soak run's vitest configuration (scripts/soak.mjs): the suite's, with the setup that multiplies
// property runs, no per-test time limit the longer runs would pass, and one test file at a time.
import { mergeConfig } from 'vitest/config';
import base from '../../vitest.config.js';

export default mergeConfig(base, {
  test: {
    setupFiles: [new URL('./setup.ts', import.meta.url).pathname],
    testTimeout: 0,
    fileParallelism: false,
  },
});
