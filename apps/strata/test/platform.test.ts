import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { captureIo } from '@strata/cli';
import { Stream } from '@strata/helios';
import { loadRules, readCapture } from '@strata/ids';
import { afterEach, describe, expect, it } from 'vitest';
import { alertsDdl, generatedRules, generatedTraffic, runPlatform } from '../src/platform.js';

const dirs: string[] = [];
function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'strata-platform-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the platform: a capture through the IDS into a Helios stream', () => {
  it('generates the traffic it says: each conversation a handshake, two messages and two FINs', async () => {
    const { capture, expected } = generatedTraffic(50, 7);
    const flags: number[] = [];
    for await (const p of readCapture(Readable.from([Buffer.from(capture)]))) flags.push(p.data[47]!);
    expect(flags).toHaveLength(50 * 9);
    // SYN, SYN/ACK, ACK, then each message (PSH/ACK) and its ACK, then FIN/ACK each way
    expect(flags.slice(0, 9)).toEqual([0x02, 0x12, 0x10, 0x18, 0x10, 0x18, 0x10, 0x11, 0x11]);
    expect([...expected.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(loadRules(generatedRules, 'generated.rules').rules).toHaveLength(3);
  });

  it('raises every attack the generator put in, stores one row each, and finds them with and without the index', async () => {
    for (const seed of [1, 2]) {
      const dir = scratch();
      const { capture, expected } = generatedTraffic(240, seed);
      const pcap = join(dir, 'in.pcap');
      writeFileSync(pcap, capture);
      const rules = join(dir, 'demo.rules');
      writeFileSync(rules, generatedRules);
      const c = captureIo();
      const r = await runPlatform(c.io, join(dir, 'run'), { capture: pcap, rules });
      // the IDS: exactly the attacks by construction (the percent-encoded traversal found through the
      // URI buffer's normalisation)
      expect(r.bySid).toEqual(expected);
      expect(r.rows).toBe(r.alerts);
      expect(r.searches).toHaveLength(4);
      for (const s of r.searches) {
        expect(s.indexed, s.where).toBe(s.expected);
        expect(s.scanned, s.where).toBe(s.expected);
        expect(s.expected, s.where).toBeGreaterThan(0);
      }
      expect(c.stdout()).toContain(`${r.alerts} alerts`);

      // the stream outlives the process that wrote it: opened again from its directory, the same rows
      const s = await Stream.open(join(dir, 'run', 'data'), 'alerts');
      try {
        for (const [sid, n] of expected)
          expect((await s.search(s.parse(`sid = ${sid}`))).rows).toHaveLength(n);
        const root = await s.search(s.parse("msg CONTAINS 'root'"));
        expect(root.rows).toHaveLength(expected.get(1900003)!);
        expect(root.rows.every((row) => row[8] === 'allow' || row[8] === 'alert')).toBe(true);
      } finally {
        await s.close();
      }
    }
  });

  it('runs on generated traffic where the shared material is not (a fresh clone elsewhere)', async () => {
    const c = captureIo();
    const r = await runPlatform(c.io, scratch(), { useShared: false });
    expect(c.stdout()).toContain('generated.pcap with 3 rules');
    expect(r.bySid).toEqual(generatedTraffic().expected);
    for (const s of r.searches) expect([s.indexed, s.scanned], s.where).toEqual([s.expected, s.expected]);
  });

  it('runs on the shared capture with the community rules when they are there', async () => {
    const shared = new URL('../../../../shared/ids/traces/suricata-verify-mix.pcap', import.meta.url)
      .pathname;
    if (!existsSync(shared)) return;
    const c = captureIo();
    const r = await runPlatform(c.io, scratch());
    expect(c.stdout()).toContain('suricata-verify-mix.pcap');
    expect(r.alerts).toBeGreaterThan(0);
    expect(r.rows).toBe(r.alerts);
    for (const s of r.searches) expect([s.indexed, s.scanned], s.where).toEqual([s.expected, s.expected]);
  }, 60_000);

  it('runs as processes of its own: a capture on stdin through `strata ids` into `strata stream agent`, to a server', async () => {
    const bin = new URL('../bin/strata.js', import.meta.url).pathname;
    const dir = scratch();
    const data = join(dir, 'data');
    const { capture, expected } = generatedTraffic(120, 3);
    writeFileSync(join(dir, 'in.pcap'), capture);
    writeFileSync(join(dir, 'demo.rules'), generatedRules);
    // Suricata-style eve JSON as `strata ids --format json` writes it: columns reach into its `alert` object
    writeFileSync(
      join(dir, 'alerts.ddl'),
      `CREATE STREAM alerts SOURCES ('stdin:')
         FORMAT json
         COLUMNS (timestamp TIMESTAMP, src_ip STRING, dest_ip STRING, src_port INT, dest_port INT, proto STRING,
                  alert.signature_id INT, alert.signature TEXT)
         INDEX (src_ip, dest_ip, alert.signature_id, TOKENS(alert.signature))`,
    );
    const created = spawnSync(process.execPath, [
      bin,
      'stream',
      'create',
      '--ddl',
      join(dir, 'alerts.ddl'),
      '--data',
      data,
    ]);
    expect(created.status, String(created.stderr)).toBe(0);
    const server = spawn(process.execPath, [bin, 'stream', 'serve', '--port', '0', '--data', data], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = (p: ReturnType<typeof spawn>) =>
      new Promise<number | null>((done) => p.once('exit', (code) => done(code)));
    try {
      const url = await new Promise<string>((found, fail) => {
        let err = '';
        server.stderr!.on('data', (b: Buffer) => {
          err += b.toString();
          const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
          if (m) found(m[1]!);
        });
        server.once('exit', (code) => fail(new Error(`server exited ${code}: ${err}`)));
      });
      const ids = spawn(
        process.execPath,
        [bin, 'ids', '--rules', join(dir, 'demo.rules'), '--format', 'json', '-'],
        {
          stdio: ['pipe', 'pipe', 'pipe'],
        },
      );
      const agent = spawn(process.execPath, [bin, 'stream', 'agent', 'alerts', '-', '--url', url], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      createReadStream(join(dir, 'in.pcap')).pipe(ids.stdin!);
      ids.stdout!.pipe(agent.stdin!);
      let agentOut = '';
      agent.stderr!.on('data', (b: Buffer) => {
        agentOut += b.toString();
      });
      agent.stdout!.on('data', (b: Buffer) => {
        agentOut += b.toString();
      });
      const [idsCode, agentCode] = await Promise.all([exited(ids), exited(agent)]);
      expect([idsCode, agentCode], agentOut).toEqual([0, 0]);
      const total = [...expected.values()].reduce((a, b) => a + b, 0);
      expect(agentOut).toContain(`shipped ${total} lines`);
      server.kill('SIGTERM');
      await exited(server);
      const s = await Stream.open(data, 'alerts');
      try {
        expect((await s.search(s.parse("alert.signature CONTAINS 'STRATA-DEMO'"))).rows).toHaveLength(total);
        for (const [sid, n] of expected) {
          const q = s.parse(`alert.signature_id = ${sid}`);
          expect((await s.search(q)).rows, String(sid)).toHaveLength(n);
          expect((await s.search(q, { useIndex: false })).rows, String(sid)).toHaveLength(n);
        }
      } finally {
        await s.close();
      }
    } finally {
      server.kill('SIGKILL');
    }
  }, 60_000);

  it('refuses half an input and names a capture it cannot read', async () => {
    const dir = scratch();
    const c = captureIo();
    await expect(runPlatform(c.io, dir, { capture: join(dir, 'x.pcap') })).rejects.toThrow(
      /both a capture and a rules file/,
    );
    const bad = join(dir, 'bad.pcap');
    writeFileSync(bad, 'this is not a capture, just text\n');
    const rules = join(dir, 'r.rules');
    writeFileSync(rules, generatedRules);
    await expect(runPlatform(c.io, join(dir, 'run'), { capture: bad, rules })).rejects.toThrow(
      /capture|pcap/i,
    );
  });

  it('declares the columns the events carry', () => {
    for (const col of [
      'ts',
      'src_ip',
      'src_port',
      'dest_ip',
      'dest_port',
      'proto',
      'sid',
      'rev',
      'action',
      'msg',
    ])
      expect(alertsDdl).toMatch(new RegExp(`\\b${col} `));
  });
});
