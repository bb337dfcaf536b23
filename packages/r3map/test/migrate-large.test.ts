// A migration of a 4 TiB device between two processes' control channels (2^30 units of 4 KiB): the
// source's dirty sets go as runs over several frames (control version 3). Until then a device over
// 192 GiB failed at its first round, its bitmap more than one 8 MiB frame. The device holds no data
// (ZeroDevice), and the destination is driven by hand (a real one pre-copies the 4 TiB first) with the
// channel's own `nextUnits`, as `migrateFrom` receives them.
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  ControlChannel,
  controlVersion,
  MigrationSource,
  migrateTrackBytes,
  NbdServer,
  UnitSet,
} from '../src/index.js';
import { ZeroDevice } from './helpers/zeros.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('a migration of a 4 TiB device', () => {
  it('sends its dirty sets as runs over several frames, and hands over', async () => {
    const size = 4 * 2 ** 40;
    const unit = migrateTrackBytes;
    const units = size / unit;
    const dev = new ZeroDevice(size);
    const src = new MigrationSource(dev);
    const { controlPort } = await src.listen(0);
    cleanups.push(() => src.close());

    const sock = connect({ host: '127.0.0.1', port: controlPort });
    await once(sock, 'connect');
    const ch = new ControlChannel(sock, 'the source', false);
    cleanups.push(async () => ch.close());
    ch.send({ t: 'hello', v: controlVersion });
    const info = await ch.next('info');
    expect(info).toMatchObject({ v: 3, size, trackBytes: unit });

    // the workload: both ends, a unit past 2^31 units' worth of bytes, a 1 GiB trim (one run), and
    // 360,000 single units 2,000 apart (3 bytes of runs each: more than one frame of 1 MiB)
    const want = new UnitSet();
    const block = new Uint8Array(unit).fill(7);
    for (const u of [0, units - 1, 3 * 2 ** 28 + 5]) {
      await src.front.writeAt(u * unit, block);
      want.add(u);
    }
    await src.front.trim(2 ** 40, 2 ** 30);
    want.addRange(2 ** 40 / unit, 2 ** 30 / unit);
    for (let k = 0; k < 360_000; k += 10_000) {
      const batch: Promise<void>[] = [];
      for (let j = k; j < k + 10_000; j++) {
        const u = 2 ** 28 + 2 ** 19 + j * 2_000;
        batch.push(src.front.writeAt(u * unit, block));
        want.add(u);
      }
      await Promise.all(batch);
    }

    const frames = vi.spyOn(ch, 'next');
    ch.send({ t: 'round' });
    const dirty = await ch.nextUnits('dirty', units);
    expect(frames.mock.calls.length).toBeGreaterThan(1);
    expect(dirty.size).toBe(want.size);
    expect([...dirty.runs()]).toEqual([...want.runs()]);
    // nothing written since: one empty frame
    frames.mockClear();
    ch.send({ t: 'round' });
    expect((await ch.nextUnits('dirty', units)).size).toBe(0);
    expect(frames.mock.calls.length).toBe(1);
    frames.mockRestore();

    // finalize against a 4 TiB export of the destination's
    const destDev = new ZeroDevice(size);
    const dest = new NbdServer([{ name: '', device: destDev }]);
    const servePort = await dest.listen(0, '127.0.0.1');
    cleanups.push(() => dest.close());
    await src.front.writeAt(size - 3 * unit, block);
    ch.send({ t: 'finalize', servePort });
    const last = await ch.nextUnits('final', units);
    expect([...last]).toEqual([units - 3]);
    ch.send({ t: 'serving' });
    await ch.next('committed');
    // the workload now goes to the destination
    await src.front.writeAt(unit, block);
    expect(destDev.writes).toEqual([{ offset: unit, length: unit }]);
    ch.send({ t: 'release' });
    await ch.next('released');
    expect(src.status).toBe('released');
  }, 60_000);
});
