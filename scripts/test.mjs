#!/usr/bin/env node
// `npm test`: build + typecheck, lint, then every package's tests. Ends with one line that counts
// passed and failed tests. Extra arguments go to vitest (e.g. `npm test -- packages/vlog`).
import { spawn, spawnSync } from 'node:child_process';
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
// The tests run in a process group of their own with a bound on their wall time, so that a test stuck
// in a loop (which no vitest timeout interrupts: a timer cannot fire while a worker's thread is busy)
// fails the run instead of holding CI. The suite takes about 8-10 minutes on a 2-core machine.
const boundMin = Number(process.env.STRATA_TEST_BOUND_MIN ?? 40);
process.stderr.write('\n== tests\n');
const testsOk = await new Promise((resolve) => {
  const child = spawn(
    bin('vitest'),
    ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)],
    { cwd: root, stdio: 'inherit', detached: true },
  );
  // the group is not the terminal's foreground group: pass a Ctrl-C or a kill on to it
  const signalGroup = (sig) => {
    try {
      process.kill(-child.pid, sig);
    } catch {}
  };
  const forward = (sig) => signalGroup(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  let killer;
  const timer = setTimeout(() => {
    process.stderr.write(
      `\nstrata tests: still running after ${boundMin} minutes (STRATA_TEST_BOUND_MIN); stopping them\n`,
    );
    signalGroup('SIGTERM'); // let vitest's hooks stop the servers the tests started, if they can run
    killer = setTimeout(() => signalGroup('SIGKILL'), 20_000);
  }, boundMin * 60_000);
  child.on('exit', (code) => {
    clearTimeout(timer);
    clearTimeout(killer);
    signalGroup('SIGKILL'); // a worker left spinning after vitest itself has gone
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
    resolve(code === 0);
  });
});
if (!testsOk) failedSteps.push('tests');
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
