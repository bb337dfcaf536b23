// Loaded by scripts/bench.mjs after tsx (`--import`): a bench's imports of its package's sources
// (`../src/x.js`, which tsx would transpile from `src/x.ts`) resolve to the package's build
// (`dist/x.js`, what the CLI runs), so a bench measures the code that ships: tsx transpiles with esbuild's
// keepNames, which wraps every function expression in a `__name` call as it is created (in one profile of
// the ids packet loop: `__name` 1.8% self time; the loop 0.26-0.32 s on the sources against 0.24-0.28 s
// built). The bench files themselves still run through tsx.
import { register } from 'node:module';

register(new URL('./bench-dist-hooks.mjs', import.meta.url));
