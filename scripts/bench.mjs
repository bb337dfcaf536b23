#!/usr/bin/env node
// `npm run bench -- [<package> [<bench>]] [-- flags for the bench]`: runs packages/<package>/bench/<bench>.bench.ts
// (every bench of every package when no package is named), one process per bench, one after another.
// Each package is built first (its `build:wasm` script if it has one, then `tsc -p packages/<package>`) and its bench runs against that build (see
// bench-dist.mjs); STRATA_BENCH_SOURCES=1 runs it on the sources through tsx instead.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const dash = args.indexOf('--');
const names = dash < 0 ? args : args.slice(0, dash);
const extra = dash < 0 ? [] : args.slice(dash + 1);
const [pkgName, benchName] = names;
const pkgs = pkgName ? [pkgName] : readdirSync(join(root, 'packages'));
const sources = process.env.STRATA_BENCH_SOURCES === '1';
const distHook = join(root, 'scripts/bench-dist.mjs');
const hooks = sources ? [] : ['--import', distHook];
// STRATA_BENCH_HOOKS: the same hooks for the Node processes a bench starts itself (vlog's LogServers and
// sequencer through its test helper, r3map's `strata nbd serve`)
const env = sources ? process.env : { ...process.env, STRATA_BENCH_HOOKS: distHook };
let status = 0;
for (const p of pkgs) {
  const dir = join(root, 'packages', p, 'bench');
  if (!existsSync(join(root, 'packages', p))) {
    console.error(`bench: no package named ${p} (see packages/)`);
    process.exit(2);
  }
  if (!existsSync(dir)) continue;
  const files = readdirSync(dir).filter(
    (f) => f.endsWith('.bench.ts') && (!benchName || f === `${benchName}.bench.ts`),
  );
  if (benchName && files.length === 0) {
    console.error(`bench: no bench named ${benchName} in packages/${p}/bench`);
    process.exit(2);
  }
  if (files.length > 0 && !sources) {
    // its WebAssembly first, as the repo's build does: a bench over a stale or missing module would
    // measure the JavaScript fallback without saying so
    const scripts = JSON.parse(readFileSync(join(root, 'packages', p, 'package.json'), 'utf8')).scripts;
    if (scripts?.['build:wasm']) {
      const w = spawnSync('npm', ['run', '--silent', 'build:wasm'], {
        cwd: join(root, 'packages', p),
        stdio: 'inherit',
      });
      if (w.status !== 0) {
        console.error(`bench: packages/${p}'s WebAssembly does not build (npm run build:wasm)`);
        process.exit(1);
      }
    }
    const b = spawnSync(join(root, 'node_modules/.bin/tsc'), ['-p', join(root, 'packages', p)], {
      stdio: 'inherit',
    });
    if (b.status !== 0) {
      console.error(
        `bench: packages/${p} does not build (tsc -p packages/${p}); STRATA_BENCH_SOURCES=1 runs its sources`,
      );
      process.exit(1);
    }
  }
  for (const f of files.sort()) {
    console.error(`\n== ${p}/${f}`);
    const r = spawnSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', ...hooks, join(dir, f), ...extra],
      {
        cwd: join(root, 'packages', p),
        stdio: 'inherit',
        env,
      },
    );
    if (r.status !== 0) status = 1;
  }
}
process.exit(status);
