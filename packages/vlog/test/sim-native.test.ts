// The deterministic simulation of the NativeLoglet protocol: real Sequencer, LogServer, FileLoglet,
// NativeLoglet, VirtualLog and failure detector over a simulated network and simulated disks.
import { describe, expect, it } from 'vitest';
import { simulateNative } from '../src/sim-native.js';

describe('NativeLoglet under simulated faults', () => {
  it('1,000 seeded fault schedules: zero checker violations, and the faults did happen', async () => {
    const bad: string[] = [];
    const total = {
      acked: 0,
      reconf: 0,
      serverCrashes: 0,
      sequencerCrashes: 0,
      torn: 0,
      resets: 0,
      dups: 0,
      det: 0,
    };
    for (let seed = 1; seed <= 1000; seed++) {
      const r = await simulateNative(seed);
      total.acked += r.acknowledged;
      total.reconf += r.reconfigurations;
      total.serverCrashes += r.stats.serverCrashes;
      total.sequencerCrashes += r.stats.sequencerCrashes;
      total.torn += r.stats.tornBytes;
      total.resets += r.stats.resets;
      total.dups += r.stats.duplicates;
      total.det += r.stats.detectorFailovers;
      if (r.violations.length) bad.push(`seed ${seed}: ${r.violations.slice(0, 3).join('; ')}`);
    }
    expect(bad).toEqual([]);
    // 3 writers x 15 appends per seed; the fault schedules must have bitten
    expect(total.acked).toBeGreaterThan(40_000);
    expect(total.reconf).toBeGreaterThan(500);
    expect(total.serverCrashes).toBeGreaterThan(800);
    expect(total.sequencerCrashes).toBeGreaterThan(200);
    expect(total.torn).toBeGreaterThan(0);
    expect(total.resets).toBeGreaterThan(100);
    expect(total.dups).toBeGreaterThan(100);
    expect(total.det).toBeGreaterThan(0);
  }, 240_000);

  it('heavier schedules (5 crashes, 3 partitions, more resets): zero violations', async () => {
    const bad: string[] = [];
    for (let seed = 1; seed <= 200; seed++) {
      const r = await simulateNative(seed, {
        faults: { crashes: 5, partitions: 3, reset: 0.01, duplicate: 0.03 },
      });
      if (r.violations.length) bad.push(`seed ${seed}: ${r.violations.slice(0, 3).join('; ')}`);
    }
    expect(bad).toEqual([]);
  }, 120_000);

  it('the checker catches a seal that skips the repair of lagging replicas', async () => {
    let caught = 0;
    for (let seed = 1; seed <= 100; seed++) {
      const r = await simulateNative(seed, {
        skipRepair: true,
        faults: { crashes: 4, partitions: 2, reset: 0.01 },
      });
      if (r.violations.length) caught++;
    }
    expect(caught).toBeGreaterThan(5);
  }, 60_000);

  it('a seed replays exactly', async () => {
    const a = await simulateNative(77, { faults: { crashes: 4 } });
    const b = await simulateNative(77, { faults: { crashes: 4 } });
    expect(b).toEqual(a);
  });
});
