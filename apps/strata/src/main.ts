#!/usr/bin/env node
import { processIo } from '@strata/cli';
import { main } from './index.js';

main(process.argv.slice(2), processIo()).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`strata: ${(err as Error)?.message ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
