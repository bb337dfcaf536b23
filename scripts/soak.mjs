#!/usr/bin/env node
// `npm run soak -- [--mult N] [--seed S] [test files...]`: the property tests run longer than in
// `npm test`, every `fc.assert` N times its runs (default 20) from one seed (fresh unless given; printed
// first, so a failure can be replayed), one test file at a time. Without files, every test file that
// imports fast-check. Tests that time their own work (a property of network exchanges) take N times
// longer; pick files to soak the parsers alone.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = new URL('..', import.meta.url).pathname;
const usage = 'usage: npm run soak -- [--mult N] [--seed S] [test files...]';
let parsed;
try {
  parsed = parseArgs({
    options: { mult: { type: 'string', default: '20' }, seed: { type: 'string' } },
    allowPositionals: true,
  });
} catch (e) {
  process.stderr.write(`soak: ${e.message}\n${usage}\n`);
  process.exit(2);
}
const { values, positionals } = parsed;
const mult = Number(values.mult);
if (!(mult > 0)) {
  process.stderr.write(`soak: --mult must be a positive number, not ${values.mult}\n`);
  process.exit(2);
}
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
if (!Number.isSafeInteger(seed)) {
  process.stderr.write(`soak: --seed must be an integer, not ${values.seed}\n`);
  process.exit(2);
}
/** Every test file that imports fast-check, package by package. */
function propertyTestFiles() {
  const files = [];
  for (const dir of ['packages', 'apps'])
    for (const pkg of readdirSync(join(root, dir))) {
      const test = join(dir, pkg, 'test');
      if (!existsSync(join(root, test))) continue;
      for (const n of readdirSync(join(root, test)))
        if (n.endsWith('.test.ts') && readFileSync(join(root, test, n), 'utf8').includes("from 'fast-check'"))
          files.push(join(test, n));
    }
  return files;
}

const files = positionals.length > 0 ? positionals : propertyTestFiles();
process.stderr.write(`soak: ${files.length} file(s), runs x${mult}, seed ${seed}\n`);
const r = spawnSync(
  join(root, 'node_modules/.bin/vitest'),
  ['run', '--config', join(root, 'scripts/soak/vitest.config.ts'), ...files],
  {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, STRATA_SOAK_MULT: String(mult), STRATA_SOAK_SEED: String(seed) },
  },
);
process.stderr.write(`soak: seed ${seed} (replay: npm run soak -- --mult ${mult} --seed ${seed} FILE)\n`);
process.exit(r.status ?? 1);
