// Durable append throughput and latency, side by side in one run, of the NativeLoglet (3 LogServers and
// a sequencer in this process, majority fsync) against its anchors on the same machine with default
// durability: etcd `put` (gRPC, one HTTP/2 connection), ZooKeeper sequential `create`, and the
// ZooKeeperLoglet (the shim loglet Delos swapped for its NativeLoglet). Records of 100 B; 1 client
// appending sequentially and 64 appends in flight. ZooKeeper and etcd are started here (scripts/services)
// on 127.0.0.1 and stopped afterwards.
// Usage: npm run bench -- vlog anchors [-- --seconds S]
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { table, writeResults } from '@strata/bench';
import { LogServer, NativeLoglet, nativeSpec, openLoglet, Sequencer } from '../src/index.js';
import { ZkClient, ZooKeeperLoglet, zkPersistentSequential } from '../src/providers/zookeeper.js';
import { type Service, serviceAvailable, startService } from '../test/helpers/services.js';
import { type Row, record, runAppends, seconds } from './common.js';

const rounds = 2;
const run = runAppends;

/** etcd's KV.Put over raw gRPC (HTTP/2, length-prefixed protobuf): what an etcd client sends. */
function etcdPutter(address: string) {
  const session = connect(`http://${address}`);
  const varint = (n: number) => {
    const out: number[] = [];
    while (n > 0x7f) {
      out.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    out.push(n);
    return Buffer.from(out);
  };
  let n = 0;
  const put = (): Promise<void> => {
    // PutRequest { bytes key = 1; bytes value = 2; }
    const key = Buffer.from(`bench/${String(n++).padStart(12, '0')}`);
    const msg = Buffer.concat([
      Buffer.from([0x0a]),
      varint(key.length),
      key,
      Buffer.from([0x12]),
      varint(record.length),
      record,
    ]);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(msg.length, 1);
    return new Promise((resolve, reject) => {
      const req = session.request({
        ':method': 'POST',
        ':path': '/etcdserverpb.KV/Put',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      let status: string | undefined;
      req.on('response', (h) => {
        if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
      });
      req.on('trailers', (h) => {
        status = String(h['grpc-status']);
      });
      req.on('data', () => {});
      req.on('error', reject);
      req.on('end', () =>
        status === '0' ? resolve() : reject(new Error(`etcd Put: grpc-status ${status ?? 'missing'}`)),
      );
      req.end(Buffer.concat([head, msg]));
    });
  };
  return { put, close: () => session.close() };
}

if (!serviceAvailable('zookeeper') || !serviceAvailable('etcd')) {
  console.error('anchors bench: needs ZooKeeper and etcd: apt-get install -y zookeeper etcd-server curl');
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'vlog-anchors-'));
const services: Service[] = [];
const rows: Row[] = [];
const servers = [0, 1, 2].map((i) => new LogServer(join(dir, `ls${i}`)));
let seq: Sequencer | undefined;
let seq2: Sequencer | undefined;
try {
  const zk = startService('zookeeper');
  services.push(zk);
  const etcd = startService('etcd');
  services.push(etcd);
  const addrs = await Promise.all(servers.map(async (s) => `127.0.0.1:${await s.listen(0)}`));
  seq = new Sequencer(addrs);
  const seqAddr = `127.0.0.1:${await seq.listen(0)}`;
  // a second sequencer over the same LogServers: the StripedLoglet rotates between the two
  seq2 = new Sequencer(addrs);
  const seq2Addr = `127.0.0.1:${await seq2.listen(0)}`;
  const zkRaw = new ZkClient(zk.address);
  await zkRaw.mkdirp('/bench/seq');
  const etcdPut = etcdPutter(etcd.address);
  let n = 0;
  for (const inflight of [1, 64]) {
    // alternate the subject and its anchors, so drift on the shared machine hits all of them
    for (let round = 0; round < rounds; round++) {
      const native = new NativeLoglet(`a${n++}`, 0, seqAddr, addrs);
      rows.push(await run('NativeLoglet (3 LogServers, majority)', () => native.append([record]), inflight));
      await native.close();
      const striped = await openLoglet(
        `striped:${nativeSpec(seqAddr, addrs, `st${n}`)}|${nativeSpec(seq2Addr, addrs, `st${n}`)}`,
        0,
        n++,
        dir,
        'bench',
      );
      rows.push(
        await run(
          'StripedLoglet (2 NativeLoglets, rotating sequencers)',
          () => striped.append([record]),
          inflight,
        ),
      );
      await striped.close();
      rows.push(await run('etcd put (gRPC)', etcdPut.put, inflight));
      rows.push(
        await run(
          'ZooKeeper sequential create',
          () => zkRaw.create('/bench/seq/r-', record, zkPersistentSequential),
          inflight,
        ),
      );
      const zl = await ZooKeeperLoglet.open(zk.address, { path: `/bench/loglet${n++}` });
      rows.push(await run('ZooKeeperLoglet', () => zl.append([record]), inflight));
      await zl.close();
    }
  }
  etcdPut.close();
  await zkRaw.close();

  const avg = (name: string, inflight: number, k: 'appendsPerSec' | 'p50Ms' | 'p99Ms') => {
    const xs = rows.filter((r) => r.name.startsWith(name) && r.inflight === inflight);
    return xs.reduce((s, r) => s + r[k], 0) / xs.length;
  };
  const names = [...new Set(rows.map((r) => r.name))];
  console.log(
    table(
      ['implementation', 'in flight', 'appends/s', 'p50', 'p99'],
      [1, 64].flatMap((inflight) =>
        names.map((name) => [
          name,
          String(inflight),
          avg(name, inflight, 'appendsPerSec').toFixed(0),
          `${avg(name, inflight, 'p50Ms').toFixed(3)} ms`,
          `${avg(name, inflight, 'p99Ms').toFixed(3)} ms`,
        ]),
      ),
    ),
  );
  console.log(`(each row: the mean of ${rounds} runs of ${seconds} s, alternated)`);
  const ratios: Record<string, { throughput: number; p99: number }> = {};
  for (const anchor of ['etcd put', 'ZooKeeperLoglet', 'ZooKeeper sequential create'])
    for (const inflight of [1, 64]) {
      const thr = avg('NativeLoglet', inflight, 'appendsPerSec') / avg(anchor, inflight, 'appendsPerSec');
      const p99 = avg('NativeLoglet', inflight, 'p99Ms') / avg(anchor, inflight, 'p99Ms');
      ratios[`${anchor}, in flight ${inflight}`] = { throughput: thr, p99 };
      console.log(
        `NativeLoglet vs ${anchor}, in flight ${inflight}: throughput x${thr.toFixed(2)}, p99 latency x${p99.toFixed(2)}`,
      );
    }
  for (const inflight of [1, 64]) {
    const thr =
      avg('StripedLoglet', inflight, 'appendsPerSec') / avg('NativeLoglet', inflight, 'appendsPerSec');
    ratios[`StripedLoglet vs NativeLoglet, in flight ${inflight}`] = {
      throughput: thr,
      p99: avg('StripedLoglet', inflight, 'p99Ms') / avg('NativeLoglet', inflight, 'p99Ms'),
    };
    console.log(
      `StripedLoglet (2 sequencers) vs NativeLoglet, in flight ${inflight}: throughput x${thr.toFixed(2)}`,
    );
  }
  writeResults('bench/results', 'anchors', { date: new Date().toISOString(), seconds, rounds, rows, ratios });
} finally {
  await seq?.close();
  await seq2?.close();
  for (const s of servers) await s.close();
  for (const s of services) s.stop();
  rmSync(dir, { recursive: true, force: true });
}
