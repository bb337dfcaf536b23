// Loaded by scripts/soak.mjs before every test file: each `fc.assert` runs `STRATA_SOAK_MULT` times its
// runs, all from the seed `STRATA_SOAK_SEED` (a failure prints that seed and the failing path, which
// `npm run soak -- --seed S FILE` replays). The tests themselves are unchanged.
import { vi } from 'vitest';

vi.mock('fast-check', async (importOriginal) => {
  const fc = await importOriginal<typeof import('fast-check')>();
  const mult = Number(process.env.STRATA_SOAK_MULT);
  const seed = Number(process.env.STRATA_SOAK_SEED);
  const assert = ((property: Parameters<typeof fc.assert>[0], params: Parameters<typeof fc.assert>[1] = {}) =>
    fc.assert(property, {
      ...params,
      numRuns: Math.ceil((params.numRuns ?? 100) * mult),
      seed: params.seed ?? seed,
    })) as typeof fc.assert;
  return { ...fc, assert, default: { ...fc.default, assert } };
});
