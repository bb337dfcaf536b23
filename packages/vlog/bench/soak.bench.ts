// The long soak of both deterministic simulations (CI runs 1,000 seeds of each; this runs many more).
// Usage: npm run bench -- vlog soak [-- --seeds N --from S]

import { simulate } from '../src/sim.js';
import { simulateNative } from '../src/sim-native.js';

const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const seeds = arg('seeds', 5_000);
const from = arg('from', 1_000_000);
for (const [name, run] of [
  ['VirtualLog over simulated loglets', (s: number) => simulate(s, { clients: 3, appendsPerClient: 10 })],
  [
    'NativeLoglet protocol (heavy faults)',
    (s: number) => simulateNative(s, { faults: { crashes: 5, partitions: 3, reset: 0.01, duplicate: 0.03 } }),
  ],
] as const) {
  const t0 = performance.now();
  let acked = 0;
  let reconf = 0;
  const bad: string[] = [];
  for (let s = from; s < from + seeds; s++) {
    const r = await run(s);
    acked += r.acknowledged;
    reconf += r.reconfigurations;
    if (r.violations.length) bad.push(`seed ${s}: ${r.violations.slice(0, 3).join('; ')}`);
  }
  const sec = (performance.now() - t0) / 1000;
  console.log(
    `${name}: ${seeds} seeds from ${from} in ${sec.toFixed(1)} s, ${acked} acknowledged appends, ${reconf} reconfigurations, ${bad.length} with violations`,
  );
  for (const b of bad.slice(0, 10)) console.log(`  ${b}`);
  if (bad.length) process.exitCode = 1;
}
