import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests import other workspace packages from their sources, so `npm test` never depends on a stale build.
const root = fileURLToPath(new URL('.', import.meta.url));
const alias = [{ find: /^@strata\/([a-z0-9-]+)$/, replacement: `${root}packages/$1/src/index.ts` }];

export default defineConfig({
  resolve: { alias },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts'],
    setupFiles: ['scripts/fast-check-size.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
