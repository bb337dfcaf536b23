// Loaded by scripts/bench.mjs after tsx (`--import`): a bench's imports of its package's sources
// (`../src/x.js`, which tsx would transpile from `src/x.ts`) resolve to the package's build
// (`dist/x.js`, what the CLI runs), so a bench measures the code that ships: tsx transpiles with esbuild's
// keepNames, which wraps every function expression in a `__name` call as it is created (measured: about
// 10% of the ids packet loop). The bench files themselves still run through tsx.
import { register } from 'node:module';

register(new URL('./bench-dist-hooks.mjs', import.meta.url));
