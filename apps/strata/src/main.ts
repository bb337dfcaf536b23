#!/usr/bin/env node
import { processIo } from '@strata/cli';
import { main } from './index.js';

// The AWS SDK (s3:// stores) prints eight lines on every run under Node < 22 about its releases after
// January 2027; the lockfile pins the release this CLI was tested with. A user's own setting wins.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

main(process.argv.slice(2), processIo()).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`strata: ${(err as Error)?.message ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
