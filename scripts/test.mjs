#!/usr/bin/env node
// `npm test`: build + typecheck, lint, then every package's tests. Ends with one line that counts
// passed and failed tests. Extra arguments go to vitest (e.g. `npm test -- packages/vlog`).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const bin = (n) => join(root, 'node_modules/.bin', n);
const failedSteps = [];

function step(name, cmd, args) {
  process.stderr.write(`\n== ${name}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) failedSteps.push(name);
  return r.status === 0;
}

step('build', process.execPath, [join(root, 'scripts/build.mjs')]);
step('typecheck tests and benches', bin('tsc'), ['-p', 'tsconfig.check.json']);
step('lint', bin('biome'), ['check', '.']);

const out = mkdtempSync(join(tmpdir(), 'strata-test-'));
const report = join(out, 'vitest.json');
step('tests', bin('vitest'), [
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
  ...process.argv.slice(2),
]);
let passed = 0;
let failed = 0;
let skipped = 0;
if (existsSync(report)) {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  passed = r.numPassedTests;
  failed = r.numFailedTests;
  skipped = r.numPendingTests + r.numTodoTests;
  // A test file that fails to load has no tests to count; count it as one failure.
  for (const f of r.testResults) if (f.status === 'failed' && f.assertionResults.length === 0) failed++;
}
rmSync(out, { recursive: true, force: true });
const steps = failedSteps.length ? `; failed steps: ${failedSteps.join(', ')}` : '';
console.log(`\nstrata tests: ${passed} passed, ${failed} failed, ${skipped} skipped${steps}`);
process.exit(failedSteps.length || failed ? 1 : 0);
