/** Per-thread CPU time, for the workers' load report and the throughput bench. */
import { readFileSync } from 'node:fs';

/**
 * CPU time (user + system) of the calling thread in ms, from /proc/thread-self/stat (Linux, 10 ms ticks);
 * undefined elsewhere. On a shared machine wall time says how busy the machine was; this says what the
 * work cost.
 */
export function threadCpuMs(): number | undefined {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields 14 and 15 of proc(5), counted from after the command name (which is field 2)
    return ((Number(f[11]) + Number(f[12])) * 1000) / clockTicksPerSecond;
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every Linux architecture Node runs on. */
const clockTicksPerSecond = 100;
