#!/usr/bin/env node
// One build for the repo: WebAssembly sources first (a package's `build:wasm` script), then the
// TypeScript project references, then the CLI's executable bit.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

function run(cmd, args, cwd = root) {
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`build: ${cmd} ${args.join(' ')} failed in ${cwd} (exit ${r.status})`);
    process.exit(1);
  }
}

for (const ws of pkg.workspaces) {
  const dir = join(root, ws);
  const p = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  if (p.scripts?.['build:wasm']) run('npm', ['run', '--silent', 'build:wasm'], dir);
}
run(join(root, 'node_modules/.bin/tsc'), ['-b']);
const bin = join(root, 'apps/strata/dist/main.js');
if (existsSync(bin)) chmodSync(bin, 0o755);
